/**
 * The pre-join screen: camera preview, name, camera/microphone pickers and on/off toggles, the invite link. Nothing
 * is sent to the room until "Join now"; the chosen stream and switches go to the Room as `localStream` and
 * `initialState`, so the others never see a flash of an open microphone.
 */
import { getLocalMedia, type KaiwaError } from '../sdk/index.js';
import { audioConstraints, videoConstraints } from '../sdk/media.js';
import { h, icon, initials, setIcon } from './dom.js';
import { inviteBox } from './invite.js';
import { savedName, saveName } from './landing.js';
import { SpeakingDetector, audioContext } from './speaking.js';

export interface PrejoinChoice {
  name: string;
  stream: MediaStream | null;
  mediaError: KaiwaError | null;
  micOn: boolean;
  camOn: boolean;
}

export interface PrejoinOptions {
  room: string;
  /** Name from the link (`?name=`) or the token's `sub`, else the remembered one. */
  name: string | null;
  /** A problem with the invite seen before asking the server (e.g. it expired). */
  warning?: { title: string; text: string; code: string } | null;
}

const PREFS_KEY = 'kaiwa.devices';

interface DevicePrefs { audio?: string; video?: string; micOn?: boolean; camOn?: boolean }

function loadPrefs(): DevicePrefs {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY) ?? '{}') as DevicePrefs;
  } catch {
    return {};
  }
}

export function savePrefs(patch: DevicePrefs): void {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify({ ...loadPrefs(), ...patch }));
  } catch {
    /* private mode */
  }
}

