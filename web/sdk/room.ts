/**
 * Room: joins a kaiwa room over the signaling socket and carries its media either as a full mesh of peer connections
 * to its members (`mesh`) or through kaiwa's SFU (`sfu`: a publish and a subscribe connection, both to kaiwa). The
 * server decides the mode (`media-mode`); the Room hides it: every remote peer keeps one stable `stream`, and a mode
 * switch builds the new connections before it closes the old ones, swapping the tracks inside that stream.
 *
 *   const room = new Room({ room: 'demo', name: 'Alice' });
 *   room.on('stream', ({ peer, stream }) => attach(peer.id, stream));
 *   await room.join();
 */
import { Emitter } from './emitter.js';
import { FileChannel, newTransferId, sha256Hex, type FileChannelEvents, type FileMeta, type SentFile } from './files.js';
import {
  audioConstraints, getLocalMedia, getScreenMedia, mediaError, videoConstraints, type MediaRequest,
} from './media.js';
import { PeerLink, type PeerStats, type SignalData } from './peer.js';
import { SfuSession, type SfuTrack, type TrackSource } from './sfu.js';
import { SfuDataLink } from './sfudata.js';
import { SignalFiles } from './sigfiles.js';
import { SignalingClient, type SignalingOptions, type SignalingState } from './signaling.js';
import {
  DEFAULT_STATE, KaiwaError, normalizeState, type JoinReply, type MediaMode, type MediaPolicy, type MediaState,
  type PeerInfo, type PeerLeftReason, type RecordingState, type ServerMessage,
} from './types.js';

export interface JoinOptions {
  /** Signaling URL; default `ws(s)://<this origin>/ws`. */
  url?: string;
  room: string;
  /** Display name, 1–64 characters (control characters become spaces). May be left out with a `token`, whose
   * `sub` then names us. */
  name?: string;
  /** Access token (JWT) when the server runs with `--auth-secret`. */
  token?: string;
  /** Devices to capture; `false` joins without camera and microphone. Default: both. A string here is taken as
   * `mediaPolicy` (with both devices captured). */
  media?: MediaRequest | false | MediaPolicy;
  /** The room's media policy, sent in `join`: `sfu` (through kaiwa), `mesh` (peer to peer) or `auto` (mesh up to
   * two members, sfu from three). Only the join that creates the room sets it; default: the server's. */
  mediaPolicy?: MediaPolicy;
  /** Use this stream instead of capturing one (the room stops its tracks on leave). */
  localStream?: MediaStream;
  /** ICE servers; default: fetched from `GET /api/ice-servers` on the signaling server's origin. */
  iceServers?: RTCIceServer[];
  /** Cap on the video bitrate sent to each peer, bits per second. */
  maxVideoBitrate?: number;
  /** Send `leave` when the page is hidden for good (tab closed, navigation). Default true. */
  leaveOnPageHide?: boolean;
  /** Wait this long in ICE `disconnected` before restarting ICE, ms. Default 2000. */
  iceDisconnectGraceMs?: number;
  signaling?: SignalingOptions;
  /** Join with the microphone muted / the camera off (the tracks are captured but disabled); the others see
   * this state from the first moment. */
  initialState?: { audioMuted?: boolean; videoOff?: boolean };
  /** `'auto'` (default) takes every file a peer offers; `'ask'` emits `file-offer` and waits for `acceptFile` or
   * `declineFile` before any byte flows. */
  acceptFiles?: 'auto' | 'ask';
}

export interface RemotePeer {
  readonly id: string;
  name: string;
  state: MediaState;
  /** Every track received from this peer (one stream per peer, stable for the peer's lifetime) except a screen
   * shared beside the camera, which is in `screen`. */
  readonly stream: MediaStream;
  /** The screen this peer shares as a separate track (`startScreenShare({keepCamera: true})`), else null. */
  screen: MediaStream | null;
  connectionState: RTCPeerConnectionState;
}

export interface ChatMessage {
  from: string;
  name: string;
  text: string;
  ts: number;
  /** True for our own messages (the server echoes chat to its sender). */
  self: boolean;
}

type PeerFileEvents = { [K in keyof FileChannelEvents]: FileChannelEvents[K] };

export interface RoomEvents extends PeerFileEvents {
  /** Our session is in the room (`rejoined` after a failed resume gave us a new id). */
  joined: { id: string; rejoined: boolean };
  /** A member joined (also emitted for each member already present when we join). */
  'peer-joined': RemotePeer;
  'peer-left': { peer: RemotePeer; reason: PeerLeftReason };
  'peer-state': { peer: RemotePeer; state: MediaState };
  track: { peer: RemotePeer; track: MediaStreamTrack; stream: MediaStream };
  stream: { peer: RemotePeer; stream: MediaStream };
  chat: ChatMessage;
  /** An app message relayed by the server (`sendMessage`). */
  message: { from: string; data: unknown; broadcast: boolean };
  /** An app message over the peer-to-peer data channel (`sendData`). */
  data: { from: string; data: unknown };
  'connection-state': { peer: RemotePeer; state: RTCPeerConnectionState };
  'signaling-state': SignalingState;
  'local-state': MediaState;
  /** A peer started (stream) or stopped (null) sharing a screen beside its camera. */
  screen: { peer: RemotePeer; stream: MediaStream | null };
  /** We started (stream) or stopped (null) sharing a screen beside our camera. */
  'local-screen': { stream: MediaStream | null };
  /** The video we send changed (camera ↔ screen); `track` is null when we send none. */
  'local-video': { track: MediaStreamTrack | null; screen: boolean };
  /** A local camera or microphone track ended by itself (unplugged, taken by another app, permission revoked):
   * the room marks it off (`local-state`), tells the others, and also emits `error` with `media-ended`. */
  'local-track-ended': { kind: 'audio' | 'video' };
  /** The room's media now goes peer to peer (`mesh`) or through kaiwa (`sfu`); also emitted once at join. */
  'media-mode': { mode: MediaMode };
  /** The room's recording started or stopped (also after a join or resume into a room being recorded). */
  recording: RecordingState;
  /** The dominant speaker changed: in an sfu room kaiwa tells (`active-speaker`, from the RFC 6464 audio levels the
   * publishers send, with ~1 s of hysteresis); `peer` is our own id when it is us, null when nobody is (the speaker
   * left, or the room went to mesh, where kaiwa hears no audio: the app may judge levels itself). Also emitted at
   * join when the room has one. */
  activespeaker: { peer: string | null };
  error: KaiwaError;
  closed: void;
}

export interface SendFileHandle {
  meta: FileMeta;
  /** Settles when every receiver has verified (or failed) the file. */
  done: Promise<PromiseSettledResult<SentFile>[]>;
}

interface PeerEntry {
  peer: RemotePeer;
  link: PeerLink | null;
  files: FileChannel | null;
  /** The stream id the peer says its separate screen track belongs to (data channel `screen` message). */
  screenId: string | null;
  /** Stream ids of every track received, by track id. */
  trackStreams: Map<string, string[]>;
  /** Camera and microphone tracks received on the mesh connection (candidates for `peer.stream`). */
  meshTracks: Set<MediaStreamTrack>;
  /** Camera and microphone tracks received from kaiwa's SFU for this peer. */
  sfuTracks: Map<TrackSource, MediaStreamTrack>;
  /** `peer.screen` holds a track from the SFU. */
  sfuScreen: boolean;
  /** In a switch to sfu: we told the peer we show it through the SFU now / it told us the same. */
  viaSfuSent: boolean;
  peerViaSfu: boolean;
}

