/**
 * The two connections of a page in an SFU room (docs/protocol.md, "SFU rooms"), both to kaiwa:
 *
 * - publish: we offer sendonly camera, microphone and, while shared beside the camera, the screen; kaiwa answers in
 *   the `ok` of `publish`. Adding or stopping the screen renegotiates by sending `publish` again on the same
 *   connection; a new camera or microphone device is a `replaceTrack` on the same sender (no renegotiation).
 * - subscribe: kaiwa offers (`subscribe-offer`), we answer (`subscribe-answer`), one offer at a time in the order
 *   they came. Each offer's `tracks` says which peer and source every m-line carries; after each answer the
 *   session emits the whole mapping (`tracks`), so an m-line kaiwa turned inactive or reused for someone else
 *   moves its track out of (or into) the right peer.
 *
 * kaiwa is ICE-lite and puts its candidates in its own SDP; we send none (our checks carry our candidates).
 *
 * Healing (docs/protocol.md, "Healing a connection"): a subscribe connection that fails (or stays `disconnected`)
 * is replaced: `subscribe-restart` makes kaiwa send a version-1 offer, answered on a new connection whose tracks
 * take the old ones' places in the room's stable streams. A publish connection that fails restarts ICE on the same
 * connection (a `publish` re-offer with new credentials: tracks and everyone's subscriptions stay); when that does
 * not bring it back, it starts over with `unpublish` and a new connection.
 */
import { Emitter } from './emitter.js';
import { capVideoBitrate } from './media.js';
import type { SignalingClient } from './signaling.js';
import { readStats, type PeerStats, type StatsSample } from './stats.js';
import { KaiwaError, type ServerMessage } from './types.js';

/** What a published track is. `screen-audio` is in the protocol; the SDK does not capture screen audio. */
export type TrackSource = 'camera' | 'microphone' | 'screen' | 'screen-audio';
type PublishSource = 'microphone' | 'camera' | 'screen';

/** One received track: whose, and which of their sources. */
export interface SfuTrack {
  track: MediaStreamTrack;
  peer: string;
  source: TrackSource;
}

export interface SfuSessionEvents {
  /** Every track the subscribe connection carries now (after each applied offer, and when one starts flowing). */
  tracks: SfuTrack[];
  'connection-state': { which: 'publish' | 'subscribe'; state: RTCPeerConnectionState };
  error: KaiwaError;
}

export interface SfuSessionOptions {
  iceServers: RTCIceServer[];
  maxVideoBitrate?: number;
  /** Wait this long in `disconnected` before starting the publish connection over, ms. */
  disconnectGraceMs?: number;
  /** Set: every publish connection (made even with nothing to send) opens a channel labelled `kaiwa` for kaiwa's
   * data relay (sfudata.ts), handed over here. */
  onDataChannel?: (channel: RTCDataChannel) => void;
  /** Camera video as three simulcast encodings (q, h, f: a quarter, half and full size, camera captured at up to
   * 1280x720), from which kaiwa forwards each viewer the one its bandwidth and tile size allow. Default true. */
  simulcast?: boolean;
  /** The rendered size of every remote video the page shows (device pixels; 0x0 hidden), by track: reported to kaiwa
   * (`tile-size`, debounced) so that a small or hidden tile gets a small layer or none. Unset: nothing is reported. */
  tileSizes?: () => Array<{ track: MediaStreamTrack; width: number; height: number }>;
}

/** The camera's simulcast encodings, lowest first (kaiwa takes the RIDs in this order as its layers). */
const SIMULCAST_ENCODINGS: RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4 },
  { rid: 'h', scaleResolutionDownBy: 2 },
  { rid: 'f', scaleResolutionDownBy: 1 },
];
/** Tile sizes are sent at most this often, ms (a window being resized sends one message at the end). */
const TILE_REPORT_DEBOUNCE_MS = 300;

interface OfferedTrack {
  peer: string;
  source: TrackSource;
}

const SOURCES: readonly TrackSource[] = ['camera', 'microphone', 'screen', 'screen-audio'];
/** Bounds on what one subscribe offer may describe: a room has at most a few hundred tracks. */
const MAX_OFFER_TRACKS = 1024;
/** A publish connection `disconnected` this long at least is started over, ms: starting over re-offers every
 * subscriber, so it waits longer than a mesh's ICE restart for `disconnected` to heal by itself (it often does). */
