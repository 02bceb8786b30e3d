/** The room's invite link with Copy (and Share where the browser has navigator.share): pre-join, empty room,
 * the invite panel. The link never carries a token or our name. */
import { h } from './dom.js';

export function inviteUrl(room: string): string {
  return `${location.origin}/room/${encodeURIComponent(room)}`;
}

export function inviteBox(room: string, opts: { note?: string; onCopied?: (ok: boolean) => void } = {}): HTMLElement {
  const url = inviteUrl(room);
  const input = h('input', { class: 'invite-url', testid: 'invite-link', readonly: true, value: url,
    'aria-label': 'Room link', spellcheck: 'false', onfocus: () => input.select() });
  const status = h('span', { class: 'invite-status', testid: 'invite-status', role: 'status' });
  const copy = h('button', { type: 'button', class: 'primary', testid: 'copy-link', onclick: async () => {
    let ok = true;
    try {
      await navigator.clipboard.writeText(url);
    } catch {
      ok = false;
      input.focus();
      input.select();
    }
    status.textContent = ok ? 'Link copied' : 'Press Ctrl+C (⌘C) to copy';
    opts.onCopied?.(ok);
  } }, 'Copy link');
  const canShare = typeof navigator.share === 'function';
  const share = canShare
    ? h('button', { type: 'button', class: 'ghost', testid: 'share-link', onclick: () => {
      void navigator.share({ title: `Join ${room} on kaiwa`, url }).catch(() => undefined);
    } }, 'Share…')
    : null;
  return h('div', { class: 'invite', testid: 'invite' },
    opts.note ? h('p', { class: 'invite-note' }, opts.note) : null,
    h('div', { class: 'row' }, input, copy, share),
    status);
}
