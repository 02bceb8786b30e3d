/** The room page: participant grid, controls, chat, file transfer and connection quality. */
import {
  KaiwaError, Room, type ChatMessage, type FileFailure, type FileMeta, type FileProgress, type MediaState,
  type PeerStats, type ReceivedFile, type RemotePeer, type SentFile, type SignalingState,
} from '../sdk/index.js';
import { clear, formatBitrate, formatBytes, h, icon, initials, setIcon } from './dom.js';
import { ROOM_RE, renderLanding, roomUrl, saveName, savedName } from './landing.js';

declare global {
  interface Window {
    /** Test and debugging handle. */
    kaiwa?: { room: Room | null; view: RoomView | null; Room: typeof Room };
  }
}

const STATS_INTERVAL_MS = 2000;

export function renderRoom(root: HTMLElement, roomName: string, name: string | null): void {
  if (!ROOM_RE.test(roomName)) {
    renderLanding(root, `"${roomName}" is not a valid room name.`);
    return;
  }
  if (name && name.trim()) {
    startRoom(root, roomName, name.trim());
    return;
  }
  clear(root);
  document.title = `${roomName} · kaiwa`;
  const input = h('input', { id: 'name', name: 'name', testid: 'name-input', required: true, maxlength: 64,
    value: savedName(), autocomplete: 'nickname', placeholder: 'How others see you' });
  const form = h('form', { class: 'card join-form', testid: 'name-form' },
    h('label', { for: 'name' }, 'Your name'),
    input,
    h('button', { type: 'submit', class: 'primary', testid: 'join-button' }, 'Join'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const n = input.value.trim();
    if (!n) return;
    saveName(n);
    startRoom(root, roomName, n);
  });
  root.append(h('main', { class: 'landing', testid: 'name-prompt' },
    h('h1', {}, 'kaiwa'),
    h('p', { class: 'lead' }, 'Joining room ', h('strong', { testid: 'prompt-room' }, roomName)),
    form,
  ));
  input.focus();
}

function startRoom(root: HTMLElement, roomName: string, name: string): void {
  let view: RoomView;
  try {
    view = new RoomView(root, roomName, name);
  } catch (err) {
    renderLanding(root, err instanceof Error ? err.message : String(err));
    return;
  }
  void view.start();
}

// -----------------------------------------------------------------------------------------------

class Tile {
  readonly el: HTMLDivElement;
  readonly video: HTMLVideoElement;
  private readonly nameEl: HTMLSpanElement;
  private readonly avatar: HTMLDivElement;
  private readonly badgeMuted: HTMLSpanElement;
  private readonly badgeVideoOff: HTMLSpanElement;
  private readonly badgeScreen: HTMLSpanElement;
  private readonly stats: HTMLDivElement;
  private readonly unmute: HTMLButtonElement;
  private state: MediaState = { audioMuted: false, videoOff: false, screenSharing: false };

  constructor(readonly peerId: string, name: string, readonly self: boolean) {
    this.video = h('video', { testid: 'video', autoplay: true, playsinline: true });
    this.video.muted = self; // never play our own microphone back
    this.nameEl = h('span', { class: 'tile-name', testid: 'tile-name' }, self ? `${name} (you)` : name);
    this.avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' }, initials(name));
    this.badgeMuted = h('span', { class: 'badge', testid: 'badge-muted', title: 'Microphone off', role: 'img',
      'aria-label': 'Microphone off' }, icon('mic-off'));
    this.badgeVideoOff = h('span', { class: 'badge', testid: 'badge-video-off', title: 'Camera off', role: 'img',
      'aria-label': 'Camera off' }, icon('camera-off'));
    this.badgeScreen = h('span', { class: 'badge screen', testid: 'badge-screen', title: 'Sharing the screen' },
      icon('screen'), 'Screen');
    this.stats = h('div', { class: 'quality', testid: 'tile-stats' });
    this.stats.hidden = self;
    this.unmute = h('button', { class: 'unmute', testid: 'unmute-audio', type: 'button' }, icon('speaker'), 'Tap to hear');
    this.unmute.hidden = true;
    this.unmute.addEventListener('click', () => {
      this.video.muted = false;
      this.unmute.hidden = true;
      void this.video.play().catch(() => undefined);
    });
    this.el = h('div', { class: 'tile', testid: 'tile', 'data-peer-id': peerId, 'data-self': self ? 'true' : 'false' },
      this.video, this.avatar,
      h('div', { class: 'label' }, this.nameEl, this.badgeMuted, this.badgeVideoOff, this.badgeScreen),
      this.stats, this.unmute);
    this.setState(this.state);
  }

