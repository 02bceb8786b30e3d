/** The room page: stage (grid / 1:1 picture-in-picture / spotlight), controls, chat, files, people, quality. */
import {
  KaiwaError, Room, type MediaPolicy, type MediaState, type PeerStats, type RecordingState, type RemotePeer,
  type SignalingState,
} from '../sdk/index.js';
import { ChatPanel } from './chat.js';
import { clear, h, icon, setIcon } from './dom.js';
import { FilesPanel } from './files-panel.js';
import { inviteBox } from './invite.js';
import { aspectRange, bestGrid, stageMode } from './layout.js';
import { fillDeviceSelect, savePrefs, type PrejoinChoice } from './prejoin.js';
import { describe, rate, type Quality } from './quality.js';
import { Tile } from './tile.js';
import { classifyRefusal, explain, forgetToken, readClaims } from './token.js';

declare global {
  interface Window {
    /** Test and debugging handle. */
    kaiwa?: { room: Room | null; view: RoomView | null; Room: typeof Room };
  }
}

const STATS_INTERVAL_MS = 2000;
const GAP = 8;

/** Keyboard shortcuts (also listed in the help popover and docs/web.md). */
export const SHORTCUTS: Array<{ keys: string; what: string }> = [
  { keys: 'Ctrl/⌘ + D', what: 'Microphone on/off' },
  { keys: 'Ctrl/⌘ + E', what: 'Camera on/off' },
  { keys: 'Ctrl/⌘ + Shift + C', what: 'Open the chat and type' },
];

export class RoomView {
  readonly room: Room;
  private readonly root: HTMLElement;
  private readonly tiles = new Map<string, Tile>();
  /** Screens shared beside a camera, by peer id ('self' for ours). */
  private readonly screens = new Map<string, Tile>();
  private selfTile!: Tile;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private bannerTimer: ReturnType<typeof setInterval> | null = null;
  private unread = 0;
  private titleUnread = 0;
  private joined = false;
  private pinned: string | null = null;
  /** The dominant speaker's peer id (ours included): kaiwa's `activespeaker` in an sfu room; in a mesh, where kaiwa
   * hears no audio, judged here from the tiles' Web Audio speaking detectors. */
  private speaker: string | null = null;
  /** The last remote dominant speaker: what speaker view shows large while we talk ourselves. */
  private lastRemoteSpeaker: string | null = null;
  /** Speaker view: the active speaker takes the stage (a pin or a shared screen still comes first). */
  private speakerView = false;
  private speakerViewButton!: HTMLButtonElement;
  private resize: ResizeObserver | null = null;
  private readonly peerQuality = new Map<string, { level: Quality; stats: PeerStats }>();
  // elements
  private grid!: HTMLElement;
  private emptyState!: HTMLElement;
  private notices!: HTMLElement;
  private toasts!: HTMLElement;
  private banner!: HTMLElement;
  private sigState!: HTMLElement;
  private side!: HTMLElement;
  private peoplePanel!: HTMLElement;
  private peopleList!: HTMLUListElement;
  private count!: HTMLElement;
  private chat!: ChatPanel;
  private files!: FilesPanel;
  private panelButton!: HTMLButtonElement;
  private peopleButton!: HTMLButtonElement;
  private micButton!: HTMLButtonElement;
  private camButton!: HTMLButtonElement;
  private screenButton!: HTMLButtonElement;
  private recordButton!: HTMLButtonElement;
  private settings!: HTMLElement;
  private invitePanel!: HTMLElement;
  private dropOverlay!: HTMLElement;
  /** "via server" while the room's media goes through kaiwa's SFU; hidden in a mesh. */
  private readonly modeBadge = h('span', { class: 'media-mode', testid: 'media-mode', 'data-mode': 'mesh',
    title: 'Audio and video go through the server (more than two people)' }, 'via server');
  /** Shown to everybody while the room is being recorded. */
  private readonly recordBadge = h('span', { class: 'recording-badge', testid: 'recording-indicator', 'data-active': 'false',
    role: 'status' }, 'REC');

  constructor(root: HTMLElement, readonly roomName: string, private readonly choice: PrejoinChoice,
    private readonly token: string | null, mediaPolicy?: MediaPolicy) {
    this.root = root;
    this.room = new Room({
      room: roomName, name: choice.name, token: token ?? undefined, mediaPolicy,
      localStream: choice.stream ?? undefined,
      media: choice.stream ? undefined : false,
      initialState: { audioMuted: !choice.micOn, videoOff: !choice.camOn },
      acceptFiles: 'ask',
    });
    window.kaiwa = { room: this.room, view: this, Room };
  }