const MIN_REPUBLISH_GRACE_MS = 5000;
/** The publish connection is started over at most this often, ms (a path that keeps failing is not hammered). */
const REPUBLISH_MIN_INTERVAL_MS = 5000;
/** An ICE restart of the publish connection that has not connected after this long gives way to a new one, ms. */
const ICE_RESTART_TIMEOUT_MS = 8000;
/** A subscribe connection `disconnected` this long is replaced (kaiwa grants one restart per 2 s), ms. */
const SUBSCRIBE_RESTART_GRACE_MS = 3000;
/** A replaced subscribe connection is closed at the latest this long after its successor answered, ms. */
const OLD_SUBSCRIBE_KEEP_MS = 10000;

export class SfuSession extends Emitter<SfuSessionEvents> {
  publishPc: RTCPeerConnection | null = null;
  subscribePc: RTCPeerConnection | null = null;
  /** How often the publish connection was started over after it failed. */
  republishes = 0;
  /** How often the publish connection restarted ICE (kept its tracks) after it failed. */
  iceRestarts = 0;
  /** How often the subscribe connection was replaced after it failed. */
  subscribeRestarts = 0;
  private readonly sig: SignalingClient;
  private readonly opts: SfuSessionOptions;
  private maxVideoBitrate: number | undefined;
  /** What we send, by source (null: nothing now). */
  private local: Record<PublishSource, { track: MediaStreamTrack; stream: MediaStream } | null> =
    { microphone: null, camera: null, screen: null };
  private transceivers = new Map<PublishSource, RTCRtpTransceiver>();
  private pubChain: Promise<void> = Promise.resolve();
  private subChain: Promise<void> = Promise.resolve();
  /** The m-lines of the last applied offer, by mid. */
  private offered = new Map<string, OfferedTrack>();
  private subVersion = 0;
  private lastRepublish = 0;
  private disconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private subDisconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private iceRestartTimer: ReturnType<typeof setTimeout> | null = null;
  /** The next subscribe-offer is for a new subscribe connection (we asked for one). */
  private subRestartAsked = false;
  /** A replaced subscribe connection, kept until the new one's tracks receive (or OLD_SUBSCRIBE_KEEP_MS). */
  private oldSub: { pc: RTCPeerConnection; offered: Map<string, OfferedTrack>; timer: ReturnType<typeof setTimeout> } | null = null;
  private closed = false;
  private samples = new Map<string, StatsSample>();
  /** The tile sizes last sent, by subscribe mid. */
  private tilesSent = new Map<string, string>();
  private tileTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(sig: SignalingClient, opts: SfuSessionOptions) {
    super();
    this.sig = sig;
    this.opts = opts;
    this.maxVideoBitrate = opts.maxVideoBitrate;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Sets what one source sends. The camera and microphone keep their sender (`replaceTrack`; a publish only when
   * there was none yet); the screen is added or stopped with a new `publish`.
   */
  setTrack(source: PublishSource, track: MediaStreamTrack | null, stream: MediaStream | null): Promise<void> {
    this.local[source] = track ? { track, stream: stream ?? new MediaStream([track]) } : null;
    return this.queuePublish(false);
  }

  /** Some tile changed size or content: its size goes to kaiwa after TILE_REPORT_DEBOUNCE_MS. */
  reportTiles(): void {
    if (this.closed || this.tileTimer || !this.opts.tileSizes) return;
    this.tileTimer = setTimeout(() => {
      this.tileTimer = null;
      this.sendTiles();
    }, TILE_REPORT_DEBOUNCE_MS);
  }

  private sendTiles(): void {
    const pc = this.subscribePc;
    if (this.closed || !pc || !this.opts.tileSizes) return;
    const sizes = new Map<MediaStreamTrack, { width: number; height: number }>();
    for (const t of this.opts.tileSizes()) {
      const seen = sizes.get(t.track);
      // A track shown twice (a tile and the stage): the larger.
      if (!seen || t.width * t.height > seen.width * seen.height) sizes.set(t.track, { width: t.width, height: t.height });
    }
    const tiles: Array<{ mid: string; width: number; height: number }> = [];
    for (const tr of pc.getTransceivers()) {
      if (tr.mid === null || tr.receiver.track.kind !== 'video' || !this.offered.has(tr.mid)) continue;
      // A track no observed element shows (not attached yet, or mid-switch from mesh) is not reported: kaiwa keeps
      // the last size (large until one is), so media that has not reached its tile yet is never held back.
      const size = sizes.get(tr.receiver.track);
      if (!size) continue;
      const clamp = (n: number) => Math.max(0, Math.min(65535, Math.round(n)));
      const entry = { mid: tr.mid, width: clamp(size.width), height: clamp(size.height) };
      const key = `${entry.width}x${entry.height}`;
      if (this.tilesSent.get(tr.mid) === key) continue;
      this.tilesSent.set(tr.mid, key);
      tiles.push(entry);
    }
    if (tiles.length === 0) return;
    for (let i = 0; i < tiles.length; i += 64) {
      this.sig.request('tile-size', { tiles: tiles.slice(i, i + 64) }).catch(() => undefined);
    }
  }

  /** Publishes what `setTrack` set (call once after the first tracks are set). */
  publish(): Promise<void> {
    return this.queuePublish(false);
  }

  async setMaxVideoBitrate(bps: number | undefined): Promise<void> {
    this.maxVideoBitrate = bps;
    await this.applyBitrate();
  }

  /** Handles kaiwa's `subscribe-offer`: offers are applied one at a time, in the order they arrived. */
  handleOffer(m: ServerMessage): Promise<void> {
    const run = this.subChain.then(() => this.applyOffer(m));
    this.subChain = run.catch(() => undefined);
    return run;
  }

  /** The tracks the subscribe connection carries now. */
  currentTracks(): SfuTrack[] {
    const pc = this.subscribePc;
    if (!pc || this.closed) return [];
    const out = tracksOf(pc, this.offered);
    // While a replaced connection is kept, a track of it stays in place of its successor until that one receives.
    const old = this.oldSub;
    if (old) {
      for (const t of tracksOf(old.pc, old.offered)) {
        const i = out.findIndex((n) => n.peer === t.peer && n.source === t.source);
        if (i < 0) out.push(t);
        else if (out[i].track.muted) out[i] = t;
      }
    }
    return out;
  }

  /**
   * Stats for one peer: its tracks' inbound streams on the subscribe connection (and that connection's round-trip
   * time), and what our publish connection sends (kaiwa forwards the same to everyone).
   */
  async getStats(peer: string): Promise<PeerStats> {
    const mids = new Set<string>();
    const ids = new Set<string>();
    for (const t of this.currentTracks()) {
      if (t.peer !== peer) continue;
      ids.add(t.track.id);
    }
    for (const [mid, o] of this.offered) if (o.peer === peer) mids.add(mid);
    const sources = [];
    if (this.subscribePc) {
      sources.push({
        report: await this.subscribePc.getStats(),
        inbound: (r: Record<string, unknown>) => ids.has(String(r.trackIdentifier ?? '')) || mids.has(String(r.mid ?? '')),
        outbound: false,
        rtt: true,
      });
    }
    if (this.publishPc) {
      sources.push({ report: await this.publishPc.getStats(), inbound: false as const, outbound: true, rtt: !this.subscribePc });
    }
    const { stats, sample } = readStats(sources, this.samples.get(peer) ?? null);
    this.samples.set(peer, sample);
    return stats;
  }

  /** Forgets a peer's stats baseline (it left). */
  forget(peer: string): void {
    this.samples.delete(peer);
  }

  /** Closes both connections. With `unpublish`, tells kaiwa first (the room went back to mesh). */
  close(opts: { unpublish?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of [this.disconnectTimer, this.subDisconnectTimer, this.iceRestartTimer, this.tileTimer]) if (t) clearTimeout(t);
    this.disconnectTimer = this.subDisconnectTimer = this.iceRestartTimer = this.tileTimer = null;
    if (opts.unpublish) {
      // After a switch to mesh kaiwa keeps our SFU transports (both: also a page that publishes nothing receives)
      // until this, or 10 s. Errors do not matter here: kaiwa may have ended them itself already.
      this.sig.request('unpublish').catch(() => undefined);
    }
    for (const pc of [this.publishPc, this.subscribePc]) {
      if (!pc) continue;
      pc.onconnectionstatechange = pc.ontrack = null;
      pc.close();
    }
    this.closeOldSubscribe();
    this.publishPc = null;
    this.subscribePc = null;
    this.transceivers.clear();
    this.offered.clear();
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------------

  private queuePublish(restart: boolean): Promise<void> {
    const run = this.pubChain.then(() => this.doPublish(restart));
    this.pubChain = run.catch(() => undefined);
    return run;
  }

  private createPublishPc(): RTCPeerConnection {
    const pc = new RTCPeerConnection({ iceServers: this.opts.iceServers });
    pc.onconnectionstatechange = () => this.onPublishState(pc);
    this.publishPc = pc;
    if (this.opts.onDataChannel) this.opts.onDataChannel(pc.createDataChannel('kaiwa', { ordered: true }));
    return pc;
  }

  private async doPublish(restart: boolean): Promise<void> {
    if (this.closed) return;
    const hasAny = Object.values(this.local).some((x) => x !== null);
    if (restart && this.publishPc) {
      this.publishPc.onconnectionstatechange = null;
      this.publishPc.close();
      this.publishPc = null;
      this.transceivers.clear();
      await this.sig.request('unpublish').catch(() => undefined);
      if (this.closed) return;
    }
    // Nothing to send and no data channel wanted: no publish connection at all.
    if (!this.publishPc && !hasAny && !this.opts.onDataChannel) return;
    const fresh = !this.publishPc;
    const pc = this.publishPc ?? this.createPublishPc();
    let renegotiate = fresh;
    for (const source of ['microphone', 'camera', 'screen'] as const) {
      const want = this.local[source];
      const t = this.transceivers.get(source);
      if (want && !t) {
        const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: [want.stream] };
        if (source === 'camera' && this.opts.simulcast !== false) {
          init.sendEncodings = SIMULCAST_ENCODINGS.map((e) => ({ ...e }));
          // Three layers need a picture to divide: up to 1280x720 (the mesh default is 640x480).
          await want.track.applyConstraints({ width: { ideal: 1280, max: 1280 }, height: { ideal: 720, max: 720 } })
            .catch(() => undefined);
        }
        this.transceivers.set(source, pc.addTransceiver(want.track, init));
        renegotiate = true;
      } else if (want && t) {
        if (t.sender.track !== want.track) await t.sender.replaceTrack(want.track);
        if (t.direction !== 'sendonly') {
          t.direction = 'sendonly';
          renegotiate = true;
        }
      } else if (!want && t) {
        if (t.sender.track) await t.sender.replaceTrack(null);
        // A stopped screen ends for everyone: its m-line goes inactive (reused by the next share). A camera or
        // microphone that stopped keeps its m-line; kaiwa just gets no packets until a new device is set.
        if (source === 'screen' && t.direction !== 'inactive') {
          t.direction = 'inactive';
          renegotiate = true;
        }
      }
    }
    if (this.closed || !renegotiate) return;
    try {
      if (!(await this.offerPublish(pc))) return;
      await this.applyBitrate();
    } catch (err) {
      if (this.closed || pc !== this.publishPc) return;
      // A publish refused for the mode (the room went back to mesh meanwhile) is expected; the room closes us.
      if (err instanceof KaiwaError && err.code === 'not-sfu') return;
      // Roll the offer back so the next publish starts from a stable state.
      if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => undefined);
      this.emit('error', err instanceof KaiwaError ? err
        : new KaiwaError('sfu', `Publishing to kaiwa failed: ${errText(err)}`, err));
    }
  }

