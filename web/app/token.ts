/**
 * Room invite tokens in the web app: read from `#token=` (preferred: a fragment never reaches a server, a log or a
 * Referer) or `?token=`, kept for the tab in sessionStorage (a reload or "Rejoin" still has it), stripped from the
 * address bar, passed to the SDK. Refusals are told apart by the server's message (docs/protocol.md).
 */

export interface TokenClaims {
  room?: string;
  sub?: string;
  /** Seconds since the epoch. */
  exp?: number;
}

export type TokenProblem = 'token-missing' | 'token-invalid' | 'token-expired' | 'token-wrong-room';

const KEY = (room: string) => `kaiwa.token.${room}`;

/**
 * Takes the token for `room` out of the page address (`#token=` first, then `?token=`), remembers it for this tab,
 * and returns it (or the one remembered from earlier in this tab). Also removes `?name=` (a copy of the link must
 * not carry our name) and returns it as `name`. The address bar is rewritten to `/room/<room>` plus any other
 * parameters.
 */
export function takeUrlParams(room: string): { token: string | null; name: string | null } {
  const url = new URL(location.href);
  const hash = new URLSearchParams(url.hash.replace(/^#/, ''));
  const fromUrl = hash.get('token') || url.searchParams.get('token');
  const name = url.searchParams.get('name');
  let changed = false;
  if (hash.has('token')) {
    hash.delete('token');
    const rest = hash.toString();
    url.hash = rest ? `#${rest}` : '';
    changed = true;
  }
  for (const p of ['token', 'name']) {
    if (url.searchParams.has(p)) {
      url.searchParams.delete(p);
      changed = true;
    }
  }
  if (changed) history.replaceState(history.state, '', `${url.pathname}${url.search}${url.hash}`);
  let token = fromUrl?.trim() || null;
  try {
    if (token) sessionStorage.setItem(KEY(room), token);
    else token = sessionStorage.getItem(KEY(room));
  } catch {
    /* storage disabled: the token lives as long as the page */
  }
  return { token, name: name?.trim() || null };
}

export function forgetToken(room: string): void {
  try {
    sessionStorage.removeItem(KEY(room));
  } catch {
    /* nothing kept */
  }
}

/** The claims of a JWT, read without checking the signature (the server does that). null when unreadable. */
export function readClaims(token: string): TokenClaims | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)),
      (c) => c.charCodeAt(0)));
    const v = JSON.parse(json) as unknown;
    if (!v || typeof v !== 'object') return null;
    const o = v as Record<string, unknown>;
    return {
      room: typeof o.room === 'string' ? o.room : undefined,
      sub: typeof o.sub === 'string' ? o.sub : undefined,
      exp: typeof o.exp === 'number' ? o.exp : undefined,
    };
  } catch {
    return null;
  }
}

/** What can be told about a token before asking the server (the clock may be off: a hint, not a verdict). */
export function precheck(token: string | null, room: string, nowMs = Date.now()): TokenProblem | null {
  if (!token) return null; // the server may not need one
  const c = readClaims(token);
  if (!c) return 'token-invalid';
  if (c.exp !== undefined && c.exp * 1000 <= nowMs) return 'token-expired';
  if (c.room !== undefined && c.room !== '*' && c.room !== room) return 'token-wrong-room';
  return null;
}

/** Maps the server's `unauthorized` message to what went wrong. */
export function classifyRefusal(message: string, hadToken: boolean): TokenProblem {
  const m = message.toLowerCase();
  if (!hadToken || m.includes('needs a room token')) return 'token-missing';
  if (m.includes('expired')) return 'token-expired';
  if (m.includes('another room')) return 'token-wrong-room';
  return 'token-invalid';
}

export function explain(problem: TokenProblem, claims: TokenClaims | null, room: string): { title: string; text: string } {
  switch (problem) {
    case 'token-missing':
      return { title: 'This room needs an invite',
        text: `Room "${room}" is invite-only. Open the invite link you were sent (it ends in #token=…), or ask the person who runs the call for one.` };
    case 'token-expired': {
      const when = claims?.exp ? ` on ${new Date(claims.exp * 1000).toLocaleString()}` : '';
      return { title: 'Your invite has expired', text: `This invite link expired${when}. Ask for a new one.` };
    }
    case 'token-wrong-room':
      return { title: 'This invite is for another room',
        text: `The invite link is for room "${claims?.room ?? 'another room'}", not "${room}". Open the link exactly as you received it.` };
    case 'token-invalid':
    default:
      return { title: 'This invite link is not valid',
        text: 'The invite link is damaged or was not made for this server (it may have been cut off when copied). Ask for a new one.' };
  }
}
