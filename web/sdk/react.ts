/**
 * Optional React hooks over the kaiwa SDK.
 *
 *   function Call({ room, name }) {
 *     const { peers, localStream, state, room: r, error } = useRoom({ room, name });
 *     return <>
 *       <video ref={useVideo(localStream)} muted autoPlay playsInline />
 *       {peers.map((p) => <Remote key={p.id} peer={p} />)}
 *       <button onClick={() => r?.setAudioMuted(!state.audioMuted)}>mic</button>
 *     </>;
 *   }
 *   function Remote({ peer }) { return <video ref={useVideo(peer.stream)} autoPlay playsInline />; }
 */
import { useCallback, useEffect, useState } from 'react';
import { Room, type ChatMessage, type JoinOptions, type RemotePeer } from './room.js';
import type { SignalingState } from './signaling.js';
import { DEFAULT_STATE, KaiwaError, type MediaMode, type MediaState } from './types.js';

export interface UseRoomResult {
  /** The Room once joined (null before, and after leaving). */
  room: Room | null;
  joined: boolean;
  /** Snapshot of the other members; a new array whenever something about them changes. */
  peers: RemotePeer[];
  localStream: MediaStream | null;
  state: MediaState;
  signalingState: SignalingState;
  chat: ChatMessage[];
  /** The last error (join refusal, refused camera, ...). */
  error: KaiwaError | null;
  /** How the room's media goes now: peer to peer (`mesh`) or through kaiwa (`sfu`). */
  mediaMode: MediaMode;
}

/**
 * Joins a room for as long as the component is mounted (and `options` describe the same room); `null` joins
 * nothing. Leaves on unmount or when the room, name, url, token or media request change.
 */
export function useRoom(options: JoinOptions | null): UseRoomResult {
  const [room, setRoom] = useState<Room | null>(null);
  const [joined, setJoined] = useState(false);
  const [peers, setPeers] = useState<RemotePeer[]>([]);
  const [localStream, setLocalStream] = useState<MediaStream | null>(null);
  const [state, setState] = useState<MediaState>(DEFAULT_STATE);
  const [signalingState, setSignalingState] = useState<SignalingState>('closed');
  const [chat, setChat] = useState<ChatMessage[]>([]);
  const [error, setError] = useState<KaiwaError | null>(null);
  const [mediaMode, setMediaMode] = useState<MediaMode>('mesh');

  const key = options
    ? JSON.stringify([options.url, options.room, options.name, options.token, options.media, options.mediaPolicy])
    : null;

  useEffect(() => {
    if (!options) return undefined;
    let active = true;
    const r = new Room(options);
    const snapshot = () => {
      if (active) setPeers([...r.peers.values()].map((p) => ({ ...p })));
    };
    r.on('peer-joined', snapshot);
    r.on('peer-left', snapshot);
    r.on('peer-state', snapshot);
    r.on('stream', snapshot);
    r.on('connection-state', snapshot);
    r.on('local-state', (s) => active && setState(s));
    r.on('signaling-state', (s) => active && setSignalingState(s));
    r.on('chat', (m) => active && setChat((prev) => [...prev, m]));
    r.on('error', (e) => active && setError(e));
    r.on('media-mode', ({ mode }) => active && setMediaMode(mode));
    r.on('screen', snapshot);
    setChat([]);
    setError(null);
    r.join().then(
      () => {
        if (!active) return;
        setRoom(r);
        setJoined(true);
        setLocalStream(r.localStream);
        setState(r.state);
        snapshot();
      },
      (err: unknown) => {
        if (active) setError(err instanceof KaiwaError ? err : new KaiwaError('internal', String(err)));
      },
    );
    return () => {
      active = false;
      r.leave();
      setRoom(null);
      setJoined(false);
      setPeers([]);
      setLocalStream(null);
      setSignalingState('closed');
      setMediaMode('mesh');
    };
    // The effect depends on the serialized options only: a new object with the same values keeps the room.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  return { room, joined, peers, localStream, state, signalingState, chat, error, mediaMode };
}

/**
 * The room's dominant speaker (a peer id, our own included), or null: kaiwa's `activespeaker` in sfu rooms. A mesh
 * room has no server-side audio, so it stays null there unless the app judges levels itself (the web app does, with
 * Web Audio).
 */
export function useActiveSpeaker(room: Room | null): string | null {
  const [speaker, setSpeaker] = useState<string | null>(room?.activeSpeaker ?? null);
  useEffect(() => {
    setSpeaker(room?.activeSpeaker ?? null);
    if (!room) return undefined;
    return room.on('activespeaker', ({ peer }) => setSpeaker(peer));
  }, [room]);
  return speaker;
}

/** A ref callback that shows `stream` in a <video> (or <audio>) element. */
export function useVideo(stream: MediaStream | null): (el: HTMLMediaElement | null) => void {
  return useCallback((el: HTMLMediaElement | null) => {
    if (!el) return;
    if (el.srcObject !== stream) el.srcObject = stream;
    if (stream) void el.play().catch(() => undefined);
  }, [stream]);
}