  /**
   * A failed publish connection (or one `disconnected` for longer than the grace) restarts ICE first: our tracks
   * and everyone's subscriptions to them stay. If that is refused or has not connected within
   * ICE_RESTART_TIMEOUT_MS, the connection starts over: `unpublish`, a new connection and a new `publish`.
   */
  private onPublishState(pc: RTCPeerConnection): void {
    if (this.closed || pc !== this.publishPc) return;
    const state = pc.connectionState;
    this.emit('connection-state', { which: 'publish', state });
    if (state === 'connected') {
      for (const t of [this.disconnectTimer, this.iceRestartTimer]) if (t) clearTimeout(t);
      this.disconnectTimer = this.iceRestartTimer = null;
    } else if (state === 'failed') {
      this.heal(pc);
    } else if (state === 'disconnected' && !this.disconnectTimer) {
      this.disconnectTimer = setTimeout(() => {
        this.disconnectTimer = null;
        if (!this.closed && this.publishPc === pc && pc.connectionState === 'disconnected') this.heal(pc);
      }, Math.max(MIN_REPUBLISH_GRACE_MS, this.opts.disconnectGraceMs ?? 0));
    }
  }

  /** An ICE restart of the publish connection, unless one is under way already (then its timeout decides). */
  private heal(pc: RTCPeerConnection): void {
    if (this.iceRestartTimer) return;
    this.iceRestartTimer = setTimeout(() => {
      this.iceRestartTimer = null;
      if (!this.closed && this.publishPc === pc && pc.connectionState !== 'connected') this.republish();
    }, ICE_RESTART_TIMEOUT_MS);
    const run = this.pubChain.then(() => this.restartIce(pc));
    this.pubChain = run.catch(() => undefined);
  }

