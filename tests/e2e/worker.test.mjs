// Training off the UI thread: the engine (www/engine.js) runs in a Web Worker, the page
// stays responsive while it trains (animation frames and long tasks measured, figures
// printed; asserted loosely, for a shared 2-core machine), requests made during training
// (the probe, decode) are answered, a bad file dropped during training leaves the run
// going, snapshots come at a bounded rate, and the same engine trains on the page's main
// thread (?thread=page, the path for browsers whose workers lack WebGPU). WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, openApp, status, screenshotPath, SHARED, BASE_URL } from './browser.mjs';

const MAP = '[data-testid="latent-map"]';

// Animation frame intervals and long tasks on the page over `ms`.
function responsiveness(page, ms) {
  return page.evaluate((ms) => new Promise((resolve) => {
    const longTasks = [];
    let observer = null;
    try {
      observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) longTasks.push(e.duration); });
      observer.observe({ type: 'longtask', buffered: false });
    } catch { /* no long task timing here */ }
    const frames = [];
    const end = performance.now() + ms;
    const f = (t) => {
      frames.push(t);
      if (t < end) requestAnimationFrame(f);
      else {
        if (observer) observer.disconnect();
        const gaps = frames.slice(1).map((x, i) => x - frames[i]).sort((a, b) => a - b);
        resolve({
          frames: gaps.length,
          median: gaps[Math.floor(gaps.length / 2)],
          p95: gaps[Math.floor(0.95 * (gaps.length - 1))],
          max: gaps[gaps.length - 1],
          longTasks: longTasks.length,
          longest: longTasks.length ? Math.max(...longTasks) : 0,
        });
      }
    };
    requestAnimationFrame(f);
  }), ms);
}

const fmt = (r) => `${r.frames} frames, median ${r.median.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(0)} ms; ${r.longTasks} long tasks (longest ${r.longest.toFixed(0)} ms)`;

async function loadDemo(page) {
  await page.click('[data-testid="demo-button"]');
  await page.waitForFunction(() => window.cellvae.status().n_cells === 700 && window.cellvae.status().n_latent > 0, null, { timeout: 60_000 });
}

