// Training in the page: the demo trains on the CPU backend in wasm (with and without
// WebGPU in the browser), the latent map redraws as it trains, Pause stops it, and the
// probe decodes the latent point under the pointer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openApp, status, screenshotPath } from './browser.mjs';

const mapData = (page) => page.evaluate(() => document.querySelector('[data-testid="latent-map"]').toDataURL());

// Pointer position (page coordinates) of a fraction of the map canvas.
async function mapPoint(page, fx, fy) {
  const box = await page.locator('[data-testid="latent-map"]').boundingBox();
  return [box.x + fx * box.width, box.y + fy * box.height];
}

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`training (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells > 0, null, { timeout: 60_000 });

      await t.test('the demo trains and the latent map redraws', async () => {
        assert.equal(await page.isEnabled('[data-testid="train-toggle"]'), true);
        assert.match(await page.textContent('[data-testid="legend"]'), /CD14\+ Monocyte \(\d+\)/);
        const before = await mapData(page);
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().step > 20, null, { timeout: 90_000 });
        const mid = await mapData(page);
        assert.notEqual(mid, before, 'the map did not change after 20 steps');
        const s1 = await status(page);
        assert.ok(Number.isFinite(s1.elbo), `elbo ${s1.elbo}`);
        assert.ok(s1.elbo < 0, `elbo ${s1.elbo} is a log-likelihood bound and must be negative`);
        await page.waitForFunction((n) => window.cellvae.status().step > n + 6, s1.step, { timeout: 60_000 });
        const later = await mapData(page);
        assert.notEqual(later, mid, 'the map stopped changing while training');
        const s2 = await status(page);
        assert.ok(s2.epoch >= 1, `epoch ${s2.epoch}`);
        assert.match(await page.textContent('[data-testid="train-status"]'), /epoch \d+ · step \d+ · ELBO -\d/);
      });

      await t.test('pause stops training', async () => {
        assert.equal((await status(page)).training, true, 'training should be running');
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training);
        const s1 = await status(page);
        await page.waitForTimeout(700);
        const s2 = await status(page);
        assert.equal(s2.step, s1.step, 'steps kept coming after Pause');
        assert.equal(await page.textContent('[data-testid="train-toggle"]'), 'Train');
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction((n) => window.cellvae.status().step >= n + 1 && !window.cellvae.status().training, s1.step);
        assert.equal((await status(page)).step, s1.step + 1, '"1 step" takes one step');
        await page.screenshot({ path: screenshotPath(`trained-${mode}.png`), fullPage: true });
        await page.locator('[data-testid="latent-map"]').screenshot({ path: screenshotPath(`latent-map-${mode}.png`) });
      });

      await t.test('the probe decodes the point under the pointer', async () => {
        const [x1, y1] = await mapPoint(page, 0.25, 0.3);
        await page.mouse.click(x1, y1);
        const profile = '[data-testid="probe-profile"]';
        await page.waitForFunction((sel) => document.querySelectorAll(`${sel} li`).length === 10, profile);
        const first = await page.textContent(profile);
        // The bars are drawn by plotters on a canvas: blue bars (decoded) and orange
        // ones (nearest cells) are on it.
        const chartColours = () => page.evaluate(() => {
          const c = document.querySelector('[data-testid="probe-chart"]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let blue = 0, orange = 0;
          for (let i = 0; i < d.length; i += 4) {
            if (d[i] === 0x2f && d[i + 1] === 0x6f && d[i + 2] === 0xde) blue++;
            if (d[i] === 0xf7 && d[i + 1] === 0x90 && d[i + 2] === 0x09) orange++;
          }
          return { blue, orange, url: c.toDataURL() };
        });
        const chart1 = await chartColours();
        assert.ok(chart1.blue > 200 && chart1.orange > 100, `bars on the chart: ${JSON.stringify({ ...chart1, url: undefined })}`);
        // Drag to another part of the map.
        const [x2, y2] = await mapPoint(page, 0.75, 0.7);
        await page.mouse.move(x1, y1);
        await page.mouse.down();
        await page.mouse.move((x1 + x2) / 2, (y1 + y2) / 2, { steps: 3 });
        await page.mouse.move(x2, y2, { steps: 3 });
        await page.mouse.up();
        const second = await page.textContent(profile);
        assert.notEqual(second, first, 'the profile did not change with the point');
        assert.notEqual((await chartColours()).url, chart1.url, 'the chart did not change with the point');
        const values = await page.$$eval(`${profile} li .value`, (els) => els.map((e) => Number(e.textContent)));
        assert.equal(values.length, 10);
        for (let i = 1; i < values.length; i++) assert.ok(values[i] <= values[i - 1], `not sorted: ${values}`);
        assert.ok(values[0] > 0, `top expected count ${values[0]}`);
        await page.locator('section.train').screenshot({ path: screenshotPath(`probe-${mode}.png`) });
      });

      await t.test('lr and beta apply live and bad values are refused', async () => {
        // The engine answers asynchronously: wait for its answer, then check it.
        await page.fill('[data-testid="lr"]', '-1');
        await page.dispatchEvent('[data-testid="lr"]', 'change');
        await page.waitForSelector('[data-testid="lr"].invalid');
        assert.match(await page.getAttribute('[data-testid="lr"]', 'title'), /learning rate/);
        await page.fill('[data-testid="lr"]', '0.002');
        await page.dispatchEvent('[data-testid="lr"]', 'change');
        await page.waitForFunction(() => Math.abs(window.cellvae.status().settings.lr - 0.002) < 1e-9);
        assert.doesNotMatch((await page.getAttribute('[data-testid="lr"]', 'class')) || '', /invalid/);
        await page.fill('[data-testid="beta"]', '0.5');
        await page.dispatchEvent('[data-testid="beta"]', 'change');
        await page.waitForFunction(() => Math.abs(window.cellvae.status().settings.beta - 0.5) < 1e-9);
        assert.doesNotMatch((await page.getAttribute('[data-testid="beta"]', 'class')) || '', /invalid/);
        // The session took the values, and a step with them trains.
        const s0 = await status(page);
        assert.ok(Math.abs(s0.settings.lr - 0.002) < 1e-9, `lr ${s0.settings.lr}`);
        assert.ok(Math.abs(s0.settings.beta - 0.5) < 1e-9, `beta ${s0.settings.beta}`);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction((k) => window.cellvae.status().step === k + 1, s0.step, { timeout: 60_000 });
        assert.ok(Number.isFinite((await status(page)).elbo));
      });

      await t.test('a learning rate of 5 diverges, recovers, and the page says so', async () => {
        await page.fill('[data-testid="lr"]', '5');
        await page.dispatchEvent('[data-testid="lr"]', 'change');
        await page.waitForFunction(() => window.cellvae.status().settings.lr === 5);
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => /recovered/.test(document.querySelector('[data-testid="train-status"]').textContent || ''), null, { timeout: 60_000 });
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training, null, { timeout: 60_000 });
        const s = await status(page);
        assert.ok(Number.isFinite(s.elbo), `elbo ${s.elbo} after recovering`);
        assert.ok(s.settings.lr < 5, `the learning rate was lowered: ${s.settings.lr}`);
        const text = await page.textContent('[data-testid="train-status"]');
        assert.match(text, /diverged and recovered \d+×/);
        assert.match(await page.getAttribute('[data-testid="train-status"]', 'title'), /step \d+/);
      });

      await t.test('loading new data resets the session; a failed load keeps it', async () => {
        const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
        const stepBefore = (await status(page)).step;
        await page.setInputFiles('[data-testid="file-input"]', { name: 'picture.h5ad', mimeType: 'application/octet-stream', buffer: png });
        await page.waitForSelector('[data-testid="error"]:not([hidden])');
        assert.equal((await status(page)).step, stepBefore, 'a failed load must keep the session');
        await page.click('[data-testid="demo-button"]');
        await page.waitForFunction(() => window.cellvae.status().step === 0, null, { timeout: 60_000 });
        assert.equal((await status(page)).elbo, null);
        assert.equal(await page.isEnabled('[data-testid="train-toggle"]'), true);
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
