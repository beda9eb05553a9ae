// Model and training settings applied by Reset (architecture, likelihood, QC, top genes,
// seed, warm-up, batch and label columns), refused settings keep the model, and more
// than 2 latent dimensions: PCA with a stable orientation, axis pairs, and the probe in
// the shown plane through the nearest cell. WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, openApp, status, screenshotPath, SHARED } from './browser.mjs';

const MAP = '[data-testid="latent-map"]';
const mapData = (page) => page.evaluate((sel) => document.querySelector(sel).toDataURL(), MAP);

async function setSettings(page, values) {
  if (!(await page.isVisible('[data-testid="opt-n-latent"]'))) await page.click('[data-testid="settings"] summary');
  for (const [k, v] of Object.entries(values)) {
    const sel = `[data-testid="opt-${k}"]`;
    if ((await page.$eval(sel, (e) => e.tagName)) === 'SELECT') await page.selectOption(sel, v);
    else await page.fill(sel, v);
  }
}

const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`settings and more latent dimensions (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });

      await t.test('Reset applies the architecture, likelihood, QC, genes and schedule', async () => {
        await setSettings(page, {
          'n-latent': '4', 'n-hidden': '32', 'n-layers': '2', likelihood: 'zinb', 'kl-warmup': '10',
          epochs: '30', 'batch-size': '64', seed: '3', 'top-genes': '300', 'min-counts': '500', 'min-genes': '200',
          'label-key': 'louvain',
        });
        await page.click('[data-testid="train-reset"]');
        await page.waitForFunction(() => window.cellvae.status().n_latent === 4);
        const s = await status(page);
        assert.equal(s.model.n_hidden, 32);
        assert.equal(s.model.n_layers, 2);
        assert.equal(s.model.likelihood, 'zinb');
        assert.equal(s.model.n_genes, 300);
        assert.equal(s.settings.epochs, 30);
        assert.equal(s.settings.kl_warmup_epochs, 10);
        assert.equal(s.label_key, 'louvain');
        assert.equal(s.colour_by, 'obs:louvain');
        assert.ok(s.n_train_cells < 700 && s.n_train_cells > 100, `QC kept ${s.n_train_cells} cells`);
        const what = await page.textContent('[data-testid="train-what"]');
        assert.match(what, /700 cells \(\d+ train; \d+ removed by QC/);
        assert.match(what, /300 genes, 4-D latent space, ZINB likelihood, 32 hidden × 2 layers/);
        assert.equal(await page.textContent('[data-testid="train-error"]'), '');
        // What QC and gene selection did, in words.
        assert.equal(await page.isVisible('[data-testid="prep-report"]'), true);
        const report = await page.textContent('[data-testid="prep-report"]');
        assert.match(report, /dropped \d+ cells with fewer than 500 counts/);
        assert.match(report, /dropped \d+ cells with fewer than 200 detected genes/);
        assert.match(report, /kept 300 highly variable genes/);
        const dropped = [...report.matchAll(/dropped (\d+) cells/g)].reduce((a, m) => a + Number(m[1]), 0);
        assert.equal(700 - dropped, (await status(page)).n_train_cells, report);
      });

      await t.test('the seed is applied: same seed, same first step', async () => {
        const elbos = [];
        for (const seed of ['3', '3', '4']) {
          await setSettings(page, { seed });
          await page.click('[data-testid="train-reset"]');
          await page.waitForFunction(() => window.cellvae.status().step === 0);
          await page.click('[data-testid="train-step"]');
          await page.waitForFunction(() => window.cellvae.status().step === 1);
          elbos.push((await status(page)).elbo);
        }
        assert.equal(elbos[0], elbos[1], `same seed: ${elbos}`);
        assert.notEqual(elbos[0], elbos[2], `different seeds: ${elbos}`);
      });

      await t.test('a refused setting says why and keeps the model', async () => {
        const before = await status(page);
        await setSettings(page, { 'n-latent': '0' });
        await page.click('[data-testid="train-reset"]');
        await page.waitForSelector('[data-testid="train-error"]:not([hidden])');
        assert.match(await page.textContent('[data-testid="train-error"]'), /latent dimensions must be a whole number/);
        await setSettings(page, { 'n-latent': '4', 'min-counts': '100000' });
        await page.click('[data-testid="train-reset"]');
        await page.waitForFunction(() => /min|counts|cells/.test(document.querySelector('[data-testid="train-error"]').textContent));
        const after = await status(page);
        assert.equal(after.step, before.step, 'the model was replaced');
        assert.equal(after.n_latent, 4);
        await setSettings(page, { 'min-counts': '500', seed: '3' });
      });

      await t.test('4 latent dimensions: PCA with a stable orientation, axis pairs', async () => {
        // Enough epochs that the run cannot finish before the pause below arrives (30
        // epochs of 10 steps can pass in about a second at full speed).
        await setSettings(page, { epochs: '1000' });
        await page.click('[data-testid="train-reset"]');
        await page.waitForFunction(() => window.cellvae.status().step === 0);
        assert.equal(await page.isVisible('[data-testid="axes"]'), true);
        assert.equal(await page.inputValue('[data-testid="axes"]'), 'pca');
        const axesOptions = await page.$$eval('[data-testid="axes"] option', (os) => os.map((o) => o.value));
        assert.deepEqual(axesOptions, ['pca', '0,1', '0,2', '0,3', '1,2', '1,3', '2,3']);
        assert.match(await page.textContent('[data-testid="plane-note"]'), /4-D latent space shown by its first two principal components/);
        assert.equal((await status(page)).kl_bars, 4, 'KL per dimension: one bar per latent dimension');
        await page.selectOption('[data-testid="steps-per-frame"]', '5');
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().epoch >= 3, null, { timeout: 60_000 });
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => !window.cellvae.status().training);
        // Each redraw's axes follow the previous redraw's orientation: no flips.
        let prev = (await status(page)).pca_axes;
        for (let k = 0; k < 6; k++) {
          const step = (await status(page)).step;
          await page.click('[data-testid="train-step"]');
          await page.waitForFunction((n) => window.cellvae.status().step === n + 1, step);
          const axes = (await status(page)).pca_axes;
          assert.equal(axes.length, 2);
          for (const a of axes) assert.ok(Math.abs(dot(a, a) - 1) < 1e-6, 'unit axes');
          assert.ok(Math.abs(dot(axes[0], axes[1])) < 1e-6, 'orthogonal axes');
          assert.ok(dot(axes[0], prev[0]) > 0 && dot(axes[1], prev[1]) > 0, `flipped: ${JSON.stringify([prev, axes])}`);
          prev = axes;
        }
        const pca = await mapData(page);
        await page.selectOption('[data-testid="axes"]', '2,3');
        assert.equal((await status(page)).projection, 'z3,z4');
        assert.notEqual(await mapData(page), pca);
      });

      await t.test('the probe moves in the shown plane through the nearest cell', async () => {
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).click({ position: { x: box.width * 0.45, y: box.height * 0.55 } });
        const s = await status(page);
        assert.equal(s.probe.length, 4);
        assert.ok(s.probe_cell >= 0);
        const cell = await page.evaluate((c) => window.cellvae.latentOf(c), s.probe_cell);
        // Axes z3, z4 shown: z1 and z2 are the nearest cell's.
        assert.ok(Math.abs(s.probe[0] - cell[0]) < 1e-6 && Math.abs(s.probe[1] - cell[1]) < 1e-6, `${s.probe} vs ${cell}`);
        const note = await page.textContent('[data-testid="plane-note"]');
        assert.match(note, /probe moves in the shown plane through the latent point of the nearest cell \(.+\)/);
        // And under PCA the probe projects to where it was put, off-plane parts from the cell.
        await page.selectOption('[data-testid="axes"]', 'pca');
        await page.locator(MAP).click({ position: { x: box.width * 0.5, y: box.height * 0.5 } });
        const s2 = await status(page);
        const c2 = await page.evaluate((c) => window.cellvae.latentOf(c), s2.probe_cell);
        const [a1, a2] = s2.pca_axes;
        const diff = s2.probe.map((x, i) => x - c2[i]);
        const off = diff.map((x, i) => x - dot(diff, a1) * a1[i] - dot(diff, a2) * a2[i]);
        assert.ok(Math.hypot(...off) < 1e-5, `the probe left the plane through the cell: ${off}`);
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
        await page.locator('section.train').screenshot({ path: screenshotPath(`settings-pca-${mode}.png`) });
      });

      await t.test('batch column: batches in the model and in the probe', async () => {
        await page.setInputFiles('[data-testid="file-input"]', path.join(SHARED, 'wu2020_200/wu2020_200_v0_11.h5ad'));
        await page.waitForFunction(() => window.cellvae.status().n_cells === 200, null, { timeout: 60_000 });
        const cols = await page.$$eval('[data-testid="opt-batch-key"] option', (os) => os.map((o) => o.value));
        assert.ok(cols.includes('source') && cols.includes('batch'), `batch columns offered: ${cols}`);
        await setSettings(page, {
          'n-latent': '2', 'n-hidden': '32', 'n-layers': '1', likelihood: 'nb', 'top-genes': '', 'min-counts': '0',
          'min-genes': '0', 'batch-key': 'source', dispersion: 'gene-batch', 'label-key': 'cluster_orig',
        });
        await page.click('[data-testid="train-reset"]');
        await page.waitForFunction(() => window.cellvae.status().batch_key === 'source'
          || !document.querySelector('[data-testid="train-error"]').hidden, null, { timeout: 60_000 });
        assert.equal(await page.textContent('[data-testid="train-error"]'), '');
        const s = await status(page);
        assert.equal(s.model.n_batches, 3);
        assert.equal(s.model.dispersion, 'gene-batch');
        assert.equal(await page.$$eval('[data-testid="probe-batch"] option', (os) => os.length), 3);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1);
        const box = await page.locator(MAP).boundingBox();
        await page.locator(MAP).click({ position: { x: box.width * 0.5, y: box.height * 0.5 } });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
        const first = await page.textContent('[data-testid="probe-profile"]');
        const levels = await page.$$eval('[data-testid="probe-batch"] option', (os) => os.map((o) => o.value));
        await page.selectOption('[data-testid="probe-batch"]', levels[2]);
        // The engine decodes for the new batch: wait for a new profile (it must come).
        await page.waitForFunction((f) => document.querySelector('[data-testid="probe-profile"]').textContent !== f, first, { timeout: 10_000 });
        // Library size scales the expected counts.
        const second = await page.textContent('[data-testid="probe-profile"]');
        await page.fill('[data-testid="probe-library"]', '20000');
        await page.dispatchEvent('[data-testid="probe-library"]', 'change');
        await page.waitForFunction(() => /library 20000/.test(document.querySelector('[data-testid="probe-profile"]').textContent), null, { timeout: 10_000 });
        const values = (t) => [...t.matchAll(/(\d+\.\d)/g)].map((m) => Number(m[1]));
        const [a, b] = [values(second), values(await page.textContent('[data-testid="probe-profile"]'))];
        assert.ok(b.reduce((x, y) => x + y, 0) > a.reduce((x, y) => x + y, 0), 'a larger library did not raise the expected counts');
        await page.screenshot({ path: screenshotPath(`settings-${mode}.png`), fullPage: true });
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