  /**
   * Offers the publish connection's sending tracks to kaiwa (`publish`) and applies the answer. False when the
   * connection was closed or replaced while kaiwa answered (nothing applied); throws what `publish` was refused with.
   */
  private async offerPublish(pc: RTCPeerConnection, options?: RTCOfferOptions): Promise<boolean> {
    await pc.setLocalDescription(await pc.createOffer(options));
    const tracks: Array<{ mid: string; source: TrackSource }> = [];
    for (const [source, t] of this.transceivers) {
      if (t.mid !== null && t.direction === 'sendonly') tracks.push({ mid: t.mid, source });
    }
    const reply = await this.sig.request('publish', { sdp: pc.localDescription?.sdp ?? '', tracks });
    if (this.closed || pc !== this.publishPc) return false;
    if (typeof reply.sdp !== 'string') throw new KaiwaError('bad-sdp', 'kaiwa answered publish without an SDP.');
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    return true;
  }

  private async restartIce(pc: RTCPeerConnection): Promise<void> {
    if (this.closed || pc !== this.publishPc || pc.signalingState !== 'stable') return;
    try {
      if (!(await this.offerPublish(pc, { iceRestart: true }))) return;
      this.iceRestarts += 1;
    } catch {
      // Refused (kaiwa's transport ended, or the room went to mesh) or broken: a new connection is the way back.
      if (this.closed || pc !== this.publishPc) return;
      if ((pc.signalingState as RTCSignalingState) === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => undefined);
      if (this.iceRestartTimer) clearTimeout(this.iceRestartTimer);
      this.iceRestartTimer = null;
      this.republish();
    }
  }

