/** One participant's tile: video (or initials), name, badges, speaking ring, quality bars, pin and fullscreen; or
 * (`screen`) a screen shared beside someone's camera. */
import type { MediaState } from '../sdk/index.js';
import { h, icon, initials } from './dom.js';
import { QualityIndicator } from './quality.js';
import { SpeakingDetector } from './speaking.js';

export class Tile {
  readonly el: HTMLDivElement;
  readonly video: HTMLVideoElement;
  readonly quality = new QualityIndicator();
  private readonly nameEl: HTMLSpanElement;
  private readonly avatar: HTMLDivElement;
  private readonly badgeMuted: HTMLSpanElement;
  private readonly badgeVideoOff: HTMLSpanElement;
  private readonly badgeScreen: HTMLSpanElement;
  private readonly unmute: HTMLButtonElement;
  private readonly pinBtn: HTMLButtonElement;
  private readonly status: HTMLDivElement;
  private readonly speaking: SpeakingDetector;
  private audioStream: MediaStream | null = null;
  state: MediaState = { audioMuted: false, videoOff: false, screenSharing: false };
  name: string;
  /** Identifies the tile for pinning: 'self', a peer id, or 'screen:' + one of those. */
  readonly key: string;

  constructor(readonly peerId: string, name: string, readonly self: boolean,
    private readonly onPin: (tile: Tile) => void, onSpeaking: (tile: Tile, speaking: boolean) => void,
    readonly screen = false) {
    this.name = name;
    this.key = `${screen ? 'screen:' : ''}${self ? 'self' : peerId}`;
    this.video = h('video', { testid: 'video', autoplay: true, playsinline: true });
    this.video.muted = self; // never play our own microphone back
    this.nameEl = h('span', { class: 'tile-name', testid: 'tile-name', title: name }, this.label(name));
    this.avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' }, h('span', {}, initials(name)));
    this.badgeMuted = h('span', { class: 'badge', testid: 'badge-muted', title: 'Microphone off', role: 'img',
      'aria-label': 'Microphone off' }, icon('mic-off'));
    this.badgeVideoOff = h('span', { class: 'badge', testid: 'badge-video-off', title: 'Camera off', role: 'img',
      'aria-label': 'Camera off' }, icon('camera-off'));
    this.badgeScreen = h('span', { class: 'badge screen', testid: 'badge-screen', title: 'Sharing the screen' },
      icon('screen'), 'Screen');
    this.unmute = h('button', { class: 'unmute', testid: 'unmute-audio', type: 'button' }, icon('speaker'), 'Tap to hear');
    this.unmute.hidden = true;
    this.unmute.addEventListener('click', () => {
      this.video.muted = false;
      this.unmute.hidden = true;
      void this.video.play().catch(() => undefined);
    });
    this.status = h('div', { class: 'tile-status', testid: 'tile-status', role: 'status' });
    this.status.hidden = true;
    this.pinBtn = h('button', { type: 'button', class: 'tile-btn', testid: 'pin', 'aria-pressed': 'false',
      'aria-label': `Pin ${name}`, title: 'Pin to the stage', onclick: () => this.onPin(this) }, icon('pin'));
    const full = h('button', { type: 'button', class: 'tile-btn', testid: 'fullscreen', 'aria-label': `Show ${name} full screen`,
      title: 'Full screen', onclick: () => void this.toggleFullscreen() }, icon('fullscreen'));
    full.hidden = typeof this.video.requestFullscreen !== 'function' && typeof HTMLElement.prototype.requestFullscreen !== 'function';
    this.el = h('div', { class: screen ? 'tile screen-share' : 'tile', testid: screen ? 'screen-tile' : 'tile', 'data-peer-id': peerId,
      'data-self': self ? 'true' : 'false', 'data-speaking': 'false', role: 'group', 'aria-label': this.label(name) },
    this.video, this.avatar,
    h('div', { class: 'tile-top' }, this.quality.el, h('span', { class: 'spacer' }), this.pinBtn, full),
    h('div', { class: 'label' }, this.nameEl, this.badgeMuted, this.badgeVideoOff, this.badgeScreen),
    this.status, this.unmute);
    this.speaking = new SpeakingDetector((s) => {
      this.el.dataset.speaking = String(s);
      this.el.classList.toggle('speaking', s);
      onSpeaking(this, s);
    });
    if (screen) this.quality.el.hidden = true;
    this.setState(this.state);
  }