  async start(): Promise<void> {
    document.title = `${this.roomName} · kaiwa`;
    this.showMode('mesh');
    this.renderShell();
    this.wire();
    try {
      await this.room.join();
    } catch (err) {
      this.renderJoinError(err);
      return;
    }
    this.joined = true;
    this.selfTile.setPeerId(this.room.id);
    this.selfTile.setStream(this.room.localStream ? videoOnly(this.room.localStream) : null, true);
    this.selfTile.listen(this.room.localStream);
    this.selfTile.setState(this.room.state);
    this.syncControls();
    this.syncPeople();
    if (this.choice.mediaError) this.onError(this.choice.mediaError);
    this.root.querySelector('[data-testid="room"]')?.setAttribute('data-joined', 'true');
    this.statsTimer = setInterval(() => void this.pollStats(), STATS_INTERVAL_MS);
    document.addEventListener('keydown', this.onKey);
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  // ----- layout -------------------------------------------------------------------------------

  private renderShell(): void {
    clear(this.root);
    this.sigState = h('span', { class: 'sig', testid: 'signaling-state', 'data-state': 'connecting' }, 'Connecting…');
    this.notices = h('div', { class: 'notices', testid: 'notices', 'aria-live': 'polite' });
    this.toasts = h('div', { class: 'toasts', testid: 'toasts', 'aria-live': 'polite', role: 'status' });
    this.banner = h('div', { class: 'banner', testid: 'connection-banner', role: 'alert', 'data-state': 'connected' });
    this.banner.hidden = true;
    this.grid = h('section', { class: 'grid', testid: 'grid', 'aria-label': 'Participants' });
    this.selfTile = new Tile('', this.choice.name, true, (t) => this.togglePin(t), (t, on) => this.onSpeaking(t, on));
    this.grid.append(this.selfTile.el);
    this.emptyState = h('div', { class: 'empty-state card', testid: 'empty-state' },
      h('h2', {}, 'You are the only one here'),
      h('p', {}, 'Share this link with the people you want to talk to.'),
      inviteBox(this.roomName));

    this.chat = new ChatPanel(this.room, (m) => {
      if (!this.panelVisible()) {
        this.unread += 1;
        this.panelButton.dataset.unread = String(this.unread);
        this.toast(`${m.name}: ${m.text.length > 80 ? `${m.text.slice(0, 80)}…` : m.text}`, 'chat');
      }
      if (document.hidden) {
        this.titleUnread += 1;
        document.title = `(${this.titleUnread}) ${this.roomName} · kaiwa`;
      }
    });
    this.files = new FilesPanel(this.room, (text, kind, testid) => {
      if (kind === 'info') this.toast(text, testid ?? 'files');
      else this.notice(text, kind, testid);
    }, () => {
      if (!this.panelVisible()) {
        this.unread += 1;
        this.panelButton.dataset.unread = String(this.unread);
      }
    });

    this.peopleList = h('ul', { class: 'people-list', testid: 'people-list' });
    this.peoplePanel = h('section', { class: 'panel people', testid: 'people-panel', 'aria-label': 'People' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'People'),
        h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Close people', onclick: () => this.togglePeople(false) }, '×')),
      this.peopleList);
    this.peoplePanel.hidden = true;
    this.invitePanel = h('section', { class: 'panel invite-panel', testid: 'invite-panel', 'aria-label': 'Invite' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Invite people'),
        h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Close invite', onclick: () => this.toggleInvite(false) }, '×')),
      inviteBox(this.roomName, { note: this.token ? 'Invited guests also need their own invite link (token) for this room.' : undefined }));
    this.invitePanel.hidden = true;
    this.settings = this.renderSettings();
    this.settings.hidden = true;

    this.side = h('aside', { class: 'side', testid: 'side-panel', 'aria-label': 'Chat and files' },
      this.chat.el, this.files.el);

    // controls
    this.micButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-mic', 'aria-pressed': 'true',
      onclick: () => this.room.setAudioMuted(!this.room.state.audioMuted) }, icon('mic'), h('span', { class: 'ctl-label' }, 'Mic'));
    this.camButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-camera', 'aria-pressed': 'true',
      onclick: () => this.room.setVideoOff(!this.room.state.videoOff) }, icon('camera'), h('span', { class: 'ctl-label' }, 'Camera'));
    this.screenButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-screen', 'aria-pressed': 'false',
      'aria-label': 'Share your screen', onclick: () => void this.toggleScreen() }, icon('screen'), h('span', { class: 'ctl-label' }, 'Share'));
    this.screenButton.hidden = typeof navigator.mediaDevices?.getDisplayMedia !== 'function';
    // Recording happens on the server, which records only rooms whose media goes through it.
    this.recordButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-recording', 'aria-pressed': 'false',
      'aria-label': 'Record the call', onclick: () => void this.toggleRecording() }, icon('record'), h('span', { class: 'ctl-label' }, 'Record'));
    this.recordButton.hidden = true;
    this.recordBadge.hidden = true;
    const settingsButton = h('button', { type: 'button', class: 'ctl', testid: 'toggle-settings', 'aria-label': 'Camera and microphone settings',
      'aria-expanded': 'false', onclick: () => this.toggleSettings() }, icon('settings'), h('span', { class: 'ctl-label' }, 'Devices'));
    this.panelButton = h('button', { type: 'button', class: 'ctl panel-toggle', testid: 'toggle-panel', 'aria-label': 'Chat and files',
      'aria-expanded': 'false', onclick: () => this.togglePanel() }, icon('chat'), h('span', { class: 'ctl-label' }, 'Chat & files'));
    const leave = h('button', { type: 'button', class: 'ctl leave', testid: 'leave', 'aria-label': 'Leave the call',
      onclick: () => this.leave() }, icon('leave'), h('span', { class: 'ctl-label' }, 'Leave'));
    const controls = h('footer', { class: 'controls', testid: 'controls' },
      this.micButton, this.camButton, this.screenButton, this.recordButton, settingsButton, this.panelButton, leave);

    this.count = h('span', { class: 'count', testid: 'participant-count' }, '1');
    this.peopleButton = h('button', { type: 'button', class: 'ghost top-btn', testid: 'toggle-people', 'aria-expanded': 'false',
      'aria-label': 'People in the call: 1', onclick: () => this.togglePeople() }, icon('people'), this.count);
    const invite = h('button', { type: 'button', class: 'ghost top-btn', testid: 'invite-button', 'aria-label': 'Invite people',
      'aria-expanded': 'false', onclick: () => this.toggleInvite() }, icon('invite'), h('span', { class: 'top-label' }, 'Invite'));
    this.speakerViewButton = h('button', { type: 'button', class: 'ghost top-btn', testid: 'toggle-speaker-view',
      'aria-pressed': 'false', 'aria-label': 'Speaker view: show whoever is talking large',
      onclick: () => this.toggleSpeakerView() }, h('span', { class: 'top-label' }, 'Speaker view'));
    const help = h('button', { type: 'button', class: 'ghost top-btn', testid: 'shortcuts-button', 'aria-label': 'Keyboard shortcuts',
      title: SHORTCUTS.map((s) => `${s.keys}: ${s.what}`).join('\n'), onclick: () => this.notice(
        SHORTCUTS.map((s) => `${s.keys}: ${s.what}`).join(' · '), 'info', 'shortcuts') }, '⌨');

    this.dropOverlay = h('div', { class: 'drop-overlay', testid: 'drop-overlay' }, 'Drop files to send them');
    this.dropOverlay.hidden = true;
    const stageArea = h('div', { class: 'stage-area' }, this.grid, this.emptyState);
    const room = h('div', { class: 'room', testid: 'room', 'data-room': this.roomName },
      h('header', { class: 'topbar' },
        h('span', { class: 'brand' }, 'kaiwa'),
        h('span', { class: 'room-name', testid: 'room-name', title: this.roomName }, this.roomName),
        this.modeBadge, this.recordBadge, this.sigState, this.peopleButton, this.speakerViewButton, invite, help),
      this.banner,
      this.notices,
      h('main', { class: 'stage' }, stageArea,
        h('div', { class: 'overlays' }, this.peoplePanel, this.invitePanel, this.settings), this.side),
      controls, this.toasts, this.dropOverlay);
    this.root.append(room);
    this.wireDrop(room);
    this.resize = new ResizeObserver(() => this.layout());
    this.resize.observe(this.grid);
    this.layout();
  }

  private wire(): void {
    const r = this.room;
    r.on('signaling-state', (s) => this.showSignaling(s));
    r.on('peer-joined', (p) => this.addPeer(p));
    r.on('peer-left', ({ peer, reason }) => this.removePeer(peer, reason));
    r.on('peer-state', ({ peer, state }) => {
      this.tiles.get(peer.id)?.setState(state);
      this.syncPeople();
      this.layout();
    });
    r.on('stream', ({ peer, stream }) => {
      const tile = this.tiles.get(peer.id);
      if (!tile) return;
      // A stream that gained its first video track is loaded again; one whose tracks were swapped (a switch between
      // mesh and server) keeps playing as it is, so the picture does not restart.
      if (tile.video.srcObject !== stream) tile.setStream(stream);
      else if (tile.video.videoWidth === 0) tile.refresh();
      else tile.listen(stream);
    });
    r.on('media-mode', ({ mode }) => this.showMode(mode));
    r.on('recording', (s) => this.showRecording(s));
    r.on('activespeaker', ({ peer }) => this.setSpeaker(peer));
    r.on('connection-state', ({ peer, state }) => this.tiles.get(peer.id)?.setConnection(state));
    r.on('local-state', (s) => {
      this.selfTile.setState(s);
      this.syncControls();
      this.syncPeople();
      this.layout();
    });
    r.on('local-video', ({ track, screen }) => {
      this.selfTile.setStream(track ? new MediaStream([track]) : null, !screen);
      this.selfTile.listen(this.room.localStream);
    });
    r.on('screen', ({ peer, stream }) => this.setScreen(peer.id, peer.name, stream));
    r.on('local-screen', ({ stream }) => this.setScreen('self', this.choice.name, stream));
    r.on('local-track-ended', () => {
      this.selfTile.listen(this.room.localStream);
      this.syncControls();
    });
    r.on('joined', ({ id, rejoined }) => {
      this.selfTile.setPeerId(id);
      if (rejoined) this.notice('The connection was lost for too long; rejoined the room.', 'info');
    });
    r.on('error', (e) => this.onError(e));
  }

  private showMode(mode: 'mesh' | 'sfu'): void {
    this.modeBadge.dataset.mode = mode;
    this.modeBadge.hidden = mode !== 'sfu';
    if (this.recordButton) this.recordButton.hidden = mode !== 'sfu' && !this.room.recording.active;
  }

  private showRecording(s: RecordingState): void {
    this.recordBadge.hidden = !s.active;
    this.recordBadge.dataset.active = String(s.active);
    this.recordBadge.title = s.active
      ? `Recording since ${new Date(s.since ?? Date.now()).toLocaleTimeString()}${s.name ? `, started by ${s.name}` : ''}`
      : '';
    this.recordButton.setAttribute('aria-pressed', String(s.active));
    this.recordButton.setAttribute('aria-label', s.active ? 'Stop recording' : 'Record the call');
    this.recordButton.hidden = this.room.mediaMode !== 'sfu' && !s.active;
    const label = this.recordButton.querySelector('.ctl-label');
    if (label) label.textContent = s.active ? 'Stop rec' : 'Record';
    if (s.active) {
      this.notice(s.name ? `${s.name} started recording this call.` : 'This call is being recorded.', 'info', 'recording-notice');
    } else if (s.reason && s.reason !== 'rejoined') {
      const why: Record<string, string> = {
        mesh: 'the call went back to peer to peer',
        'write-failed': 'the server could not write the files',
        'disk-full': "the server's disk is nearly full",
      };
      this.notice(`Recording stopped${why[s.reason] ? `: ${why[s.reason]}` : s.name ? ` by ${s.name}` : ''}.`,
        s.reason === 'stopped' || s.reason === 'mesh' ? 'info' : 'warn', 'recording-notice');
    }
  }

  private async toggleRecording(): Promise<void> {
    try {
      if (this.room.recording.active) await this.room.stopRecording();
      else await this.room.startRecording();
    } catch (err) {
      const e = err instanceof KaiwaError ? err : new KaiwaError('internal', String(err));
      this.notice(`Recording: ${e.message}`, 'warn', 'recording-error', e.code);
    }
  }

  /** A tile's speaking detector flipped. In a mesh it also decides the active speaker: somebody who starts talking
   * while the current speaker is quiet takes over, and silence keeps the last one (as kaiwa's detector does). */
  private onSpeaking(t: Tile, on: boolean): void {
    this.syncPeople();
    if (!on || this.room.mediaMode === 'sfu') return;
    const id = t.self ? this.room.id : t.peerId;
    const current = this.speaker === null ? null : this.speaker === this.room.id ? this.selfTile : this.tiles.get(this.speaker);
    if (id && (current === null || current === undefined || current.el.dataset.speaking !== 'true')) this.setSpeaker(id);
  }

  private setSpeaker(peer: string | null): void {
    if (peer === this.speaker) return;
    this.speaker = peer;
    if (peer !== null && peer !== this.room.id) this.lastRemoteSpeaker = peer;
    for (const t of [this.selfTile, ...this.tiles.values()]) {
      const active = peer !== null && (t.self ? peer === this.room.id : peer === t.peerId);
      t.el.classList.toggle('active-speaker', active);
      t.el.dataset.activeSpeaker = String(active);
    }
    if (this.speakerView) this.layout();
  }

  private toggleSpeakerView(): void {
    this.speakerView = !this.speakerView;
    this.speakerViewButton.setAttribute('aria-pressed', String(this.speakerView));
    this.layout();
  }

  private allTiles(): Tile[] {
    return [this.selfTile, ...this.tiles.values(), ...this.screens.values()];
  }

  /** A screen shared beside a camera gets its own tile (the presenter's camera stays in its tile). */
  private setScreen(key: string, name: string, stream: MediaStream | null): void {
    this.screens.get(key)?.destroy();
    this.screens.delete(key);
    if (stream) {
      const self = key === 'self';
      const t = new Tile(self ? this.room.id : key, name, self, (x) => this.togglePin(x), () => undefined, true);
      t.video.muted = true;
      if (!self) t.onDestroy = this.room.observeVideo(t.video);
      t.setStream(stream);
      t.setState({ audioMuted: false, videoOff: false, screenSharing: true });
      this.screens.set(key, t);
      this.grid.append(t.el);
    } else if (this.pinned === `screen:${key}`) {
      this.pinned = null;
    }
    this.layout();
  }

  /** The tile that takes the stage: the pinned one, else a shared screen (others' first), else none. */
  private featured(): Tile | null {
    if (this.pinned) {
      const t = this.allTiles().find((x) => x.key === this.pinned);
      if (t) return t;
      this.pinned = null;
    }
    const others = [...this.screens.values()].find((t) => !t.self) ??
      [...this.tiles.values()].find((t) => t.state.screenSharing); // an SDK peer sharing in place of its camera
    if (others) return others;
    const mine = this.screens.get('self') ?? (this.selfTile.state.screenSharing ? this.selfTile : null);
    if (mine && this.tiles.size > 0) return mine;
    if (!this.speakerView) return null;
    // Speaker view: the remote person talking now, or the last one while we talk ourselves.
    const remote = this.speaker !== null && this.speaker !== this.room.id ? this.speaker : this.lastRemoteSpeaker;
    return (remote !== null ? this.tiles.get(remote) : undefined) ?? null;
  }

  private layout(): void {
    if (!this.grid) return;
    const tiles = this.allTiles();
    const featured = this.featured();
    const mode = stageMode(tiles.length, featured !== null, this.tiles.size === 1 && this.screens.size === 0);
    this.grid.dataset.mode = mode;
    this.grid.dataset.count = String(tiles.length);
    this.emptyState.hidden = this.tiles.size > 0;
    for (const t of tiles) {
      t.el.classList.remove('featured', 'strip', 'pip', 'main');
      t.setPinned(this.pinned === t.key);
    }
    const W = this.grid.clientWidth - 2 * GAP;
    const H = this.grid.clientHeight - 2 * GAP;
    if (mode === 'spotlight' && featured) {
      featured.el.classList.add('featured');
      // Others in a strip: the featured tile keeps most of the stage.
      const others = tiles.filter((t) => t !== featured);
      for (const t of others) t.el.classList.add('strip');
      // One row of 4:3 tiles, as high as 18 % of the stage (64–140 px), narrower when many must fit the width.
      let stripH = Math.max(64, Math.min(140, Math.round(H * 0.18)));
      let stripW = Math.round((stripH * 4) / 3);
      const fitW = Math.floor((W - GAP * (others.length - 1)) / Math.max(1, others.length));
      if (stripW > fitW) {
        stripW = Math.max(48, fitW);
        stripH = Math.round((stripW * 3) / 4);
      }
      this.grid.style.setProperty('--strip-h', `${stripH}px`);
      this.grid.style.setProperty('--strip-w', `${stripW}px`);
      featured.el.style.order = '-1';
      for (const t of others) t.el.style.order = '0';
    } else if (mode === 'pip') {
      const other = tiles.find((t) => !t.self)!;
      other.el.classList.add('main');
      this.selfTile.el.classList.add('pip');
      const pipW = Math.round(Math.max(96, Math.min(260, W * (W > H ? 0.2 : 0.3))));
      const pipAspect = W > H ? 4 / 3 : 3 / 4;
      this.grid.style.setProperty('--pip-w', `${pipW}px`);
      this.grid.style.setProperty('--pip-h', `${Math.round(pipW / pipAspect)}px`);
    } else {
      const [minAspect, maxAspect] = aspectRange(W, H);
      const fit = bestGrid(tiles.length, W, H, minAspect, maxAspect, GAP);
      this.grid.style.setProperty('--tile-w', `${fit.width}px`);
      this.grid.style.setProperty('--tile-h', `${fit.height}px`);
      this.grid.dataset.cols = String(fit.cols);
    }
  }

  private togglePin(t: Tile): void {
    this.pinned = this.pinned === t.key ? null : t.key;
    this.layout();
  }

  private addPeer(p: RemotePeer): void {
    if (this.tiles.has(p.id)) return;
    const tile = new Tile(p.id, p.name, false, (t) => this.togglePin(t), (t, on) => this.onSpeaking(t, on));
    tile.onDestroy = this.room.observeVideo(tile.video); // its size picks the simulcast layer kaiwa sends
    tile.setState(p.state);
    tile.setConnection(p.connectionState);
    this.tiles.set(p.id, tile);
    this.grid.append(tile.el);
    if (p.stream.getTracks().length > 0) tile.setStream(p.stream);
    this.files.addPeer(p);
    if (this.joined) this.toast(`${p.name} joined`, 'join');
    this.syncPeople();
    this.layout();
  }

  private removePeer(p: RemotePeer, reason: string): void {
    this.tiles.get(p.id)?.destroy();
    this.tiles.delete(p.id);
    this.screens.get(p.id)?.destroy();
    this.screens.delete(p.id);
    this.peerQuality.delete(p.id);
    if (this.pinned === p.id || this.pinned === `screen:${p.id}`) this.pinned = null;
    if (this.lastRemoteSpeaker === p.id) this.lastRemoteSpeaker = null;
    if (this.speaker === p.id) this.setSpeaker(null);
    this.files.removePeer(p);
    if (reason !== 'rejoin') {
      this.toast(reason === 'left' ? `${p.name} left` : `${p.name} lost the connection`, 'leave');
    }
    this.syncPeople();
    this.layout();
  }

  // ----- people -------------------------------------------------------------------------------

  private syncPeople(): void {
    const n = this.tiles.size + 1;
    this.count.textContent = String(n);
    this.peopleButton.setAttribute('aria-label', `People in the call: ${n}`);
    const item = (name: string, state: MediaState, self: boolean, speaking: boolean, id: string) =>
      h('li', { class: 'person', testid: 'people-item', 'data-peer-id': id, 'data-speaking': String(speaking) },
        h('span', { class: 'person-name', title: name }, self ? `${name} (you)` : name),
        state.audioMuted ? h('span', { class: 'badge', role: 'img', 'aria-label': 'Microphone off', title: 'Microphone off' }, icon('mic-off')) : null,
        state.videoOff ? h('span', { class: 'badge', role: 'img', 'aria-label': 'Camera off', title: 'Camera off' }, icon('camera-off')) : null,
        state.screenSharing ? h('span', { class: 'badge screen' }, 'presenting') : null);
    this.peopleList.replaceChildren(
      item(this.choice.name, this.room.state, true, this.selfTile.el.dataset.speaking === 'true', this.room.id),
      ...[...this.tiles.values()].map((t) => item(t.name, t.state, false, t.el.dataset.speaking === 'true', t.peerId)));
  }

  private togglePeople(open = this.peoplePanel.hidden): void {
    this.peoplePanel.hidden = !open;
    this.peopleButton.setAttribute('aria-expanded', String(open));
    if (open) this.syncPeople();
  }

  private toggleInvite(open = this.invitePanel.hidden): void {
    this.invitePanel.hidden = !open;
    this.root.querySelector('[data-testid="invite-button"]')?.setAttribute('aria-expanded', String(open));
  }

  // ----- devices ------------------------------------------------------------------------------

  private renderSettings(): HTMLElement {
    const cam = h('select', { testid: 'settings-camera-select', 'aria-label': 'Camera' });
    const mic = h('select', { testid: 'settings-mic-select', 'aria-label': 'Microphone' });
    const change = (kind: 'audio' | 'video', sel: HTMLSelectElement) => async () => {
      sel.disabled = true;
      try {
        await this.room.switchDevice(kind, sel.value);
        savePrefs(kind === 'audio' ? { audio: sel.value } : { video: sel.value });
        if (kind === 'audio') this.selfTile.listen(this.room.localStream);
        this.syncControls();
      } catch (err) {
        this.onError(err instanceof KaiwaError ? err : new KaiwaError('media-failed', String(err)));
      } finally {
        sel.disabled = false;
      }
    };
    cam.addEventListener('change', change('video', cam));
    mic.addEventListener('change', change('audio', mic));
    const el = h('section', { class: 'panel settings', testid: 'settings-panel', 'aria-label': 'Devices' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Camera and microphone'),
        h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Close devices', onclick: () => this.toggleSettings(false) }, '×')),
      h('label', { class: 'device' }, h('span', {}, 'Camera'), cam),
      h('label', { class: 'device' }, h('span', {}, 'Microphone'), mic),
      h('p', { class: 'hint' }, SHORTCUTS.map((s) => `${s.keys}: ${s.what}`).join(' · ')));
    return el;
  }

  private toggleSettings(open = this.settings.hidden): void {
    this.settings.hidden = !open;
    this.root.querySelector('[data-testid="toggle-settings"]')?.setAttribute('aria-expanded', String(open));
    if (!open) return;
    const cam = this.settings.querySelector<HTMLSelectElement>('[data-testid="settings-camera-select"]')!;
    const mic = this.settings.querySelector<HTMLSelectElement>('[data-testid="settings-mic-select"]')!;
    const ls = this.room.localStream;
    void fillDeviceSelect(cam, 'videoinput', ls?.getVideoTracks()[0]?.getSettings().deviceId ?? '');
    void fillDeviceSelect(mic, 'audioinput', ls?.getAudioTracks()[0]?.getSettings().deviceId ?? '');
  }

  // ----- controls -----------------------------------------------------------------------------

  private syncControls(): void {
    const s = this.room.state;
    const hasAudio = (this.room.localStream?.getAudioTracks().length ?? 0) > 0;
    const hasVideo = (this.room.localStream?.getVideoTracks().length ?? 0) > 0;
    const micOn = hasAudio && !s.audioMuted;
    const camOn = hasVideo && !s.videoOff;
    this.micButton.disabled = !hasAudio;
    this.camButton.disabled = !hasVideo;
    // aria-pressed says the device is on; the label says what a press does.
    this.micButton.setAttribute('aria-pressed', String(micOn));
    this.camButton.setAttribute('aria-pressed', String(camOn));
    this.screenButton.setAttribute('aria-pressed', String(s.screenSharing));
    this.micButton.setAttribute('aria-label', !hasAudio ? 'No microphone' : micOn ? 'Mute microphone (Ctrl+D)' : 'Unmute microphone (Ctrl+D)');
    this.camButton.setAttribute('aria-label', !hasVideo ? 'No camera' : camOn ? 'Turn camera off (Ctrl+E)' : 'Turn camera on (Ctrl+E)');
    this.screenButton.setAttribute('aria-label', s.screenSharing ? 'Stop sharing your screen' : 'Share your screen');
    this.micButton.title = this.micButton.getAttribute('aria-label')!;
    this.camButton.title = this.camButton.getAttribute('aria-label')!;
    this.screenButton.title = this.screenButton.getAttribute('aria-label')!;
    setIcon(this.micButton, micOn ? 'mic' : 'mic-off');
    setIcon(this.camButton, camOn ? 'camera' : 'camera-off');
    this.micButton.classList.toggle('off', !micOn);
    this.camButton.classList.toggle('off', !camOn);
    this.screenButton.classList.toggle('on', s.screenSharing);
  }

  private onKey = (ev: KeyboardEvent): void => {
    if (!(ev.ctrlKey || ev.metaKey) || ev.altKey) return;
    const k = ev.key.toLowerCase();
    if (k === 'd' && !ev.shiftKey) {
      ev.preventDefault();
      if (!this.micButton.disabled) this.room.setAudioMuted(!this.room.state.audioMuted);
    } else if (k === 'e' && !ev.shiftKey) {
      ev.preventDefault();
      if (!this.camButton.disabled) this.room.setVideoOff(!this.room.state.videoOff);
    } else if (k === 'c' && ev.shiftKey) {
      ev.preventDefault();
      if (!this.panelVisible()) this.togglePanel();
      this.chat.input.focus();
    }
  };

  private onVisibility = (): void => {
    if (!document.hidden) {
      this.titleUnread = 0;
      document.title = `${this.roomName} · kaiwa`;
    }
  };

  private async toggleScreen(): Promise<void> {
    try {
      if (this.room.state.screenSharing) await this.room.stopScreenShare();
      else await this.room.startScreenShare({ keepCamera: true });
    } catch (err) {
      this.onError(err instanceof KaiwaError ? err : new KaiwaError('screen-share-failed', String(err)));
    }
    this.syncControls();
  }

  /** Whether the chat/files panel is on screen (always on wide windows; toggled on phones). */
  private panelVisible(): boolean {
    return getComputedStyle(this.side).display !== 'none';
  }

  private togglePanel(): void {
    const open = !this.side.classList.contains('open');
    this.side.classList.toggle('open', open);
    this.panelButton.setAttribute('aria-expanded', String(open));
    if (open) {
      this.unread = 0;
      this.panelButton.dataset.unread = '';
    }
  }

  private wireDrop(room: HTMLElement): void {
    let depth = 0;
    const hasFiles = (ev: DragEvent) => [...(ev.dataTransfer?.types ?? [])].includes('Files');
    room.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev)) return;
      depth += 1;
      this.dropOverlay.hidden = false;
    });
    room.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) this.dropOverlay.hidden = true;
    });
    room.addEventListener('dragover', (ev) => {
      if (hasFiles(ev)) ev.preventDefault();
    });
    room.addEventListener('drop', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth = 0;
      this.dropOverlay.hidden = true;
      void this.files.sendFiles([...(ev.dataTransfer?.files ?? [])]);
    });
  }

  private leave(): void {
    this.stop();
    this.room.leave();
    for (const t of this.tiles.values()) t.destroy();
    this.tiles.clear();
    this.selfTile.destroy();
    for (const t of this.screens.values()) t.destroy();
    this.screens.clear();
    clear(this.root);
    this.root.append(h('main', { class: 'landing', testid: 'left-screen' },
      h('h1', {}, 'You left the room'),
      h('p', { class: 'lead' }, this.roomName),
      h('div', { class: 'row center' },
        h('button', { type: 'button', class: 'primary', testid: 'rejoin', onclick: () => location.reload() }, 'Rejoin'),
        h('button', { type: 'button', class: 'ghost', testid: 'home', onclick: () => location.assign('/') }, 'Home'))));
  }

  private stop(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    if (this.bannerTimer) clearInterval(this.bannerTimer);
    this.bannerTimer = null;
    this.resize?.disconnect();
    document.removeEventListener('keydown', this.onKey);
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  // ----- status and errors ----------------------------------------------------------------------

  private showSignaling(s: SignalingState): void {
    this.sigState.dataset.state = s;
    this.sigState.textContent = s === 'connected' ? 'Connected' : s === 'reconnecting' ? 'Reconnecting…' :
      s === 'connecting' ? 'Connecting…' : 'Disconnected';
    if (!this.joined) return;
    this.banner.dataset.state = s;
    if (s === 'connected') {
      if (!this.banner.hidden) this.toast('Connection restored', 'connection');
      this.banner.hidden = true;
      if (this.bannerTimer) clearInterval(this.bannerTimer);
      this.bannerTimer = null;
      return;
    }
    if (s !== 'reconnecting' && s !== 'closed') return;
    this.banner.hidden = false;
    const render = () => {
      const sig = this.room.signaling;
      const due = sig.nextAttemptAt;
      const secs = due ? Math.max(0, Math.ceil((due - Date.now()) / 1000)) : 0;
      const text = s === 'closed'
        ? 'Disconnected from the server. Chat, files and new participants are on hold; calls already connected may continue.'
        : `Connection to the server lost. Reconnecting${secs > 0 ? ` in ${secs} s` : '…'} (attempt ${sig.attempts}). ` +
          'Calls already connected continue; messages wait until it is back.';
      this.banner.replaceChildren(h('span', { testid: 'connection-banner-text' }, text),
        h('button', { type: 'button', class: 'primary small', testid: 'connection-retry', onclick: () => this.room.signaling.retryNow() },
          'Retry now'));
    };
    render();
    if (this.bannerTimer) clearInterval(this.bannerTimer);
    this.bannerTimer = setInterval(render, 1000);
  }

  private onError(e: KaiwaError): void {
    if (e.code.startsWith('media-')) {
      this.notice(e.message, 'warn', 'media-error', e.code);
      this.syncControls();
    } else if (e.code === 'peer-connection') {
      console.warn('kaiwa:', e.message);
    } else if (e.code === 'connect-failed' && this.joined) {
      /* shown by the banner */
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

  /** A short message at the bottom that goes away by itself (joins, leaves, offers, chat while hidden). */
  private toast(text: string, kind: string): void {
    const el = h('div', { class: 'toast', testid: 'toast', 'data-kind': kind }, text);
    this.toasts.append(el);
    while (this.toasts.children.length > 3) this.toasts.firstElementChild?.remove();
    setTimeout(() => el.remove(), 5000);
  }

  private renderJoinError(err: unknown): void {
    this.stop();
    const e = err instanceof KaiwaError ? err : new KaiwaError('internal', String(err));
    let title = 'Could not join';
    let text = e.code === 'room-full' ? 'This room is full.' :
      e.code === 'connect-failed' ? 'Cannot reach the server. Check your connection and try again.' : e.message;
    let reason: string = e.code;
    if (e.code === 'unauthorized') {
      const problem = classifyRefusal(e.message, this.token !== null);
      // A refused token is not tried again on "Try again" or a later visit without one.
      if (problem !== 'token-missing') forgetToken(this.roomName);
      const x = explain(problem, this.token ? readClaims(this.token) : null, this.roomName);
      title = x.title;
      text = x.text;
      reason = problem;
    }
    clear(this.root);
    this.root.append(h('main', { class: 'landing', testid: 'join-error', 'data-code': e.code, 'data-reason': reason },
      h('h1', {}, title),
      h('p', { class: 'lead', testid: 'join-error-text' }, text),
      h('div', { class: 'row center' },
        // The same token would be refused again: no "Try again" for a token problem.
        reason.startsWith('token-') && reason !== 'token-missing' ? null
          : h('button', { type: 'button', class: 'primary', testid: 'try-again', onclick: () => location.reload() }, 'Try again'),
        h('button', { type: 'button', class: 'ghost', onclick: () => location.assign('/') }, 'Home'))));
  }

  // ----- stats --------------------------------------------------------------------------------

  private async pollStats(): Promise<void> {
    let worst: Quality = 'unknown';
    let out = 0;
    for (const [id, tile] of this.tiles) {
      try {
        const s = await this.room.getStats(id);
        if (!s) continue;
        const expectVideo = !tile.state.videoOff || tile.state.screenSharing;
        const { level, reasons } = rate(s, expectVideo);
        tile.quality.set(level, `${describe(s)}${reasons.length ? ` (${reasons.join(', ')})` : ''}`);
        const q = tile.quality.el.dataset;
        q.rttMs = s.rttMs === null ? '' : String(Math.round(s.rttMs));
        q.inboundBitrate = String(Math.round(s.inboundBitrate));
        q.outboundBitrate = String(Math.round(s.outboundBitrate));
        q.videoBitrate = String(Math.round(s.video.bitrate));
        q.packetLoss = String(s.packetLoss);
        this.peerQuality.set(id, { level, stats: s });
        out += s.outboundBitrate;
        worst = worse(worst, level);
      } catch {
        /* the peer left meanwhile */
      }
    }
    // Our own tile: how our connections are doing overall (the worst of them) and what we send.
    if (this.tiles.size > 0 && worst !== 'unknown') {
      // Through the server we send one copy (every peer's figure is the same publish connection).
      const sent = this.room.mediaMode === 'sfu' ? out / this.tiles.size : out;
      this.selfTile.quality.set(worst, this.room.mediaMode === 'sfu' ? `sending ${Math.round(sent / 1000)} kbps via server`
        : `sending ${Math.round(out / 1000)} kbps to ${this.tiles.size} ${this.tiles.size === 1 ? 'person' : 'people'}`);
      out = sent;
      this.selfTile.quality.el.dataset.outboundBitrate = String(Math.round(out));
    } else {
      this.selfTile.quality.set('unknown', '');
    }
    this.selfTile.quality.el.hidden = this.tiles.size === 0; // nothing to rate while alone
  }
}

function worse(a: Quality, b: Quality): Quality {
  const rank: Record<Quality, number> = { unknown: -1, good: 0, fair: 1, poor: 2 };
  return rank[b] > rank[a] ? b : a;
}

function videoOnly(stream: MediaStream): MediaStream | null {
  const v = stream.getVideoTracks();
  return v.length ? new MediaStream(v) : null;
}