/** Fills a <select> with the devices of one kind; keeps `current` selected. */
export async function fillDeviceSelect(select: HTMLSelectElement, kind: MediaDeviceKind, current: string): Promise<void> {
  let devices: MediaDeviceInfo[] = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind && d.deviceId);
  } catch {
    /* no devices API */
  }
  select.replaceChildren(...devices.map((d, i) => h('option', { value: d.deviceId },
    d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`)));
  if (current && devices.some((d) => d.deviceId === current)) select.value = current;
  select.disabled = devices.length === 0;
  select.closest('.device')?.toggleAttribute('hidden', devices.length === 0);
}

export function renderPrejoin(root: HTMLElement, opts: PrejoinOptions): Promise<PrejoinChoice> {
  return new Promise((resolve) => {
    const prefs = loadPrefs();
    let stream: MediaStream | null = null;
    let mediaError: KaiwaError | null = null;
    let micOn = prefs.micOn !== false;
    let camOn = prefs.camOn !== false;
    let done = false;

    const video = h('video', { class: 'mirror', testid: 'prejoin-preview', autoplay: true, playsinline: true });
    video.muted = true;
    const avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' });
    const status = h('p', { class: 'prejoin-status', testid: 'prejoin-status', role: 'status' }, 'Starting camera and microphone…');
    const meter = h('div', { class: 'meter', testid: 'prejoin-meter', 'aria-hidden': 'true' }, h('span', {}));
    const detector = new SpeakingDetector(() => undefined, (level) => {
      (meter.firstElementChild as HTMLElement).style.width = `${Math.round(level * 100)}%`;
    });
    const micBtn = h('button', { type: 'button', class: 'ctl round', testid: 'prejoin-mic' }, icon('mic'));
    const camBtn = h('button', { type: 'button', class: 'ctl round', testid: 'prejoin-camera' }, icon('camera'));
    const micSelect = h('select', { testid: 'prejoin-mic-select', 'aria-label': 'Microphone' });
    const camSelect = h('select', { testid: 'prejoin-camera-select', 'aria-label': 'Camera' });
    const nameInput = h('input', { id: 'prejoin-name', testid: 'prejoin-name', maxlength: 64, required: true,
      autocomplete: 'nickname', placeholder: 'Your name', value: opts.name ?? savedName() });
    const joinBtn = h('button', { type: 'submit', class: 'primary big', testid: 'prejoin-join' }, 'Join now');
    const formError = h('p', { class: 'form-error', testid: 'form-error', role: 'alert' });
    formError.hidden = true;

    const sync = () => {
      const hasA = (stream?.getAudioTracks().length ?? 0) > 0;
      const hasV = (stream?.getVideoTracks().length ?? 0) > 0;
      for (const t of stream?.getAudioTracks() ?? []) t.enabled = micOn;
      for (const t of stream?.getVideoTracks() ?? []) t.enabled = camOn;
      micBtn.disabled = !hasA;
      camBtn.disabled = !hasV;
      micBtn.setAttribute('aria-pressed', String(hasA && micOn));
      camBtn.setAttribute('aria-pressed', String(hasV && camOn));
      micBtn.setAttribute('aria-label', !hasA ? 'No microphone' : micOn ? 'Turn microphone off' : 'Turn microphone on');
      camBtn.setAttribute('aria-label', !hasV ? 'No camera' : camOn ? 'Turn camera off' : 'Turn camera on');
      micBtn.title = micBtn.getAttribute('aria-label')!;
      camBtn.title = camBtn.getAttribute('aria-label')!;
      micBtn.classList.toggle('off', !(hasA && micOn));
      camBtn.classList.toggle('off', !(hasV && camOn));
      setIcon(micBtn, hasA && micOn ? 'mic' : 'mic-off');
      setIcon(camBtn, hasV && camOn ? 'camera' : 'camera-off');
      preview.classList.toggle('video-off', !(hasV && camOn));
      avatar.textContent = initials(nameInput.value || '?');
      joinBtn.disabled = !nameInput.value.trim();
    };
    micBtn.addEventListener('click', () => { micOn = !micOn; savePrefs({ micOn }); sync(); });
    camBtn.addEventListener('click', () => { camOn = !camOn; savePrefs({ camOn }); sync(); });
    nameInput.addEventListener('input', sync);

    const switchTo = async (kind: 'audio' | 'video', deviceId: string) => {
      try {
        const c = kind === 'audio' ? audioConstraints() : videoConstraints();
        const s = await navigator.mediaDevices.getUserMedia(kind === 'audio'
          ? { audio: { ...c, deviceId: { exact: deviceId } } } : { video: { ...c, deviceId: { exact: deviceId } } });
        const track = s.getTracks()[0]!;
        if (done) {
          track.stop();
          return;
        }
        if (!stream) stream = new MediaStream();
        for (const old of kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks()) {
          stream.removeTrack(old);
          old.stop();
        }
        stream.addTrack(track);
        savePrefs(kind === 'audio' ? { audio: deviceId } : { video: deviceId });
        attach();
      } catch (err) {
        status.textContent = `Could not switch the ${kind === 'audio' ? 'microphone' : 'camera'}: ${(err as Error).message}`;
      }
    };
    micSelect.addEventListener('change', () => void switchTo('audio', micSelect.value));
    camSelect.addEventListener('change', () => void switchTo('video', camSelect.value));

    const attach = () => {
      video.srcObject = stream && stream.getVideoTracks().length ? new MediaStream(stream.getVideoTracks()) : null;
      if (video.srcObject) void video.play().catch(() => undefined);
      detector.attach(stream);
      sync();
    };

    const preview = h('div', { class: 'prejoin-preview tile' }, video, avatar,
      h('div', { class: 'prejoin-toggles' }, micBtn, camBtn), meter);
    const form = h('form', { class: 'card prejoin-form', testid: 'prejoin-form', novalidate: true },
      h('label', { for: 'prejoin-name' }, 'Your name'), nameInput,
      h('label', { class: 'device' }, h('span', {}, 'Camera'), camSelect),
      h('label', { class: 'device' }, h('span', {}, 'Microphone'), micSelect),
      formError, joinBtn);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = nameInput.value.trim();
      if (!name) {
        formError.textContent = 'Please enter your name.';
        formError.hidden = false;
        nameInput.focus();
        return;
      }
      saveName(name);
      audioContext(); // from this click: lets the speaking indicators run where autoplay rules are strict
      joinBtn.disabled = true;
      joinBtn.textContent = 'Joining…';
      void mediaReady.then(() => {
        done = true;
        detector.destroy();
        video.srcObject = null;
        resolve({ name, stream, mediaError, micOn, camOn });
      });
    });

    const warn = opts.warning
      ? h('div', { class: 'notice error', testid: 'prejoin-token-problem', role: 'alert', 'data-code': opts.warning.code },
        h('div', {}, h('strong', {}, opts.warning.title), h('p', {}, opts.warning.text)))
      : null;

    root.replaceChildren(h('main', { class: 'prejoin', testid: 'prejoin', 'data-room': opts.room },
      h('div', { class: 'prejoin-media' }, preview, status),
      h('div', { class: 'prejoin-side' },
        h('h1', {}, 'Ready to join?'),
        h('p', { class: 'lead' }, 'Room ', h('strong', { testid: 'prejoin-room' }, opts.room)),
        warn,
        form,
        h('h2', { class: 'small-heading' }, 'Invite others'),
        inviteBox(opts.room, { note: 'Anyone with this link can ask to join this room.' }))));
    sync();
    (nameInput.value ? joinBtn : nameInput).focus();
    // Browsers start audio only after a gesture: the first click or key lets the level meter move.
    root.addEventListener('pointerdown', () => audioContext(), { once: true });
    root.addEventListener('keydown', () => audioContext(), { once: true });

    const mediaReady = (async () => {
      const res = await getLocalMedia({ audio: true, video: true });
      if (done) {
        for (const t of res.stream?.getTracks() ?? []) t.stop();
        return;
      }
      stream = res.stream;
      mediaError = res.error;
      status.textContent = res.error ? res.error.message : '';
      status.dataset.code = res.error?.code ?? '';
      if (res.error) status.classList.add('warn');
      attach();
      // Switch to the devices chosen last time, if still there.
      await fillDeviceSelect(camSelect, 'videoinput', stream?.getVideoTracks()[0]?.getSettings().deviceId ?? '');
      await fillDeviceSelect(micSelect, 'audioinput', stream?.getAudioTracks()[0]?.getSettings().deviceId ?? '');
      if (prefs.video && prefs.video !== camSelect.value && [...camSelect.options].some((o) => o.value === prefs.video)) {
        camSelect.value = prefs.video;
        await switchTo('video', prefs.video);
      }
      if (prefs.audio && prefs.audio !== micSelect.value && [...micSelect.options].some((o) => o.value === prefs.audio)) {
        micSelect.value = prefs.audio;
        await switchTo('audio', prefs.audio);
      }
      root.querySelector('[data-testid="prejoin"]')?.setAttribute('data-ready', 'true');
    })();
  });
}