  setPeerId(id: string): void {
    this.el.dataset.peerId = id;
  }

  setName(name: string): void {
    this.nameEl.textContent = this.self ? `${name} (you)` : name;
    this.avatar.textContent = initials(name);
  }

  setStream(stream: MediaStream | null, mirror = false): void {
    this.video.classList.toggle('mirror', mirror);
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    if (stream) this.play();
  }

  /** Tells the element its stream has new tracks (re-attaching makes every browser pick them up). */
  refresh(): void {
    const s = this.video.srcObject;
    this.video.srcObject = null;
    this.video.srcObject = s;
    if (s) this.play();
  }

  setState(state: MediaState): void {
    this.state = { ...state };
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
    this.el.classList.toggle('unstable', state === 'disconnected' || state === 'failed');
  }

  setStats(s: PeerStats): void {
    const rtt = s.rttMs === null ? '–' : `${Math.round(s.rttMs)} ms`;
    const loss = `${(s.packetLoss * 100).toFixed(s.packetLoss > 0 && s.packetLoss < 0.1 ? 1 : 0)}%`;
    this.stats.textContent = `${rtt} · ↓${formatBitrate(s.inboundBitrate)} ↑${formatBitrate(s.outboundBitrate)} · ${loss} loss`;
    this.stats.title = 'Round-trip time · received / sent bitrate · packet loss';
    this.stats.dataset.rttMs = s.rttMs === null ? '' : String(Math.round(s.rttMs));
    this.stats.dataset.inboundBitrate = String(Math.round(s.inboundBitrate));
    this.stats.dataset.outboundBitrate = String(Math.round(s.outboundBitrate));
    this.stats.dataset.packetLoss = String(s.packetLoss);
    const level = s.packetLoss > 0.05 || (s.rttMs ?? 0) > 400 ? 'poor' : s.packetLoss > 0.01 || (s.rttMs ?? 0) > 150 ? 'fair' : 'good';
    this.stats.dataset.quality = level;
  }

