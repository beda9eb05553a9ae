// The served page in headless Chromium, once with WebGPU (SwiftShader) and once without.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, openApp, status, mtxFacts, screenshotPath, SHARED, BASE_URL } from './browser.mjs';

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`page (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      // Every securitypolicyviolation, from the page's first script on: an injection that
      // the CSP stops still shows here.
      await page.addInitScript(() => {
        window.__violations = [];
        document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sample}`));
      });
      await openApp(page);

      await t.test('says which backend is in use', async () => {
        const s = await status(page);
        assert.equal(s.backend, webgpu ? 'webgpu' : 'cpu', `backend label: ${await page.textContent('#backend')}`);
        const label = await page.textContent('[data-testid="backend"]');
        if (webgpu) assert.match(label, /WebGPU on/);
        else assert.match(label, /CPU/);
      });

      await t.test('the demo loads through the wasm core and its summary is right', async () => {
        const want = mtxFacts(path.join(SHARED, 'pbmc68k_reduced_700/matrix.mtx.gz'));
        await page.click('[data-testid="demo-button"]');
        await page.waitForFunction(() => window.cellvae.status().n_cells > 0, null, { timeout: 60_000 });
        const s = await status(page);
        assert.equal(s.n_cells, want.cells);
        assert.equal(s.n_genes, want.genes);
        assert.equal(s.total_counts, want.total);
        const summary = await page.textContent('[data-testid="summary"]');
        assert.match(summary, /700/);
        assert.match(summary, /cell_type \(10 levels\)/);
        // The next step, Train, is on screen (a laptop-sized window).
        const vp = page.viewportSize();
        const box = await page.locator('[data-testid="train-toggle"]').boundingBox();
        assert.ok(box.y >= 0 && box.y + box.height <= vp.height, `Train is off screen at y=${box.y} (window ${vp.height})`);
        await page.screenshot({ path: screenshotPath(`demo-${mode}.png`), fullPage: true });
      });

      await t.test('a bad file shows its error and keeps the loaded data', async () => {
        const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
        await page.setInputFiles('[data-testid="file-input"]', { name: 'picture.h5ad', mimeType: 'application/octet-stream', buffer: png });
        await page.waitForSelector('[data-testid="error"]:not([hidden])');
        const msg = await page.textContent('[data-testid="error"]');
        assert.match(msg, /picture\.h5ad/);
        assert.match(msg, /HDF5/);
        const s = await status(page);
        assert.equal(s.n_cells, 700, 'the demo must still be loaded');
        // A real h5ad without raw counts (scanpy's scaled pbmc68k_reduced): the error
        // says where the non-counts are and what to do; the demo stays.
        await page.setInputFiles('[data-testid="file-input"]', path.join(SHARED, 'pbmc68k_reduced_700/original_scanpy_10x_pbmc68k_reduced.h5ad'));
        await page.waitForFunction(() => /holds no raw counts/.test(document.querySelector('[data-testid="error"]').textContent), null, { timeout: 60_000 });
        const msg2 = await page.textContent('[data-testid="error"]');
        assert.match(msg2, /original_scanpy_10x_pbmc68k_reduced\.h5ad/);
        assert.match(msg2, /raw\.X holds non-integer values/);
        assert.match(msg2, /layers\/counts/);
        assert.equal((await status(page)).n_cells, 700, 'the demo must still be loaded');
        await page.screenshot({ path: screenshotPath(`bad-file-${mode}.png`), fullPage: true });
      });

      await t.test('each format from shared data uploads', async () => {
        const cases = [
          { files: ['scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5'], mtx: 'scanpy_10x_v3_chr21/filtered_feature_bc_matrix/matrix.mtx.gz', format: '10x-h5' },
          { files: ['scanpy_10x_v3_chr21/filtered_feature_bc_matrix/matrix.mtx.gz', 'scanpy_10x_v3_chr21/filtered_feature_bc_matrix/features.tsv.gz', 'scanpy_10x_v3_chr21/filtered_feature_bc_matrix/barcodes.tsv.gz'], mtx: 'scanpy_10x_v3_chr21/filtered_feature_bc_matrix/matrix.mtx.gz', format: '10x-mtx' },
          { files: ['wu2020_200/wu2020_200_v0_11.h5ad'], mtx: 'wu2020_200/matrix.mtx.gz', format: 'h5ad' },
        ];
        for (const c of cases) {
          const want = mtxFacts(path.join(SHARED, c.mtx));
          await page.setInputFiles('[data-testid="file-input"]', c.files.map((f) => path.join(SHARED, f)));
          await page.waitForFunction((fmt) => window.cellvae.status().format === fmt, c.format, { timeout: 60_000 });
          const s = await status(page);
          assert.equal(s.n_cells, want.cells, c.format);
          assert.equal(s.n_genes, want.genes, c.format);
          assert.equal(s.total_counts, want.total, c.format);
        }
      });

      await t.test('text from a file is shown as text, never as HTML', async () => {
        // Hostile text in a file name, gene names, a cell id, a metadata column's name and
        // a value. Each payload's markup carries data-pwn: an element made from user text
        // would carry it, whether or not the CSP then stops its script.
        const evilId = '<img src=x data-pwn onerror=window.pwned=1>';
        const evilColumn = '<svg data-pwn onload=window.pwned=2>';
        const evilLevel = '<script data-pwn>window.pwned=3</script>';
        const evilGenes = ['<img data-pwn src=x onerror=window.pwned=4>', '<iframe data-pwn srcdoc=x onload=window.pwned=5>'];
        const csv = `cell,${evilGenes[0]},GENE_B,${evilGenes[1]}\n${evilId},1,2,5\ncell2,0,3,1\ncell3,4,1,0\ncell4,2,2,2\n`;
        const name = '<b id="injected" data-pwn>counts</b><img data-pwn src=x onerror=window.pwned=6>.csv';
        await page.setInputFiles('[data-testid="file-input"]', { name, mimeType: 'text/csv', buffer: Buffer.from(csv) });
        await page.waitForFunction(() => window.cellvae.status().format === 'csv', null, { timeout: 30_000 });
        assert.equal(await page.$('#injected'), null, 'a file name became HTML');
        assert.ok((await page.textContent('#progress')).includes(name), 'the file name, as text');
        const obs = `cell\t${evilColumn}\n${evilId}\t${evilLevel}\ncell2\tB\ncell3\tB\ncell4\tC\n`;
        await page.setInputFiles('[data-testid="obs-input"]', { name: 'cells.tsv', mimeType: 'text/tab-separated-values', buffer: Buffer.from(obs) });
        await page.waitForFunction((col) => window.cellvae.status().n_cells === 4 && document.querySelector('[data-testid="summary"]').textContent.includes(col), evilColumn, { timeout: 30_000 });
        // The summary names the column, as text.
        assert.ok((await page.textContent('[data-testid="summary"]')).includes(`${evilColumn} (3 levels)`));
        // The legend lists the value, as text.
        await page.selectOption('[data-testid="colour-by"]', `obs:${evilColumn}`);
        await page.waitForFunction((lv) => document.querySelector('[data-testid="legend"]').textContent.includes(`${lv} (1)`), evilLevel);
        // Hovering the hostile cell shows its id and its metadata, as text.
        const [fx, fy] = await page.evaluate(() => window.cellvae.cellPosition(0));
        const box = await page.locator('[data-testid="latent-map"]').boundingBox();
        await page.mouse.move(box.x + fx * box.width - 20, box.y + fy * box.height - 20);
        await page.mouse.move(box.x + fx * box.width, box.y + fy * box.height, { steps: 2 });
        await page.waitForSelector('[data-testid="map-tooltip"]:not([hidden])');
        assert.equal(await page.getAttribute('[data-testid="map-tooltip"]', 'data-cell'), '0');
        const tip = (await page.textContent('[data-testid="map-tooltip"]')).split('\n');
        assert.equal(tip[0], evilId);
        assert.ok(tip.includes(`${evilColumn}: ${evilLevel}`), `tooltip: ${tip}`);
        // The probe's profile lists the decoded genes by name, as text.
        await page.locator('[data-testid="latent-map"]').click({ position: { x: box.width / 2, y: box.height / 2 } });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 3);
        const profile = await page.textContent('[data-testid="probe-profile"]');
        for (const g of evilGenes) assert.ok(profile.includes(g), `gene ${g} in the profile`);
        // Nothing became markup, nothing ran, nothing was even tried.
        const made = await page.evaluate((payloads) => {
          const all = [...document.querySelectorAll('*')];
          return {
            pwn: document.querySelectorAll('[data-pwn]').length,
            handlers: all.filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).length,
            shown: all.filter((e) => e.children.length === 0 && payloads.some((p) => (e.textContent || '').includes(p))).length,
          };
        }, [evilId, evilColumn, evilLevel, ...evilGenes, name]);
        assert.equal(made.pwn, 0, 'elements made from user text');
        assert.equal(made.handlers, 0, 'elements with inline handlers');
        assert.ok(made.shown >= 6, `user text shown as text in ${made.shown} elements`);
        assert.equal(await page.$('main img, main script, main svg, main iframe, header img, header svg'), null, 'text became HTML');
        assert.equal(await page.evaluate(() => window.pwned), undefined);
        assert.deepEqual(await page.evaluate(() => window.__violations), [], 'no injected script was even tried');
        await page.locator('section.train').screenshot({ path: screenshotPath(`hostile-text-${mode}.png`) });
      });

      await t.test('no request leaves the page origin', async () => {
        const origin = new URL(BASE_URL).origin;
        const foreign = b.requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
        assert.deepEqual(foreign, []);
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
