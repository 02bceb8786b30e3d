/**
 * The chat panel: messages with clickable http(s) links (built as elements, never as HTML), our own messages shown
 * at once as "sending", then sent or failed with Retry; Enter sends, Shift+Enter starts a new line; a counter near
 * the 4096-character limit; a "new messages" button when scrolled up.
 */
import type { ChatMessage, Room } from '../sdk/index.js';
import { KaiwaError } from '../sdk/index.js';
import { h } from './dom.js';

export const CHAT_LIMIT = 4096;
const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Text with its http/https links as <a> elements (target _blank, no opener, no referrer). */
export function linkify(text: string): Node[] {
  const out: Node[] = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0];
    // Trailing punctuation belongs to the sentence, not the link (a closing parenthesis only when unbalanced).
    while (/[.,;:!?'"\]]$/.test(raw) || (raw.endsWith(')') && (raw.match(/\(/g)?.length ?? 0) < (raw.match(/\)/g)?.length ?? 0))) {
      raw = raw.slice(0, -1);
    }
    let url: URL | null = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    const start = m.index ?? 0;
    if (start > last) out.push(document.createTextNode(text.slice(last, start)));
    out.push(h('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer nofollow', testid: 'chat-link' }, raw));
    last = start + raw.length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

interface Pending {
  text: string;
  li: HTMLLIElement;
  echoed: boolean;
}

export class ChatPanel {
  readonly el: HTMLElement;
  readonly log: HTMLOListElement;
  readonly input: HTMLTextAreaElement;
  private readonly counter: HTMLSpanElement;
  private readonly send: HTMLButtonElement;
  private readonly newCue: HTMLButtonElement;
  private pending: Pending[] = [];
  /** Messages shown as failed: one may still arrive (the server got it, its reply was lost). */
  private failed: Pending[] = [];

