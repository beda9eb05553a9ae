// The latent map's cells drawn by WebGL2 (www/gl-points.js) and by the 2-D canvas
// (map.js drawPoints, the fallback): both put each cell's dot on the same pixels in its
// legend colour; a lost context falls back to the canvas and a restored one comes back;
// WebGL2 on a GPU is used by default, WebGL2 in software is not (drawPoints is faster
// there) unless `?map=webgl2`; `?map=canvas` and a browser without WebGL2 draw on the
// canvas. Chromium here has no GPU: WebGL2 runs on SwiftShader (software), so the GL path
// is tested with `?map=webgl2`, and a GPU is played by a renderer name; under the WebGPU
// flags (ANGLE on Vulkan/llvmpipe) Chromium has no WebGL2 at all, so that mode only checks
// that the map draws its cells right with whichever renderer it has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openApp, screenshotPath, BASE_URL } from './browser.mjs';

const MAP = '[data-testid="latent-map"]';

/** The renderer drawing the map's cells ({renderer, why}), from map-view.js (the page's own module instance). */
const renderer = (page) => page.evaluate(async () => {
  const mv = await import(new URL('www/map-view.js', document.baseURI).href);
  return mv.mapRenderer();
});

async function loadDemo(page, train) {
  await page.click('[data-testid="demo-button"]');
  await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
  if (train) {
    // A little training spreads the cells out (an untrained map is one blob).
    await page.selectOption('[data-testid="steps-per-frame"]', '10');
    await page.click('[data-testid="train-toggle"]');
    await page.waitForFunction(() => window.cellvae.status().epoch >= 3, null, { timeout: 90_000 });
    await page.click('[data-testid="train-toggle"]');
    await page.waitForFunction(() => !window.cellvae.status().training);
  }
  await page.waitForFunction(() => window.cellvae.cellPosition(0) !== null && document.querySelector('[data-testid="latent-map"]').dataset.renderer);
}

/**
 * The legend's colours and each entry's cells (a click on an entry selects its cells;
 * the selection is cleared after, so no ring is drawn). Returns [{rgb, cells}].
 */
async function legendCells(page) {
  const entries = await page.$$eval('[data-testid="legend"] li[data-level]', (lis) => lis.map((li) => ({
    level: li.dataset.level,
    rgb: getComputedStyle(li.querySelector('.swatch')).backgroundColor.match(/\d+/g).slice(0, 3).map(Number),
  })));
  assert.ok(entries.length >= 2, `legend entries: ${entries.length}`);
  const out = [];
  for (const e of entries) {
    await page.click(`[data-testid="legend"] li[data-level="${e.level}"]`);
    out.push({ rgb: e.rgb, cells: await page.evaluate(() => window.cellvae.selection()) });
  }
  await page.click('[data-testid="selection-clear"]');
  await page.waitForFunction(() => window.cellvae.status().selected === 0);
  return out;
}

/**
 * Cells whose dot no other cell's dot touches (no other cell within 8 px), with their
 * pixel (drawPoints' rounding) and legend colour, away from the corner labels.
 */
async function isolatedCells(page, legend) {
  return page.evaluate((legend) => {
    const c = document.querySelector('[data-testid="latent-map"]');
    const W = c.width, H = c.height;
    const n = window.cellvae.status().n_cells;
    const pos = [];
    for (let i = 0; i < n; i++) {
      const p = window.cellvae.cellPosition(i);
      pos.push([p[0] * W, p[1] * H]);
    }
    const colour = new Map();
    for (const e of legend) for (const i of e.cells) colour.set(i, e.rgb);
    const out = [];
    for (let i = 0; i < n; i++) {
      const [x, y] = pos[i];
      if (!(x > 24 && x < W - 70 && y > 24 && y < H - 24)) continue;
      let alone = true;
      for (let j = 0; j < n && alone; j++) if (j !== i && Math.hypot(pos[j][0] - x, pos[j][1] - y) < 8) alone = false;
      if (alone && colour.has(i)) out.push({ cell: i, x: Math.round(x), y: Math.round(y), rgb: colour.get(i) });
    }
    return out;
  }, legend);
}

