/** Connection quality per tile: a small bars indicator, its details on hover (title) or tap (a popover). */
import type { PeerStats } from '../sdk/index.js';
import { formatBitrate, h } from './dom.js';

export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

/**
 * Rates one connection from what we receive: loss and round-trip time, and the video bitrate against what the
 * resolution and frame rate need (bits per pixel per frame). `videoExpected` is false when the other side's camera
 * is off (then a low video bitrate is no sign of trouble).
 */
export function rate(s: PeerStats, videoExpected: boolean): { level: Quality; reasons: string[] } {
  const reasons: string[] = [];
  let level: Quality = 'good';
  const worse = (l: Quality, why: string) => {
    reasons.push(why);
    if (l === 'poor' || (l === 'fair' && level === 'good')) level = l;
  };
  const rtt = s.rttMs ?? 0;
  if (s.packetLoss > 0.05) worse('poor', `${(s.packetLoss * 100).toFixed(0)}% packet loss`);
  else if (s.packetLoss > 0.02) worse('fair', `${(s.packetLoss * 100).toFixed(1)}% packet loss`);
  if (rtt > 400) worse('poor', `${Math.round(rtt)} ms round trip`);
  else if (rtt > 200) worse('fair', `${Math.round(rtt)} ms round trip`);
  const v = s.video;
  if (videoExpected && v.frameWidth > 0 && s.timestamp > 0) {
    const pixelsPerSecond = v.frameWidth * v.frameHeight * Math.max(5, v.framesPerSecond || 15);
    const bpp = v.bitrate / pixelsPerSecond;
    if (v.bitrate < 60_000 || bpp < 0.015) worse('poor', `low video bitrate (${formatBitrate(v.bitrate)} for ${v.frameWidth}×${v.frameHeight})`);
    else if (v.bitrate < 120_000 || bpp < 0.04) worse('fair', `video bitrate ${formatBitrate(v.bitrate)} for ${v.frameWidth}×${v.frameHeight}`);
  }
  return { level, reasons };
}

export function describe(s: PeerStats): string {
  const rtt = s.rttMs === null ? '–' : `${Math.round(s.rttMs)} ms`;
  const loss = `${(s.packetLoss * 100).toFixed(s.packetLoss > 0 && s.packetLoss < 0.1 ? 1 : 0)}%`;
  const res = s.video.frameWidth ? ` · ${s.video.frameWidth}×${s.video.frameHeight}` +
    (s.video.framesPerSecond ? ` ${Math.round(s.video.framesPerSecond)} fps` : '') : '';
  return `Round trip ${rtt} · ↓${formatBitrate(s.inboundBitrate)} ↑${formatBitrate(s.outboundBitrate)} · loss ${loss}${res}`;
}

const LABEL: Record<Quality, string> = { good: 'Good connection', fair: 'Fair connection', poor: 'Poor connection', unknown: 'Connection: measuring…' };

/** The indicator: a button with 3 bars; tapping it shows the details. */
export class QualityIndicator {
  readonly el: HTMLButtonElement;
  private readonly details: HTMLSpanElement;

  constructor() {
    this.details = h('span', { class: 'quality-details', testid: 'quality-details', role: 'tooltip' });
    this.details.hidden = true;
    this.el = h('button', { type: 'button', class: 'quality-bars', testid: 'quality', 'data-quality': 'unknown',
      'aria-label': LABEL.unknown, title: LABEL.unknown, onclick: (ev: Event) => {
        ev.stopPropagation();
        this.details.hidden = !this.details.hidden;
      } }, h('i', {}), h('i', {}), h('i', {}), this.details);
  }

  set(level: Quality, details: string): void {
    this.el.dataset.quality = level;
    const text = `${LABEL[level]}${details ? ` — ${details}` : ''}`;
    this.el.setAttribute('aria-label', text);
    this.el.title = text;
    this.details.textContent = text;
  }
}
