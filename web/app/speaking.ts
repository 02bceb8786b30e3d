/**
 * Who is speaking: one Web Audio analyser per audio stream (local and remote), polled ten times a second. The
 * level is an envelope (rises at once, decays by RELEASE per tick) so syllables and short pauses read as one
 * stretch of speech; hysteresis on top: "speaking" after the envelope stays above ON for ~200 ms, "quiet" after it
 * stays below OFF for ~800 ms.
 */
const TICK_MS = 100;
const ON_LEVEL = 0.02; // RMS of the waveform (full scale = 1)
const OFF_LEVEL = 0.01;
const ON_TICKS = 2;
const OFF_TICKS = 8;
const RELEASE = 0.85;

let sharedContext: AudioContext | null = null;

/** One AudioContext for the page; created (or resumed) from a user gesture such as the Join click. */
export function audioContext(): AudioContext | null {
  const Ctor = globalThis.AudioContext ?? (globalThis as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (!Ctor) return null;
  if (!sharedContext || sharedContext.state === 'closed') sharedContext = new Ctor();
  if (sharedContext.state === 'suspended') void sharedContext.resume().catch(() => undefined);
  return sharedContext;
}

export class SpeakingDetector {
  private source: MediaStreamAudioSourceNode | null = null;
  private analyser: AnalyserNode | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private buf: Float32Array<ArrayBuffer> | null = null;
  private above = 0;
  private below = 0;
  private trackId = '';
  speaking = false;
  level = 0;

  /** @param onChange called with the new state when it flips; onLevel every tick (0–1, for a meter). */
  constructor(private readonly onChange: (speaking: boolean) => void, private readonly onLevel?: (level: number) => void) {}

  /** Listens to the first audio track of `stream` (again when the track changed); null stops listening. */
  attach(stream: MediaStream | null): void {
    const track = stream?.getAudioTracks().find((t) => t.readyState === 'live') ?? null;
    if (track && track.id === this.trackId && this.source) return;
    this.detachNodes();
    this.trackId = track?.id ?? '';
    if (!track) {
      this.set(false);
      return;
    }
    const ctx = audioContext();
    if (!ctx) return;
    try {
      this.source = ctx.createMediaStreamSource(new MediaStream([track]));
      this.analyser = ctx.createAnalyser();
      this.analyser.fftSize = 2048;
      this.source.connect(this.analyser); // not to the destination: the <video>/<audio> element plays the sound
      this.buf = new Float32Array(this.analyser.fftSize);
    } catch {
      this.detachNodes();
      return;
    }
    if (!this.timer) this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  destroy(): void {
    this.detachNodes();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const a = this.analyser;
    const buf = this.buf;
    if (!a || !buf) return;
    a.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i]! * buf[i]!;
    const rms = Math.max(Math.sqrt(sum / buf.length), this.level * RELEASE);
    this.level = rms;
    this.onLevel?.(Math.min(1, rms * 8));
    if (rms >= ON_LEVEL) {
      this.above += 1;
      this.below = 0;
      if (!this.speaking && this.above >= ON_TICKS) this.set(true);
    } else if (rms < OFF_LEVEL) {
      this.below += 1;
      this.above = 0;
      if (this.speaking && this.below >= OFF_TICKS) this.set(false);
    }
  }

  private set(v: boolean): void {
    if (this.speaking === v) return;
    this.speaking = v;
    this.onChange(v);
  }

  private detachNodes(): void {
    try {
      this.source?.disconnect();
    } catch {
      /* already disconnected */
    }
    this.source = null;
    this.analyser = null;
    this.buf = null;
    this.above = 0;
    this.below = 0;
    this.level = 0;
  }
}
