// The stage layout as people see it: a grid that fills the stage for 4 people (desktop and phone), a 1:1 call as
// the other person large with ourselves as picture-in-picture, alone with the invite card; long names truncated,
// no sideways scrolling on a phone.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WAIT, launchBrowser, openPeer, startServer, uniqueRoom, waitForRemoteVideo } from './helpers.mjs';

const LONG = 'Maximiliane Alexandra Konstantinopoulou-Featherstonehaugh'; // 57 characters
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Boxes of the stage (grid) and of every tile on `page`, and whether the page scrolls sideways. */
function geometry(page) {
  return page.evaluate(() => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height, right: r.right, bottom: r.bottom };
    };
    const grid = document.querySelector('[data-testid="grid"]');
    return {
      mode: grid.dataset.mode,
      grid: box(grid),
      tiles: [...document.querySelectorAll('[data-testid="tile"]')].map((t) => ({
        ...box(t), self: t.dataset.self === 'true', cls: t.className,
        fit: getComputedStyle(t.querySelector('video')).objectFit,
      })),
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
    };
  });
}

function overlap(a, b) {
  return Math.max(0, Math.min(a.right, b.right) - Math.max(a.x, b.x)) * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.y, b.y));
}

test('grid, 1:1 and alone at 1280x800, 1920x1080 and 390x844', { timeout: 150_000 }, async (t) => {
  const room = uniqueRoom('layout');
  const viewer = await openPeer(browser, server, room, 'Viewer', { viewport: { width: 1280, height: 800 }, query: 'media=mesh' });
  const others = [];
  try {
    // Alone: our tile and the invite card with the link.
    let g = await geometry(viewer.page);
    assert.equal(g.mode, 'solo');
    await viewer.page.getByTestId('empty-state').waitFor({ state: 'visible' });
    assert.equal(await viewer.page.locator('[data-testid="empty-state"] [data-testid="invite-link"]').inputValue(),
      `${server.url}/room/${room}`);

    for (const name of ['Bea', LONG, 'Dan']) others.push(await openPeer(browser, server, room, name, { viewport: { width: 640, height: 480 } }));
    for (const o of others) await waitForRemoteVideo(viewer.page, o.id);
    await viewer.page.getByTestId('empty-state').waitFor({ state: 'hidden' });

    for (const vp of [{ width: 1280, height: 800 }, { width: 1920, height: 1080 }, { width: 390, height: 844 }]) {
      await viewer.page.setViewportSize(vp);
      await viewer.page.waitForFunction((w) => window.innerWidth === w, vp.width);
      await viewer.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      g = await geometry(viewer.page);
      assert.equal(g.mode, 'grid');
      assert.equal(g.tiles.length, 4);
      const area = g.tiles.reduce((s, x) => s + x.w * x.h, 0);
      const fill = area / (g.grid.w * g.grid.h);
      t.diagnostic(`${vp.width}x${vp.height}: tiles ${g.tiles.map((x) => `${Math.round(x.w)}x${Math.round(x.h)}`).join(' ')}, ${Math.round(fill * 100)}% of the stage`);
      // 2 x 2, no overlap, inside the stage, together most of it.
      assert.equal(new Set(g.tiles.map((x) => Math.round(x.y))).size, 2, 'two rows');
      assert.equal(new Set(g.tiles.map((x) => Math.round(x.x))).size, 2, 'two columns');
      for (let i = 0; i < 4; i++) {
        for (let j = i + 1; j < 4; j++) assert.equal(overlap(g.tiles[i], g.tiles[j]), 0);
        assert.ok(g.tiles[i].x >= g.grid.x - 1 && g.tiles[i].right <= g.grid.right + 1, 'inside the stage');
        assert.ok(g.tiles[i].y >= g.grid.y - 1 && g.tiles[i].bottom <= g.grid.bottom + 1, 'inside the stage');
      }
      assert.ok(fill > 0.6, `the tiles fill ${Math.round(fill * 100)}% of the stage`);
      assert.ok(g.scrollWidth <= g.innerWidth, `no sideways scrolling (${g.scrollWidth} > ${g.innerWidth})`);
      // Camera tiles are cropped to fill, not letterboxed.
      assert.ok(g.tiles.every((x) => x.fit === 'cover'));
    }

    // The long name: truncated with an ellipsis in its tile, and the phone's panel stays inside the screen.
    const nameEl = viewer.page.locator(`[data-testid="tile"][data-peer-id="${others[1].id}"] [data-testid="tile-name"]`);
    const nm = await nameEl.evaluate((el) => ({ ellipsis: getComputedStyle(el).textOverflow, truncated: el.scrollWidth > el.clientWidth,
      right: el.getBoundingClientRect().right, tileRight: el.closest('[data-testid="tile"]').getBoundingClientRect().right }));
    assert.equal(nm.ellipsis, 'ellipsis');
    assert.ok(nm.truncated, 'the long name is cut, not the tile widened');
    assert.ok(nm.right <= nm.tileRight);
    await viewer.page.getByTestId('toggle-panel').click();
    await viewer.page.getByTestId('file-target').waitFor({ state: 'visible' });
    const panel = await viewer.page.evaluate(() => {
      const r = (s) => document.querySelector(`[data-testid="${s}"]`).getBoundingClientRect();
      return { side: r('side-panel').right, send: r('file-send').right, target: r('file-target').right,
        scrollWidth: document.documentElement.scrollWidth, options: [...document.querySelectorAll('[data-testid="file-target"] option')].map((o) => o.textContent) };
    });
    assert.ok(panel.options.includes(LONG));
    assert.ok(panel.side <= 390 && panel.send <= 390 && panel.target <= 390, JSON.stringify(panel));
    assert.ok(panel.scrollWidth <= 390, `no sideways scrolling with the long name (${panel.scrollWidth})`);
    await viewer.page.getByTestId('toggle-panel').click();

    // Two leave: a 1:1 call. The other person fills the stage; we are a small picture-in-picture in a corner.
    await others.pop().close();
    await others.pop().close();
    for (const vp of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
      await viewer.page.setViewportSize(vp);
      await viewer.page.waitForFunction(() => document.querySelectorAll('[data-testid="tile"]').length === 2, null, { timeout: WAIT });
      await viewer.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      g = await geometry(viewer.page);
      assert.equal(g.mode, 'pip');
      const self = g.tiles.find((x) => x.self);
      const other = g.tiles.find((x) => !x.self);
      const stage = g.grid.w * g.grid.h;
      t.diagnostic(`1:1 at ${vp.width}x${vp.height}: other ${Math.round(other.w)}x${Math.round(other.h)}, self ${Math.round(self.w)}x${Math.round(self.h)}`);
      assert.ok((other.w * other.h) / stage > 0.85, 'the other person fills the stage');
      assert.ok((self.w * self.h) / stage < 0.15, 'we are small');
      assert.ok(self.right <= g.grid.right && self.bottom <= g.grid.bottom && self.x > g.grid.x + g.grid.w / 2,
        'picture-in-picture in the bottom-right corner');
      assert.equal(other.fit, 'cover', 'no letterbox on the big picture');
      assert.ok(g.scrollWidth <= g.innerWidth);
    }
  } finally {
    for (const o of others) await o.close();
    await viewer.close();
  }
});
