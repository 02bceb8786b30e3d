/**
 * The files panel: pick several files or drop them anywhere on the room, send to one person or everyone; the
 * receiver sees an offer and accepts or declines before any byte flows; either side can cancel; each transfer
 * shows queued / waiting / progress with speed and time left / the SHA-256 verdict and a Save link.
 */
import type { FileFailure, FileMeta, FileProgress, ReceivedFile, RemotePeer, Room, SentFile } from '../sdk/index.js';
import { KaiwaError } from '../sdk/index.js';
import { formatBytes, h } from './dom.js';

type Dir = 'send' | 'receive';
type RowState = 'queued' | 'waiting' | 'offer' | 'progress' | 'done' | 'failed' | 'declined' | 'cancelled';

interface Row {
  el: HTMLLIElement;
  meta: FileMeta;
  peer: string;
  dir: Dir;
  progress: HTMLProgressElement;
  percent: HTMLSpanElement;
  rate: HTMLSpanElement;
  status: HTMLSpanElement;
  actions: HTMLSpanElement;
  // speed: an exponentially smoothed rate over progress events
  lastT: number;
  lastBytes: number;
  bps: number;
}

export class FilesPanel {
  readonly el: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly target: HTMLSelectElement;
  private readonly sendBtn: HTMLButtonElement;
  private readonly list: HTMLUListElement;
  private readonly chosen: HTMLSpanElement;
  private readonly rows = new Map<string, Row>();

  /**
   * @param notify shows a toast (and bumps the unread badge when the panel is out of sight)
   */
  constructor(private readonly room: Room, private readonly notify: (text: string, kind: 'info' | 'warn' | 'error', testid?: string) => void,
    private readonly onOffer: () => void) {
    this.input = h('input', { type: 'file', multiple: true, testid: 'file-input', 'aria-label': 'Files to send' });
    this.chosen = h('span', { class: 'hint', testid: 'file-chosen' });
    this.target = h('select', { testid: 'file-target', 'aria-label': 'Send to' }, h('option', { value: '' }, 'Everyone'));
    this.sendBtn = h('button', { type: 'submit', class: 'primary', testid: 'file-send' }, 'Send');
    this.list = h('ul', { class: 'file-list', testid: 'file-list' });
    const form = h('form', { class: 'file-form', testid: 'file-form' },
      h('label', { class: 'file-pick' }, this.input),
      this.chosen,
      h('div', { class: 'row' }, this.target, this.sendBtn),
      h('p', { class: 'hint' }, 'or drop files anywhere in the room'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.sendFiles([...(this.input.files ?? [])]);
    });
    this.input.addEventListener('change', () => this.sync());
    this.el = h('section', { class: 'panel files', 'aria-label': 'Files' }, h('h2', {}, 'Files'), form, this.list);

    const r = room;
    r.on('file-offer', (f) => this.onOfferIn(f));
    r.on('file-offered', (f) => this.setState(this.row(f, f.peer, 'send'), 'waiting', `waiting for ${this.peerName(f.peer)} to accept`));
    r.on('file-accepted', (f) => this.setState(this.row(f, f.peer, 'send'), 'progress', 'sending'));
    r.on('file-incoming', (f) => this.setState(this.row(f, f.peer, 'receive'), 'progress', 'receiving'));
    r.on('file-progress', (p) => this.onProgress(p));
    r.on('file-received', (f) => this.onReceived(f));
    r.on('file-sent', (f) => this.onSent(f));
    r.on('file-failed', (f) => this.onFailed(f));
    this.sync();
  }

  addPeer(p: RemotePeer): void {
    this.target.append(h('option', { value: p.id, 'data-peer-id': p.id, title: p.name }, p.name));
    this.sync();
  }

  removePeer(p: RemotePeer): void {
    this.target.querySelector(`option[data-peer-id="${CSS.escape(p.id)}"]`)?.remove();
    this.sync();
  }

