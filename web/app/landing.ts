/** The landing page: pick (or make up) a room name and a display name, then go to /room/<name>. */
import { clear, h, randomRoomName } from './dom.js';

export const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_KEY = 'kaiwa.displayName';

export function savedName(): string {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

export function saveName(name: string): void {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    /* private mode */
  }
}

export function roomUrl(room: string): string {
  return `/room/${encodeURIComponent(room)}`;
}

export function renderLanding(root: HTMLElement, notice: string | null): void {
  clear(root);
  document.title = 'kaiwa';
  const roomInput = h('input', {
    id: 'room', name: 'room', testid: 'room-input', value: randomRoomName(), required: true, maxlength: 64,
    pattern: '[A-Za-z0-9_.\\-]{1,64}', autocomplete: 'off', spellcheck: 'false',
    title: 'Letters, digits, "_", "." and "-" (up to 64)',
  });
  const nameInput = h('input', {
    id: 'name', name: 'name', testid: 'name-input', value: savedName(), required: true, maxlength: 64,
    autocomplete: 'nickname', placeholder: 'How others see you',
  });
  const error = h('p', { class: 'form-error', testid: 'form-error', role: 'alert' });
  error.hidden = true;
  const form = h('form', { class: 'card join-form', testid: 'join-form', novalidate: true },
    h('label', { for: 'room' }, 'Room'),
    h('div', { class: 'row' }, roomInput,
      h('button', { type: 'button', class: 'ghost', testid: 'random-room', title: 'Another random name',
        onclick: () => { roomInput.value = randomRoomName(); } }, '↻')),
    h('label', { for: 'name' }, 'Your name'),
    nameInput,
    error,
    h('button', { type: 'submit', class: 'primary', testid: 'join-button' }, 'Continue'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = roomInput.value.trim();
    const name = nameInput.value.trim();
    if (!ROOM_RE.test(room)) {
      error.textContent = 'A room name is 1–64 letters, digits, "_", "." or "-".';
      error.hidden = false;
      roomInput.focus();
      return;
    }
    if (!name) {
      error.textContent = 'Please enter your name.';
      error.hidden = false;
      nameInput.focus();
      return;
    }
    saveName(name);
    location.assign(roomUrl(room)); // the name is remembered, not put in the link
  });
  root.append(h('main', { class: 'landing', testid: 'landing' },
    h('h1', {}, 'kaiwa'),
    h('p', { class: 'lead' }, 'Video calls, screen sharing, chat and file sharing — right in the browser.'),
    notice ? h('p', { class: 'notice' }, notice) : null,
    form,
    h('p', { class: 'hint' }, 'Share the room link with the people you want to talk to.'),
  ));
  (nameInput.value ? roomInput : nameInput).focus();
}