  destroy(): void {
    this.video.pause();
    this.video.srcObject = null;
    this.el.remove();
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

interface TransferRow {
  el: HTMLLIElement;
  progress: HTMLProgressElement;
  percent: HTMLSpanElement;
  status: HTMLSpanElement;
  size: number;
}

export class RoomView {
  readonly room: Room;
  private readonly root: HTMLElement;
  private readonly tiles = new Map<string, Tile>();
  private selfTile!: Tile;
  private readonly transfers = new Map<string, TransferRow>();
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private unread = 0;
  // elements
  private grid!: HTMLElement;
  private notices!: HTMLElement;
  private sigState!: HTMLElement;
  private chatLog!: HTMLOListElement;
  private chatInput!: HTMLInputElement;
  private fileInput!: HTMLInputElement;
  private fileTarget!: HTMLSelectElement;
  private fileSend!: HTMLButtonElement;
  private fileList!: HTMLUListElement;
  private side!: HTMLElement;
  private panelButton!: HTMLButtonElement;
  private micButton!: HTMLButtonElement;
  private camButton!: HTMLButtonElement;
  private screenButton!: HTMLButtonElement;

  constructor(root: HTMLElement, readonly roomName: string, readonly name: string) {
    this.root = root;
    this.room = new Room({ room: roomName, name, media: { audio: true, video: true } });
    window.kaiwa = { room: this.room, view: this, Room };
  }

  async start(): Promise<void> {
    document.title = `${this.roomName} · kaiwa`;
    this.renderShell();
    this.wire();
    try {
      await this.room.join();
    } catch (err) {
      this.renderJoinError(err);
      return;
    }
    this.selfTile.setPeerId(this.room.id);
    this.selfTile.setStream(this.room.localStream ? videoOnly(this.room.localStream) : null, true);
    this.selfTile.setState(this.room.state);
    this.syncControls();
    this.root.querySelector('[data-testid="room"]')?.setAttribute('data-joined', 'true');
    this.statsTimer = setInterval(() => void this.pollStats(), STATS_INTERVAL_MS);
  }

  // ----- layout -------------------------------------------------------------------------------

  private renderShell(): void {
    clear(this.root);
    this.sigState = h('span', { class: 'sig', testid: 'signaling-state', 'data-state': 'connecting' }, 'Connecting…');
    this.notices = h('div', { class: 'notices', testid: 'notices', 'aria-live': 'polite' });
    this.grid = h('section', { class: 'grid', testid: 'grid', 'aria-label': 'Participants' });
    this.selfTile = new Tile('', this.name, true);
    this.grid.append(this.selfTile.el);
    this.updateGrid();

    // chat
    this.chatLog = h('ol', { class: 'chat-log', testid: 'chat-log', 'aria-live': 'polite' });
    this.chatInput = h('input', { testid: 'chat-input', placeholder: 'Message everyone', maxlength: 4096,
      autocomplete: 'off', 'aria-label': 'Chat message' });
    const chatForm = h('form', { class: 'chat-form', testid: 'chat-form' }, this.chatInput,
      h('button', { type: 'submit', class: 'primary', testid: 'chat-send' }, 'Send'));
    chatForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.sendChat();
    });

    // files
    this.fileInput = h('input', { type: 'file', testid: 'file-input', 'aria-label': 'File to send' });
    this.fileTarget = h('select', { testid: 'file-target', 'aria-label': 'Send to' },
      h('option', { value: '' }, 'Everyone'));
    this.fileSend = h('button', { type: 'submit', class: 'primary', testid: 'file-send' }, 'Send file');
    this.fileList = h('ul', { class: 'file-list', testid: 'file-list' });
    const fileForm = h('form', { class: 'file-form', testid: 'file-form' }, this.fileInput,
      h('div', { class: 'row' }, this.fileTarget, this.fileSend));
    fileForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.sendFile();
    });
    this.fileInput.addEventListener('change', () => this.syncFileForm());

    this.side = h('aside', { class: 'side', testid: 'side-panel' },
      h('section', { class: 'panel chat', 'aria-label': 'Chat' }, h('h2', {}, 'Chat'), this.chatLog, chatForm),
      h('section', { class: 'panel files', 'aria-label': 'Files' }, h('h2', {}, 'Files'), fileForm, this.fileList),
    );

    // controls
    this.micButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-mic', 'aria-pressed': 'false',
      onclick: () => this.room.setAudioMuted(!this.room.state.audioMuted) }, icon('mic'), h('span', {}, 'Mic'));
    this.camButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-camera', 'aria-pressed': 'false',
      onclick: () => this.room.setVideoOff(!this.room.state.videoOff) }, icon('camera'), h('span', {}, 'Camera'));
    this.screenButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-screen', 'aria-pressed': 'false',
      onclick: () => void this.toggleScreen() }, icon('screen'), h('span', {}, 'Share'));
    this.screenButton.hidden = typeof navigator.mediaDevices?.getDisplayMedia !== 'function';
    this.panelButton = h('button', { type: 'button', class: 'ctl panel-toggle', testid: 'toggle-panel',
      'aria-pressed': 'false', onclick: () => this.togglePanel() }, icon('chat'), h('span', {}, 'Chat & files'));
    const leave = h('button', { type: 'button', class: 'ctl leave', testid: 'leave', onclick: () => this.leave() },
      icon('leave'), h('span', {}, 'Leave'));
    const controls = h('footer', { class: 'controls', testid: 'controls' },
      this.micButton, this.camButton, this.screenButton, this.panelButton, leave);

    const copy = h('button', { type: 'button', class: 'ghost', testid: 'copy-link', onclick: () => void this.copyLink() },
      'Copy link');
    this.root.append(h('div', { class: 'room', testid: 'room', 'data-room': this.roomName },
      h('header', { class: 'topbar' },
        h('span', { class: 'brand' }, 'kaiwa'),
        h('span', { class: 'room-name', testid: 'room-name' }, this.roomName),
        this.sigState, copy),
      this.notices,
      h('main', { class: 'stage' }, this.grid, this.side),
      controls));
    this.syncFileForm();
  }

  private wire(): void {
    const r = this.room;
    r.on('signaling-state', (s) => this.showSignaling(s));
    r.on('peer-joined', (p) => this.addPeer(p));
    r.on('peer-left', ({ peer }) => this.removePeer(peer));
    r.on('peer-state', ({ peer, state }) => this.tiles.get(peer.id)?.setState(state));
    r.on('stream', ({ peer, stream }) => {
      const tile = this.tiles.get(peer.id);
      if (!tile) return;
      if (tile.video.srcObject === stream) tile.refresh();
      else tile.setStream(stream);
    });
    r.on('connection-state', ({ peer, state }) => this.tiles.get(peer.id)?.setConnection(state));
    r.on('local-state', (s) => {
      this.selfTile.setState(s);
      this.syncControls();
    });
    r.on('local-video', ({ track, screen }) => {
      this.selfTile.setStream(track ? new MediaStream([track]) : null, !screen);
    });
    r.on('joined', ({ id, rejoined }) => {
      this.selfTile.setPeerId(id);
      if (rejoined) this.notice('The connection was lost for too long; rejoined the room.', 'info');
    });
    r.on('chat', (m) => this.addChat(m));
    r.on('error', (e) => this.onError(e));
    r.on('file-incoming', (f) => this.addTransfer(f, f.peer, 'receive'));
    r.on('file-progress', (p) => this.onFileProgress(p));
    r.on('file-received', (f) => this.onFileReceived(f));
    r.on('file-sent', (f) => this.onFileSent(f));
    r.on('file-failed', (f) => this.onFileFailed(f));
  }

  private updateGrid(): void {
    const n = this.grid.children.length;
    this.grid.dataset.count = String(n);
  }

  private addPeer(p: RemotePeer): void {
    if (this.tiles.has(p.id)) return;
    const tile = new Tile(p.id, p.name, false);
    tile.setState(p.state);
    tile.setConnection(p.connectionState);
    this.tiles.set(p.id, tile);
    this.grid.append(tile.el);
    if (p.stream.getTracks().length > 0) tile.setStream(p.stream);
    this.updateGrid();
    this.fileTarget.append(h('option', { value: p.id, 'data-peer-id': p.id }, p.name));
    this.syncFileForm();
  }

  private removePeer(p: RemotePeer): void {
    this.tiles.get(p.id)?.destroy();
    this.tiles.delete(p.id);
    this.updateGrid();
    this.fileTarget.querySelector(`option[data-peer-id="${CSS.escape(p.id)}"]`)?.remove();
    this.syncFileForm();
  }

  private peerName(id: string): string {
    return this.room.peers.get(id)?.name ?? id;
  }

  // ----- controls -----------------------------------------------------------------------------

  private syncControls(): void {
    const s = this.room.state;
    const hasAudio = (this.room.localStream?.getAudioTracks().length ?? 0) > 0;
    const hasVideo = (this.room.localStream?.getVideoTracks().length ?? 0) > 0;
    this.micButton.disabled = !hasAudio;
    this.camButton.disabled = !hasVideo;
    this.micButton.setAttribute('aria-pressed', String(s.audioMuted));
    this.camButton.setAttribute('aria-pressed', String(s.videoOff));
    this.screenButton.setAttribute('aria-pressed', String(s.screenSharing));
    setIcon(this.micButton, s.audioMuted ? 'mic-off' : 'mic');
    setIcon(this.camButton, s.videoOff ? 'camera-off' : 'camera');
    this.micButton.classList.toggle('off', s.audioMuted);
    this.camButton.classList.toggle('off', s.videoOff);
    this.screenButton.classList.toggle('on', s.screenSharing);
    this.micButton.title = s.audioMuted ? 'Unmute microphone' : 'Mute microphone';
    this.camButton.title = s.videoOff ? 'Turn camera on' : 'Turn camera off';
    this.screenButton.title = s.screenSharing ? 'Stop sharing' : 'Share your screen';
  }

  private async toggleScreen(): Promise<void> {
    try {
      if (this.room.state.screenSharing) await this.room.stopScreenShare();
      else await this.room.startScreenShare();
    } catch (err) {
      this.onError(err instanceof KaiwaError ? err : new KaiwaError('screen-share-failed', String(err)));
    }
    this.syncControls();
  }

  private togglePanel(): void {
    const open = !this.side.classList.contains('open');
    this.side.classList.toggle('open', open);
    this.panelButton.setAttribute('aria-pressed', String(open));
    if (open) {
      this.unread = 0;
      this.panelButton.dataset.unread = '';
    }
  }

  private async copyLink(): Promise<void> {
    const url = `${location.origin}${roomUrl(this.roomName)}`;
    try {
      await navigator.clipboard.writeText(url);
      this.notice('Room link copied.', 'info');
    } catch {
      this.notice(`Room link: ${url}`, 'info');
    }
  }

  private leave(): void {
    this.stopStats();
    this.room.leave();
    for (const t of this.tiles.values()) t.destroy();
    this.tiles.clear();
    this.selfTile.destroy();
    clear(this.root);
    this.root.append(h('main', { class: 'landing', testid: 'left-screen' },
      h('h1', {}, 'You left the room'),
      h('p', { class: 'lead' }, this.roomName),
      h('div', { class: 'row center' },
        h('button', { type: 'button', class: 'primary', testid: 'rejoin', onclick: () => location.reload() }, 'Rejoin'),
        h('button', { type: 'button', class: 'ghost', testid: 'home', onclick: () => location.assign('/') }, 'Home'))));
  }

  // ----- status and errors ----------------------------------------------------------------------

  private showSignaling(s: SignalingState): void {
    this.sigState.dataset.state = s;
    this.sigState.textContent = s === 'connected' ? 'Connected' : s === 'reconnecting' ? 'Reconnecting…' :
      s === 'connecting' ? 'Connecting…' : 'Disconnected';
  }

  private onError(e: KaiwaError): void {
    if (e.code.startsWith('media-')) {
      this.notice(e.message, 'warn', 'media-error', e.code);
      this.syncControls();
    } else if (e.code === 'peer-connection') {
      console.warn('kaiwa:', e.message);
    } else {
      this.notice(e.message, 'error', 'error-notice', e.code);
    }
  }

  private notice(text: string, kind: 'info' | 'warn' | 'error', testid = 'notice', code = ''): void {
    const el = h('div', { class: `notice ${kind}`, testid, role: kind === 'info' ? 'status' : 'alert', 'data-code': code },
      h('span', {}, text),
      h('button', { type: 'button', class: 'ghost', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
    this.notices.append(el);
    while (this.notices.children.length > 4) this.notices.firstElementChild?.remove();
    if (kind === 'info') setTimeout(() => el.remove(), 6000);
  }

  private renderJoinError(err: unknown): void {
    this.stopStats();
    const e = err instanceof KaiwaError ? err : new KaiwaError('internal', String(err));
    const text = e.code === 'room-full' ? 'This room is full.' : e.code === 'unauthorized' ? 'You are not allowed in this room.' :
      e.code === 'connect-failed' ? 'Cannot reach the server.' : e.message;
    clear(this.root);
    this.root.append(h('main', { class: 'landing', testid: 'join-error', 'data-code': e.code },
      h('h1', {}, 'Could not join'),
      h('p', { class: 'lead' }, text),
      h('div', { class: 'row center' },
        h('button', { type: 'button', class: 'primary', onclick: () => location.reload() }, 'Try again'),
        h('button', { type: 'button', class: 'ghost', onclick: () => location.assign('/') }, 'Home'))));
  }

  // ----- stats --------------------------------------------------------------------------------

  private async pollStats(): Promise<void> {
    for (const [id, tile] of this.tiles) {
      try {
        const s = await this.room.getStats(id);
        if (s) tile.setStats(s);
      } catch {
        /* the peer left meanwhile */
      }
    }
  }

  private stopStats(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
  }

  // ----- chat ---------------------------------------------------------------------------------

  private async sendChat(): Promise<void> {
    const text = this.chatInput.value.trim();
    if (!text) return;
    this.chatInput.value = '';
    try {
      await this.room.sendChat(text);
    } catch (err) {
      this.chatInput.value = text;
      const e = err instanceof KaiwaError ? err : new KaiwaError('internal', String(err));
      this.notice(`Message not sent: ${e.message}`, 'error', 'chat-error', e.code);
    }
  }

  private addChat(m: ChatMessage): void {
    const time = new Date(m.ts);
    const li = h('li', { class: m.self ? 'self' : '', testid: 'chat-message', 'data-from': m.from, 'data-self': String(m.self) },
      h('span', { class: 'who', testid: 'chat-name' }, m.self ? 'You' : m.name),
      h('time', { datetime: time.toISOString() }, time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
      h('p', { class: 'text', testid: 'chat-text' }, m.text));
    const atBottom = this.chatLog.scrollHeight - this.chatLog.scrollTop - this.chatLog.clientHeight < 40;
    this.chatLog.append(li);
    if (atBottom || m.self) this.chatLog.scrollTop = this.chatLog.scrollHeight;
    if (!m.self && !this.side.classList.contains('open')) {
      this.unread += 1;
      this.panelButton.dataset.unread = String(this.unread);
    }
  }

  // ----- files --------------------------------------------------------------------------------

  private syncFileForm(): void {
    if (!this.fileSend) return;
    this.fileSend.disabled = !this.fileInput.files?.length || this.room.peers.size === 0;
  }

  private async sendFile(): Promise<void> {
    const file = this.fileInput.files?.[0];
    if (!file) return;
    const to = this.fileTarget.value || undefined;
    const targets = to ? [to] : [...this.room.peers.keys()];
    if (targets.length === 0) {
      this.notice('Nobody else is in the room.', 'warn');
      return;
    }
    this.fileSend.disabled = true;
    try {
      const handle = await this.room.sendFile(file, to);
      for (const peer of targets) this.addTransfer(handle.meta, peer, 'send');
      this.fileInput.value = '';
    } catch (err) {
      const e = err instanceof KaiwaError ? err : new KaiwaError('file-failed', String(err));
      this.notice(`Could not send ${file.name}: ${e.message}`, 'error', 'file-error', e.code);
    } finally {
      this.syncFileForm();
    }
  }

  private transferKey(id: string, peer: string, dir: 'send' | 'receive'): string {
    return `${dir}:${id}:${peer}`;
  }

  private addTransfer(meta: FileMeta, peer: string, dir: 'send' | 'receive'): TransferRow {
    const key = this.transferKey(meta.id, peer, dir);
    const existing = this.transfers.get(key);
    if (existing) return existing;
    const progress = h('progress', { testid: 'file-progress', max: Math.max(1, meta.size), value: 0 });
    const percent = h('span', { class: 'percent', testid: 'file-percent' }, '0%');
    const status = h('span', { class: 'status', testid: 'file-status' }, dir === 'send' ? 'sending' : 'receiving');
    const who = dir === 'send' ? `to ${this.peerName(peer)}` : `from ${this.peerName(peer)}`;
    const el = h('li', {
      class: 'transfer', testid: 'file-transfer', 'data-transfer-id': meta.id, 'data-direction': dir, 'data-peer': peer,
      'data-state': 'progress', 'data-sha256': meta.sha256,
    },
    h('div', { class: 'file-head' },
      h('span', { class: 'file-name', testid: 'file-name' }, meta.name),
      h('span', { class: 'dir' }, dir === 'send' ? '↑' : '↓')),
    h('div', { class: 'file-meta' },
      h('span', { testid: 'file-size', 'data-bytes': meta.size }, formatBytes(meta.size)),
      h('span', { testid: 'file-type' }, meta.type || 'unknown type'),
      h('span', {}, who)),
    h('div', { class: 'file-progress' }, progress, percent),
    status);
    const row = { el, progress, percent, status, size: meta.size };
    this.transfers.set(key, row);
    this.fileList.prepend(el);
    return row;
  }

  private setProgress(row: TransferRow, bytes: number): void {
    row.progress.value = Math.min(bytes, Math.max(1, row.size));
    const pct = row.size === 0 ? 100 : Math.floor((bytes * 100) / row.size);
    row.percent.textContent = `${pct}%`;
    row.el.dataset.percent = String(pct);
  }

  private onFileProgress(p: FileProgress): void {
    const row = this.addTransfer(p, p.peer, p.direction);
    this.setProgress(row, p.bytes);
  }

  private onFileReceived(f: ReceivedFile): void {
    const row = this.addTransfer(f, f.peer, 'receive');
    this.setProgress(row, f.size);
    row.el.dataset.state = 'done';
    row.el.dataset.receivedSha256 = f.receivedSha256;
    clear(row.status);
    row.status.append(
      f.verified
        ? h('span', { class: 'ok', testid: 'file-verified', title: `SHA-256 ${f.receivedSha256}` }, '✓ SHA-256 verified')
        : h('span', { class: 'bad', testid: 'file-unverified', title: `got ${f.receivedSha256}, expected ${f.sha256}` },
          '✗ SHA-256 mismatch'),
      ' ',
      h('a', { href: f.url, download: f.name, testid: 'file-link' }, `Save ${f.name}`));
  }

  private onFileSent(f: SentFile): void {
    const row = this.addTransfer(f, f.peer, 'send');
    this.setProgress(row, f.size);
    row.el.dataset.state = 'done';
    clear(row.status);
    row.status.append(h('span', { class: 'ok', testid: 'file-verified' }, '✓ delivered, SHA-256 verified'));
  }

  private onFileFailed(f: FileFailure): void {
    const row = this.addTransfer(f, f.peer, f.direction);
    row.el.dataset.state = 'failed';
    row.status.textContent = `✗ ${f.error.message}`;
  }
}

function videoOnly(stream: MediaStream): MediaStream | null {
  const v = stream.getVideoTracks();
  return v.length ? new MediaStream(v) : null;
}
