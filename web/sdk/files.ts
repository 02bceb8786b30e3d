/**
 * File transfer over a peer's reliable, ordered data channel.
 *
 * Wire format on the channel (text frames are JSON, binary frames are chunks of the current incoming file):
 *   → {"k":"file-offer","id","name","size","type","sha256","chunk"}
 *   ← {"k":"file-accept","id"}                 or {"k":"file-cancel","id","reason":"declined"}: no bytes before this
 *   → binary chunks, in order, `chunk` bytes each (the last may be shorter)
 *   → {"k":"file-end","id"}
 *   ← {"k":"file-ack","id","bytes"}           every ~1 MiB received, and at the end
 *   ← {"k":"file-done","id","ok","sha256"}    after the receiver checked the SHA-256
 *   ↔ {"k":"file-cancel","id","reason"}          either side, any time (offered, queued or under way)
 * (A `file-start` with the offer's fields instead of `file-offer` is taken as offered and accepted at once: the
 * format of SDKs before accept/decline.)
 * Transfers to one peer go one after the other; back-pressure uses bufferedAmountLowThreshold.
 */
import { Emitter } from './emitter.js';
import { KaiwaError } from './types.js';

export interface FileMeta {
  id: string;
  name: string;
  size: number;
  type: string;
  /** Lower-case hex SHA-256 of the content ('' when the browser offers no crypto.subtle). */
  sha256: string;
}

export interface FileProgress extends FileMeta {
  peer: string;
  direction: 'send' | 'receive';
  /** Bytes received so far (receive), or bytes the receiver has confirmed (send). */
  bytes: number;
}

export interface ReceivedFile extends FileMeta {
  peer: string;
  blob: Blob;
  /** An object URL for the content (served as application/octet-stream); revoked when the room is left. */
  url: string;
  /** True when the SHA-256 of what arrived equals the sender's. */
  verified: boolean;
  /** The SHA-256 computed on arrival. */
  receivedSha256: string;
}

export interface SentFile extends FileMeta {
  peer: string;
  /** The receiver's verdict on the SHA-256. */
  verified: boolean;
}

export interface FileFailure extends FileMeta {
  peer: string;
  direction: 'send' | 'receive';
  error: KaiwaError;
}

export interface FileChannelEvents {
  /** Receiver: a peer offers a file; nothing flows until `acceptFile` (or `declineFile`). */
  'file-offer': FileMeta & { peer: string };
  /** Sender: the offer went out; waiting for the receiver to accept. */
  'file-offered': FileMeta & { peer: string };
  /** Sender: the receiver accepted; the bytes flow. */
  'file-accepted': FileMeta & { peer: string };
  /** Receiver: an accepted file starts arriving. */
  'file-incoming': FileMeta & { peer: string };
  'file-progress': FileProgress;
  'file-received': ReceivedFile;
  'file-sent': SentFile;
  'file-failed': FileFailure;
}

const BIG_CHUNK = 64 * 1024;
const SMALL_CHUNK = 16 * 1024;
const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;
const ACK_EVERY = 1024 * 1024;
/** Receiver-side progress events at most every this many bytes. */
const PROGRESS_EVERY = 256 * 1024;

