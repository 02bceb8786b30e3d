/**
 * File transfer through kaiwa for SFU rooms: over the signaling connection, or the SFU data channel. Each piece
 * is a `message` request whose `data` is `{"kaiwa":"file","t":…,"id":…}`:
 *
 *   → {"t":"offer","id","name","size","type","sha256","chunk"}   to the room (no `to`) or to one peer
 *   ← {"t":"accept","id"}                                         a file to one peer waits for this, as in mesh
 *   → {"t":"chunk","id","seq","d":<base64>}                        in order; sized to stay under maxMessageBytes
 *   → {"t":"end","id"}
 *   ← {"t":"done","id","ok","sha256"}                              each receiver's verdict, to the sender
 *   ↔ {"t":"cancel","id","reason"}                                 either side, any time ("declined" for a no)
 *   ← {"t":"ack","id","bytes"}              on the SFU data channel only: bytes received, every LINK_ACK_EVERY
 *
 * A file to the room is sent once, whoever receives it: it cannot wait for every receiver's yes, so its bytes
 * follow the offer at once; a receiver that asks (`acceptFiles: 'ask'`) keeps them until it decides and drops them
 * on a decline. Requests go out through the signaling client's pacing (under the server's messagesPerSecond), at
 * most WINDOW unanswered at a time so the outbox never fills with one file.
 *
 * In an sfu room whose data channel is open (`link`, sfudata.ts) the same messages travel over it instead, relayed
 * by kaiwa, in bigger chunks, paced by the channel's bufferedAmount and by the receivers' `ack`s (at most
 * LINK_WINDOW unconfirmed, so kaiwa's 1 MiB per receiver is not overrun). A file keeps the way it started on; when
 * kaiwa says it dropped a piece between us and a peer anyway, the files on the channel between us fail on both sides.
 */
import { Emitter } from './emitter.js';
import type { FileChannelEvents, FileMeta, SentFile } from './files.js';
import type { SfuDataLink } from './sfudata.js';
import type { SignalingClient } from './signaling.js';
import { KaiwaError } from './types.js';

/** Raw bytes per chunk on the SFU data channel: 64 KiB of base64, well under its 256 KiB messages. */
const LINK_CHUNK = 48 * 1024;
/** On the SFU data channel: bytes of a file sent but not yet confirmed by its slowest receiver, at most. kaiwa holds
 * at most 1 MiB per receiver and drops past it (a slow receiver's file fails), so a sender keeps well under that:
 * 384 KiB of file is 512 KiB of base64. */
const LINK_WINDOW = 384 * 1024;
/** A receiver on the SFU data channel confirms every this many bytes (`{"t":"ack","id","bytes"}`). */
const LINK_ACK_EVERY = 128 * 1024;
/** A receiver that confirms nothing for this long fails (it may never have had the offer: no channel yet), ms. */
const LINK_ACK_TIMEOUT_MS = 30_000;
/** Unanswered chunk requests at a time. */
const WINDOW = 4;
/** Room for the message envelope around a chunk's base64 (type, id, `to`, keys), bytes. */
const ENVELOPE = 512;
const PROGRESS_EVERY = 256 * 1024;
/** How long a sender waits for a receiver's yes, or for its verdict after the last chunk, ms. */
const ANSWER_TIMEOUT_MS = 120_000;
/** Files arriving from one sender at a time, and offers from one sender waiting for a decision. */
const MAX_INCOMING_PER_PEER = 4;

interface Target {
  peer: string;
  resolve: (r: SentFile) => void;
  reject: (e: KaiwaError) => void;
  accepted: boolean;
  onAccept?: () => void;
  settled: boolean;
  /** Bytes of the file this receiver confirmed (`ack`, on the SFU data channel). */
  acked: number;
}

interface Outgoing {
  meta: FileMeta;
  /** The one receiver, or undefined for the room. */
  to: string | undefined;
  targets: Map<string, Target>;
  data: ArrayBuffer;
  /** Sent over the SFU data channel (decided when its transmission starts). */
  viaLink: boolean;
}

interface Incoming {
  meta: FileMeta;
  from: string;
  chunks: Uint8Array[];
  bytes: number;
  nextSeq: number;
  chunk: number;
  /** Decided: accepted (bytes count, progress shows) or still an offer. */
  accepted: boolean;
  ended: boolean;
  lastProgress: number;
  /** Its offer came over the SFU data channel. */
  viaLink: boolean;
}

