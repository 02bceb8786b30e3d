/** Wire types of the kaiwa native protocol, version 1 (docs/protocol.md). */

export const PROTOCOL_VERSION = 1;

export interface MediaState {
  audioMuted: boolean;
  videoOff: boolean;
  screenSharing: boolean;
}

export interface PeerInfo {
  id: string;
  /** The display name the peer chose. */
  name: string;
  state: MediaState;
  /** On a server with room tokens: the token's user, whom the server vouches for (the name is only what they typed). */
  user?: string;
}

export interface ServerLimits {
  maxMessageBytes: number;
  messagesPerSecond: number;
  peersPerRoom: number;
  resumeGraceMs: number;
}

export interface HelloMessage {
  v: 1;
  type: 'hello';
  server: string;
  version: string;
  heartbeat: number;
  limits: ServerLimits;
}

/** How a room carries media: peer connections between the pages (`mesh`) or through kaiwa (`sfu`). */
export type MediaMode = 'mesh' | 'sfu';
/** A room's policy, fixed by the join that creates it: `auto` is mesh up to two members and sfu from three on. */
export type MediaPolicy = 'auto' | 'sfu' | 'mesh';

/** The room's recording as the server last told it (`recording` event, docs/protocol.md "Recording"). */
export interface RecordingState {
  active: boolean;
  /** Who started it (active) or stopped it; absent when it stopped by itself. */
  by?: string;
  /** That member's display name. */
  name?: string;
  /** Active: when it started (ms since the epoch). */
  since?: number;
  /** Stopped: `stopped`, `mesh`, `write-failed` or `disk-full`. */
  reason?: string;
}

export interface JoinReply {
  peer: string;
  resume: string;
  room: string;
  peers: PeerInfo[];
  /** The room's effective media mode (absent from servers without SFU rooms: mesh). */
  media?: MediaMode;
  mediaPolicy?: MediaPolicy;
}

/** Any JSON object the server sends. */
export interface ServerMessage {
  v: number;
  type: string;
  re?: number;
  [key: string]: unknown;
}

export type PeerLeftReason = 'left' | 'disconnected' | 'timeout' | 'kicked' | string;
export type ByeReason = 'shutdown' | 'slow-consumer' | 'timeout' | 'replaced' | string;

/** Error codes: the server's (docs/protocol.md) plus the SDK's own. */
export type ErrorCode =
  | 'bad-message'
  | 'too-large'
  | 'rate-limited'
  | 'not-joined'
  | 'already-joined'
  | 'room-full'
  | 'too-many-rooms'
  | 'unknown-peer'
  | 'unauthorized'
  | 'resume-failed'
  | 'internal'
  | 'not-sfu'
  | 'bad-sdp'
  | 'too-many-publishers'
  | 'too-many-tracks'
  | 'stale-answer'
  | 'not-allowed'
  | 'recording-off'
  | 'already-recording'
  | 'not-recording'
  | 'recording-failed'
  // SDK-side codes
  | 'timeout'
  | 'closed'
  | 'connect-failed'
  | 'media-denied'
  | 'media-not-found'
  | 'media-busy'
  | 'media-unsupported'
  | 'media-failed'
  | 'screen-share-failed'
  | 'file-failed'
  | 'peer-connection'
  | 'sfu'
  | string;

/** An error with a machine-readable code and a human message. */
export class KaiwaError extends Error {
  readonly code: ErrorCode;
  override readonly cause?: unknown;
  constructor(code: ErrorCode, message: string, cause?: unknown) {
    super(message);
    this.name = 'KaiwaError';
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

export const DEFAULT_STATE: MediaState = { audioMuted: false, videoOff: false, screenSharing: false };

export function normalizeState(s: unknown): MediaState {
  const o = (s && typeof s === 'object' ? s : {}) as Partial<MediaState>;
  return {
    audioMuted: o.audioMuted === true,
    videoOff: o.videoOff === true,
    screenSharing: o.screenSharing === true,
  };
}
