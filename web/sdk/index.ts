/** kaiwa browser SDK: rooms over kaiwa's signaling protocol, their media peer to peer (mesh) or through kaiwa's SFU. */
export { Room, defaultSignalingUrl } from './room.js';
export type { JoinOptions, RemotePeer, ChatMessage, RoomEvents, SendFileHandle } from './room.js';
export { SignalingClient } from './signaling.js';
export type { SignalingOptions, SignalingState, SignalingEvents } from './signaling.js';
export { PeerLink } from './peer.js';
export type { PeerStats, SignalData, PeerLinkOptions } from './peer.js';
export { FileChannel, sha256Hex } from './files.js';
export type { FileMeta, FileProgress, ReceivedFile, SentFile, FileFailure } from './files.js';
export { getLocalMedia, getScreenMedia, videoConstraints, audioConstraints, isSmallDevice, mediaError } from './media.js';
export type { MediaRequest, LocalMediaResult } from './media.js';
export { Emitter } from './emitter.js';
export { KaiwaError, PROTOCOL_VERSION } from './types.js';
export type {
  MediaState, MediaMode, MediaPolicy, PeerInfo, ServerLimits, HelloMessage, ErrorCode, PeerLeftReason,
  RecordingState,
} from './types.js';
export { SfuSession } from './sfu.js';
export type { SfuTrack, TrackSource } from './sfu.js';
export { SignalFiles } from './sigfiles.js';
export type { StatsSample } from './stats.js';