/** The map's pixels at each isolated cell: its centre and the 9 x 9 square around it. */
function dotsOf(page, cells) {
  return page.evaluate((cells) => {
    const c = document.querySelector('[data-testid="latent-map"]');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return cells.map(({ x, y }) => {
      const sq = [];
      for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) {
        const i = ((y + dy) * c.width + (x + dx)) * 4;
        sq.push(d[i], d[i + 1], d[i + 2]);
      }
      return sq;
    });
  }, cells);
}

/** Each isolated cell's centre pixel is its legend colour at alpha 0.85 over the white map (or an axis line). */
function assertLegendColours(cells, dots, what) {
  assert.ok(cells.length >= 10, `${what}: only ${cells.length} isolated cells`);
  const bad = [];
  cells.forEach((c, k) => {
    const centre = dots[k].slice(40 * 3, 40 * 3 + 3);
    const want = c.rgb.map((v) => 255 + 0.85 * (v - 255));
    if (centre.some((v, j) => Math.abs(v - want[j]) > 8)) bad.push(`cell ${c.cell} at ${c.x},${c.y}: ${centre} (legend ${c.rgb})`);
    // The dot is there: the pixel 2 px right of the centre is coloured too, 4 px right is not (much).
    const right2 = dots[k].slice((40 + 2) * 3, (40 + 2) * 3 + 3), right4 = dots[k].slice((40 + 4) * 3, (40 + 4) * 3 + 3);
    if (right2.some((v, j) => Math.abs(v - want[j]) > 8)) bad.push(`cell ${c.cell}: 2 px right ${right2}`);
    if (right4.some((v) => v < 200)) bad.push(`cell ${c.cell}: 4 px right ${right4}`);
  });
  assert.deepEqual(bad, [], `${what}: dots not in their legend colour`);
}

/** Compares the map's pixels now with the image kept in window.__mapA: how many differ by more than `tol`, the mean difference. */
function diffWithKept(page, tol) {
  return page.evaluate((tol) => {
    const c = document.querySelector('[data-testid="latent-map"]');
    const b = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const a = /** @type {any} */ (window).__mapA;
    let over = 0, sum = 0, coloured = 0;
    for (let i = 0; i < a.length; i += 4) {
      let m = 0;
      for (let j = 0; j < 3; j++) { const e = Math.abs(a[i + j] - b[i + j]); m = Math.max(m, e); sum += e; }
      if (m > tol) over++;
      if (a[i] < 250 || a[i + 1] < 250 || a[i + 2] < 250) coloured++;
    }
    return { over, mean: sum / (3 * a.length / 4), pixels: a.length / 4, coloured };
  }, tol);
}

const keep = (page) => page.evaluate(() => {
  const c = document.querySelector('[data-testid="latent-map"]');
  /** @type {any} */ (window).__mapA = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
});