  private label(name: string): string {
    if (this.screen) return this.self ? 'Your screen' : `${name}'s screen`;
    return this.self ? `${name} (you)` : name;
  }

  setPeerId(id: string): void {
    this.el.dataset.peerId = id;
  }

  setName(name: string): void {
    this.name = name;
    this.nameEl.textContent = this.label(name);
    this.nameEl.title = name;
    (this.avatar.firstElementChild as HTMLElement).textContent = initials(name);
  }

  setPinned(pinned: boolean): void {
    this.pinBtn.setAttribute('aria-pressed', String(pinned));
    this.pinBtn.setAttribute('aria-label', pinned ? `Unpin ${this.name}` : `Pin ${this.name}`);
    this.el.dataset.pinned = String(pinned);
  }

  setStream(stream: MediaStream | null, mirror = false): void {
    this.video.classList.toggle('mirror', mirror);
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    if (stream) this.play();
    if (!this.self && !this.screen) this.listen(stream);
  }

  /** The audio the speaking indicator listens to (our microphone for our own tile). */
  listen(stream: MediaStream | null): void {
    this.audioStream = stream;
    this.speaking.attach(stream);
  }

  /** Tells the element its stream has new tracks (re-attaching makes every browser pick them up). */
  refresh(): void {
    const s = this.video.srcObject;
    this.video.srcObject = null;
    this.video.srcObject = s;
    if (s) this.play();
    if (!this.self && !this.screen) this.speaking.attach(this.audioStream);
  }

  setState(state: MediaState): void {
    this.state = { ...state };
    if (this.screen) {
      this.badgeMuted.hidden = this.badgeVideoOff.hidden = true;
      this.badgeScreen.hidden = false;
      this.el.classList.add('screen');
      return;
    }
    this.badgeMuted.hidden = !state.audioMuted;
    this.badgeVideoOff.hidden = !state.videoOff || state.screenSharing;
    this.badgeScreen.hidden = !state.screenSharing;
    this.el.dataset.audioMuted = String(state.audioMuted);
    this.el.dataset.videoOff = String(state.videoOff);
    this.el.dataset.screenSharing = String(state.screenSharing);
    this.el.classList.toggle('video-off', state.videoOff && !state.screenSharing);
    this.el.classList.toggle('screen', state.screenSharing);
  }

  setConnection(state: RTCPeerConnectionState): void {
    this.el.dataset.connection = state;
    const unstable = state === 'disconnected' || state === 'failed';
    this.el.classList.toggle('unstable', unstable);
    this.status.hidden = !unstable;
    this.status.textContent = unstable ? 'Connection interrupted — reconnecting…' : '';
  }

  /** Called once when the tile goes (the room stops reporting its size). */
  onDestroy: (() => void) | null = null;

  destroy(): void {
    this.onDestroy?.();
    this.onDestroy = null;
    this.speaking.destroy();
    this.video.pause();
    this.video.srcObject = null;
    this.el.remove();
  }

  private async toggleFullscreen(): Promise<void> {
    try {
      if (document.fullscreenElement === this.el) await document.exitFullscreen();
      else await this.el.requestFullscreen();
    } catch {
      /* refused (no user gesture, iframe without allowfullscreen) */
    }
  }

  private play(): void {
    const v = this.video;
    v.play().catch((err: unknown) => {
      // Autoplay with sound needs a user gesture in some browsers: play muted and offer a button.
      if ((err as DOMException)?.name === 'NotAllowedError' && !v.muted) {
        v.muted = true;
        this.unmute.hidden = false;
        void v.play().catch(() => undefined);
      }
    });
  }
}
