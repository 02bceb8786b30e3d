/** Tiny DOM helpers: the app builds its elements with these (text always goes in as text, never as HTML). */
type Attrs = Record<string, string | number | boolean | undefined | null | EventListener>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]):
  HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === 'testid') {
      el.dataset.testid = String(value);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatBitrate(bps: number): string {
  if (bps >= 1_000_000) return `${(bps / 1_000_000).toFixed(1)} Mbps`;
  return `${Math.round(bps / 1000)} kbps`;
}

const ADJECTIVES = ['amber', 'blue', 'brisk', 'calm', 'clever', 'coral', 'quiet', 'green', 'lucky', 'misty', 'rapid',
  'silver', 'sunny', 'swift', 'violet', 'warm'];
const NOUNS = ['river', 'forest', 'harbor', 'meadow', 'comet', 'falcon', 'lantern', 'maple', 'otter', 'pebble',
  'summit', 'tide', 'willow', 'canyon', 'breeze', 'island'];

/** A readable random room name such as `misty-otter-42`. */
export function randomRoomName(): string {
  const r = new Uint32Array(3);
  crypto.getRandomValues(r);
  return `${ADJECTIVES[r[0]! % ADJECTIVES.length]}-${NOUNS[r[1]! % NOUNS.length]}-${10 + (r[2]! % 90)}`;
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0]![0]! + parts[parts.length - 1]![0]! : (parts[0] ?? '?').slice(0, 2);
  return s.toUpperCase();
}
