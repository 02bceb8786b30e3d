/** The kaiwa web app: one page for the landing form ("/") and the room ("/room/<name>"). */
import { renderLanding } from './landing.js';
import { renderRoom } from './room-view.js';

const ROOM_PATH = /^\/room\/([^/]+)\/?$/;

function route(): void {
  const root = document.getElementById('app');
  if (!root) return;
  const m = ROOM_PATH.exec(location.pathname);
  if (m) {
    let room = '';
    try {
      room = decodeURIComponent(m[1]!);
    } catch {
      /* a malformed escape: treated as an invalid name below */
    }
    const name = new URLSearchParams(location.search).get('name');
    renderRoom(root, room, name);
  } else {
    renderLanding(root, location.pathname === '/' || location.pathname === '/index.html' ? null : 'No such page.');
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', route, { once: true });
else route();