/** How long a mode switch waits for the new connections to carry a peer's media before it drops the old ones, ms. */
const SWITCH_TIMEOUT_MS = 8000;
/** How often a switch checks whether the new side's tracks receive, ms. */
const SWITCH_POLL_MS = 400;
const MEDIA_POLICIES: readonly string[] = ['auto', 'sfu', 'mesh'];

const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export class Room extends Emitter<RoomEvents> {
  readonly options: JoinOptions;
  readonly signaling: SignalingClient;
  /** Our peer id (changes only if a resume fails and we join afresh). */
  id = '';
  readonly roomName: string;
  readonly name: string;
  /** Camera and microphone (null when joined without media). */
  localStream: MediaStream | null = null;
  /** The screen being shared, if any. */
  screenStream: MediaStream | null = null;
  /** Why the camera/microphone could not be had, if so. */
  mediaError: KaiwaError | null = null;
  /** Our media state as the others see it. */
  state: MediaState = { ...DEFAULT_STATE };
  iceServers: RTCIceServer[] = [];
  leaveOnPageHide: boolean;
  private resumeToken = '';
  /** The screen goes as a second track beside the camera (not in its place). */
  private screenSeparate = false;
  private entries = new Map<string, PeerEntry>();
  private urls: string[] = [];
  private maxVideoBitrate: number | undefined;
  private iceRefreshTimer: ReturnType<typeof setTimeout> | null = null;
  private joinedOnce = false;
  private left = false;
  private unsubscribe: Array<() => void> = [];
  /** How media goes now (`media-mode`); mesh on servers without SFU rooms. */
  mediaMode: MediaMode = 'mesh';
  /** The room's recording, as the server last said (docs/protocol.md, "Recording"). */
  recording: RecordingState = { active: false };
  /** The room's dominant speaker as kaiwa last said (`activespeaker`); null when none is known. */
  activeSpeaker: string | null = null;
  /** The room's policy as the server reported it (null from servers without SFU rooms). */
  mediaPolicy: MediaPolicy | null = null;
  private sfu: SfuSession | null = null;
  /** Video elements the page shows remote video in (observeVideo), with their rendered size in device pixels. */
  private readonly videoTiles = new Map<HTMLVideoElement, { width: number; height: number }>();
  private tileObserver: ResizeObserver | null = null;
  private readonly sigFiles: SignalFiles;
  /** The SFU data channel (chat and files in an sfu room), attached to each publish connection's channel. */
  private readonly sfuData = new SfuDataLink();
  /** Until then a switch waits for the new connections; after it the old ones go regardless. */
  private switchDeadline = 0;
  private switchTimer: ReturnType<typeof setTimeout> | null = null;
  /** While a switch waits: polls the new side's tracks for media (getStats), as `unmute` alone proved unreliable. */
  private switchPoll: ReturnType<typeof setInterval> | null = null;
  /** Tracks seen carrying media (packets, or decoded frames for video). */
  private receiving = new WeakSet<MediaStreamTrack>();

  constructor(options: JoinOptions) {
    super();
    if (!ROOM_RE.test(options.room)) {
      throw new KaiwaError('bad-message', 'A room name is 1–64 characters of A–Z, a–z, 0–9, "_", "." and "-".');
    }
    // eslint-disable-next-line no-control-regex
    const name = (options.name ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
    if ((name.length < 1 && !options.token) || [...name].length > 64) {
      throw new KaiwaError('bad-message', 'A display name is 1–64 characters.');
    }
    this.options = options;
    this.roomName = options.room;
    this.name = name;
    this.maxVideoBitrate = options.maxVideoBitrate;
    this.leaveOnPageHide = options.leaveOnPageHide !== false;
    this.signaling = new SignalingClient(withRoomHint(options.url ?? defaultSignalingUrl(), options.room), options.signaling);
    this.sigFiles = new SignalFiles(this.signaling, this.urls);
    this.sigFiles.autoAccept = options.acceptFiles !== 'ask';
    this.forwardFileEvents(this.sigFiles);
    this.sigFiles.link = this.sfuData;
    this.sfuData.onMessage = (from, d) => this.onSfuData(from, d);
    this.sfuData.onDropped = (peer) => this.sigFiles.linkDropped(peer);
  }

  /** Creates a room and joins it. Listeners added after this resolves miss `peer-joined` for members present at
   * join time; read `room.peers` then, or use `new Room(...)`, add listeners, and `await room.join()`. */
  static async join(options: JoinOptions): Promise<Room> {
    const room = new Room(options);
    await room.join();
    return room;
  }

  /** The other members, by id. */
  get peers(): ReadonlyMap<string, RemotePeer> {
    const m = new Map<string, RemotePeer>();
    for (const [id, e] of this.entries) m.set(id, e.peer);
    return m;
  }

  get signalingState(): SignalingState {
    return this.signaling.state;
  }

  /** Gets media, ICE servers and the socket, then joins. Rejects with a KaiwaError (e.g. `room-full`). */
  async join(): Promise<void> {
    if (this.joinedOnce) throw new KaiwaError('already-joined', 'This Room has already joined; create a new one.');
    this.joinedOnce = true;
    const sig = this.signaling;
    this.unsubscribe.push(
      sig.on('state', (s) => this.emit('signaling-state', s)),
      sig.on('message', (m) => this.onServerMessage(m)),
      sig.on('reopen', () => void this.reattach()),
      sig.on('error', (e) => this.emit('error', e)),
      sig.on('bye', ({ reason }) => {
        if (reason === 'replaced') {
          this.emit('error', new KaiwaError('replaced', 'This session was taken over by another connection.'));
        }
      }),
    );
    const media = this.options.media === undefined || typeof this.options.media === 'string'
      ? { audio: true, video: true } : this.options.media;
    // Media, ICE servers and the socket in parallel; if the socket fails, release any camera we got meanwhile.
    const [mediaSettled, , helloSettled] = await Promise.allSettled([
      this.options.localStream
        ? Promise.resolve({ stream: this.options.localStream, error: null })
        : getLocalMedia(media === false ? { audio: false, video: false } : media),
      this.options.iceServers ? Promise.resolve(this.iceServers = this.options.iceServers) : this.refreshIceServers(),
      sig.connect(),
    ]);
    if (helloSettled.status === 'rejected' || mediaSettled.status === 'rejected' || this.left) {
      if (mediaSettled.status === 'fulfilled') for (const t of mediaSettled.value.stream?.getTracks() ?? []) t.stop();
      this.teardown();
      const err: unknown = helloSettled.status === 'rejected' ? helloSettled.reason
        : mediaSettled.status === 'rejected' ? mediaSettled.reason : new KaiwaError('closed', 'Left before joining.');
      throw err instanceof KaiwaError ? err : new KaiwaError('connect-failed', String(err), err);
    }
    const mediaResult = mediaSettled.value;
    this.localStream = mediaResult.stream;
    if (mediaResult.error) {
      this.mediaError = mediaResult.error;
      this.emit('error', mediaResult.error);
    }
    const initial = this.options.initialState ?? {};
    this.state = {
      audioMuted: !this.localStream?.getAudioTracks().length || initial.audioMuted === true,
      videoOff: !this.localStream?.getVideoTracks().length || initial.videoOff === true,
      screenSharing: false,
    };
    for (const t of this.localStream?.getAudioTracks() ?? []) t.enabled = !this.state.audioMuted;
    for (const t of this.localStream?.getVideoTracks() ?? []) t.enabled = !this.state.videoOff;
    for (const t of this.localStream?.getTracks() ?? []) this.watchTrack(t);
    try {
      this.applyJoin(await this.requestJoin(), false);
    } catch (err) {
      this.teardown();
      throw err;
    }
    if (typeof window !== 'undefined') window.addEventListener('pagehide', this.onPageHide);
  }

  /** Leaves the room: tells the server, closes every connection, stops local tracks, drops all listeners. */
  leave(): void {
    if (this.left) return;
    this.signaling.close({ leave: true });
    this.teardown();
  }

  // ----- media --------------------------------------------------------------------------------

  setAudioMuted(muted: boolean): void {
    const tracks = this.localStream?.getAudioTracks() ?? [];
    for (const t of tracks) t.enabled = !muted;
    this.updateState({ audioMuted: muted || tracks.length === 0 });
  }

  setVideoOff(off: boolean): void {
    const tracks = this.localStream?.getVideoTracks() ?? [];
    for (const t of tracks) t.enabled = !off;
    this.updateState({ videoOff: off || tracks.length === 0 });
  }

  /**
   * Switches the camera or microphone to another device (`deviceId` from `enumerateDevices`) without
   * renegotiating: the new track replaces the old one on every connection (`RTCRtpSender.replaceTrack`). Keeps
   * the muted / camera-off state. Rejects with a `media-*` KaiwaError when the device cannot be opened (the old
   * track then stays).
   */
  async switchDevice(kind: 'audio' | 'video', deviceId: string): Promise<MediaStreamTrack> {
    const stream = this.localStream;
    const old = kind === 'audio' ? stream?.getAudioTracks()[0] : stream?.getVideoTracks()[0];
    let fresh: MediaStream;
    try {
      const c = kind === 'audio' ? audioConstraints() : videoConstraints();
      fresh = await navigator.mediaDevices.getUserMedia(
        kind === 'audio' ? { audio: { ...c, deviceId: { exact: deviceId } } } : { video: { ...c, deviceId: { exact: deviceId } } });
    } catch (err) {
      throw mediaError(err, kind === 'audio' ? 'microphone' : 'camera');
    }
    const track = (kind === 'audio' ? fresh.getAudioTracks() : fresh.getVideoTracks())[0]!;
    if (this.left) {
      track.stop();
      return track;
    }
    track.enabled = kind === 'audio' ? !this.state.audioMuted : !this.state.videoOff;
    if (!this.localStream) this.localStream = new MediaStream();
    if (old) {
      this.localStream.removeTrack(old);
      old.stop();
    }
    this.localStream.addTrack(track);
    this.watchTrack(track);
    if (kind === 'audio') {
      await Promise.all([...this.entries.values()].map((e) => e.link?.setAudioTrack(track, this.localStream)));
      await this.sfu?.setTrack('microphone', track, this.localStream);
      if (!old) this.updateState({ audioMuted: false });
    } else {
      if (!this.screenStream) {
        await this.sendVideo(track, this.localStream);
        this.emit('local-video', { track, screen: false });
      }
      if (!old) this.updateState({ videoOff: false });
    }
    return track;
  }

  /**
   * Shares the screen in place of the camera on every connection (no renegotiation when a video sender exists), or
   * with `keepCamera` as a second video track beside the camera (one renegotiation; receivers get a `screen` event
   * and `peer.screen`, and we get `local-screen`).
   */
  async startScreenShare(opts: { keepCamera?: boolean } = {}): Promise<void> {
    if (this.screenStream) return;
    const screen = await getScreenMedia();
    const track = screen.getVideoTracks()[0];
    if (!track) {
      for (const t of screen.getTracks()) t.stop();
      throw new KaiwaError('screen-share-failed', 'The screen capture has no video.');
    }
    if (this.left) {
      track.stop();
      return;
    }
    track.contentHint = 'detail'; // keep resolution, drop frame rate under congestion
    this.screenStream = screen;
    track.addEventListener('ended', () => void this.stopScreenShare(), { once: true });
    if (opts.keepCamera) {
      this.screenSeparate = true;
      for (const e of this.entries.values()) {
        e.link?.setScreenTrack({ track, stream: screen });
        e.link?.sendData(JSON.stringify({ k: 'screen', stream: screen.id }));
      }
      void this.sfu?.setTrack('screen', track, screen);
      this.updateState({ screenSharing: true });
      this.emit('local-screen', { stream: screen });
      return;
    }
    await this.sendVideo(track, screen);
    this.updateState({ screenSharing: true });
    this.emit('local-video', { track, screen: true });
  }

  /** Goes back to the camera (also called when the browser's "stop sharing" ends the screen track). */
  async stopScreenShare(): Promise<void> {
    const screen = this.screenStream;
    if (!screen) return;
    this.screenStream = null;
    for (const t of screen.getTracks()) t.stop();
    if (this.left) return;
    if (this.screenSeparate) {
      this.screenSeparate = false;
      for (const e of this.entries.values()) {
        e.link?.setScreenTrack(null);
        e.link?.sendData(JSON.stringify({ k: 'screen', stream: null }));
      }
      void this.sfu?.setTrack('screen', null, null);
      this.updateState({ screenSharing: false });
      this.emit('local-screen', { stream: null });
      return;
    }
    const camera = this.cameraTrack();
    await this.sendVideo(camera, this.localStream);
    this.updateState({ screenSharing: false });
    this.emit('local-video', { track: camera, screen: false });
  }

  /** Caps our video bitrate on every connection (bits per second; undefined removes the cap). */
  async setMaxVideoBitrate(bps: number | undefined): Promise<void> {
    this.maxVideoBitrate = bps;
    await Promise.all([...this.entries.values()].map((e) => e.link?.setMaxVideoBitrate(bps)));
    await this.sfu?.setMaxVideoBitrate(bps);
  }
  /**
   * Reports the rendered size of a `<video>` showing remote video to kaiwa (in an sfu room; ResizeObserver, in device
   * pixels; 0x0 when hidden or detached), so that kaiwa forwards it a simulcast layer no larger than needed and none
   * to a hidden one. Call once per element; the returned function stops it (when the tile goes). Whatever stream the
   * element shows at each report is what its size is reported for; a track no observed element shows keeps its last
   * size (large until reported).
   */
  observeVideo(el: HTMLVideoElement): () => void {
    if (typeof ResizeObserver === 'undefined') return () => undefined;
    this.tileObserver ??= new ResizeObserver((entries) => {
      const dpr = typeof window !== 'undefined' ? window.devicePixelRatio || 1 : 1;
      for (const e of entries) {
        const target = e.target as HTMLVideoElement;
        if (!this.videoTiles.has(target)) continue;
        this.videoTiles.set(target, { width: e.contentRect.width * dpr, height: e.contentRect.height * dpr });
      }
      this.sfu?.reportTiles();
    });
    this.videoTiles.set(el, { width: 0, height: 0 });
    this.tileObserver.observe(el);
    return () => {
      this.tileObserver?.unobserve(el);
      this.videoTiles.delete(el);
      this.sfu?.reportTiles();
    };
  }

  private tileSizes(): Array<{ track: MediaStreamTrack; width: number; height: number }> {
    const out: Array<{ track: MediaStreamTrack; width: number; height: number }> = [];
    for (const [el, size] of this.videoTiles) {
      const stream = el.srcObject;
      if (!(stream instanceof MediaStream)) continue;
      const shown = el.isConnected ? size : { width: 0, height: 0 };
      for (const track of stream.getVideoTracks()) out.push({ track, ...shown });
    }
    return out;
  }


  // ----- messaging ----------------------------------------------------------------------------

  /** Sends a chat line through the server; everyone (us included) receives it as `chat`, in one order. In an sfu
   * room whose data channel is open it goes over that channel (kaiwa relays it; our own `chat` is emitted here). */
  async sendChat(text: string): Promise<number> {
    if (text.length < 1 || text.length > 4096) throw new KaiwaError('bad-message', 'A chat message is 1–4096 characters.');
    if (this.mediaMode === 'sfu' && this.sfuData.open) {
      const ts = Date.now();
      await this.sfuData.send({ kaiwa: 'chat', text, ts });
      this.emit('chat', { from: this.id, name: this.name, text, ts, self: true });
      return ts;
    }
    const reply = await this.signaling.request('chat', { text });
    return Number(reply.ts);
  }

  /** Sends an app message through the server to one peer or to every other peer. */
  /** Starts recording the room (an SFU room; the server needs --record-dir, and with room tokens a `record` claim).
   * Every member then gets the `recording` event; rejects with the server's error code otherwise. */
  async startRecording(): Promise<void> {
    await this.signaling.request('record-start');
  }

  /** Stops the room's recording; the files are closed and every member gets `recording` with `active: false`. */
  async stopRecording(): Promise<void> {
    await this.signaling.request('record-stop');
  }

  async sendMessage(data: unknown, to?: string): Promise<void> {
    await this.signaling.request('message', to ? { to, data } : { data });
  }

  /** Sends an app message peer-to-peer over the data channels; returns how many peers it went to (none in an sfu
   * room, which has no data channels yet: use `sendMessage` there). */
  sendData(data: unknown, to?: string): number {
    const frame = JSON.stringify({ k: 'app', data });
    let n = 0;
    for (const [id, e] of this.entries) {
      if (to && id !== to) continue;
      if (e.link?.sendData(frame)) n += 1;
    }
    return n;
  }

  /**
   * Sends a file to one peer or to everybody, with a SHA-256 the receivers check: peer-to-peer over the data
   * channels in a mesh, over the signaling connection in an sfu room (or with `viaServer`). Progress comes as
   * `file-progress` events on both sides; receivers get `file-received` with a Blob and an object URL.
   */
  async sendFile(file: Blob & { name?: string }, to?: string, opts: { viaServer?: boolean } = {}): Promise<SendFileHandle> {
    const targets = to ? [to] : [...this.entries.keys()];
    for (const id of targets) {
      if (!this.entries.has(id)) throw new KaiwaError('unknown-peer', `No peer ${id} in the room.`);
    }
    const data = await file.arrayBuffer();
    const meta: FileMeta = {
      id: newTransferId(),
      name: file.name || 'file',
      size: data.byteLength,
      type: file.type || 'application/octet-stream',
      sha256: await sha256Hex(data),
    };
    if (this.mediaMode === 'sfu' || opts.viaServer) {
      // No data channels in an sfu room: the file goes over the signaling connection, once for the whole room
      // (`viaServer` asks for that in a mesh too, e.g. when a data channel cannot be had).
      return { meta, done: Promise.allSettled(this.sigFiles.send(data, meta, targets, to)) };
    }
    const sends = targets.map((id) => {
      const e = this.entries.get(id);
      if (!e) return Promise.reject(new KaiwaError('unknown-peer', `Peer ${id} left.`));
      this.ensureLink(e, true);
      return e.files!.send(data, meta);
    });
    return { meta, done: Promise.allSettled(sends) };
  }

  // ----- diagnostics --------------------------------------------------------------------------

  /** RTT, bitrates and packet loss of the connection to one peer (bitrates over the time since the last call). */
  /** Accepts a file `peerId` offered (`file-offer`, with `acceptFiles: 'ask'`). */
  acceptFile(peerId: string, fileId: string): boolean {
    return (this.entries.get(peerId)?.files?.accept(fileId) ?? false) || this.sigFiles.accept(peerId, fileId);
  }

  /** Declines a file `peerId` offered; the sender gets `file-failed` with `file-declined`. */
  declineFile(peerId: string, fileId: string): boolean {
    return (this.entries.get(peerId)?.files?.cancel(fileId) ?? false) || this.sigFiles.cancel(fileId, peerId);
  }

  /** Cancels a file transfer, sending or receiving, queued, offered or under way, with one peer or (without
   * `peerId`) with everyone. Both sides get `file-failed` (`file-cancelled`). Returns how many were cancelled. */
  cancelFile(fileId: string, peerId?: string): number {
    let n = 0;
    for (const [id, e] of this.entries) {
      if (peerId && id !== peerId) continue;
      if (e.files?.cancel(fileId)) n += 1;
    }
    if (this.sigFiles.cancel(fileId, peerId)) n += 1;
    return n;
  }

  /** RTT, bitrates and packet loss of what we exchange with one peer (bitrates over the time since the last call).
   * In an sfu room: the peer's tracks on the subscribe connection, and what our publish connection sends. */
  async getStats(peerId: string): Promise<PeerStats | null> {
    const e = this.entries.get(peerId);
    if (!e) return null;
    if (e.link) return e.link.getStats();
    return this.sfu ? this.sfu.getStats(peerId) : null;
  }

  /** The RTCPeerConnection that carries a peer's media to us (in an sfu room: the subscribe connection). */
  peerConnection(peerId: string): RTCPeerConnection | null {
    const e = this.entries.get(peerId);
    return e?.link?.pc ?? (e ? this.sfu?.subscribePc ?? null : null);
  }

  /** The SFU connections (null in a mesh room) and how often the publish one was started over, for diagnostics. */
  sfuConnections(): { publish: RTCPeerConnection | null; subscribe: RTCPeerConnection | null; republishes: number;
    iceRestarts: number; subscribeRestarts: number } | null {
    const sfu = this.sfu;
    return sfu ? { publish: sfu.publishPc, subscribe: sfu.subscribePc, republishes: sfu.republishes,
      iceRestarts: sfu.iceRestarts, subscribeRestarts: sfu.subscribeRestarts } : null;
  }

  /** Counts of live objects, for leak checks. */
  debugInfo(): { peers: number; links: number; openLinks: number; listeners: number; urls: number; left: boolean;
    sfu: boolean; sfuData: { open: boolean; sent: number; received: number } } {
    let links = 0;
    let openLinks = 0;
    for (const e of this.entries.values()) {
      if (e.link) {
        links += 1;
        if (e.link.pc.connectionState !== 'closed') openLinks += 1;
      }
    }
    return { peers: this.entries.size, links, openLinks, listeners: this.listenerCount(), urls: this.urls.length, left: this.left,
      sfu: this.sfu !== null, sfuData: { open: this.sfuData.open, sent: this.sfuData.sent, received: this.sfuData.received } };
  }

  // ----- internals ----------------------------------------------------------------------------

  private joinFields(): Record<string, unknown> {
    const f: Record<string, unknown> = { room: this.roomName, state: this.state };
    if (this.name) f.name = this.name;
    if (this.options.token) f.token = this.options.token;
    const policy = this.options.mediaPolicy ?? (typeof this.options.media === 'string' ? this.options.media : undefined);
    if (policy) f.media = policy;
    return f;
  }

  /** The first `join`; if the socket drops before the reply, waits for the reconnect and tries again. */
  private async requestJoin(): Promise<ServerMessage> {
    const sig = this.signaling;
    for (let attempt = 0; ; attempt++) {
      try {
        return await sig.request('join', this.joinFields(), { priority: true });
      } catch (err) {
        if (!(err instanceof KaiwaError) || err.code !== 'closed' || attempt >= 2 || this.left) throw err;
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          reject(new KaiwaError('connect-failed', 'Lost the connection to the server while joining.'));
        }, 20_000);
        const off = sig.on('reopen', () => {
          clearTimeout(timer);
          off();
          resolve();
        });
      });
    }
  }

  private applyJoin(reply: ServerMessage, rejoined: boolean): void {
    const r = reply as unknown as JoinReply;
    this.id = String(r.peer);
    this.resumeToken = String(r.resume);
    const peers = Array.isArray(r.peers) ? r.peers : [];
    this.signaling.setAttached(true);
    this.mediaPolicy = MEDIA_POLICIES.includes(String(r.mediaPolicy)) ? r.mediaPolicy! : null;
    this.mediaMode = r.media === 'sfu' ? 'sfu' : 'mesh';
    // A room being recorded says so right after this reply; a rejoin into one that is not says nothing.
    if (this.recording.active) this.setRecording({ active: false, reason: 'rejoined' });
    this.emit('joined', { id: this.id, rejoined });
    this.emit('media-mode', { mode: this.mediaMode });
    for (const info of peers) {
      const e = this.addPeer(info);
      // We are the newcomer: in a mesh we start the negotiation with everyone already there.
      if (e && this.mediaMode === 'mesh') this.ensureLink(e, true);
    }
    if (this.mediaMode === 'sfu') this.startSfu();
  }

  /** After a reconnect: resume the session, or join afresh when the grace period is over. */
  private async reattach(): Promise<void> {
    if (this.left || !this.id) return; // not joined yet: the first join retries by itself
    const sig = this.signaling;
    try {
      const reply = await sig.request('resume', { room: this.roomName, peer: this.id, resume: this.resumeToken },
        { priority: true });
      this.resumeToken = String(reply.resume ?? this.resumeToken);
      sig.setAttached(true);
      this.reconcile(Array.isArray(reply.peers) ? (reply.peers as PeerInfo[]) : []);
      // The mode may have changed while we were away (members came or went).
      if (reply.media === 'sfu' || reply.media === 'mesh') this.setMode(reply.media);
      // Our state may have changed while detached.
      sig.send('state', { state: this.state });
      return;
    } catch (err) {
      if (this.left || (err instanceof KaiwaError && (err.code === 'closed' || err.code === 'timeout'))) {
        return; // the new socket dropped too; the next reopen tries again
      }
    }
    // resume-failed (or any other refusal): join afresh with a new id; every connection starts over.
    for (const [id, e] of [...this.entries]) this.removePeer(id, 'rejoin', e);
    this.sfu?.close();
    this.sfu = null;
    try {
      const reply = await sig.request('join', this.joinFields(), { priority: true });
      this.applyJoin(reply, true);
    } catch (err) {
      if (err instanceof KaiwaError && (err.code === 'closed' || err.code === 'timeout')) return;
      this.emit('error', err instanceof KaiwaError ? err : new KaiwaError('internal', String(err)));
    }
  }

  /** Brings the member list in line with a resume reply. */
  private reconcile(peers: PeerInfo[]): void {
    const present = new Set(peers.map((p) => String(p.id)));
    for (const [id, e] of [...this.entries]) {
      if (!present.has(id)) this.removePeer(id, 'left', e);
    }
    for (const info of peers) {
      const e = this.entries.get(String(info.id));
      if (e) {
        e.peer.state = normalizeState(info.state);
        e.peer.name = String(info.name ?? e.peer.name);
      } else {
        this.addPeer(info);
      }
    }
  }

  private addPeer(info: PeerInfo | { id: string; name?: string; state?: unknown }): PeerEntry | null {
    const id = String(info.id ?? '');
    if (!id || id === this.id) return null;
    const existing = this.entries.get(id);
    if (existing) return existing;
    const peer: RemotePeer = {
      id,
      name: String(info.name ?? id),
      state: normalizeState(info.state),
      stream: new MediaStream(),
      screen: null,
      connectionState: 'new',
    };
    const e: PeerEntry = { peer, link: null, files: null, screenId: null, trackStreams: new Map(), meshTracks: new Set(),
      sfuTracks: new Map(), sfuScreen: false, viaSfuSent: false, peerViaSfu: false };
    this.entries.set(id, e);
    this.emit('peer-joined', peer);
    // Its tracks may have been offered by kaiwa before we heard of the peer.
    if (this.sfu) this.onSfuTracks(this.sfu.currentTracks());
    return e;
  }

  private removePeer(id: string, reason: PeerLeftReason, e = this.entries.get(id)): void {
    if (!e) return;
    this.entries.delete(id);
    e.files?.close('The peer left.');
    e.link?.close();
    this.sigFiles.peerLeft(id);
    this.sfu?.forget(id);
    for (const t of e.peer.stream.getTracks()) e.peer.stream.removeTrack(t);
    e.peer.connectionState = 'closed';
    this.emit('peer-left', { peer: e.peer, reason });
    if (this.activeSpeaker === id) this.setActiveSpeaker(null);
  }

  private setActiveSpeaker(peer: string | null): void {
    if (this.activeSpeaker === peer) return;
    this.activeSpeaker = peer;
    this.emit('activespeaker', { peer });
  }

  /** Creates the connection to a peer if there is none yet. */
  private ensureLink(e: PeerEntry, initiator: boolean): PeerLink {
    if (e.link) return e.link;
    const id = e.peer.id;
    const link = new PeerLink(id, {
      polite: this.id > id, // deterministic: the larger id is polite
      initiator,
      iceServers: this.iceServers,
      localStream: this.localStream,
      videoTrack: this.screenSeparate ? this.cameraTrack() : this.screenStream?.getVideoTracks()[0] ?? this.cameraTrack(),
      screen: this.screenSeparate && this.screenStream
        ? { track: this.screenStream.getVideoTracks()[0]!, stream: this.screenStream } : null,
      maxVideoBitrate: this.maxVideoBitrate,
      disconnectGraceMs: this.options.iceDisconnectGraceMs,
    });
    e.link = link;
    e.meshTracks.clear();
    link.on('signal', (data: SignalData) => this.signaling.send('signal', { to: id, data }));
    link.on('channel-open', () => {
      if (this.screenSeparate && this.screenStream) link.sendData(JSON.stringify({ k: 'screen', stream: this.screenStream.id }));
    });
    link.on('track', ({ track, streamIds }) => {
      e.trackStreams.set(track.id, streamIds);
      if (e.screenId && streamIds.includes(e.screenId)) {
        this.showScreen(e, track);
        return;
      }
      if (!e.meshTracks.has(track)) {
        e.meshTracks.add(track);
        track.addEventListener('ended', () => {
          e.meshTracks.delete(track);
          this.refreshStream(e);
        }, { once: true });
        // A track that starts receiving may be the one a switch to mesh waits for.
        track.addEventListener('unmute', () => this.reconcileMedia());
      }
      // A track the stream already shows is announced again, as a renegotiation of it always was.
      if (!this.refreshStream(e) && e.peer.stream.getTrackById(track.id)) {
        this.emit('track', { peer: e.peer, track, stream: e.peer.stream });
        this.emit('stream', { peer: e.peer, stream: e.peer.stream });
      }
      this.reconcileMedia();
    });
    link.on('connection-state', (state) => {
      if (e.link !== link) return; // retired by a switch to sfu
      e.peer.connectionState = state;
      this.emit('connection-state', { peer: e.peer, state });
    });
    link.on('error', (err) => this.emit('error', err));
    const files = new FileChannel(id, link.channel, this.urls, () => link.pc.sctp?.maxMessageSize ?? 0);
    e.files = files;
    files.autoAccept = this.options.acceptFiles !== 'ask';
    this.forwardFileEvents(files);
    link.on('channel-message', (frame) => {
      if (typeof frame !== 'string') {
        files.handle(frame);
        return;
      }
      let msg: Record<string, unknown> | null = null;
      try {
        const v = JSON.parse(frame) as unknown;
        if (v && typeof v === 'object') msg = v as Record<string, unknown>;
      } catch {
        return;
      }
      if (!msg) return;
      if (msg.k === 'app') this.emit('data', { from: id, data: msg.data });
      else if (msg.k === 'via-sfu') {
        e.peerViaSfu = true;
        this.reconcileMedia();
      }
      else if (msg.k === 'screen') this.onScreenMessage(e, typeof msg.stream === 'string' ? msg.stream : null);
      else files.handle(frame, msg);
    });
    return link;
  }

  /** A peer says which stream its separate screen track belongs to (or that it stopped). */
  private onScreenMessage(e: PeerEntry, streamId: string | null): void {
    e.screenId = streamId;
    if (!streamId) {
      if (e.peer.screen) {
        e.peer.screen = null;
        this.emit('screen', { peer: e.peer, stream: null });
      }
      return;
    }
    // The track may have come first: move it out of the camera stream.
    const pc = e.link?.pc;
    for (const t of pc?.getReceivers().map((r) => r.track) ?? []) {
      if (t.kind === 'video' && e.trackStreams.get(t.id)?.includes(streamId)) {
        e.meshTracks.delete(t);
        if (e.peer.stream.getTrackById(t.id)) {
          e.peer.stream.removeTrack(t);
          this.emit('stream', { peer: e.peer, stream: e.peer.stream });
        }
        this.showScreen(e, t);
      }
    }
  }

  private showScreen(e: PeerEntry, track: MediaStreamTrack): void {
    const s = new MediaStream([track]);
    e.peer.screen = s;
    this.emit('screen', { peer: e.peer, stream: s });
  }

  private onServerMessage(m: ServerMessage): void {
    switch (m.type) {
      case 'peer-joined': {
        const info = m.peer as PeerInfo | undefined;
        if (info && typeof info === 'object') this.addPeer(info);
        break;
      }
      case 'peer-left':
        this.removePeer(String(m.peer ?? ''), String(m.reason ?? 'left'));
        break;
      case 'peer-state': {
        const e = this.entries.get(String(m.peer ?? ''));
        if (!e) break;
        e.peer.state = normalizeState(m.state);
        this.emit('peer-state', { peer: e.peer, state: e.peer.state });
        break;
      }
      case 'signal': {
        const from = String(m.from ?? '');
        if (!from || from === this.id || !m.data || typeof m.data !== 'object') break;
        // A signal may in principle beat `peer-joined`; treat its sender as a member.
        const e = this.entries.get(from) ?? this.addPeer({ id: from });
        if (!e) break;
        // In an sfu room only a connection still being retired takes signals; none is opened.
        if (this.mediaMode === 'sfu' && !e.link) break;
        void this.ensureLink(e, false).handleSignal(m.data as SignalData);
        break;
      }
      case 'message': {
        const d = m.data as Record<string, unknown> | null;
        if (d && typeof d === 'object' && !Array.isArray(d) && d.kaiwa === 'file') {
          this.sigFiles.handle(String(m.from ?? ''), d);
          break;
        }
        this.emit('message', { from: String(m.from ?? ''), data: m.data, broadcast: m.broadcast === true });
        break;
      }
      case 'media-mode':
        if (m.mode === 'sfu' || m.mode === 'mesh') this.setMode(m.mode);
        break;
      case 'recording': {
        const state: RecordingState = { active: m.active === true };
        if (typeof m.by === 'string') state.by = m.by;
        if (typeof m.name === 'string') state.name = m.name;
        if (typeof m.since === 'number') state.since = m.since;
        if (typeof m.reason === 'string') state.reason = m.reason;
        this.setRecording(state);
        break;
      }
      case 'active-speaker': {
        const peer = String(m.peer ?? '');
        if (peer && (peer === this.id || this.entries.has(peer))) this.setActiveSpeaker(peer);
        break;
      }
      case 'subscribe-offer':
        if (this.mediaMode !== 'sfu') break; // a late offer after the switch to mesh
        this.startSfu();
        void this.sfu?.handleOffer(m);
        break;
      case 'chat': {
        const from = String(m.from ?? '');
        this.emit('chat', { from, name: String(m.name ?? ''), text: String(m.text ?? ''), ts: Number(m.ts ?? 0), self: from === this.id });
        break;
      }
      default:
        break; // unknown events are ignored (forward compatibility)
    }
  }

  private setRecording(state: RecordingState): void {
    this.recording = state;
    this.emit('recording', state);
  }

  private updateState(patch: Partial<MediaState>): void {
    const next = { ...this.state, ...patch };
    if (next.audioMuted === this.state.audioMuted && next.videoOff === this.state.videoOff &&
      next.screenSharing === this.state.screenSharing) return;
    this.state = next;
    this.emit('local-state', { ...next });
    if (!this.left) this.signaling.send('state', { state: next });
  }

  /** A local track that ends by itself (device unplugged, revoked) is marked off and the others are told. */
  private watchTrack(track: MediaStreamTrack): void {
    track.addEventListener('ended', () => {
      if (this.left || !this.localStream?.getTracks().includes(track)) return; // stopped by us (leave, switch)
      const kind = track.kind === 'audio' ? 'audio' : 'video';
      this.localStream.removeTrack(track);
      if (kind === 'audio') this.updateState({ audioMuted: true });
      else {
        this.updateState({ videoOff: true });
        if (!this.screenStream) {
          void this.sendVideo(null, this.localStream);
          this.emit('local-video', { track: null, screen: false });
        }
      }
      this.emit('local-track-ended', { kind });
      this.emit('error', new KaiwaError('media-ended', kind === 'audio'
        ? 'Your microphone stopped (unplugged or taken by another app). The others see you as muted.'
        : 'Your camera stopped (unplugged or taken by another app). The others see your camera as off.'));
    }, { once: true });
  }

  private cameraTrack(): MediaStreamTrack | null {
    return this.localStream?.getVideoTracks()[0] ?? null;
  }

  private async sendVideo(track: MediaStreamTrack | null, stream: MediaStream | null): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.link?.setVideoTrack(track, stream)));
    await this.sfu?.setTrack('camera', track, stream);
  }

  private forwardFileEvents(files: FileChannel | SignalFiles): void {
    files.on('file-offer', (p) => this.emit('file-offer', p));
    files.on('file-offered', (p) => this.emit('file-offered', p));
    files.on('file-accepted', (p) => this.emit('file-accepted', p));
    files.on('file-incoming', (p) => this.emit('file-incoming', p));
    files.on('file-progress', (p) => this.emit('file-progress', p));
    files.on('file-received', (p) => this.emit('file-received', p));
    files.on('file-sent', (p) => this.emit('file-sent', p));
    files.on('file-failed', (p) => this.emit('file-failed', p));
  }

  // ----- media mode ---------------------------------------------------------------------------

  /**
   * The room switched between mesh and sfu. Make before break: the new side is set up at once, the old one stays
   * until the new one carries each peer's media (`reconcileMedia`), or until SWITCH_TIMEOUT_MS.
   */
  private setMode(mode: MediaMode): void {
    if (this.left || mode === this.mediaMode) return;
    this.mediaMode = mode;
    this.switchDeadline = performance.now() + SWITCH_TIMEOUT_MS;
    if (this.switchTimer) clearTimeout(this.switchTimer);
    this.switchTimer = setTimeout(() => {
      this.switchTimer = null;
      this.reconcileMedia();
    }, SWITCH_TIMEOUT_MS + 50);
    if (!this.switchPoll) this.switchPoll = setInterval(() => void this.pollFlow(), SWITCH_POLL_MS);
    for (const e of this.entries.values()) {
      e.viaSfuSent = false;
      e.peerViaSfu = false;
    }
    this.emit('media-mode', { mode });
    if (mode === 'mesh') this.setActiveSpeaker(null);
    if (mode === 'sfu') {
      // kaiwa ends any SFU transports it kept for us since the room last went to mesh: start from new connections.
      this.sfu?.close();
      this.sfu = null;
      this.startSfu();
    } else {
      // The smaller id offers; the other side opens its connection when that offer arrives (kaiwa sends every
      // member the `media-mode` event before it relays any signal sent after it). One offer instead of two
      // crossing ones saves a negotiation round while the pictures wait.
      for (const e of this.entries.values()) if (this.id < e.peer.id) this.ensureLink(e, true);
    }
    this.reconcileMedia();
  }

  /** A message kaiwa relayed over the SFU data channel; `from` is the member kaiwa says sent it. */
  private onSfuData(from: string, d: unknown): void {
    if (!d || typeof d !== 'object' || Array.isArray(d)) return;
    const m = d as Record<string, unknown>;
    if (m.kaiwa === 'file') {
      this.sigFiles.handle(from, m, true);
    } else if (m.kaiwa === 'chat' && typeof m.text === 'string' && m.text.length >= 1 && m.text.length <= 4096) {
      const name = this.entries.get(from)?.peer.name ?? '';
      this.emit('chat', { from, name, text: m.text, ts: Number(m.ts ?? 0) || Date.now(), self: false });
    }
  }

  private startSfu(): void {
    if (this.sfu || this.left) return;
    const sfu = new SfuSession(this.signaling, {
      iceServers: this.iceServers,
      maxVideoBitrate: this.maxVideoBitrate,
      disconnectGraceMs: this.options.iceDisconnectGraceMs,
      onDataChannel: (channel) => this.sfuData.attach(channel),
      tileSizes: () => this.tileSizes(),
    });
    this.sfu = sfu;
    sfu.on('tracks', (list) => this.onSfuTracks(list));
    sfu.on('error', (err) => this.emit('error', err));
    sfu.on('connection-state', ({ which, state }) => {
      if (which !== 'subscribe') return;
      // Peers whose media comes through kaiwa share the subscribe connection's state.
      for (const e of this.entries.values()) {
        if (e.link) continue;
        e.peer.connectionState = state;
        this.emit('connection-state', { peer: e.peer, state });
      }
    });
    const mic = this.localStream?.getAudioTracks()[0] ?? null;
    const video = this.screenSeparate ? this.cameraTrack() : this.screenStream?.getVideoTracks()[0] ?? this.cameraTrack();
    if (mic) void sfu.setTrack('microphone', mic, this.localStream);
    if (video) void sfu.setTrack('camera', video, this.screenSeparate ? this.localStream : this.screenStream ?? this.localStream);
    const screen = this.screenSeparate ? this.screenStream?.getVideoTracks()[0] : undefined;
    if (screen) void sfu.setTrack('screen', screen, this.screenStream);
    // With nothing to send too: the publish connection carries the data channel.
    void sfu.publish();
  }

  /** kaiwa's subscribe connection carries these tracks now: sort them to their peers. */
  private onSfuTracks(list: SfuTrack[]): void {
    this.sfu?.reportTiles(); // the tiles may show other tracks now
    const byPeer = new Map<string, Map<TrackSource, MediaStreamTrack>>();
    for (const t of list) {
      let m = byPeer.get(t.peer);
      if (!m) byPeer.set(t.peer, m = new Map());
      m.set(t.source, t.track);
    }
    for (const [id, e] of this.entries) {
      const m = byPeer.get(id) ?? new Map<TrackSource, MediaStreamTrack>();
      e.sfuTracks = new Map([...m].filter(([source]) => source === 'camera' || source === 'microphone'));
      // A screen from the SFU shows once the mesh is no longer in charge of this peer's screen.
      const screen = m.get('screen') ?? null;
      if (this.mediaMode === 'sfu' || !e.link) {
        if (screen && e.peer.screen?.getVideoTracks()[0] !== screen) {
          e.sfuScreen = true;
          this.showScreen(e, screen);
        } else if (!screen && e.sfuScreen) {
          e.sfuScreen = false;
          if (e.peer.screen) {
            e.peer.screen = null;
            this.emit('screen', { peer: e.peer, stream: null });
          }
        }
      }
      this.refreshStream(e);
    }
    this.reconcileMedia();
  }

  /**
   * Puts the tracks `peer.stream` should hold now into it: per kind, the current mode's track once it receives
   * (or once the switch timed out), else the other mode's. The stream object stays; a `<video>` showing it goes on
   * playing across the swap.
   */
  private refreshStream(e: PeerEntry): boolean {
    const late = performance.now() >= this.switchDeadline;
    const next: MediaStreamTrack[] = [];
    for (const kind of ['audio', 'video'] as const) {
      const sfuTrack = e.sfuTracks.get(kind === 'audio' ? 'microphone' : 'camera');
      const sfuT = sfuTrack?.readyState === 'live' ? sfuTrack : undefined;
      const meshT = [...e.meshTracks].find((t) => t.kind === kind && t.readyState === 'live');
      const [want, other] = this.mediaMode === 'sfu' ? [sfuT, meshT] : [meshT, sfuT];
      const pick = want && (!other || this.flowing(want) || late) ? want : other ?? want;
      if (pick) next.push(pick);
    }
    const stream = e.peer.stream;
    // By object, not id: a new subscribe connection's tracks have the ids of the old one's (`<peer>:<source>`, from
    // kaiwa's msid), and looking them up by id kept a stream without the new track.
    const current = stream.getTracks();
    const added = next.filter((t) => !current.includes(t));
    const removed = stream.getTracks().filter((t) => !next.includes(t));
    for (const t of removed) stream.removeTrack(t);
    for (const t of added) stream.addTrack(t);
    if (added.length === 0 && removed.length === 0) return false;
    for (const track of added) this.emit('track', { peer: e.peer, track, stream });
    this.emit('stream', { peer: e.peer, stream });
    return true;
  }

  /**
   * Whether a received track carries media. Chromium unmutes a remote track at its first packet, but a mesh track
   * negotiated through crossing offers was seen to stay muted for seconds while its frames decoded, so the switch
   * also asks getStats (`pollFlow`).
   */
  private flowing(track: MediaStreamTrack): boolean {
    return !track.muted || this.receiving.has(track);
  }

  /** During a switch: marks the new side's tracks that receive media, then lets the switch go on. */
  private async pollFlow(): Promise<void> {
    const checks: Array<Promise<void>> = [];
    for (const e of this.entries.values()) {
      const pc = this.mediaMode === 'sfu' ? this.sfu?.subscribePc : e.link?.pc;
      if (!pc || pc.connectionState === 'closed') continue;
      const tracks = this.mediaMode === 'sfu' ? [...e.sfuTracks.values()] : [...e.meshTracks];
      for (const t of tracks) {
        if (this.receiving.has(t) || t.readyState !== 'live') continue;
        checks.push(pc.getStats(t).then((report) => {
          report.forEach((r: Record<string, unknown>) => {
            if (r.type !== 'inbound-rtp') return;
            if (r.kind === 'video' ? Number(r.framesDecoded ?? 0) > 0 : Number(r.packetsReceived ?? 0) > 0) this.receiving.add(t);
          });
        }, () => undefined));
      }
    }
    await Promise.all(checks);
    this.reconcileMedia();
  }

  /** Closes what a mode switch left behind once the new side carries every peer's media (or the switch timed out). */
  private reconcileMedia(): void {
    if (this.left) return;
    const now = performance.now();
    const late = now >= this.switchDeadline;
    // Past the timeout the old side goes only where the new side has the peer's tracks at all (or after three
    // times the timeout): dropping it earlier would leave an empty tile.
    const given = now >= this.switchDeadline + 2 * SWITCH_TIMEOUT_MS;
    if (this.mediaMode === 'sfu') {
      for (const e of this.entries.values()) {
        const link = e.link;
        if (!link) continue;
        this.refreshStream(e);
        // Shown through the SFU: nothing of this peer's stream comes from the mesh connection any more.
        const swapped = e.peer.stream.getTracks().every((t) => !e.meshTracks.has(t));
        if (swapped && !e.viaSfuSent) e.viaSfuSent = link.sendData(JSON.stringify({ k: 'via-sfu' }));
        // Both sides must show each other through kaiwa before the connection goes, or the other side's picture
        // of us would stop early.
        if ((swapped && e.peerViaSfu) || (late && e.sfuTracks.size > 0) || given) this.retireLink(e);
      }
    } else if (this.sfu) {
      let done = true;
      let ready = true;
      for (const e of this.entries.values()) {
        this.refreshStream(e);
        if (e.peer.stream.getTracks().some((t) => [...e.sfuTracks.values()].includes(t))) done = false;
        if (e.sfuTracks.size > 0 && e.meshTracks.size === 0) ready = false;
      }
      if (done || (late && ready) || given) this.closeSfu();
    }
    this.stopPollWhenSettled();
  }

  private stopPollWhenSettled(): void {
    const settled = this.mediaMode === 'sfu' ? [...this.entries.values()].every((e) => !e.link) : !this.sfu;
    if ((settled || this.left) && this.switchPoll) {
      clearInterval(this.switchPoll);
      this.switchPoll = null;
    }
  }

  private retireLink(e: PeerEntry): void {
    const link = e.link;
    if (!link) return;
    e.link = null;
    e.files?.close('The call moved to the server; send the file again.');
    e.files = null;
    link.close();
    e.meshTracks.clear();
    e.screenId = null;
    this.refreshStream(e);
    const state = this.sfu?.subscribePc?.connectionState ?? 'new';
    e.peer.connectionState = state;
    this.emit('connection-state', { peer: e.peer, state });
  }

  private closeSfu(): void {
    const sfu = this.sfu;
    if (!sfu) return;
    this.sfu = null;
    sfu.close({ unpublish: true });
    for (const e of this.entries.values()) {
      e.sfuTracks.clear();
      if (e.sfuScreen) {
        e.sfuScreen = false;
        if (e.peer.screen) {
          e.peer.screen = null;
          this.emit('screen', { peer: e.peer, stream: null });
        }
      }
      this.refreshStream(e);
    }
  }

  /** Fetches ICE servers from the server and refreshes them before their `ttl` runs out. */
  private async refreshIceServers(): Promise<RTCIceServer[]> {
    if (this.iceRefreshTimer) clearTimeout(this.iceRefreshTimer);
    this.iceRefreshTimer = null;
    const url = new URL(iceServersUrl(this.signaling.url));
    url.searchParams.set('room', this.options.room);
    // With --auth-secret the server hands out TURN credentials only for a room token.
    const headers: Record<string, string> = this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 5000);
    try {
      const res = await fetch(url, { signal: ctrl.signal, credentials: 'same-origin', headers });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = (await res.json()) as { iceServers?: RTCIceServer[]; ttl?: number };
      this.iceServers = Array.isArray(body.iceServers) ? body.iceServers : [];
      const ttl = Number(body.ttl);
      if (this.iceServers.length > 0 && ttl > 0 && !this.left) {
        this.iceRefreshTimer = setTimeout(() => void this.refreshAndApply(), Math.max(10, ttl * 0.8) * 1000);
      }
    } catch {
      this.iceServers = []; // host candidates still work on a LAN / loopback
    } finally {
      clearTimeout(timer);
    }
    return this.iceServers;
  }

  private async refreshAndApply(): Promise<void> {
    await this.refreshIceServers();
    if (this.left) return;
    for (const e of this.entries.values()) {
      const pc = e.link?.pc;
      if (pc && pc.connectionState !== 'closed') pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers });
    }
  }

  private onPageHide = (ev: PageTransitionEvent): void => {
    if (ev.persisted || !this.leaveOnPageHide) return;
    this.leave();
  };

  private teardown(): void {
    if (this.left) return;
    this.left = true;
    if (typeof window !== 'undefined') window.removeEventListener('pagehide', this.onPageHide);
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.signaling.close({ leave: false }); // no-op when leave() already closed it
    if (this.iceRefreshTimer) clearTimeout(this.iceRefreshTimer);
    this.iceRefreshTimer = null;
    if (this.switchTimer) clearTimeout(this.switchTimer);
    this.switchTimer = null;
    if (this.switchPoll) clearInterval(this.switchPoll);
    this.switchPoll = null;
    this.sfu?.close();
    this.sfu = null;
    this.sigFiles.close('We left the room.');
    for (const [id, e] of [...this.entries]) {
      this.entries.delete(id);
      e.files?.close('We left the room.');
      e.link?.close();
    }
    for (const t of this.localStream?.getTracks() ?? []) t.stop();
    for (const t of this.screenStream?.getTracks() ?? []) t.stop();
    this.screenStream = null;
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.emit('closed', undefined);
    this.removeAllListeners();
  }
}

export function defaultSignalingUrl(): string {
  const loc = globalThis.location;
  if (!loc) throw new KaiwaError('connect-failed', 'No page origin: pass `url` to Room.');
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}

/** Adds `?room=` to the signaling URL: kaiwa then serves the connection on the thread that owns the room. */
function withRoomHint(wsUrl: string, room: string): string {
  try {
    const u = new URL(wsUrl);
    if (!u.searchParams.has('room')) u.searchParams.set('room', room);
    return u.toString();
  } catch {
    return wsUrl; // not absolute: left as given
  }
}

function iceServersUrl(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = '/api/ice-servers';
  u.search = '';
  return u.toString();
}