  /** Files dropped on the room (or given by the caller): sent to the chosen target. */
  async sendFiles(files: File[]): Promise<void> {
    if (files.length === 0) return;
    const to = this.target.value || undefined;
    const targets = to ? [to] : [...this.room.peers.keys()];
    if (targets.length === 0) {
      this.notify('Nobody else is in the room yet: invite someone first.', 'warn', 'file-error');
      return;
    }
    this.sendBtn.disabled = true;
    for (const file of files) {
      try {
        const handle = await this.room.sendFile(file, to);
        for (const peer of targets) {
          const row = this.row(handle.meta, peer, 'send');
          if (row.el.dataset.state === 'queued') this.setState(row, 'queued', 'queued');
        }
      } catch (err) {
        const e = err instanceof KaiwaError ? err : new KaiwaError('file-failed', String(err));
        this.notify(`Could not send ${file.name}: ${e.message}`, 'error', 'file-error');
      }
    }
    this.input.value = '';
    this.sync();
  }

  private sync(): void {
    const n = this.input.files?.length ?? 0;
    this.chosen.textContent = n > 1 ? `${n} files chosen` : '';
    this.sendBtn.disabled = n === 0 || this.room.peers.size === 0;
    this.sendBtn.textContent = n > 1 ? `Send ${n} files` : 'Send';
  }

  private peerName(id: string): string {
    return this.room.peers.get(id)?.name ?? 'someone who left';
  }

  private row(meta: FileMeta, peer: string, dir: Dir): Row {
    const key = `${dir}:${meta.id}:${peer}`;
    const existing = this.rows.get(key);
    if (existing) return existing;
    const progress = h('progress', { testid: 'file-progress', max: Math.max(1, meta.size), value: 0 });
    const percent = h('span', { class: 'percent', testid: 'file-percent' }, '');
    const rate = h('span', { class: 'rate', testid: 'file-rate' });
    const status = h('span', { class: 'status', testid: 'file-status' });
    const actions = h('span', { class: 'file-actions' });
    const who = dir === 'send' ? `to ${this.peerName(peer)}` : `from ${this.peerName(peer)}`;
    const el = h('li', { class: 'transfer', testid: 'file-transfer', 'data-transfer-id': meta.id, 'data-direction': dir,
      'data-peer': peer, 'data-state': 'queued', 'data-sha256': meta.sha256 },
    h('div', { class: 'file-head' },
      h('span', { class: 'file-name', testid: 'file-name', title: meta.name }, meta.name),
      h('span', { class: 'dir', 'aria-label': dir === 'send' ? 'outgoing' : 'incoming' }, dir === 'send' ? '↑' : '↓')),
    h('div', { class: 'file-meta' },
      h('span', { testid: 'file-size', 'data-bytes': meta.size }, formatBytes(meta.size)),
      h('span', { testid: 'file-type' }, meta.type || 'unknown type'),
      h('span', { class: 'file-who', title: who }, who)),
    h('div', { class: 'file-progress' }, progress, percent),
    h('div', { class: 'file-foot' }, status, rate, actions));
    const row: Row = { el, meta, peer, dir, progress, percent, rate, status, actions, lastT: 0, lastBytes: 0, bps: 0 };
    this.rows.set(key, row);
    this.list.prepend(el);
    return row;
  }

  private setState(row: Row, state: RowState, text: string): void {
    const prev = row.el.dataset.state as RowState;
    const final = (s: RowState) => s === 'done' || s === 'failed' || s === 'declined' || s === 'cancelled';
    if (final(prev)) return; // late events after the end change nothing
    row.el.dataset.state = state;
    row.status.textContent = text;
    row.progress.hidden = state === 'queued' || state === 'waiting' || state === 'offer';
    row.percent.hidden = row.progress.hidden;
    row.actions.replaceChildren();
    if (state === 'offer') {
      row.actions.append(
        h('button', { type: 'button', class: 'primary small', testid: 'file-accept', onclick: () => {
          this.room.acceptFile(row.peer, row.meta.id);
        } }, 'Accept'),
        h('button', { type: 'button', class: 'ghost small', testid: 'file-decline', onclick: () => {
          this.room.declineFile(row.peer, row.meta.id);
        } }, 'Decline'));
    } else if (!final(state)) {
      row.actions.append(h('button', { type: 'button', class: 'ghost small', testid: 'file-cancel',
        'aria-label': `Cancel ${row.meta.name}`, onclick: () => {
          this.room.cancelFile(row.meta.id, row.peer);
        } }, 'Cancel'));
    }
    if (final(state)) row.rate.textContent = '';
  }

