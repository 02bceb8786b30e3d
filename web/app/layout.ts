/**
 * Tile layout: the number of columns that gives N tiles of a given aspect ratio the largest size in the stage
 * (what Meet, Jitsi and LiveKit's grids do), plus the stage modes:
 * - `solo`: alone: our tile fills the stage beside the invite card;
 * - `pip`: a 1:1 call: the other person fills the stage, we are a small picture-in-picture;
 * - `grid`: three or more people;
 * - `spotlight`: a screen share or a pinned tile takes the stage, the others sit in a strip.
 */
export interface GridFit {
  cols: number;
  rows: number;
  width: number;
  height: number;
}

/** Best grid for `n` tiles of `aspect` (width / height) in a `width` × `height` box with `gap` between tiles. */
export function bestGrid(n: number, width: number, height: number, aspect: number, gap: number): GridFit {
  let best: GridFit = { cols: 1, rows: Math.max(1, n), width: 0, height: 0 };
  if (n <= 0 || width <= 0 || height <= 0) return best;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const maxW = (width - gap * (cols - 1)) / cols;
    const maxH = (height - gap * (rows - 1)) / rows;
    if (maxW <= 0 || maxH <= 0) continue;
    const w = Math.min(maxW, maxH * aspect);
    if (w > best.width) best = { cols, rows, width: Math.floor(w), height: Math.floor(w / aspect) };
  }
  return best;
}

/** Tile aspect for a stage: landscape tiles in a landscape stage, portrait ones on a phone held upright. */
export function tileAspect(width: number, height: number, n: number): number {
  if (height > width * 1.2) return n <= 2 ? 3 / 4 : n <= 4 ? 3 / 4 : 1;
  return 16 / 9 <= width / Math.max(1, height) && n <= 2 ? 16 / 9 : 4 / 3;
}

export type StageMode = 'solo' | 'pip' | 'grid' | 'spotlight';

export function stageMode(people: number, featured: boolean): StageMode {
  if (featured) return 'spotlight';
  if (people <= 1) return 'solo';
  if (people === 2) return 'pip';
  return 'grid';
}