export class SignalFiles extends Emitter<FileChannelEvents> {
  autoAccept = true;
  /** The SFU data channel, when the room is sfu (null in a mesh). */
  link: SfuDataLink | null = null;
  private readonly sig: SignalingClient;
  private readonly urls: string[];
  private outgoing = new Map<string, Outgoing>();
  /** By sender, then file id. */
  private incoming = new Map<string, Map<string, Incoming>>();
  private queue: Promise<void> = Promise.resolve();
  private ackWaiters: Array<() => void> = [];
  private closed = false;

  constructor(sig: SignalingClient, urls: string[]) {
    super();
    this.sig = sig;
    this.urls = urls;
  }

  /** Raw bytes per chunk so that the request, base64 and envelope included, stays under the server's limit. */
  chunkSize(viaLink = false): number {
    if (viaLink) return LINK_CHUNK;
    const max = this.sig.hello?.limits?.maxMessageBytes ?? 65536;
    return Math.max(3, Math.floor((max - ENVELOPE) / 4) * 3);
  }

  /** Sends `data` to `peers` (`to` set: one peer; else the room, once). One promise per receiver. */
  send(data: ArrayBuffer, meta: FileMeta, peers: string[], to?: string): Promise<SentFile>[] {
    const out: Outgoing = { meta, to, targets: new Map(), data, viaLink: false };
    const promises = peers.map((peer) => new Promise<SentFile>((resolve, reject) => {
      out.targets.set(peer, { peer, resolve, reject, accepted: to === undefined, settled: false, acked: 0 });
    }));
    this.outgoing.set(meta.id, out);
    this.queue = this.queue.then(() => this.transmit(out)).catch(() => undefined);
    return promises;
  }

  /** kaiwa dropped a message on the data channel between us and `peer`: the files that went that way fail. */
  linkDropped(peer: string): void {
    const err = new KaiwaError('file-failed', 'kaiwa dropped a piece: the receiver could not keep up.');
    for (const inc of [...(this.incoming.get(peer)?.values() ?? [])]) {
      if (inc.viaLink) this.dropIncoming(inc, err);
    }
    for (const out of [...this.outgoing.values()]) {
      const t = out.targets.get(peer);
      if (!out.viaLink || !t || t.settled) continue;
      this.control(peer, { t: 'cancel', id: out.meta.id, reason: 'failed' });
      this.settle(out, t, err);
    }
  }

  /** Feeds a relayed `message` whose data is a file message (`viaLink`: it came over the SFU data channel). */
  handle(from: string, d: Record<string, unknown>, viaLink = false): void {
    if (this.closed || !from) return;
    const id = typeof d.id === 'string' ? d.id.slice(0, 64) : '';
    if (!id) return;
    switch (d.t) {
      case 'offer':
        this.onOffer(from, id, d, viaLink);
        break;
      case 'chunk':
        this.onChunk(from, id, d);
        break;
      case 'end':
        void this.onEnd(from, id);
        break;
      case 'ack': {
        const t = this.outgoing.get(id)?.targets.get(from);
        const bytes = Number(d.bytes);
        if (t && Number.isSafeInteger(bytes) && bytes > t.acked) {
          t.acked = bytes;
          this.wakeAck();
        }
        break;
      }
      case 'accept': {
        const t = this.outgoing.get(id)?.targets.get(from);
        if (t && !t.accepted) {
          t.accepted = true;
          t.onAccept?.();
        }
        break;
      }
      case 'done': {
        const out = this.outgoing.get(id);
        const t = out?.targets.get(from);
        if (!out || !t || t.settled) break;
        if (d.ok === true) {
          const sent: SentFile = { ...out.meta, peer: from, verified: true };
          this.settle(out, t, sent);
        } else {
          this.settle(out, t, new KaiwaError('file-failed', `${out.meta.name}: the receiver's SHA-256 does not match.`));
        }
        break;
      }
      case 'cancel': {
        const declined = d.reason === 'declined';
        const out = this.outgoing.get(id);
        const t = out?.targets.get(from);
        if (out && t && !t.settled) {
          this.settle(out, t, declined ? new KaiwaError('file-declined', `${out.meta.name} was declined.`)
            : new KaiwaError('file-cancelled', `${out.meta.name}: the other side cancelled.`));
        }
        const inc = this.incoming.get(from)?.get(id);
        if (inc) this.dropIncoming(inc, new KaiwaError('file-cancelled', `${inc.meta.name}: the sender cancelled.`));
        break;
      }
    }
  }

