/**
 * One RTCPeerConnection to one other peer of the mesh, negotiated with the "perfect negotiation" pattern:
 * either side may (re)negotiate at any time; on an offer collision the polite side rolls back and the impolite
 * side ignores the incoming offer. The same code handles the first offer, track changes and ICE restarts.
 */
import { Emitter } from './emitter.js';
import { capVideoBitrate } from './media.js';
import { readStats, type PeerStats, type StatsSample } from './stats.js';
import { KaiwaError } from './types.js';

export type { PeerStats } from './stats.js';

/** What travels in a `signal` message's `data`. */
export interface SignalData {
  description?: RTCSessionDescriptionInit;
  candidate?: RTCIceCandidateInit;
}

export interface PeerLinkEvents {
  signal: SignalData;
  /** `streamIds`: the sender's stream ids for the track (tells a separate screen track from the camera). */
  track: { track: MediaStreamTrack; stream: MediaStream; streamIds: string[] };
  'connection-state': RTCPeerConnectionState;
  'channel-open': RTCDataChannel;
  'channel-close': void;
  'channel-message': string | ArrayBuffer;
  error: KaiwaError;
}

export interface PeerLinkOptions {
  polite: boolean;
  /** True on the side that starts negotiating (the newcomer): it adds receive-only transceivers for missing kinds. */
  initiator: boolean;
  iceServers: RTCIceServer[];
  localStream: MediaStream | null;
  /** The track currently sent as video (the camera or a screen), if any. */
  videoTrack: MediaStreamTrack | null;
  /** A screen sent beside the camera as a second video track (`startScreenShare({keepCamera: true})`). */
  screen?: { track: MediaStreamTrack; stream: MediaStream } | null;
  maxVideoBitrate?: number;
  /** Wait this long in `disconnected` before restarting ICE, ms. */
  disconnectGraceMs?: number;
}

/** The data channel is pre-negotiated (same id on both sides), so neither side waits for the other to open it. */
const CHANNEL_ID = 0;

export class PeerLink extends Emitter<PeerLinkEvents> {
  readonly id: string;
  readonly pc: RTCPeerConnection;
  readonly channel: RTCDataChannel;
  /** All tracks received from this peer. */
  readonly remoteStream = new MediaStream();
  readonly polite: boolean;
  private makingOffer = false;
  private ignoreOffer = false;
  private settingRemoteAnswer = false;
  private chain: Promise<void> = Promise.resolve();
  private disconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private maxVideoBitrate: number | undefined;
  private readonly disconnectGraceMs: number;
  private lastSample: StatsSample | null = null;
  private closed = false;
  private screenSender: RTCRtpSender | null = null;
  /** Number of ICE restarts this link has asked for. */
  iceRestarts = 0;

  constructor(id: string, opts: PeerLinkOptions) {
    super();
    this.id = id;
    this.polite = opts.polite;
    this.maxVideoBitrate = opts.maxVideoBitrate;
    this.disconnectGraceMs = opts.disconnectGraceMs ?? 2000;
    const pc = new RTCPeerConnection({ iceServers: opts.iceServers });
    this.pc = pc;

    const stream = opts.localStream;
    let hasAudio = false;
    let hasVideo = false;
    if (stream) {
      for (const track of stream.getAudioTracks()) {
        pc.addTrack(track, stream);
        hasAudio = true;
      }
    }
    if (opts.videoTrack) {
      pc.addTrack(opts.videoTrack, stream ?? new MediaStream([opts.videoTrack]));
      hasVideo = true;
    }
    if (opts.screen) this.screenSender = pc.addTrack(opts.screen.track, opts.screen.stream);
    if (opts.initiator) {
      // Without local media we still want to receive the other side's audio and video in the first round.
      if (!hasAudio) pc.addTransceiver('audio', { direction: 'recvonly' });
      if (!hasVideo) pc.addTransceiver('video', { direction: 'recvonly' });
    }

    this.channel = pc.createDataChannel('kaiwa', { negotiated: true, id: CHANNEL_ID, ordered: true });
    this.channel.binaryType = 'arraybuffer';
    this.channel.onopen = () => this.emit('channel-open', this.channel);
    this.channel.onclose = () => this.emit('channel-close', undefined);
    this.channel.onmessage = (ev: MessageEvent) => this.emit('channel-message', ev.data as string | ArrayBuffer);

    pc.onnegotiationneeded = () => void this.negotiate();
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.emit('signal', { candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track, streams }) => {
      if (!this.remoteStream.getTrackById(track.id)) this.remoteStream.addTrack(track);
      track.addEventListener('ended', () => this.remoteStream.removeTrack(track), { once: true });
      this.emit('track', { track, stream: this.remoteStream, streamIds: streams.map((x) => x.id) });
    };
    pc.onconnectionstatechange = () => this.onConnectionState();
    pc.onsignalingstatechange = () => {
      if (pc.signalingState === 'stable') void this.applyBitrate();
    };
  }

  get connectionState(): RTCPeerConnectionState {
    return this.pc.connectionState;
  }

