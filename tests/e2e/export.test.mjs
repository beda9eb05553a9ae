// Saving and loading: latent means as CSV, the model as model.safetensors + config.json
// (the files `cellvae train` writes), the probe's profile as CSV, the map and the charts
// as PNG; loading the model back gives the same decoder and encoder, a model written by
// the command line loads too, and a model whose genes the data lacks is a clear error.
// WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { launch, openApp, status, screenshotPath, SHARED } from './browser.mjs';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const MAP = '[data-testid="latent-map"]';

// Clicks an export button and returns the downloaded file's name and bytes.
async function download(page, testid) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid="${testid}"]`)]);
  const file = await dl.path();
  return { name: dl.suggestedFilename(), bytes: fs.readFileSync(file) };
}

function safetensorsHeader(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), dataStart: 8 + n };
}

function pngSize(bytes) {
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(bytes.subarray(12, 16).toString('latin1'), 'IHDR');
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

const close = (a, b, tol) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`save and load (${mode})`, async (t) => {
    const b = await launch(webgpu);
    const saved = fs.mkdtempSync(path.join(os.tmpdir(), 'cellvae-saved-'));
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      await page.selectOption('[data-testid="steps-per-frame"]', '10');
      await page.click('[data-testid="train-toggle"]');
      await page.waitForFunction(() => window.cellvae.status().epoch >= 3, null, { timeout: 90_000 });
      await page.click('[data-testid="train-toggle"]');
      await page.waitForFunction(() => !window.cellvae.status().training);
      const box = await page.locator(MAP).boundingBox();
      await page.locator(MAP).click({ position: { x: box.width * 0.4, y: box.height * 0.6 } });
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
      const barcodes = fs.readFileSync(path.join(SHARED, 'pbmc68k_reduced_700/barcodes.tsv'), 'utf8').trim().split('\n');

      await t.test('latent means as CSV: ids, one row per cell, the numbers shown', async () => {
        const { name, bytes } = await download(page, 'export-latent');
        assert.equal(name, 'latent.csv');
        const lines = bytes.toString('utf8').trim().split('\n');
        assert.equal(lines[0], 'cell_id,z1,z2');
        assert.equal(lines.length, 701);
        const rows = lines.slice(1).map((l) => l.split(','));
        assert.deepEqual(rows.map((r) => r[0]), barcodes);
        for (const c of [0, 123, 699]) {
          const want = await page.evaluate((i) => window.cellvae.latentOf(i), c);
          const got = rows[c].slice(1).map(Number);
          assert.equal(got.length, 2);
          got.forEach((v, j) => assert.ok(Number.isFinite(v) && close(v, want[j], 1e-6), `cell ${c}: ${got} vs ${want}`));
        }
        fs.writeFileSync(path.join(saved, 'latent.csv'), bytes);
      });

      await t.test('the model: model.safetensors and config.json as the command line writes them', async () => {
        const w = await download(page, 'export-model-weights');
        const c = await download(page, 'export-model-config');
        assert.equal(w.name, 'model.safetensors');
        assert.equal(c.name, 'config.json');
        const { header, dataStart } = safetensorsHeader(w.bytes);
        const cli = safetensorsHeader(fs.readFileSync(path.join(FIXTURES, 'model.safetensors'))).header;
        const names = Object.keys(header).filter((k) => k !== '__metadata__').sort();
        assert.deepEqual(names, Object.keys(cli).filter((k) => k !== '__metadata__').sort(), 'the same tensors as the CLI writes');
        let end = 0;
        for (const k of names) {
          assert.equal(header[k].dtype, 'F32', k);
          const n = header[k].shape.reduce((a, x) => a * x, 1);
          assert.equal(header[k].data_offsets[1] - header[k].data_offsets[0], 4 * n, k);
          end = Math.max(end, header[k].data_offsets[1]);
        }
        assert.equal(w.bytes.length, dataStart + end);
        const cfg = JSON.parse(c.bytes.toString('utf8'));
        const cliCfg = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'config.json'), 'utf8'));
        assert.deepEqual(Object.keys(cfg).sort(), Object.keys(cliCfg).sort());
        assert.deepEqual(Object.keys(cfg.model).sort(), Object.keys(cliCfg.model).sort());
        assert.equal(cfg.format, 'cellvae-model');
        assert.equal(cfg.model.n_latent, 2);
        assert.equal(cfg.model.n_genes, 765);
        assert.equal(cfg.gene_names.length, 765);
        assert.deepEqual(header['decoder.scale.weight'].shape, [128, 765]);
        assert.deepEqual(header['encoder.mean.weight'].shape, [128, 2]);
        fs.writeFileSync(path.join(saved, 'model.safetensors'), w.bytes);
        fs.writeFileSync(path.join(saved, 'config.json'), c.bytes);
      });

      await t.test('AnnData (.h5ad): an HDF5 file with the counts, the metadata and the latent means', async () => {
        const full = await download(page, 'export-h5ad');
        const small = await download(page, 'export-h5ad-small');
        assert.equal(full.name, 'cellvae.h5ad');
        assert.equal(small.name, 'cellvae-minified.h5ad');
        const sig = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
        assert.ok(full.bytes.subarray(0, 8).equals(sig) && small.bytes.subarray(0, 8).equals(sig), 'HDF5 signature');
        assert.ok(small.bytes.length < full.bytes.length, 'the minified file is smaller');
        for (const needle of ['X_cellvae', 'cell_type', 'csr_matrix', 'anndata']) {
          assert.ok(full.bytes.includes(Buffer.from(needle)), `${needle} in the file`);
        }
        assert.ok(!small.bytes.includes(Buffer.from('csr_matrix')), 'no counts in the minified file');
        fs.writeFileSync(path.join(saved, 'cellvae.h5ad'), full.bytes);
      });

      await t.test('the probe profile as CSV: every gene, decoded and the nearest cells observed', async () => {
        const { name, bytes } = await download(page, 'export-probe');
        assert.equal(name, 'probe-profile.csv');
        const lines = bytes.toString('utf8').trim().split('\n');
        assert.equal(lines[0], 'gene,expected_count,nearest_15_cells_mean');
        assert.equal(lines.length, 766);
        const s = await status(page);
        const want = await page.evaluate((z) => window.cellvae.decode(z), s.probe);
        const rows = lines.slice(1).map((l) => l.split(','));
        rows.forEach(([, v], i) => assert.ok(close(Number(v), want[i], 1e-6), `gene ${i}: ${v} vs ${want[i]}`));
        const top = rows.reduce((a, r) => (Number(r[1]) > Number(a[1]) ? r : a));
        const shownTop = await page.textContent('[data-testid="probe-profile"] li .gene');
        assert.equal(top[0], shownTop);
        // The third column: mean of count / total * library over the 15 nearest cells,
        // recomputed here from the Matrix Market file.
        const mtx = zlib.gunzipSync(fs.readFileSync(path.join(SHARED, 'pbmc68k_reduced_700/matrix.mtx.gz'))).toString('utf8')
          .split('\n').filter((l) => l && !l.startsWith('%')).slice(1).map((l) => l.trim().split(/\s+/).map(Number));
        const cellsOf = new Map(s.nearest_cells.map((c) => [c, new Map()]));
        const totals = new Map(s.nearest_cells.map((c) => [c, 0]));
        for (const [g, c, v] of mtx) {
          if (!cellsOf.has(c - 1)) continue;
          cellsOf.get(c - 1).set(g - 1, v);
          totals.set(c - 1, totals.get(c - 1) + v);
        }
        const library = Number(await page.inputValue('[data-testid="probe-library"]'));
        assert.equal(s.nearest_cells.length, 15);
        for (const g of [0, 100, 500, 764]) {
          let sum = 0;
          for (const c of s.nearest_cells) sum += ((cellsOf.get(c).get(g) || 0) / totals.get(c)) * library;
          const got = Number(rows[g][2]);
          assert.ok(close(got, sum / 15, 1e-4), `gene ${g}: ${got} vs ${sum / 15}`);
        }
      });

      await t.test('the map and the charts as PNG', async () => {
        const map = await download(page, 'export-map-png');
        assert.equal(map.name, 'latent-map.png');
        // The map's drawing buffer, whatever size the layout gave it.
        const size = await page.evaluate(() => { const c = document.querySelector('[data-testid="latent-map"]'); return [c.width, c.height]; });
        assert.deepEqual(pngSize(map.bytes), size);
        assert.ok(size[0] >= 200 && size[1] >= 200, `map ${size}`);
        const charts = await download(page, 'export-charts-png');
        assert.equal(charts.name, 'charts.png');
        const [w, h] = pngSize(charts.bytes);
        assert.ok(w >= 880 && h >= 340, `charts ${w}x${h}`);
        assert.ok(charts.bytes.length > 5000, 'the charts image is empty');
      });

      await t.test('loading the saved model back gives the same decoder and encoder', async () => {
        const z = [0.3, -0.2];
        const before = await page.evaluate((p) => window.cellvae.decode(p), z);
        const latentBefore = await page.evaluate(() => [0, 1, 2, 350, 699].map((c) => window.cellvae.latentOf(c)));
        // A fresh model decodes differently...
        await page.click('[data-testid="train-reset"]');
        await page.waitForFunction(() => window.cellvae.status().step === 0);
        const fresh = await page.evaluate((p) => window.cellvae.decode(p), z);
        assert.notDeepEqual(fresh, before);
        // ...the loaded one exactly as before.
        await page.setInputFiles('[data-testid="model-input"]', [path.join(saved, 'model.safetensors'), path.join(saved, 'config.json')]);
        await page.waitForFunction(() => /config\.json/.test(window.cellvae.status().origin || ''));
        const after = await page.evaluate((p) => window.cellvae.decode(p), z);
        assert.deepEqual(after, before, 'decoded profiles differ after the round trip');
        const latentAfter = await page.evaluate(() => [0, 1, 2, 350, 699].map((c) => window.cellvae.latentOf(c)));
        assert.deepEqual(latentAfter, latentBefore, 'latent means differ after the round trip');
        assert.match(await page.textContent('[data-testid="train-what"]'), /Loaded a model from config\.json/);
        assert.equal(await page.isHidden('[data-testid="import-error"]'), true);
        // It can keep training.
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1);
        assert.ok(Number.isFinite((await status(page)).elbo));
      });

      await t.test('a model written by `cellvae train` loads: same latent means as its latent.tsv', async () => {
        await page.setInputFiles('[data-testid="model-input"]', [path.join(FIXTURES, 'model.safetensors'), path.join(FIXTURES, 'config.json')]);
        await page.waitForFunction(() => window.cellvae.status().n_latent === 4);
        const s = await status(page);
        assert.equal(s.model.n_genes, 300);
        assert.equal(s.model.n_hidden, 16);
        const tsv = fs.readFileSync(path.join(FIXTURES, 'latent.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
        assert.equal(tsv.length, 700);
        for (const c of [0, 10, 345, 699]) {
          const got = await page.evaluate((i) => window.cellvae.latentOf(i), c);
          const want = tsv[c].slice(1).map(Number);
          got.forEach((v, j) => assert.ok(Math.abs(v - want[j]) < 1e-4, `cell ${c} z${j + 1}: page ${v}, CLI ${want[j]}`));
        }
        await page.locator(MAP).click({ position: { x: box.width * 0.5, y: box.height * 0.5 } });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
        await page.screenshot({ path: screenshotPath(`imported-cli-model-${mode}.png`), fullPage: true });
      });

      await t.test('an scvi-tools model.pt loads: the latent means scvi-tools computed', async () => {
        const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'scvi', 'nb_batch');
        await page.setInputFiles('[data-testid="model-input"]', [path.join(dir, 'model.pt')]);
        await page.waitForFunction(() => /model\.pt/.test(window.cellvae.status().origin || ''));
        const s = await status(page);
        assert.equal(s.model.n_genes, 200);
        assert.equal(s.n_latent, 5);
        assert.match(s.origin, /scvi-tools/);
        assert.match(await page.textContent('[data-testid="export-note"]'), /scvi-tools model model\.pt/);
        const want = fs.readFileSync(path.join(dir, 'latent.tsv'), 'utf8').trim().split('\n').map((l) => l.split('\t').map(Number));
        for (const c of [0, 7, 19]) {
          const got = await page.evaluate((i) => window.cellvae.latentOf(i), c);
          got.forEach((v, j) => assert.ok(Math.abs(v - want[c][j]) <= 1e-4 * Math.max(Math.abs(want[c][j]), 1e-2), `cell ${c} z${j + 1}: page ${v}, scvi-tools ${want[c][j]}`));
        }
        assert.equal(await page.isHidden('[data-testid="import-error"]'), true);
        await page.screenshot({ path: screenshotPath(`imported-scvi-model-${mode}.png`), fullPage: true });
      });

      await t.test("the model for scvi-tools (model.pt): a torch zip that the page loads back with the same latent means (from the scvi-tools model just loaded)", async () => {
        const pt = await download(page, 'export-scvi');
        assert.equal(pt.name, 'model.pt');
        assert.ok(pt.bytes.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')), 'a zip file');
        for (const needle of ['model/data.pkl', 'model/version', 'z_encoder.mean_encoder.weight', 'registry_']) {
          assert.ok(pt.bytes.includes(Buffer.from(needle)), `${needle} in model.pt`);
        }
        fs.writeFileSync(path.join(saved, 'model.pt'), pt.bytes);
        const before = await page.evaluate(() => [0, 350, 699].map((c) => window.cellvae.latentOf(c)));
        await page.evaluate(() => { document.querySelector('[data-testid="export-note"]').textContent = ''; });
        await page.setInputFiles('[data-testid="model-input"]', [path.join(saved, 'model.pt')]);
        await page.waitForFunction(() => /Loaded the scvi-tools model/.test(document.querySelector('[data-testid="export-note"]').textContent));
        const after = await page.evaluate(() => [0, 350, 699].map((c) => window.cellvae.latentOf(c)));
        after.flat().forEach((v, i) => assert.ok(close(v, before.flat()[i], 1e-5), `latent ${i}: ${v} vs ${before.flat()[i]}`));
      });

      await t.test('wrong files are clear errors and keep the current model', async () => {
        const before = await status(page);
        // One file only.
        await page.setInputFiles('[data-testid="model-input"]', [path.join(FIXTURES, 'config.json')]);
        await page.waitForSelector('[data-testid="import-error"]:not([hidden])');
        assert.match(await page.textContent('[data-testid="import-error"]'), /choose both files/);
        // A damaged model.safetensors.
        const broken = path.join(saved, 'broken', 'model.safetensors');
        fs.mkdirSync(path.dirname(broken), { recursive: true });
        fs.writeFileSync(broken, fs.readFileSync(path.join(FIXTURES, 'model.safetensors')).subarray(0, 500));
        await page.setInputFiles('[data-testid="model-input"]', [broken, path.join(FIXTURES, 'config.json')]);
        await page.waitForFunction(() => /model\.safetensors/.test(document.querySelector('[data-testid="import-error"]').textContent));
        // Data without the model's genes.
        await page.setInputFiles('[data-testid="file-input"]', path.join(SHARED, 'scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5'));
        await page.waitForFunction(() => window.cellvae.status().format === '10x-h5', null, { timeout: 60_000 });
        const s0 = await status(page);
        await page.setInputFiles('[data-testid="model-input"]', [path.join(FIXTURES, 'model.safetensors'), path.join(FIXTURES, 'config.json')]);
        await page.waitForFunction(() => /genes/.test(document.querySelector('[data-testid="import-error"]').textContent));
        const msg = await page.textContent('[data-testid="import-error"]');
        assert.match(msg, /lacks \d+ of the model's 300 genes/);
        const s1 = await status(page);
        assert.equal(s1.n_latent, s0.n_latent);
        assert.equal(s1.origin, 'new');
        assert.ok(before.n_latent === 5, 'the scvi-tools model loaded last is kept');
        await page.locator('section.export').screenshot({ path: screenshotPath(`import-error-${mode}.png`) });
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
      fs.rmSync(saved, { recursive: true, force: true });
    }
  });
}
