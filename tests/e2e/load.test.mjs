// Loading files: read and parsed in a Web Worker with progress, so the page keeps
// running while a 10,000-cell matrix is parsed; a damaged file shows its error and
// leaves the data loaded before intact. WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, openApp, status, mtxFacts, SHARED } from './browser.mjs';

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`loading files (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await openApp(page);

      await t.test('a 10,000-cell matrix is parsed in a worker, with progress, the page running', async () => {
        const dir = path.join(SHARED, 'mouse_10k_1000');
        const want = mtxFacts(path.join(dir, 'matrix.mtx.gz'));
        // A heartbeat on the page: gaps show when the main thread is blocked.
        await page.evaluate(() => {
          window.beats = [];
          window.beatTimer = setInterval(() => window.beats.push(performance.now()), 10);
        });
        await page.setInputFiles('[data-testid="file-input"]', ['matrix.mtx.gz', 'features.tsv', 'barcodes.tsv'].map((f) => path.join(dir, f)));
        await page.waitForFunction(() => window.cellvae.status().n_cells === 10000, null, { timeout: 120_000 });
        const s = await status(page);
        assert.equal(s.n_genes, want.genes);
        assert.equal(s.total_counts, want.total);
        assert.equal(s.load.in_worker, true, 'parsed on the page, not in a worker');
        assert.ok(s.load.log.some((l) => /^Reading /.test(l)), `progress: ${s.load.log}`);
        assert.ok(s.load.log.some((l) => /^Parsing /.test(l)), `progress: ${s.load.log}`);
        assert.match(await page.textContent('#progress'), /^Read matrix\.mtx\.gz, features\.tsv, barcodes\.tsv in [\d.]+ s\.$/);
        assert.equal(await page.isHidden('[data-testid="load-progress"]'), true);
        const beats = await page.evaluate(() => { clearInterval(window.beatTimer); return window.beats; });
        const during = beats.filter((x) => x >= s.load.started_at && x <= s.load.parsed_at);
        let gap = 0;
        for (let i = 1; i < during.length; i++) gap = Math.max(gap, during[i] - during[i - 1]);
        assert.ok(during.length > 3, `only ${during.length} heartbeats while parsing (${s.load.parse_ms} ms)`);
        assert.ok(gap < 150, `the page stalled ${gap.toFixed(0)} ms while the worker parsed for ${s.load.parse_ms.toFixed(0)} ms`);
      });

      await t.test('dropping several .h5 samples joins them with a sample column to colour by', async () => {
        const b64 = fs.readFileSync(path.join(SHARED, 'scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5')).toString('base64');
        await page.evaluate(async (data) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([bytes], 'donor_a.h5'));
          dt.items.add(new File([bytes], 'donor_b.h5'));
          const zone = document.querySelector('[data-testid="drop-zone"]');
          zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
          zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }, b64);
        await page.waitForFunction(() => window.cellvae.status().n_cells === 2214, null, { timeout: 60_000 });
        assert.match(await page.textContent('[data-testid="summary"]'), /sample \(2 levels\)/);
        await page.selectOption('[data-testid="colour-by"]', 'obs:sample');
        const legend = await page.textContent('[data-testid="legend"]');
        assert.match(legend, /donor_a\S* \(1107\)/);
        assert.match(legend, /donor_b\S* \(1107\)/);
        // The sample column can be the batch.
        await page.click('[data-testid="settings"] summary');
        await page.selectOption('[data-testid="opt-batch-key"]', 'sample');
        await page.click('[data-testid="train-reset"]');
        await page.waitForFunction(() => window.cellvae.status().batch_key === 'sample', null, { timeout: 60_000 });
        assert.equal((await status(page)).model.n_batches, 2);
        await page.click('[data-testid="settings"] summary');
      });

      await t.test('a metadata table chosen after the counts is joined to them', async () => {
        const dir = path.join(SHARED, 'pbmc68k_reduced_700');
        await page.setInputFiles('[data-testid="file-input"]', ['matrix.mtx.gz', 'features.tsv', 'barcodes.tsv'].map((f) => path.join(dir, f)));
        await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
        assert.match(await page.textContent('[data-testid="summary"]'), /metadata columns\s*none/);
        await page.setInputFiles('[data-testid="obs-input"]', path.join(dir, 'cells.tsv'));
        await page.waitForFunction(() => /cell_type \(10 levels\)/.test(document.querySelector('[data-testid="summary"]').textContent), null, { timeout: 60_000 });
        assert.equal((await status(page)).label_key, 'cell_type');
        assert.match(await page.textContent('#progress'), /with cells\.tsv/);
      });

      await t.test('a damaged file shows its error and keeps the data loaded before', async () => {
        const before = await status(page);
        const gz = fs.readFileSync(path.join(SHARED, 'mouse_10k_1000/matrix.mtx.gz'));
        const files = [
          { name: 'matrix.mtx.gz', mimeType: 'application/gzip', buffer: gz.subarray(0, Math.floor(gz.length / 2)) },
          { name: 'features.tsv', mimeType: 'text/plain', buffer: fs.readFileSync(path.join(SHARED, 'mouse_10k_1000/features.tsv')) },
          { name: 'barcodes.tsv', mimeType: 'text/plain', buffer: fs.readFileSync(path.join(SHARED, 'mouse_10k_1000/barcodes.tsv')) },
        ];
        await page.setInputFiles('[data-testid="file-input"]', files);
        await page.waitForSelector('[data-testid="error"]:not([hidden])', { timeout: 60_000 });
        assert.match(await page.textContent('[data-testid="error"]'), /matrix\.mtx\.gz/);
        assert.equal(await page.textContent('#progress'), 'The data loaded before is still there.');
        const after = await status(page);
        assert.equal(after.n_cells, before.n_cells);
        assert.equal(after.total_counts, before.total_counts);
        assert.equal(after.load.phase, 'failed');
        // The loaded data still trains.
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1, null, { timeout: 60_000 });
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