  /** Handles a `signal` from the other peer. Calls are serialized. */
  handleSignal(data: SignalData): Promise<void> {
    const run = this.chain.then(() => this.applySignal(data));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Sends `track` (or nothing, with null) as our video, renegotiating only if there was no video sender. */
  async setVideoTrack(track: MediaStreamTrack | null, stream: MediaStream | null): Promise<void> {
    if (this.closed) return;
    const videos = this.pc.getTransceivers()
      .filter((t) => t.currentDirection !== 'stopped' && t.receiver.track.kind === 'video' &&
        (!this.screenSender || t.sender !== this.screenSender));
    const transceiver = videos.find((t) => t.sender.track !== null) ?? videos[0];
    if (transceiver) {
      await transceiver.sender.replaceTrack(track);
      if (track && stream) transceiver.sender.setStreams(stream);
      if (track && (transceiver.direction === 'recvonly' || transceiver.direction === 'inactive')) {
        transceiver.direction = 'sendrecv'; // triggers negotiationneeded
      }
    } else if (track) {
      this.pc.addTrack(track, stream ?? new MediaStream([track]));
    }
    await this.applyBitrate();
  }

  /** Sends a screen as an extra video track beside the camera (renegotiates); null stops sending it. */
  setScreenTrack(screen: { track: MediaStreamTrack; stream: MediaStream } | null): void {
    if (this.closed) return;
    if (this.screenSender) {
      try {
        this.pc.removeTrack(this.screenSender);
      } catch {
        /* closed meanwhile */
      }
      this.screenSender = null;
    }
    if (screen) this.screenSender = this.pc.addTrack(screen.track, screen.stream);
  }

  /** Replaces the audio we send (no renegotiation when an audio sender exists). */
  async setAudioTrack(track: MediaStreamTrack | null, stream: MediaStream | null): Promise<void> {
    if (this.closed) return;
    const audios = this.pc.getTransceivers()
      .filter((t) => t.currentDirection !== 'stopped' && t.receiver.track.kind === 'audio');
    const transceiver = audios.find((t) => t.sender.track !== null) ?? audios[0];
    if (transceiver) {
      await transceiver.sender.replaceTrack(track);
      if (track && stream) transceiver.sender.setStreams(stream);
      if (track && (transceiver.direction === 'recvonly' || transceiver.direction === 'inactive')) {
        transceiver.direction = 'sendrecv';
      }
    } else if (track) {
      this.pc.addTrack(track, stream ?? new MediaStream([track]));
    }
  }

  /** Caps the bitrate of our video (bits per second); undefined removes the cap. */
  async setMaxVideoBitrate(bps: number | undefined): Promise<void> {
    this.maxVideoBitrate = bps;
    await this.applyBitrate();
  }

  /** Restarts ICE (new credentials, new candidates) through a renegotiation. */
  restartIce(): void {
    if (this.closed) return;
    this.iceRestarts += 1;
    this.pc.restartIce();
  }

  /** Sends app data on the data channel; returns false if the channel is not open. */
  sendData(data: string | ArrayBuffer): boolean {
    if (this.channel.readyState !== 'open') return false;
    this.channel.send(data as string);
    return true;
  }

  async getStats(): Promise<PeerStats> {
    const { stats, sample } = readStats([{ report: await this.pc.getStats(), outbound: true, rtt: true }], this.lastSample);
    this.lastSample = sample;
    return stats;
  }

  /** Closes the connection and the channel and drops every handler. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
    this.disconnectTimer = null;
    const ch = this.channel;
    ch.onopen = ch.onclose = ch.onmessage = ch.onbufferedamountlow = null;
    try {
      ch.close();
    } catch {
      /* already closed */
    }
    const pc = this.pc;
    pc.onnegotiationneeded = pc.onicecandidate = pc.ontrack = null;
    pc.onconnectionstatechange = pc.onsignalingstatechange = null;
    pc.close();
    for (const t of this.remoteStream.getTracks()) this.remoteStream.removeTrack(t);
    this.emit('connection-state', 'closed');
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------------

  private async negotiate(): Promise<void> {
    if (this.closed) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (this.pc.localDescription) this.emit('signal', { description: this.pc.localDescription.toJSON() });
    } catch (err) {
      if (!this.closed) this.emit('error', new KaiwaError('peer-connection', `Could not create an offer: ${errText(err)}`, err));
    } finally {
      this.makingOffer = false;
    }
  }

  private async applySignal(data: SignalData): Promise<void> {
    if (this.closed) return;
    const pc = this.pc;
    try {
      if (data.description) {
        const description = data.description;
        const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswer);
        const collision = description.type === 'offer' && !readyForOffer;
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        this.settingRemoteAnswer = description.type === 'answer';
        await pc.setRemoteDescription(description); // rolls back our own offer if we are polite and collided
        this.settingRemoteAnswer = false;
        if (description.type === 'offer') {
          await pc.setLocalDescription();
          if (pc.localDescription) this.emit('signal', { description: pc.localDescription.toJSON() });
        }
      } else if (data.candidate) {
        try {
          await pc.addIceCandidate(data.candidate);
        } catch (err) {
          if (!this.ignoreOffer) throw err;
        }
      }
    } catch (err) {
      this.settingRemoteAnswer = false;
      if (!this.closed) this.emit('error', new KaiwaError('peer-connection', `Negotiation with ${this.id} failed: ${errText(err)}`, err));
    }
  }

  private onConnectionState(): void {
    const state = this.pc.connectionState;
    this.emit('connection-state', state);
    if (state === 'connected' || state === 'closed') {
      if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
      this.disconnectTimer = null;
      if (state === 'connected') void this.applyBitrate();
    } else if (state === 'failed') {
      this.restartIce();
    } else if (state === 'disconnected' && !this.disconnectTimer) {
      // "disconnected" often heals by itself; restart only if it lasts.
      this.disconnectTimer = setTimeout(() => {
        this.disconnectTimer = null;
        if (this.pc.connectionState === 'disconnected') this.restartIce();
      }, this.disconnectGraceMs);
    }
  }

  private async applyBitrate(): Promise<void> {
    if (this.closed) return;
    await capVideoBitrate(this.pc, this.maxVideoBitrate);
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