export async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return '';
  const digest = await subtle.digest('SHA-256', data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function newTransferId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

interface Incoming {
  meta: FileMeta;
  chunks: ArrayBuffer[];
  bytes: number;
  lastAck: number;
  lastProgress: number;
}

interface Outgoing {
  meta: FileMeta;
  /** Set when the receiver accepted. */
  accepted?: () => void;
  resolve: (r: SentFile) => void;
  reject: (e: KaiwaError) => void;
}

export class FileChannel extends Emitter<FileChannelEvents> {
  private incoming: Incoming | null = null;
  /** Offers waiting for our decision, by id. */
  private offers = new Map<string, FileMeta>();
  /** Accept offers without asking (the `acceptFiles: 'auto'` room option). */
  autoAccept = true;
  private outgoing = new Map<string, Outgoing>();
  private queue: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private readonly urls: string[];

  /**
   * @param peer the other peer's id
   * @param channel the reliable ordered channel to it
   * @param urls where object URLs are recorded so the room can revoke them on leave
   */
  constructor(readonly peer: string, private readonly channel: RTCDataChannel, urls: string[],
    private readonly maxMessageSize: () => number = () => 0) {
    super();
    this.urls = urls;
    channel.bufferedAmountLowThreshold = LOW_WATER;
    channel.addEventListener('close', this.onChannelClose);
  }

  /** Queues `data` (already hashed, `meta`) for sending; resolves when the receiver has verified it. */
  send(data: ArrayBuffer, meta: FileMeta): Promise<SentFile> {
    return new Promise<SentFile>((resolve, reject) => {
      const out: Outgoing = { meta, resolve, reject };
      this.outgoing.set(meta.id, out);
      this.queue = this.queue.then(() => this.transmit(data, out)).catch(() => undefined);
    });
  }

  /** Receiver: accepts an offered file; the sender starts sending. False when no such offer is waiting. */
  accept(id: string): boolean {
    const meta = this.offers.get(id);
    if (!meta) return false;
    this.offers.delete(id);
    if (this.incoming) this.failIncoming(new KaiwaError('file-failed', 'A new file started before the last one ended.'));
    this.incoming = { meta, chunks: [], bytes: 0, lastAck: 0, lastProgress: 0 };
    this.sendControl({ k: 'file-accept', id });
    this.emit('file-incoming', { ...meta, peer: this.peer });
    this.emit('file-progress', { ...meta, peer: this.peer, direction: 'receive', bytes: 0 });
    return true;
  }

  /**
   * Declines an offer, or cancels a transfer in either direction (queued, offered or under way). The other side
   * is told; our side gets `file-failed` with code `file-declined` or `file-cancelled`. False when `id` is unknown.
   */
  cancel(id: string): boolean {
    const offer = this.offers.get(id);
    if (offer) {
      this.offers.delete(id);
      this.sendControl({ k: 'file-cancel', id, reason: 'declined' });
      this.emit('file-failed', { ...offer, peer: this.peer, direction: 'receive',
        error: new KaiwaError('file-declined', `You declined ${offer.name}.`) });
      return true;
    }
    const out = this.outgoing.get(id);
    if (out) {
      this.sendControl({ k: 'file-cancel', id, reason: 'cancelled' });
      this.fail(out, new KaiwaError('file-cancelled', `You cancelled ${out.meta.name}.`));
      return true;
    }
    if (this.incoming?.meta.id === id) {
      this.sendControl({ k: 'file-cancel', id, reason: 'cancelled' });
      this.failIncoming(new KaiwaError('file-cancelled', `You cancelled ${this.incoming.meta.name}.`));
      return true;
    }
    return false;
  }

  /** Feeds a frame that arrived on the channel (text frames that are not file messages are ignored). */
  handle(frame: string | ArrayBuffer, msg?: Record<string, unknown>): void {
    if (typeof frame !== 'string') {
      this.onChunk(frame);
      return;
    }
    if (!msg) return;
    const id = String(msg.id ?? '');
    switch (msg.k) {
      case 'file-offer':
        this.onOffer(msg, id, false);
        break;
      case 'file-start':
        this.onOffer(msg, id, true);
        break;
      case 'file-accept':
        this.outgoing.get(id)?.accepted?.();
        break;
      case 'file-end':
        void this.onEnd(id);
        break;
      case 'file-ack': {
        const out = this.outgoing.get(id);
        if (out) this.emit('file-progress', { ...out.meta, peer: this.peer, direction: 'send', bytes: Number(msg.bytes) || 0 });
        break;
      }
      case 'file-done': {
        const out = this.outgoing.get(id);
        if (!out) break;
        this.outgoing.delete(id);
        const sent: SentFile = { ...out.meta, peer: this.peer, verified: msg.ok === true };
        if (sent.verified) {
          this.emit('file-sent', sent);
          out.resolve(sent);
        } else {
          this.fail(out, new KaiwaError('file-failed', `${out.meta.name}: the receiver's SHA-256 does not match.`));
        }
        break;
      }
      case 'file-cancel': {
        const declined = msg.reason === 'declined';
        const out = this.outgoing.get(id);
        if (out) {
          this.fail(out, declined ? new KaiwaError('file-declined', `${out.meta.name} was declined.`)
            : new KaiwaError('file-cancelled', `${out.meta.name}: the other side cancelled.`));
        }
        const offer = this.offers.get(id);
        if (offer) {
          this.offers.delete(id);
          this.emit('file-failed', { ...offer, peer: this.peer, direction: 'receive',
            error: new KaiwaError('file-cancelled', `${offer.name}: the sender cancelled.`) });
        }
        if (this.incoming?.meta.id === id) {
          this.failIncoming(new KaiwaError('file-cancelled', `${this.incoming.meta.name}: the sender cancelled.`));
        }
        break;
      }
    }
  }

  /** Fails every transfer in progress and detaches from the channel. */
  close(reason = 'The peer left.'): void {
    this.abort.abort();
    this.channel.removeEventListener('close', this.onChannelClose);
    const err = new KaiwaError('file-failed', reason);
    for (const out of [...this.outgoing.values()]) this.fail(out, err);
    if (this.incoming) this.failIncoming(err);
    for (const offer of this.offers.values()) {
      this.emit('file-failed', { ...offer, peer: this.peer, direction: 'receive', error: err });
    }
    this.offers.clear();
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------------

  private onChannelClose = (): void => {
    const err = new KaiwaError('file-failed', 'The data channel closed.');
    for (const out of [...this.outgoing.values()]) this.fail(out, err);
    if (this.incoming) this.failIncoming(err);
    for (const offer of this.offers.values()) {
      this.emit('file-failed', { ...offer, peer: this.peer, direction: 'receive', error: err });
    }
    this.offers.clear();
  };

  private fail(out: Outgoing, error: KaiwaError): void {
    this.outgoing.delete(out.meta.id);
    this.emit('file-failed', { ...out.meta, peer: this.peer, direction: 'send', error });
    out.reject(error);
  }

  private failIncoming(error: KaiwaError): void {
    const inc = this.incoming!;
    this.incoming = null;
    this.emit('file-failed', { ...inc.meta, peer: this.peer, direction: 'receive', error });
  }

  private async transmit(data: ArrayBuffer, out: Outgoing): Promise<void> {
    const { meta } = out;
    if (!this.outgoing.has(meta.id)) return; // cancelled while queued
    try {
      await this.waitOpen();
      // 64 KiB chunks when the other side accepts messages that large (Chromium, Firefox), else 16 KiB.
      const chunkSize = this.maxMessageSize() >= BIG_CHUNK ? BIG_CHUNK : SMALL_CHUNK;
      const ch = this.channel;
      // Offer, then wait for the receiver's yes (or a cancel/decline, a closed channel, leaving).
      const accepted = new Promise<boolean>((resolve) => {
        const stop = () => {
          offFailed();
          this.abort.signal.removeEventListener('abort', stop);
          resolve(false);
        };
        const offFailed = this.on('file-failed', (f) => {
          if (f.id === meta.id && f.direction === 'send') stop();
        });
        this.abort.signal.addEventListener('abort', stop, { once: true });
        out.accepted = () => {
          offFailed();
          this.abort.signal.removeEventListener('abort', stop);
          resolve(true);
        };
      });
      ch.send(JSON.stringify({ k: 'file-offer', ...meta, chunk: chunkSize }));
      this.emit('file-offered', { ...meta, peer: this.peer });
      if (!(await accepted) || !this.outgoing.has(meta.id)) return;
      this.emit('file-accepted', { ...meta, peer: this.peer });
      this.emit('file-progress', { ...meta, peer: this.peer, direction: 'send', bytes: 0 });
      for (let offset = 0; offset < data.byteLength; offset += chunkSize) {
        if (!this.outgoing.has(meta.id)) return; // cancelled or failed meanwhile
        if (ch.bufferedAmount > HIGH_WATER) await this.waitDrain();
        ch.send(new Uint8Array(data, offset, Math.min(chunkSize, data.byteLength - offset)));
      }
      ch.send(JSON.stringify({ k: 'file-end', id: meta.id }));
      // Wait for the receiver's verdict before starting the next file to this peer.
      await new Promise<void>((resolve) => {
        const check = () => {
          if (!this.outgoing.has(meta.id) || this.abort.signal.aborted) {
            offSent();
            offFailed();
            resolve();
          }
        };
        const offSent = this.on('file-sent', check);
        const offFailed = this.on('file-failed', check);
        this.abort.signal.addEventListener('abort', check, { once: true });
        check();
      });
    } catch (err) {
      if (this.outgoing.has(meta.id)) {
        this.fail(out, err instanceof KaiwaError ? err : new KaiwaError('file-failed', `${meta.name}: ${String(err)}`, err));
      }
    }
  }

  private waitOpen(): Promise<void> {
    const ch = this.channel;
    if (ch.readyState === 'open') return Promise.resolve();
    if (ch.readyState !== 'connecting') return Promise.reject(new KaiwaError('file-failed', 'The data channel is closed.'));
    return this.waitEvent('open', 20_000, 'The data channel did not open.');
  }

  private waitDrain(): Promise<void> {
    return this.waitEvent('bufferedamountlow', 60_000, 'The data channel stalled.');
  }

  private waitEvent(event: 'open' | 'bufferedamountlow', timeoutMs: number, what: string): Promise<void> {
    const ch = this.channel;
    return new Promise<void>((resolve, reject) => {
      const done = (err?: KaiwaError) => {
        clearTimeout(timer);
        ch.removeEventListener(event, onEvent);
        ch.removeEventListener('close', onClose);
        this.abort.signal.removeEventListener('abort', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onEvent = () => done();
      const onClose = () => done(new KaiwaError('file-failed', 'The data channel closed.'));
      const timer = setTimeout(() => done(new KaiwaError('file-failed', what)), timeoutMs);
      ch.addEventListener(event, onEvent);
      ch.addEventListener('close', onClose);
      this.abort.signal.addEventListener('abort', onClose);
    });
  }

  private onOffer(msg: Record<string, unknown>, id: string, started: boolean): void {
    const size = Number(msg.size);
    if (!id || !Number.isSafeInteger(size) || size < 0) return;
    const meta: FileMeta = {
      id,
      name: safeName(String(msg.name ?? 'file')),
      size,
      type: typeof msg.type === 'string' ? msg.type : '',
      sha256: typeof msg.sha256 === 'string' ? msg.sha256.toLowerCase() : '',
    };
    this.offers.set(id, meta);
    if (started) {
      this.accept(id); // an older sender: the bytes follow without asking
      return;
    }
    this.emit('file-offer', { ...meta, peer: this.peer });
    if (this.autoAccept) this.accept(id);
  }

  private onChunk(chunk: ArrayBuffer): void {
    const inc = this.incoming;
    if (!inc) return;
    inc.chunks.push(chunk);
    inc.bytes += chunk.byteLength;
    if (inc.bytes > inc.meta.size) {
      this.sendControl({ k: 'file-cancel', id: inc.meta.id, reason: 'more bytes than announced' });
      this.failIncoming(new KaiwaError('file-failed', `${inc.meta.name}: more bytes than announced.`));
      return;
    }
    if (inc.bytes - inc.lastProgress >= PROGRESS_EVERY) {
      inc.lastProgress = inc.bytes;
      this.emit('file-progress', { ...inc.meta, peer: this.peer, direction: 'receive', bytes: inc.bytes });
    }
    if (inc.bytes - inc.lastAck >= ACK_EVERY) {
      inc.lastAck = inc.bytes;
      this.sendControl({ k: 'file-ack', id: inc.meta.id, bytes: inc.bytes });
    }
  }

  private async onEnd(id: string): Promise<void> {
    const inc = this.incoming;
    if (!inc || inc.meta.id !== id) return;
    this.incoming = null;
    const { meta } = inc;
    if (inc.bytes !== meta.size) {
      const error = new KaiwaError('file-failed', `${meta.name}: ${inc.bytes} of ${meta.size} bytes arrived.`);
      this.emit('file-failed', { ...meta, peer: this.peer, direction: 'receive', error });
      this.sendControl({ k: 'file-done', id, ok: false, sha256: '' });
      return;
    }
    this.emit('file-progress', { ...meta, peer: this.peer, direction: 'receive', bytes: inc.bytes });
    this.sendControl({ k: 'file-ack', id, bytes: inc.bytes });
    const blob = new Blob(inc.chunks, { type: meta.type || 'application/octet-stream' });
    inc.chunks = [];
    const receivedSha256 = await sha256Hex(await blob.arrayBuffer());
    const verified = receivedSha256 !== '' && receivedSha256 === meta.sha256;
    // The URL serves the bytes as an opaque download: a blob: URL has our origin, so a peer's HTML or SVG must
    // never render from it if someone opens the link in a tab.
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
    this.urls.push(url);
    this.sendControl({ k: 'file-done', id, ok: verified, sha256: receivedSha256 });
    this.emit('file-received', { ...meta, peer: this.peer, blob, url, verified, receivedSha256 });
  }

  private sendControl(msg: Record<string, unknown>): void {
    if (this.channel.readyState === 'open') this.channel.send(JSON.stringify(msg));
  }
}

/** Keeps a received name usable as a download name: no path separators or control characters. */
function safeName(name: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = name.replace(/[\\/\u0000-\u001f]/g, '_').slice(0, 255);
  return cleaned || 'file';
}
