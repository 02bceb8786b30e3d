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

/**
 * Best grid for `n` tiles in a `width` × `height` box with `gap` between tiles: the column count whose tiles get the
 * largest area, each tile taking its cell's shape within [minAspect, maxAspect] (width / height; the video is
 * cropped to fill, so a tile may be a little wider or taller than the camera's 4:3).
 */
export function bestGrid(n: number, width: number, height: number, minAspect: number, maxAspect: number, gap: number): GridFit {
  let best: GridFit = { cols: 1, rows: Math.max(1, n), width: 0, height: 0 };
  if (n <= 0 || width <= 0 || height <= 0) return best;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const aspect = Math.min(maxAspect, Math.max(minAspect, cellW / cellH));
    const w = Math.min(cellW, cellH * aspect);
    const hgt = w / aspect;
    if (w * hgt > best.width * best.height) best = { cols, rows, width: Math.floor(w), height: Math.floor(hgt) };
  }
  return best;
}

/** The range of tile shapes for a stage: up to 16:9 wide; on a phone held upright, down to 9:16. */
export function aspectRange(width: number, height: number): [number, number] {
  return height > width ? [9 / 16, 16 / 9] : [3 / 4, 16 / 9];
}

export type StageMode = 'solo' | 'pip' | 'grid' | 'spotlight';

/** @param tiles how many tiles; @param oneToOne exactly us and one other person, nothing else on the stage */
export function stageMode(tiles: number, featured: boolean, oneToOne: boolean): StageMode {
  if (featured) return 'spotlight';
  if (tiles <= 1) return 'solo';
  if (oneToOne) return 'pip';
  return 'grid';
}