  /** Receiver: accepts an offered file. */
  accept(peer: string, id: string): boolean {
    const inc = this.incoming.get(peer)?.get(id);
    if (!inc || inc.accepted) return false;
    inc.accepted = true;
    this.emit('file-incoming', { ...inc.meta, peer });
    this.emit('file-progress', { ...inc.meta, peer, direction: 'receive', bytes: inc.bytes });
    this.control(peer, { t: 'accept', id });
    if (inc.ended) void this.finish(inc);
    return true;
  }

  /** Declines an offer or cancels a transfer (with one peer, or everyone without `peer`); false when unknown. */
  cancel(id: string, peer?: string): boolean {
    let n = 0;
    for (const [from, m] of this.incoming) {
      if (peer && from !== peer) continue;
      const inc = m.get(id);
      if (!inc) continue;
      const declined = !inc.accepted;
      this.control(from, { t: 'cancel', id, reason: declined ? 'declined' : 'cancelled' });
      this.dropIncoming(inc, declined ? new KaiwaError('file-declined', `You declined ${inc.meta.name}.`)
        : new KaiwaError('file-cancelled', `You cancelled ${inc.meta.name}.`));
      n += 1;
    }
    const out = this.outgoing.get(id);
    if (out) {
      for (const t of out.targets.values()) {
        if (t.settled || (peer && t.peer !== peer)) continue;
        if (out.to !== undefined || peer) this.control(t.peer, { t: 'cancel', id, reason: 'cancelled' });
        this.settle(out, t, new KaiwaError('file-cancelled', `You cancelled ${out.meta.name}.`));
        n += 1;
      }
      // A file to the room is cancelled for the room with one message.
      if (out.to === undefined && !peer) this.broadcast({ t: 'cancel', id, reason: 'cancelled' });
    }
    return n > 0;
  }

  /** A peer left: transfers with it fail. */
  peerLeft(peer: string): void {
    const err = new KaiwaError('file-failed', 'The peer left.');
    for (const inc of [...(this.incoming.get(peer)?.values() ?? [])]) this.dropIncoming(inc, err);
    this.incoming.delete(peer);
    for (const out of [...this.outgoing.values()]) {
      const t = out.targets.get(peer);
      if (t && !t.settled) this.settle(out, t, err);
    }
  }