  private onOfferIn(f: FileMeta & { peer: string }): void {
    const row = this.row(f, f.peer, 'receive');
    this.setState(row, 'offer', `${this.peerName(f.peer)} wants to send you this file`);
    this.notify(`${this.peerName(f.peer)} wants to send you ${f.name} (${formatBytes(f.size)})`, 'info', 'file-offer-toast');
    this.onOffer();
  }

  private onProgress(p: FileProgress): void {
    const row = this.row(p, p.peer, p.direction);
    if (row.el.dataset.state !== 'progress') this.setState(row, 'progress', p.direction === 'send' ? 'sending' : 'receiving');
    row.progress.value = Math.min(p.bytes, Math.max(1, p.size));
    const pct = p.size === 0 ? 100 : Math.floor((p.bytes * 100) / p.size);
    row.percent.textContent = `${pct}%`;
    row.el.dataset.percent = String(pct);
    const now = performance.now();
    if (row.lastT > 0 && now > row.lastT && p.bytes > row.lastBytes) {
      const inst = ((p.bytes - row.lastBytes) * 1000) / (now - row.lastT);
      row.bps = row.bps === 0 ? inst : row.bps * 0.7 + inst * 0.3;
    }
    if (row.lastT === 0 || p.bytes > row.lastBytes) {
      row.lastT = now;
      row.lastBytes = p.bytes;
    }
    if (row.bps > 0 && p.bytes < p.size) {
      const left = Math.ceil((p.size - p.bytes) / row.bps);
      row.rate.textContent = `${formatBytes(row.bps)}/s · ${formatDuration(left)} left`;
      row.el.dataset.bytesPerSecond = String(Math.round(row.bps));
      row.el.dataset.secondsLeft = String(left);
    }
  }

  private onReceived(f: ReceivedFile): void {
    const row = this.row(f, f.peer, 'receive');
    row.progress.value = Math.max(1, f.size);
    row.percent.textContent = '100%';
    row.el.dataset.percent = '100';
    row.el.dataset.receivedSha256 = f.receivedSha256;
    this.setState(row, 'done', '');
    row.status.append(
      f.verified
        ? h('span', { class: 'ok', testid: 'file-verified', title: `SHA-256 ${f.receivedSha256}` }, '✓ SHA-256 verified')
        : h('span', { class: 'bad', testid: 'file-unverified', title: `got ${f.receivedSha256}, expected ${f.sha256}` }, '✗ SHA-256 mismatch'),
      ' ',
      h('a', { href: f.url, download: f.name, testid: 'file-link' }, `Save ${f.name}`));
  }

  private onSent(f: SentFile): void {
    const row = this.row(f, f.peer, 'send');
    row.progress.value = Math.max(1, f.size);
    row.percent.textContent = '100%';
    row.el.dataset.percent = '100';
    this.setState(row, 'done', '');
    row.status.append(h('span', { class: 'ok', testid: 'file-verified' }, '✓ delivered, SHA-256 verified'));
  }

  private onFailed(f: FileFailure): void {
    const row = this.row(f, f.peer, f.direction);
    const code = f.error.code;
    const state: RowState = code === 'file-declined' ? 'declined' : code === 'file-cancelled' ? 'cancelled' : 'failed';
    row.el.dataset.code = code;
    this.setState(row, state, `✗ ${f.error.message}`);
  }
}

export function formatDuration(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
