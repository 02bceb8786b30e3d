/** kaiwa browser SDK: rooms with a full mesh of WebRTC peer connections over kaiwa's signaling protocol. */
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
export type { MediaState, PeerInfo, ServerLimits, HelloMessage, ErrorCode, PeerLeftReason } from './types.js';