  /**
   * A failed subscribe connection (or one `disconnected` for SUBSCRIBE_RESTART_GRACE_MS) is replaced: kaiwa answers
   * `subscribe-restart` with a version-1 offer, which applyOffer answers on a new connection. The old one keeps
   * whatever it still receives until then.
   */
  private onSubscribeState(pc: RTCPeerConnection): void {
    if (this.closed || pc !== this.subscribePc) return;
    const state = pc.connectionState;
    this.emit('connection-state', { which: 'subscribe', state });
    if (state === 'connected') {
      if (this.subDisconnectTimer) clearTimeout(this.subDisconnectTimer);
      this.subDisconnectTimer = null;
    } else if (state === 'failed') {
      this.restartSubscribe(pc);
    } else if (state === 'disconnected' && !this.subDisconnectTimer) {
      this.subDisconnectTimer = setTimeout(() => {
        this.subDisconnectTimer = null;
        if (!this.closed && this.subscribePc === pc && pc.connectionState === 'disconnected') this.restartSubscribe(pc);
      }, SUBSCRIBE_RESTART_GRACE_MS);
    }
  }

  private restartSubscribe(pc: RTCPeerConnection): void {
    if (this.closed || pc !== this.subscribePc || this.subRestartAsked) return;
    this.subRestartAsked = true;
    this.subscribeRestarts += 1;
    this.sig.request('subscribe-restart').catch((err: unknown) => {
      this.subRestartAsked = false;
      if (this.closed || pc !== this.subscribePc) return;
      // Too soon after the last one: ask again once kaiwa grants one; in a mesh room there is nothing to heal.
      if (err instanceof KaiwaError && err.code === 'rate-limited') {
        setTimeout(() => {
          if (!this.closed && pc === this.subscribePc && pc.connectionState !== 'connected') this.restartSubscribe(pc);
        }, 2000);
      }
    });
  }

  private republish(): void {
    const now = performance.now();
    const wait = Math.max(0, this.lastRepublish + REPUBLISH_MIN_INTERVAL_MS - now);
    this.lastRepublish = now + wait;
    setTimeout(() => {
      if (this.closed) return;
      this.republishes += 1;
      void this.queuePublish(true);
    }, wait);
  }

