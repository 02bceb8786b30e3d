/** Local media: constraints suited to phones and laptops, and clear errors when devices are refused or missing. */
import { KaiwaError } from './types.js';

export interface MediaRequest {
  audio: boolean;
  video: boolean;
}

/** True on a small screen or a phone/tablet user agent: capture less to save bandwidth and battery. */
export function isSmallDevice(): boolean {
  const ua = typeof navigator !== 'undefined' ? navigator.userAgent : '';
  if (/iPhone|iPad|iPod|Android|Mobile/i.test(ua)) return true;
  if (typeof window !== 'undefined' && typeof window.matchMedia === 'function') {
    return window.matchMedia('(max-width: 640px)').matches;
  }
  return false;
}

/** Camera constraints: ideal 640x480 facing the user, 320x240 at a lower frame rate on small devices. */
export function videoConstraints(small = isSmallDevice()): MediaTrackConstraints {
  return small
    ? { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15, max: 24 }, facingMode: 'user' }
    : { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24, max: 30 }, facingMode: 'user' };
}

export function audioConstraints(): MediaTrackConstraints {
  return { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
}

/** Maps a getUserMedia / getDisplayMedia failure to a KaiwaError with a message a person can act on. */
export function mediaError(err: unknown, what = 'camera/microphone'): KaiwaError {
  const name = err instanceof DOMException || err instanceof Error ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
      return new KaiwaError('media-denied',
        `Access to the ${what} was refused. Allow it in the browser's site settings and rejoin; you can still watch, listen and chat.`, err);
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return new KaiwaError('media-not-found', `No ${what} was found. You joined without it.`, err);
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return new KaiwaError('media-busy', `The ${what} is in use by another application or could not be started.`, err);
    case 'SecurityError':
    case 'TypeError':
      return new KaiwaError('media-unsupported',
        `The ${what} is not available here (the page must be served over HTTPS or from localhost).`, err);
    default:
      return new KaiwaError('media-failed', `Could not start the ${what}: ${String((err as Error)?.message ?? err)}`, err);
  }
}

export interface LocalMediaResult {
  stream: MediaStream | null;
  /** Set when some or all of the requested devices could not be had. */
  error: KaiwaError | null;
}

/**
 * Gets the camera and/or microphone. When both are asked for and the pair fails because one device is missing,
 * tries each alone, so a laptop without a camera still joins with its microphone.
 */
export async function getLocalMedia(req: MediaRequest): Promise<LocalMediaResult> {
  if (!req.audio && !req.video) return { stream: null, error: null };
  const md = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
  if (!md || typeof md.getUserMedia !== 'function') {
    return { stream: null, error: mediaError(new DOMException('no mediaDevices', 'SecurityError')) };
  }
  const constraints = (audio: boolean, video: boolean): MediaStreamConstraints => ({
    audio: audio ? audioConstraints() : false,
    video: video ? videoConstraints() : false,
  });
  try {
    return { stream: await md.getUserMedia(constraints(req.audio, req.video)), error: null };
  } catch (err) {
    const first = mediaError(err, req.audio && req.video ? 'camera and microphone' : req.video ? 'camera' : 'microphone');
    // Refusal covers both devices; only a missing/busy device is worth retrying one by one.
    if (first.code === 'media-denied' || !(req.audio && req.video)) return { stream: null, error: first };
    const tracks: MediaStreamTrack[] = [];
    const missing: string[] = [];
    for (const kind of ['audio', 'video'] as const) {
      try {
        const s = await md.getUserMedia(constraints(kind === 'audio', kind === 'video'));
        tracks.push(...s.getTracks());
      } catch {
        missing.push(kind === 'audio' ? 'microphone' : 'camera');
      }
    }
    if (tracks.length === 0) return { stream: null, error: first };
    return { stream: new MediaStream(tracks), error: mediaError(err, missing.join(' and ')) };
  }
}

export async function getScreenMedia(): Promise<MediaStream> {
  const md = navigator.mediaDevices;
  if (!md || typeof md.getDisplayMedia !== 'function') {
    throw new KaiwaError('screen-share-failed', 'Screen sharing is not supported by this browser.');
  }
  try {
    return await md.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
  } catch (err) {
    const e = mediaError(err, 'screen');
    throw new KaiwaError(e.code === 'media-denied' ? 'media-denied' : 'screen-share-failed',
      e.code === 'media-denied' ? 'Screen sharing was cancelled or refused.' : e.message, err);
  }
}

/**
 * Caps (or, with `undefined`, uncaps) the bitrate of every video sender of `pc`. A sender whose encodings are not
 * negotiated yet is skipped, and a setParameters refused during a negotiation is ignored: the caller applies the cap
 * again when the signaling state is stable. Used by mesh links and by the SFU's publish connection alike.
 */
export async function capVideoBitrate(pc: RTCPeerConnection, maxBitrate: number | undefined): Promise<void> {
  for (const sender of pc.getSenders()) {
    if (sender.track?.kind !== 'video') continue;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length === 0) continue;
    let changed = false;
    for (const enc of params.encodings) {
      if (maxBitrate !== undefined && enc.maxBitrate !== maxBitrate) {
        enc.maxBitrate = maxBitrate;
        changed = true;
      } else if (maxBitrate === undefined && enc.maxBitrate !== undefined) {
        delete enc.maxBitrate;
        changed = true;
      }
    }
    if (changed) await sender.setParameters(params).catch(() => undefined);
  }
}
