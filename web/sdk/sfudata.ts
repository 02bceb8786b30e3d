/**
 * The SFU room's data channel: one channel labelled `kaiwa` on our publish connection, which kaiwa relays to the
 * other members' channels (docs/protocol.md, "The SFU data channel"). Chat and file pieces go this way in an sfu
 * room, so a file to everyone leaves us once.
 *
 * Every message is binary: a kind byte, an id length byte, the id, then the payload (here: UTF-8 JSON, the same
 * objects the signaling `message` relay carries).
 *   we send     [1][0] payload             to everyone else
 *               [2][n][id] payload         to member `id`
 *   we receive  [1][n][id] payload         from member `id` (kaiwa stamps the id from the sender's connection)
 *               [3][n][id]                 kaiwa dropped a message between us and `id` (a receiver too slow)
 */
import { KaiwaError } from './types.js';

/** Pause sending above this many bytes buffered; resume at LOW_WATER (`bufferedamountlow`). */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const MAX_ID = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class SfuDataLink {
  /** A message from a member: its id (as kaiwa stamped it) and the parsed payload. */
  onMessage: (from: string, data: unknown) => void = () => undefined;
  /** kaiwa dropped a message between us and `peer` (either way). */
  onDropped: (peer: string) => void = () => undefined;
  /** The channel opened or closed. */
  onState: (open: boolean) => void = () => undefined;
  /** Messages sent and received, for diagnostics and tests. */
  sent = 0;
  received = 0;
  private channel: RTCDataChannel | null = null;
  private waiters: Array<() => void> = [];

  get open(): boolean {
    return this.channel?.readyState === 'open';
  }

  /** Takes the channel of a (new) publish connection; the previous one is forgotten. */
  attach(channel: RTCDataChannel): void {
    this.detach();
    this.channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.bufferedAmountLowThreshold = LOW_WATER;
    channel.onopen = () => this.onState(true);
    channel.onclose = () => {
      if (this.channel !== channel) return;
      this.wake();
      this.onState(false);
    };
    channel.onbufferedamountlow = () => this.wake();
    channel.onmessage = (ev: MessageEvent) => this.receive(ev.data);
  }

  detach(): void {
    const ch = this.channel;
    if (!ch) return;
    ch.onopen = ch.onclose = ch.onbufferedamountlow = ch.onmessage = null;
    this.channel = null;
    this.wake();
  }

  /**
   * Sends `data` (JSON) to one member or everyone else. Resolves once it is handed to the channel, waiting while
   * more than HIGH_WATER bytes are buffered (kaiwa forwards at the pace the channel drains); rejects when the
   * channel is not open or closes meanwhile.
   */
  async send(data: unknown, to?: string): Promise<void> {
    const id = encoder.encode(to ?? '');
    if (id.length > MAX_ID) throw new KaiwaError('unknown-peer', 'That member id is too long.');
    const body = encoder.encode(JSON.stringify(data));
    const frame = new Uint8Array(2 + id.length + body.length);
    frame[0] = to === undefined ? 1 : 2;
    frame[1] = id.length;
    frame.set(id, 2);
    frame.set(body, 2 + id.length);
    for (;;) {
      const ch = this.channel;
      if (!ch || ch.readyState !== 'open') throw new KaiwaError('file-failed', 'The SFU data channel is not open.');
      if (ch.bufferedAmount <= HIGH_WATER) {
        ch.send(frame);
        this.sent += 1;
        return;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private receive(raw: unknown): void {
    if (!(raw instanceof ArrayBuffer) || raw.byteLength < 2) return;
    const b = new Uint8Array(raw);
    const n = b[1];
    if (b.length < 2 + n) return;
    const id = decoder.decode(b.subarray(2, 2 + n));
    if (b[0] === 3) {
      this.onDropped(id);
      return;
    }
    if (b[0] !== 1 || !id) return;
    let data: unknown;
    try {
      data = JSON.parse(decoder.decode(b.subarray(2 + n)));
    } catch {
      return; // not ours to understand
    }
    this.received += 1;
    this.onMessage(id, data);
  }
}