  private async applyOffer(m: ServerMessage): Promise<void> {
    if (this.closed) return;
    const sdp = m.sdp;
    const version = Number(m.version);
    if (typeof sdp !== 'string' || !Number.isSafeInteger(version) || version < 1) {
      this.emit('error', new KaiwaError('bad-message', 'kaiwa sent a subscribe offer without SDP or version.'));
      return;
    }
    const offered = new Map<string, OfferedTrack>();
    const list = Array.isArray(m.tracks) ? m.tracks.slice(0, MAX_OFFER_TRACKS) : [];
    for (const x of list) {
      if (!x || typeof x !== 'object') continue;
      const t = x as Record<string, unknown>;
      const source = String(t.source ?? '') as TrackSource;
      if (typeof t.mid !== 'string' || typeof t.peer !== 'string' || !SOURCES.includes(source)) continue;
      offered.set(t.mid, { peer: t.peer, source });
    }
    // Versions count up per subscribe connection: one that does not (or the one after our subscribe-restart) means
    // kaiwa started a new connection for us.
    const restarted = this.subRestartAsked && version === 1;
    if (restarted) this.subRestartAsked = false;
    // Make before break: the old connection stays (its tracks in the room's streams) until the new one's tracks
    // receive. A <video> whose stream swapped to a track that had not received yet was seen to present no new frame
    // for ~30 s while that track decoded.
    if (this.subscribePc && (version <= this.subVersion || restarted)) {
      if (this.subDisconnectTimer) clearTimeout(this.subDisconnectTimer);
      this.subDisconnectTimer = null;
      const old = this.subscribePc;
      old.onconnectionstatechange = old.ontrack = null;
      this.closeOldSubscribe();
      this.oldSub = { pc: old, offered: this.offered, timer: setTimeout(() => {
        this.closeOldSubscribe();
        if (!this.closed) this.emit('tracks', this.currentTracks());
      }, OLD_SUBSCRIBE_KEEP_MS) };
      this.subscribePc = null;
      this.subVersion = 0;
    }
    let pc = this.subscribePc;
    if (!pc) {
      const created = new RTCPeerConnection({ iceServers: this.opts.iceServers });
      created.onconnectionstatechange = () => this.onSubscribeState(created);
      // A track that starts receiving is announced again so the room can switch to it (make before break).
      // (A reused m-line fires `track` again with the same track: the listener goes on once.)
      const watched = new WeakSet<MediaStreamTrack>();
      created.ontrack = ({ track }) => {
        if (watched.has(track)) return;
        watched.add(track);
        track.addEventListener('unmute', () => {
          if (this.closed || created !== this.subscribePc) return;
          // Every track of the new connection receives: the replaced one has nothing left to show.
          if (this.oldSub && tracksOf(created, this.offered).every((t) => !t.track.muted)) this.closeOldSubscribe();
          this.emit('tracks', this.currentTracks());
        });
      };
      this.subscribePc = created;
      this.tilesSent.clear();
      pc = created;
    }
    try {
      this.offered = offered;
      await pc.setRemoteDescription({ type: 'offer', sdp });
      // Without tracks of our own, every m-line of kaiwa's sendonly offer is answered recvonly.
      await pc.setLocalDescription();
      this.subVersion = version;
      if (this.closed || pc !== this.subscribePc) return;
      this.emit('tracks', this.currentTracks());
      await this.sig.request('subscribe-answer', { sdp: pc.localDescription?.sdp ?? '', version });
      this.reportTiles();  // its m-lines may carry other tracks now
    } catch (err) {
      if (this.closed || pc !== this.subscribePc) return;
      if (err instanceof KaiwaError && (err.code === 'stale-answer' || err.code === 'not-sfu')) return;
      if (pc.signalingState === 'have-remote-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => undefined);
      this.emit('error', err instanceof KaiwaError ? err
        : new KaiwaError('sfu', `Could not answer kaiwa's subscribe offer ${version}: ${errText(err)}`, err));
    }
  }

  private closeOldSubscribe(): void {
    const old = this.oldSub;
    if (!old) return;
    this.oldSub = null;
    clearTimeout(old.timer);
    old.pc.close();
  }

  private async applyBitrate(): Promise<void> {
    const pc = this.publishPc;
    if (!pc || this.closed) return;
    await capVideoBitrate(pc, this.maxVideoBitrate);
  }
}

/** The tracks a subscribe connection carries now, by the m-lines of its last applied offer. */
function tracksOf(pc: RTCPeerConnection, offered: Map<string, OfferedTrack>): SfuTrack[] {
  const out: SfuTrack[] = [];
  for (const t of pc.getTransceivers()) {
    const o = t.mid === null ? undefined : offered.get(t.mid);
    if (!o || t.currentDirection === 'inactive' || t.currentDirection === 'stopped' || t.receiver.track.readyState === 'ended') continue;
    out.push({ track: t.receiver.track, peer: o.peer, source: o.source });
  }
  return out;
}

function errText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