// Bounds on the page's responsiveness while the worker trains. Without WebGPU, Chromium
// composites on the CPU cheaply and the bounds are strict. With the WebGPU flags the page
// itself is drawn through SwiftShader (software Vulkan) in the GPU process, which competes
// with the training worker for the 2 shared cores: frames and the main thread's tasks then
// stretch with the machine's load (figures printed), so only a blocked page is caught.
const LIMITS = {
  webgpu: { longestMs: 1000, medianMs: 250 },
  'no-webgpu': { longestMs: 100, medianMs: 34 },
};

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';
  const limit = LIMITS[mode];

  test(`training in a worker (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await loadDemo(page);

      await t.test('the demo trains in the worker; the page stays responsive', async () => {
        assert.equal((await status(page)).thread, 'worker');
        assert.match(await page.textContent('[data-testid="train-backend"]'), /background worker/);
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().step > 3, null, { timeout: 60_000 });
        const s0 = await status(page);
        const t0 = Date.now();
        const r = await responsiveness(page, 3000);
        const s1 = await status(page);
        const secs = (Date.now() - t0) / 1000;
        const rate = (s1.snapshots - s0.snapshots) / secs;
        console.log(`[${mode}] demo training in the worker: ${((s1.step - s0.step) / secs).toFixed(1)} steps/s, ${rate.toFixed(1)} snapshots/s; page: ${fmt(r)}`);
        assert.equal(s1.training, true);
        assert.ok(s1.step > s0.step, 'no steps while measuring');
        assert.ok(rate <= 25, `${rate.toFixed(1)} snapshots a second (at most 20 intended)`);
        // The main thread is never blocked by training: no long task of 100 ms or more
        // (frames can still be late when the compositor, SwiftShader here, lacks CPU on a
        // loaded machine: printed above, not asserted).
        assert.ok(r.longest < limit.longestMs, `a ${r.longest.toFixed(0)} ms task blocked the page while the worker trains`);
        assert.ok(r.median < limit.medianMs, `median frame ${r.median.toFixed(1)} ms while the worker trains`);
      });

      await t.test('requests during training are answered: the probe, decode', async () => {
        assert.equal((await status(page)).training, true);
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).click({ position: { x: box.width * 0.4, y: box.height * 0.4 } });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10, null, { timeout: 10_000 });
        const s = await status(page);
        assert.equal(s.training, true, 'the probe stopped training');
        assert.equal(s.nearest_cells.length, 15);
        const decoded = await page.evaluate((z) => window.cellvae.decode(z), s.probe);
        assert.equal(decoded.length, s.model.n_genes);
        assert.ok(decoded.every((v) => Number.isFinite(v) && v >= 0), 'decoded values');
        // The probe follows training: its profile is asked again as the model changes.
        const first = await page.textContent('[data-testid="probe-profile"] ol');
        await page.waitForFunction((f) => document.querySelector('[data-testid="probe-profile"] ol').textContent !== f, first, { timeout: 10_000 });
      });

      await t.test('a bad file dropped during training shows its error; the run goes on', async () => {
        const before = await status(page);
        assert.equal(before.training, true);
        const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
        await page.setInputFiles('[data-testid="file-input"]', { name: 'picture.h5ad', mimeType: 'application/octet-stream', buffer: png });
        await page.waitForSelector('[data-testid="error"]:not([hidden])');
        assert.match(await page.textContent('[data-testid="error"]'), /picture\.h5ad/);
        const s = await status(page);
        assert.equal(s.n_cells, 700);
        assert.equal(s.training, true, 'the bad file stopped training');
        await page.waitForFunction((n) => window.cellvae.status().step > n + 3, s.step, { timeout: 30_000 });
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training);
        await page.screenshot({ path: screenshotPath(`worker-bad-file-${mode}.png`), fullPage: true });
      });

      await t.test('10,000 cells train in the worker while the map keeps its frame rate', async () => {
        const dir = path.join(SHARED, 'mouse_10k_1000');
        await page.setInputFiles('[data-testid="file-input"]', ['matrix.mtx.gz', 'features.tsv', 'barcodes.tsv'].map((f) => path.join(dir, f)));
        await page.waitForFunction(() => window.cellvae.status().n_cells === 10000 && window.cellvae.status().n_latent > 0, null, { timeout: 120_000 });
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().step > 3, null, { timeout: 60_000 });
        const s0 = await status(page);
        const t0 = Date.now();
        const r = await responsiveness(page, 4000);
        const s1 = await status(page);
        const secs = (Date.now() - t0) / 1000;
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training);
        console.log(`[${mode}] 10,000 cells training in the worker: ${((s1.step - s0.step) / secs).toFixed(1)} steps/s; page: ${fmt(r)} (${(1000 / r.median).toFixed(0)} frames/s)`);
        assert.ok(s1.step > s0.step);
        // 60 frames/s is the aim (measured and printed); asserted: the main thread is not
        // blocked (no task of 100 ms) and the median frame is within 30 frames/s, for a
        // shared 2-core machine.
        assert.ok(r.longest < limit.longestMs, `a ${r.longest.toFixed(0)} ms task blocked the page`);
        assert.ok(r.median < limit.medianMs, `median frame ${r.median.toFixed(1)} ms`);
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });

  test(`training on the page's main thread (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await page.goto(`${BASE_URL}?thread=page`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });

      await t.test('the same engine trains on the page, files still parsed in a worker', async () => {
        assert.equal((await status(page)).thread, 'page');
        await loadDemo(page);
        const s = await status(page);
        assert.equal(s.load.in_worker, true);
        assert.match(await page.textContent('[data-testid="train-backend"]'), /on the page between frames/);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1 && !window.cellvae.status().training, null, { timeout: 60_000 });
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().step > 10, null, { timeout: 60_000 });
        const r = await responsiveness(page, 2000);
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training);
        console.log(`[${mode}] demo training on the page: ${fmt(r)}`);
        assert.ok(r.max < 500, `a frame took ${r.max.toFixed(0)} ms`);
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).click({ position: { x: box.width * 0.5, y: box.height * 0.5 } });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
        assert.ok(Number.isFinite((await status(page)).elbo));
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