test('the map on WebGL2 (no-webgpu: SwiftShader, ?map=webgl2): same pixels as the canvas path, legend colours, context loss falls back', async () => {
  const b = await launch(false);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1280, height: 900 });
    await openApp(page, new URL('?map=webgl2', BASE_URL).href);
    await loadDemo(page, true);
    const r0 = await renderer(page);
    assert.deepEqual({ ...r0, gl: '' }, { renderer: 'webgl2', why: '', gl: '' }, `WebGL2 is available here (${r0.gl}): the map should use it`);
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'webgl2');
    const legend = await legendCells(page);
    assert.equal(legend.reduce((a, e) => a + e.cells.length, 0), 700);
    const cells = await isolatedCells(page, legend);
    const gl = await dotsOf(page, cells);
    assertLegendColours(cells, gl, 'WebGL2');
    await page.locator(MAP).screenshot({ path: screenshotPath('map-gl-webgl2.png') });
    await keep(page);

    // The context is lost: the map redraws at once with drawPoints, the same picture.
    await page.evaluate(async () => {
      const mv = await import(new URL('www/map-view.js', document.baseURI).href);
      if (!mv.testLoseMapContext(true)) throw new Error('no WEBGL_lose_context');
    });
    await page.waitForFunction(() => document.querySelector('[data-testid="latent-map"]').dataset.renderer === 'canvas');
    assert.equal((await renderer(page)).why, 'lost');
    const cv = await dotsOf(page, cells);
    assertLegendColours(cells, cv, 'canvas after a lost context');
    // Each isolated dot covers the same pixels in the same colours on both paths.
    const far = [];
    cells.forEach((c, k) => {
      const m = Math.max(...gl[k].map((v, i) => Math.abs(v - cv[k][i])));
      if (m > 6) far.push(`cell ${c.cell}: ${m}`);
    });
    assert.deepEqual(far, [], 'dots that differ between WebGL2 and the canvas path');
    // The whole map: the same picture up to rounding (overlapping dots blend in 8 bits on both).
    const d = await diffWithKept(page, 8);
    console.log(`WebGL2 against the canvas path: ${d.over} of ${d.pixels} pixels differ by more than 8 (${d.coloured} coloured), mean difference ${d.mean.toFixed(3)}`);
    assert.ok(d.coloured > 700 * 20, `the map has few coloured pixels: ${d.coloured}`);
    assert.ok(d.over <= d.coloured * 0.005, `${d.over} pixels differ by more than 8`);
    assert.ok(d.mean < 0.3, `mean difference ${d.mean}`);
    await page.locator(MAP).screenshot({ path: screenshotPath('map-gl-canvas-fallback.png') });

    // Restored: back on WebGL2, the picture it drew before.
    await page.evaluate(async () => {
      const mv = await import(new URL('www/map-view.js', document.baseURI).href);
      mv.testLoseMapContext(false);
    });
    await page.waitForFunction(() => document.querySelector('[data-testid="latent-map"]').dataset.renderer === 'webgl2');
    const again = await diffWithKept(page, 0);
    assert.equal(again.over, 0, `the restored renderer drew ${again.over} other pixels`);

    // Pan and zoom on the GPU: the dots follow the view (drawn where cellPosition says).
    const box = await page.locator(MAP).boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, -300);
    await page.waitForFunction(() => !window.cellvae.status().auto_view);
    await page.mouse.down({ button: 'right' });
    await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 30, { steps: 3 });
    await page.mouse.up({ button: 'right' });
    const moved = await isolatedCells(page, legend);
    assertLegendColours(moved, await dotsOf(page, moved), 'WebGL2 after zoom and pan');

    // Rings (a selection) are drawn above the cells: 6 px from an isolated cell the ring is the selection's colour (#1d2330).
    await page.evaluate((c) => window.cellvae.selectCells([c]), moved[0].cell);
    const ring = await page.evaluate(({ x, y }) => {
      const c = document.querySelector('[data-testid="latent-map"]');
      return Array.from(c.getContext('2d').getImageData(x + 6, y, 1, 1).data.slice(0, 3));
    }, moved[0]);
    assert.ok(ring.every((v, j) => Math.abs(v - [0x1d, 0x23, 0x30][j]) <= 10), `no selection ring at 6 px from the cell: ${ring}`);
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'webgl2');
    assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
  } finally {
    await b.close();
  }
});

test('many cells on WebGL2 (?map=webgl2): the dots shrink by the canvas path\'s rule, the same pixels on both paths', async () => {
  const b = await launch(false);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1280, height: 900 });
    await openApp(page, new URL('?map=webgl2', BASE_URL).href);
    await loadDemo(page, false);
    // 100,000 cells: dots of radius 1.16 (3 x 3 pixels); 1,000,000: one pixel (map.js dotRadius).
    for (const n of [100000, 1000000]) {
      const radius = await page.evaluate(async (n) => {
        const base = document.baseURI;
        const mv = await import(new URL('www/map-view.js', base).href);
        const map = await import(new URL('www/map.js', base).href);
        // Clusters as measure.mjs --map makes them, wide enough that many dots lie alone.
        /** @type {any} */ (window).cellvae.syntheticClusters(n, 11, 0.6);
        mv.updateProjection();
        mv.drawMap();
        return map.dotRadius(n);
      }, n);
      assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'webgl2');
      await page.locator(MAP).screenshot({ path: screenshotPath(`map-gl-webgl2-${n}.png`) });
      await keep(page);
      await page.evaluate(async () => {
        const mv = await import(new URL('www/map-view.js', document.baseURI).href);
        if (!mv.testLoseMapContext(true)) throw new Error('no WEBGL_lose_context');
      });
      await page.waitForFunction(() => document.querySelector('[data-testid="latent-map"]').dataset.renderer === 'canvas');
      const d = await diffWithKept(page, 8);
      console.log(`${n} cells (dots of radius ${radius.toFixed(2)}): WebGL2 against the canvas path: ${d.over} of ${d.pixels} pixels differ by more than 8 (${d.coloured} coloured), mean difference ${d.mean.toFixed(3)}`);
      // Dots of the old 7 x 7 size on one path would colour several times the pixels.
      assert.ok(d.coloured > 20000, `the map has few coloured pixels: ${d.coloured}`);
      assert.ok(d.over <= d.coloured * 0.005, `${d.over} pixels differ by more than 8`);
      assert.ok(d.mean < 0.3, `mean difference ${d.mean}`);
      await page.locator(MAP).screenshot({ path: screenshotPath(`map-gl-canvas-${n}.png`) });
      await page.evaluate(async () => {
        const mv = await import(new URL('www/map-view.js', document.baseURI).href);
        mv.testLoseMapContext(false);
      });
      await page.waitForFunction(() => document.querySelector('[data-testid="latent-map"]').dataset.renderer === 'webgl2', null, { timeout: 60_000 });
    }
    assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
  } finally {
    await b.close();
  }
});

