// Training curves (ELBO, reconstruction and KL, KL per latent dimension, the KL weight
// schedule), latent traversals (axis or line A-B; scrub, animate; heatmap of the genes
// that respond most) and the decoder field (the map's background shaded by a gene's
// decoded expression). WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openApp, status, screenshotPath } from './browser.mjs';

const MAP = '[data-testid="latent-map"]';
const pixels = (page, testid) => page.evaluate((id) => document.querySelector(`[data-testid="${id}"]`).toDataURL(), testid);

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`charts, traversal and decoder field (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      // Short warm-up so the schedule visibly moves.
      await page.click('[data-testid="settings"] summary');
      await page.fill('[data-testid="opt-kl-warmup"]', '20');
      await page.fill('[data-testid="opt-epochs"]', '60');
      await page.click('[data-testid="train-reset"]');
      await page.waitForFunction(() => window.cellvae.status().settings.kl_warmup_epochs === 20);
      await page.click('[data-testid="settings"] summary');

      await t.test('charts: ELBO, reconstruction and KL, KL per dimension, KL weight schedule', async () => {
        const ids = ['elbo-chart', 'loss-chart', 'kl-dims-chart', 'kl-schedule-chart'];
        const before = await Promise.all(ids.map((id) => pixels(page, id)));
        assert.equal((await status(page)).kl_bars, 2);
        await page.selectOption('[data-testid="steps-per-frame"]', '10');
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().epoch >= 4, null, { timeout: 90_000 });
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training);
        const after = await Promise.all(ids.map((id) => pixels(page, id)));
        ids.forEach((id, i) => assert.notEqual(after[i], before[i], `${id} did not change with training`));
        const s = await status(page);
        assert.equal(s.kl_bars, 2);
        assert.equal(s.kl_per_dim.length, 2);
        assert.ok(s.kl_per_dim.every((k) => Number.isFinite(k) && k >= 0), `KL per dim ${s.kl_per_dim}`);
        assert.ok(s.kl_per_dim.some((k) => k > 0.1), `KL per dim ${s.kl_per_dim}: no dimension in use`);
        // Beta changes the schedule at once.
        const sched = await pixels(page, 'kl-schedule-chart');
        await page.fill('[data-testid="beta"]', '0.5');
        await page.dispatchEvent('[data-testid="beta"]', 'change');
        await page.waitForFunction(() => window.cellvae.status().settings.beta === 0.5);
        assert.notEqual(await pixels(page, 'kl-schedule-chart'), sched);
        await page.fill('[data-testid="beta"]', '1');
        await page.dispatchEvent('[data-testid="beta"]', 'change');
        await page.waitForFunction(() => window.cellvae.status().settings.beta === 1);
        await page.locator('section.charts').screenshot({ path: screenshotPath(`charts-${mode}.png`) });
      });

      await t.test('traversal along an axis: the heatmap lists the genes that change most', async () => {
        await page.selectOption('[data-testid="trav-mode"]', 'axis:1');
        // The path is decoded by the engine: wait for the heatmap's genes.
        await page.waitForFunction(() => window.cellvae.status().traversal_genes.length === 12 && document.querySelector('[data-testid="traversal-heatmap"]').dataset.rows === '12');
        const s = await status(page);
        const path = s.traversal_path;
        assert.equal(path.length, 25);
        // Only z2 moves along the path.
        assert.ok(path.every((p) => Math.abs(p[0] - path[0][0]) < 1e-6));
        assert.ok(path[24][1] > path[0][1]);
        // The listed genes are the 12 largest log1p ranges over the path's decodes.
        const decoded = await page.evaluate((ps) => Promise.all(ps.map((p) => window.cellvae.decode(p))), path);
        const G = decoded[0].length;
        const range = Array.from({ length: G }, (_, g) => {
          const v = decoded.map((row) => Math.log1p(row[g]));
          return Math.max(...v) - Math.min(...v);
        });
        const genes = await page.evaluate(() => window.cellvae.status().traversal_genes);
        assert.equal(genes.length, 12);
        const sorted = [...range].sort((a, b) => b - a);
        assert.ok(sorted[11] > 0, 'no gene responds');
        assert.equal(await page.getAttribute('[data-testid="traversal-heatmap"]', 'data-rows'), '12');
        // Scrubbing moves the probe along the path and redraws the heatmap.
        const heat = await pixels(page, 'traversal-heatmap');
        await page.fill('[data-testid="trav-slider"]', '12');
        await page.dispatchEvent('[data-testid="trav-slider"]', 'input');
        const s2 = await status(page);
        assert.equal(s2.traversal_position, 12);
        s2.probe.forEach((v, j) => assert.ok(Math.abs(v - path[12][j]) < 1e-6));
        assert.notEqual(await pixels(page, 'traversal-heatmap'), heat);
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
        // The heatmap's genes are the top responders of the decoded path.
        const names = await page.evaluate(() => window.cellvae.modelGenes());
        assert.equal(names.length, G);
        const top = range.map((r, g) => [r, g]).sort((x, y) => y[0] - x[0]).slice(0, 12).map(([, g]) => names[g]);
        assert.deepEqual(new Set(genes), new Set(top));
      });

      await t.test('traversal on a line from A to B; animation moves along it', async () => {
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).click({ position: { x: box.width * 0.3, y: box.height * 0.3 } });
        const a = (await status(page)).probe;
        await page.click('[data-testid="trav-a"]');
        await page.locator(MAP).click({ position: { x: box.width * 0.7, y: box.height * 0.75 } });
        const bz = (await status(page)).probe;
        await page.click('[data-testid="trav-b"]');
        assert.equal(await page.inputValue('[data-testid="trav-mode"]'), 'line');
        const path = (await status(page)).traversal_path;
        path[0].forEach((v, j) => assert.ok(Math.abs(v - a[j]) < 1e-6));
        path[24].forEach((v, j) => assert.ok(Math.abs(v - bz[j]) < 1e-6));
        await page.click('[data-testid="trav-play"]');
        const p0 = (await status(page)).traversal_position;
        await page.waitForFunction((p) => window.cellvae.status().traversal_position !== p, p0, { timeout: 10_000 });
        await page.click('[data-testid="trav-play"]');
        const p1 = (await status(page)).traversal_position;
        await page.waitForTimeout(400);
        assert.equal((await status(page)).traversal_position, p1, 'the animation did not stop');
        await page.locator('section.traversal').screenshot({ path: screenshotPath(`traversal-${mode}.png`) });
      });

      await t.test('probe: the nearest cells beside the decoded profile, pinned genes', async () => {
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).click({ position: { x: box.width * 0.5, y: box.height * 0.4 } });
        // The engine answers for the new point (the last point's profile shows meanwhile).
        await page.waitForFunction(() => window.cellvae.status().probe_ready && document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
        const s = await status(page);
        // The nearest cells are the 15 cells whose latent means are closest to the probe.
        const dists = await page.evaluate((z) => Array.from({ length: 700 }, (_, c) => {
          const p = window.cellvae.latentOf(c);
          return [Math.hypot(...p.map((v, j) => v - z[j])), c];
        }), s.probe);
        dists.sort((a, b) => a[0] - b[0]);
        assert.deepEqual(new Set(s.nearest_cells), new Set(dists.slice(0, 15).map(([, c]) => c)));
        assert.match(await page.textContent('[data-testid="probe-profile"]'), /the 15 nearest cells/);
        const cellValues = await page.$$eval('[data-testid="probe-profile"] li .cells-value', (els) => els.map((e) => Number(e.textContent)));
        assert.equal(cellValues.length, 10);
        assert.ok(cellValues.every(Number.isFinite) && cellValues.some((v) => v > 0), `${cellValues}`);
        // Pin two genes; they stay listed as the probe moves; unpin one.
        for (const g of ['CD3E', 'MS4A1']) {
          await page.fill('[data-testid="pin-gene"]', g);
          await page.waitForFunction((name) => window.cellvae.status().pins.includes(name), g);
        }
        assert.equal(await page.inputValue('[data-testid="pin-gene"]'), '');
        const pinned = () => page.$$eval('[data-testid="pinned-profile"] li', (els) => els.map((e) => e.dataset.gene));
        assert.deepEqual(await pinned(), ['CD3E', 'MS4A1']);
        const v1 = await page.textContent('[data-testid="pinned-profile"]');
        await page.locator(MAP).click({ position: { x: box.width * 0.2, y: box.height * 0.8 } });
        // The new profile comes from the engine: wait for it, then check.
        await page.waitForFunction((v) => document.querySelector('[data-testid="pinned-profile"]').textContent !== v, v1);
        assert.deepEqual(await pinned(), ['CD3E', 'MS4A1']);
        assert.deepEqual(await page.$$eval('[data-testid="pins"] li span', (els) => els.map((e) => e.textContent)), ['CD3E', 'MS4A1']);
        await page.click('[data-testid="pins"] button[aria-label="unpin CD3E"]');
        assert.deepEqual(await pinned(), ['MS4A1']);
        await page.locator('.side').screenshot({ path: screenshotPath(`probe-pins-${mode}.png`) });
        await page.click('[data-testid="pins"] button[aria-label="unpin MS4A1"]');
        assert.equal(await page.locator('[data-testid="pinned-profile"]').count(), 0);
      });

      await t.test('decoder field: the background shows a decoded gene over the visible plane', async () => {
        const before = await pixels(page, 'latent-map');
        await page.fill('[data-testid="field-gene"]', 'CST3');
        await page.waitForFunction(() => window.cellvae.status().field_gene === 'CST3');
        const withField = await pixels(page, 'latent-map');
        assert.notEqual(withField, before, 'the field did not change the map');
        assert.equal(await page.locator('[data-testid="field-bar"]').count(), 1);
        const s = await status(page);
        for (const k of ['x0', 'x1', 'y0', 'y1']) assert.ok(Math.abs(s.field_view[k] - s.view[k]) < 1e-9, 'field covers the view');
        // Zooming recomputes the grid for the new view.
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).scrollIntoViewIfNeeded();
        const b2 = await page.locator(MAP).boundingBox();
        await page.mouse.move(b2.x + b2.width / 2, b2.y + b2.height / 2);
        await page.mouse.wheel(0, -300);
        await page.waitForFunction(() => {
          const st = window.cellvae.status();
          return !st.auto_view && st.field_view && Math.abs(st.field_view.x0 - st.view.x0) < 1e-9;
        }, null, { timeout: 10_000 });
        void box;
        await page.locator('section.train').screenshot({ path: screenshotPath(`field-${mode}.png`) });
        // Another gene, another field; no gene, no field.
        const cst3 = await pixels(page, 'latent-map');
        await page.fill('[data-testid="field-gene"]', 'MS4A1');
        await page.waitForFunction(() => window.cellvae.status().field_gene === 'MS4A1');
        assert.notEqual(await pixels(page, 'latent-map'), cst3);
        await page.fill('[data-testid="field-gene"]', '');
        await page.waitForFunction(() => window.cellvae.status().field_gene === null);
        await page.click('[data-testid="reset-view"]');
        assert.equal(await page.locator('[data-testid="field-bar"]').count(), 0);
        // A gene the model does not have is marked.
        await page.fill('[data-testid="field-gene"]', 'NOT_A_GENE');
        await page.dispatchEvent('[data-testid="field-gene"]', 'change');
        assert.match(await page.getAttribute('[data-testid="field-gene"]', 'class'), /invalid/);
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
