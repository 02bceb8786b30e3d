/** The kaiwa web app: one page for the landing form ("/") and the room ("/room/<name>": pre-join, then the call). */
import { renderLanding, ROOM_RE } from './landing.js';
import { renderPrejoin } from './prejoin.js';
import { RoomView } from './room-view.js';
import { explain, precheck, readClaims, takeUrlParams } from './token.js';

const ROOM_PATH = /^\/room\/([^/]+)\/?$/;

async function enterRoom(root: HTMLElement, room: string): Promise<void> {
  if (!ROOM_RE.test(room)) {
    renderLanding(root, `"${room}" is not a valid room name.`);
    return;
  }
  document.title = `${room} · kaiwa`;
  // Token and name come out of the address bar at once: a copy of the link carries neither.
  const { token, name } = takeUrlParams(room);
  const claims = token ? readClaims(token) : null;
  const problem = precheck(token, room);
  const warning = problem ? { ...explain(problem, claims, room), code: problem } : null;
  // `?media=sfu|mesh|auto` asks for the room's media policy (only the first join sets it; else the server's).
  const media = new URLSearchParams(location.search).get('media');
  const policy = media === 'sfu' || media === 'mesh' || media === 'auto' ? media : undefined;
  const choice = await renderPrejoin(root, { room, name: name ?? claims?.sub ?? null, warning });
  const view = new RoomView(root, room, choice, token, policy);
  await view.start();
}

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
    void enterRoom(root, room).catch((err: unknown) => {
      renderLanding(root, err instanceof Error ? err.message : String(err));
    });
  } else {
    renderLanding(root, location.pathname === '/' || location.pathname === '/index.html' ? null : 'No such page.');
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', route, { once: true });
else route();