  close(reason = 'We left the room.'): void {
    if (this.closed) return;
    const err = new KaiwaError('file-failed', reason);
    for (const m of this.incoming.values()) for (const inc of [...m.values()]) this.dropIncoming(inc, err);
    this.incoming.clear();
    for (const out of [...this.outgoing.values()]) {
      for (const t of out.targets.values()) if (!t.settled) this.settle(out, t, err);
    }
    this.closed = true;
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------------

  private settle(out: Outgoing, t: Target, result: SentFile | KaiwaError): void {
    t.settled = true;
    t.onAccept?.();
    if (result instanceof KaiwaError) {
      this.emit('file-failed', { ...out.meta, peer: t.peer, direction: 'send', error: result });
      t.reject(result);
    } else {
      this.emit('file-sent', result);
      t.resolve(result);
    }
    if ([...out.targets.values()].every((x) => x.settled)) this.outgoing.delete(out.meta.id);
  }

  private live(out: Outgoing): Target[] {
    return [...out.targets.values()].filter((t) => !t.settled);
  }

  private async transmit(out: Outgoing): Promise<void> {
    const { meta } = out;
    if (this.live(out).length === 0) return; // cancelled while queued
    out.viaLink = this.link?.open === true;
    const chunk = this.chunkSize(out.viaLink);
    const request = (d: Record<string, unknown>) => this.request(d, out.to, out.viaLink);
    try {
      await request({ t: 'offer', ...meta, chunk });
      for (const t of this.live(out)) this.emit('file-offered', { ...meta, peer: t.peer });
      if (out.to !== undefined) {
        // One receiver: no bytes before its yes (or no, or a timeout).
        const t = out.targets.get(out.to)!;
        if (!t.accepted && !t.settled) {
          const timer = setTimeout(() => t.onAccept?.(), ANSWER_TIMEOUT_MS);
          await new Promise<void>((resolve) => { t.onAccept = resolve; });
          clearTimeout(timer);
          t.onAccept = undefined;
          if (!t.accepted && !t.settled) {
            this.control(t.peer, { t: 'cancel', id: meta.id, reason: 'cancelled' });
            this.settle(out, t, new KaiwaError('file-failed', `${meta.name}: no answer to the offer.`));
          }
        }
      }
      for (const t of this.live(out)) {
        this.emit('file-accepted', { ...meta, peer: t.peer });
        this.emit('file-progress', { ...meta, peer: t.peer, direction: 'send', bytes: 0 });
      }
      const inflight = new Set<Promise<unknown>>();
      let lastProgress = 0;
      let seq = 0;
      for (let offset = 0; offset < out.data.byteLength; offset += chunk) {
        if (this.live(out).length === 0 || this.closed) return;
        if (out.viaLink) await this.waitForWindow(out, offset);
        if (this.live(out).length === 0 || this.closed) return;
        const bytes = new Uint8Array(out.data, offset, Math.min(chunk, out.data.byteLength - offset));
        const p = request({ t: 'chunk', id: meta.id, seq: seq++, d: toBase64(bytes) });
        inflight.add(p);
        void p.finally(() => inflight.delete(p)).catch(() => undefined);
        if (inflight.size >= WINDOW) await Promise.race(inflight);
        const sent = offset + bytes.byteLength;
        if (sent - lastProgress >= PROGRESS_EVERY || sent === out.data.byteLength) {
          lastProgress = sent;
          for (const t of this.live(out)) this.emit('file-progress', { ...meta, peer: t.peer, direction: 'send', bytes: sent });
        }
      }
      await Promise.all(inflight);
      if (this.live(out).length === 0) return;
      await request({ t: 'end', id: meta.id });
      // The next file waits until every receiver gave its verdict (or left, or a timeout).
      await new Promise<void>((resolve) => {
        const check = () => {
          if (this.live(out).length > 0 && !this.closed) return;
          clearTimeout(timer);
          offSent();
          offFailed();
          resolve();
        };
        const timer = setTimeout(() => {
          for (const t of this.live(out)) this.settle(out, t, new KaiwaError('file-failed', `${meta.name}: no verdict from the receiver.`));
          check();
        }, ANSWER_TIMEOUT_MS);
        const offSent = this.on('file-sent', check);
        const offFailed = this.on('file-failed', check);
        check();
      });
    } catch (err) {
      const e = err instanceof KaiwaError ? new KaiwaError('file-failed', `${meta.name}: ${err.message}`, err)
        : new KaiwaError('file-failed', `${meta.name}: ${String(err)}`, err);
      if (this.live(out).length > 0) {
        if (out.to !== undefined) this.control(out.to, { t: 'cancel', id: meta.id, reason: 'failed' });
        else this.broadcast({ t: 'cancel', id: meta.id, reason: 'failed' });
      }
      for (const t of this.live(out)) this.settle(out, t, e);
    }
  }

  /** On the SFU data channel: waits until every receiver confirmed all but LINK_WINDOW of the `offset` bytes sent;
   * a receiver silent for LINK_ACK_TIMEOUT_MS fails. */
  private async waitForWindow(out: Outgoing, offset: number): Promise<void> {
    let since = Date.now();
    let lowest = -1;
    for (;;) {
      const behind = this.live(out).filter((t) => offset - t.acked > LINK_WINDOW);
      if (behind.length === 0 || this.closed) return;
      const min = Math.min(...behind.map((t) => t.acked));
      if (min !== lowest) {
        lowest = min;
        since = Date.now();
      } else if (Date.now() - since > LINK_ACK_TIMEOUT_MS) {
        for (const t of behind) {
          this.control(t.peer, { t: 'cancel', id: out.meta.id, reason: 'failed' });
          this.settle(out, t, new KaiwaError('file-failed', `${out.meta.name}: the receiver confirmed nothing for too long.`));
        }
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.ackWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private wakeAck(): void {
    const w = this.ackWaiters;
    this.ackWaiters = [];
    for (const f of w) f();
  }

  private request(d: Record<string, unknown>, to: string | undefined, viaLink = this.link?.open === true): Promise<unknown> {
    const data = { kaiwa: 'file', ...d };
    if (viaLink) return this.link ? this.link.send(data, to) : Promise.reject(new KaiwaError('file-failed', 'No data channel.'));
    return this.sig.request('message', to !== undefined ? { to, data } : { data });
  }

  /** A control message to one peer; its failure only loses the message (the transfer times out or is cancelled). */
  private control(to: string, d: Record<string, unknown>): void {
    if (this.closed) return;
    this.request(d, to).catch(() => undefined);
  }

  private broadcast(d: Record<string, unknown>): void {
    if (this.closed) return;
    this.request(d, undefined).catch(() => undefined);
  }

  private onOffer(from: string, id: string, d: Record<string, unknown>, viaLink: boolean): void {
    const size = Number(d.size);
    const chunk = Number(d.chunk);
    if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(chunk) || chunk < 1) return;
    let m = this.incoming.get(from);
    if (!m) {
      m = new Map();
      this.incoming.set(from, m);
    }
    if (m.has(id)) return;
    if (m.size >= MAX_INCOMING_PER_PEER) {
      this.control(from, { t: 'cancel', id, reason: 'busy' });
      return;
    }
    const meta: FileMeta = {
      id,
      name: safeName(String(d.name ?? 'file')),
      size,
      type: typeof d.type === 'string' ? d.type.slice(0, 255) : '',
      sha256: typeof d.sha256 === 'string' ? d.sha256.toLowerCase().slice(0, 64) : '',
    };
    const inc: Incoming = { meta, from, chunks: [], bytes: 0, nextSeq: 0, chunk, accepted: false, ended: false, lastProgress: 0, viaLink };
    m.set(id, inc);
    this.emit('file-offer', { ...meta, peer: from });
    if (this.autoAccept) this.accept(from, id);
  }

  private onChunk(from: string, id: string, d: Record<string, unknown>): void {
    const inc = this.incoming.get(from)?.get(id);
    if (!inc || inc.ended) return;
    const bytes = typeof d.d === 'string' ? fromBase64(d.d) : null;
    if (!bytes || Number(d.seq) !== inc.nextSeq || inc.bytes + bytes.byteLength > inc.meta.size) {
      this.control(from, { t: 'cancel', id, reason: 'bad chunk' });
      this.dropIncoming(inc, new KaiwaError('file-failed', `${inc.meta.name}: a piece arrived damaged or out of order.`));
      return;
    }
    inc.nextSeq += 1;
    inc.chunks.push(bytes);
    const before = inc.bytes;
    inc.bytes += bytes.byteLength;
    if (inc.viaLink && Math.floor(inc.bytes / LINK_ACK_EVERY) !== Math.floor(before / LINK_ACK_EVERY)) {
      this.control(from, { t: 'ack', id, bytes: inc.bytes });
    }
    if (inc.accepted && inc.bytes - inc.lastProgress >= PROGRESS_EVERY) {
      inc.lastProgress = inc.bytes;
      this.emit('file-progress', { ...inc.meta, peer: from, direction: 'receive', bytes: inc.bytes });
    }
  }

  private async onEnd(from: string, id: string): Promise<void> {
    const inc = this.incoming.get(from)?.get(id);
    if (!inc || inc.ended) return;
    inc.ended = true;
    if (inc.accepted) await this.finish(inc);
  }

  private async finish(inc: Incoming): Promise<void> {
    const { meta, from } = inc;
    this.incoming.get(from)?.delete(meta.id);
    if (inc.bytes !== meta.size) {
      this.emit('file-failed', { ...meta, peer: from, direction: 'receive',
        error: new KaiwaError('file-failed', `${meta.name}: ${inc.bytes} of ${meta.size} bytes arrived.`) });
      this.control(from, { t: 'done', id: meta.id, ok: false, sha256: '' });
      return;
    }
    this.emit('file-progress', { ...meta, peer: from, direction: 'receive', bytes: inc.bytes });
    const blob = new Blob(inc.chunks as BlobPart[], { type: meta.type || 'application/octet-stream' });
    inc.chunks = [];
    const receivedSha256 = await sha256(await blob.arrayBuffer());
    if (this.closed) return;
    const verified = receivedSha256 !== '' && receivedSha256 === meta.sha256;
    // Served as an opaque download: a blob: URL has our origin, so a peer's HTML must never render from it.
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
    this.urls.push(url);
    this.control(from, { t: 'done', id: meta.id, ok: verified, sha256: receivedSha256 });
    this.emit('file-received', { ...meta, peer: from, blob, url, verified, receivedSha256 });
  }

  private dropIncoming(inc: Incoming, error: KaiwaError): void {
    const m = this.incoming.get(inc.from);
    if (!m?.has(inc.meta.id)) return;
    m.delete(inc.meta.id);
    inc.chunks = [];
    this.emit('file-failed', { ...inc.meta, peer: inc.from, direction: 'receive', error });
  }
}

async function sha256(data: ArrayBuffer): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return '';
  const digest = await subtle.digest('SHA-256', data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Null for text that is not base64 (a damaged or hostile message). */
function fromBase64(text: string): Uint8Array | null {
  let bin: string;
  try {
    bin = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Keeps a received name usable as a download name: no path separators or control characters. */
function safeName(name: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = name.replace(/[\\/\u0000-\u001f]/g, '_').slice(0, 255);
  return cleaned || 'file';
}