  /** @param onIncoming called for each message from someone else (unread counters, title) */
  constructor(private readonly room: Room, private readonly onIncoming: (m: ChatMessage) => void) {
    this.log = h('ol', { class: 'chat-log', testid: 'chat-log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
    this.input = h('textarea', { testid: 'chat-input', placeholder: 'Message everyone', rows: 1, autocomplete: 'off',
      'aria-label': 'Chat message', 'aria-describedby': 'chat-hint' });
    this.counter = h('span', { class: 'chat-counter', testid: 'chat-counter', 'aria-live': 'polite' });
    this.send = h('button', { type: 'submit', class: 'primary', testid: 'chat-send' }, 'Send');
    this.newCue = h('button', { type: 'button', class: 'new-messages', testid: 'chat-new-messages',
      onclick: () => this.scrollToEnd() }, 'New messages ↓');
    this.newCue.hidden = true;
    const form = h('form', { class: 'chat-form', testid: 'chat-form' }, this.input, this.send);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.submit();
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        void this.submit();
      }
    });
    this.input.addEventListener('input', () => this.syncInput());
    this.log.addEventListener('scroll', () => {
      if (this.atBottom()) this.newCue.hidden = true;
    });
    this.el = h('section', { class: 'panel chat', 'aria-label': 'Chat' },
      h('h2', {}, 'Chat'),
      h('div', { class: 'chat-scroll' }, this.log, this.newCue),
      form,
      h('div', { class: 'chat-foot' },
        h('span', { id: 'chat-hint', class: 'hint' }, 'Enter sends · Shift+Enter new line'), this.counter));
    this.syncInput();
    room.on('chat', (m) => this.onChat(m));
  }

  private syncInput(): void {
    const n = this.input.value.length;
    const over = n > CHAT_LIMIT;
    this.counter.textContent = n > CHAT_LIMIT - 500 ? `${n} / ${CHAT_LIMIT}` : '';
    this.counter.classList.toggle('over', over);
    this.counter.dataset.over = String(over);
    this.input.setAttribute('aria-invalid', String(over));
    this.send.disabled = over || this.input.value.trim().length === 0;
    this.send.title = over ? `Messages are at most ${CHAT_LIMIT} characters` : '';
    // Grow with the text up to a few lines.
    this.input.style.height = '';
    if (this.input.value && this.input.scrollHeight > this.input.clientHeight) {
      this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 120)}px`;
    }
  }

  private atBottom(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
  }

  private scrollToEnd(): void {
    this.log.scrollTop = this.log.scrollHeight;
    this.newCue.hidden = true;
  }

  private async submit(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || text.length > CHAT_LIMIT) return;
    this.input.value = '';
    this.syncInput();
    const li = this.item({ from: this.room.id, name: 'You', text, ts: Date.now(), self: true }, 'pending');
    this.log.append(li);
    this.scrollToEnd();
    await this.deliver({ text, li, echoed: false });
  }

  private async deliver(p: Pending): Promise<void> {
    p.li.dataset.state = 'pending';
    this.setStatus(p.li, 'Sending…');
    this.pending.push(p);
    try {
      await this.room.sendChat(p.text);
      if (p.li.dataset.state === 'pending') {
        p.li.dataset.state = 'sent';
        this.setStatus(p.li, '');
      }
    } catch (err) {
      if (p.echoed) return;
      this.pending = this.pending.filter((x) => x !== p);
      this.failed.push(p);
      const e = err instanceof KaiwaError ? err : new KaiwaError('internal', String(err));
      p.li.dataset.state = 'failed';
      p.li.dataset.code = e.code;
      const why = e.code === 'timeout' ? 'no answer from the server' : e.code === 'rate-limited' ? 'too many messages' : e.message;
      const status = this.setStatus(p.li, `Not sent (${why}). `);
      status.append(h('button', { type: 'button', class: 'link', testid: 'chat-retry', onclick: () => {
        status.replaceChildren();
        this.failed = this.failed.filter((x) => x !== p);
        void this.deliver(p);
      } }, 'Retry'));
    }
  }

  private setStatus(li: HTMLLIElement, text: string): HTMLSpanElement {
    const s = li.querySelector<HTMLSpanElement>('.chat-status')!;
    s.textContent = text;
    return s;
  }

  private onChat(m: ChatMessage): void {
    if (m.self) {
      const p = this.pending.find((x) => x.text === m.text && !x.echoed) ?? this.failed.find((x) => x.text === m.text);
      if (p) {
        p.echoed = true;
        this.pending = this.pending.filter((x) => x !== p);
        this.failed = this.failed.filter((x) => x !== p);
        p.li.dataset.state = 'sent';
        this.setStatus(p.li, '');
        const time = p.li.querySelector('time');
        if (time) this.setTime(time, m.ts);
        // Keep the server's order: move it after anything that arrived while it was pending.
        const failedOrPending = p.li.nextElementSibling;
        if (failedOrPending) this.log.append(p.li);
        return;
      }
    }
    const bottom = this.atBottom();
    this.log.append(this.item(m, 'sent'));
    if (bottom || m.self) this.scrollToEnd();
    else this.newCue.hidden = false;
    if (!m.self) this.onIncoming(m);
  }

  private setTime(el: HTMLTimeElement, ts: number): void {
    const t = new Date(ts);
    el.dateTime = t.toISOString();
    el.textContent = t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  private item(m: ChatMessage, state: string): HTMLLIElement {
    const time = h('time', {});
    this.setTime(time, m.ts);
    return h('li', { class: m.self ? 'self' : '', testid: 'chat-message', 'data-from': m.from, 'data-self': String(m.self),
      'data-state': state },
    h('span', { class: 'who', testid: 'chat-name' }, m.self ? 'You' : m.name),
    time,
    h('p', { class: 'text', testid: 'chat-text' }, ...linkify(m.text)),
    h('span', { class: 'chat-status', testid: 'chat-status' }));
  }
}