test('which renderer: ?map=canvas, WebGL2 in software, WebGL2 on a GPU, no WebGL2', async () => {
  const b = await launch(false);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1280, height: 900 });
    await openApp(page, new URL('?map=canvas', BASE_URL).href);
    await loadDemo(page, true);
    assert.deepEqual(await renderer(page), { renderer: 'canvas', why: 'asked', gl: '' });
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'canvas');
    let legend = await legendCells(page);
    let cells = await isolatedCells(page, legend);
    assertLegendColours(cells, await dotsOf(page, cells), '?map=canvas');

    // By default: WebGL2 here is SwiftShader, on the CPU, so the canvas draws.
    await openApp(page);
    await loadDemo(page, false);
    let r = await renderer(page);
    assert.match(r.gl, /SwiftShader/i, `WebGL2 here: ${r.gl}`);
    assert.deepEqual({ ...r, gl: '' }, { renderer: 'canvas', why: 'software', gl: '' });
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'canvas');

    // The same WebGL2 under a GPU's name: the map draws on it by default.
    await page.addInitScript(() => {
      const get = WebGL2RenderingContext.prototype.getParameter;
      // @ts-ignore
      WebGL2RenderingContext.prototype.getParameter = function (p) { return p === 0x9246 ? 'Test GPU (a hardware renderer)' : get.call(this, p); };
    });
    await openApp(page);
    await loadDemo(page, false);
    assert.deepEqual(await renderer(page), { renderer: 'webgl2', why: '', gl: 'Test GPU (a hardware renderer)' });
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'webgl2');
    legend = await legendCells(page);
    cells = await isolatedCells(page, legend);
    assertLegendColours(cells, await dotsOf(page, cells), 'WebGL2 by default');

    // No WebGL2 at all (getContext('webgl2') answers null, as in a browser without it).
    await page.addInitScript(() => {
      const get = HTMLCanvasElement.prototype.getContext;
      // @ts-ignore
      HTMLCanvasElement.prototype.getContext = function (kind, opts) { return kind === 'webgl2' ? null : get.call(this, kind, opts); };
    });
    await openApp(page);
    await loadDemo(page, false);
    assert.deepEqual(await renderer(page), { renderer: 'canvas', why: 'unavailable', gl: '' });
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), 'canvas');
    legend = await legendCells(page);
    cells = await isolatedCells(page, legend);
    assertLegendColours(cells, await dotsOf(page, cells), 'no WebGL2');
    assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
  } finally {
    await b.close();
  }
});

test('the map with the WebGPU flags: whichever renderer it has draws the cells in their legend colours', async () => {
  const b = await launch(true);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1280, height: 900 });
    await openApp(page);
    await loadDemo(page, true);
    const r = await renderer(page);
    console.log(`with the WebGPU flags the map draws its cells with ${r.renderer}${r.why ? ` (${r.why})` : ''}`);
    assert.equal(await page.getAttribute(MAP, 'data-renderer'), r.renderer);
    const legend = await legendCells(page);
    const cells = await isolatedCells(page, legend);
    assertLegendColours(cells, await dotsOf(page, cells), `WebGPU flags, ${r.renderer}`);
    await page.locator(MAP).screenshot({ path: screenshotPath(`map-gl-webgpu-${r.renderer}.png`) });
    assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
  } finally {
    await b.close();
  }
});
