// The bad-input corpus (tests/corpus: README.md, expected.tsv) dropped on the page, WebGPU
// on and off, in one page per mode: the demo is loaded and a model trained a few steps
// first; then each bad file (and a gzip bomb built here, past the page's 1 GiB limit) is
// given to the page. Each must show a clear error naming the file, the place and the
// problem (the key words of expected.tsv), keep the page usable and leave the demo data
// and its model as they were (cells, total counts, step, the latent means of a few
// cells), with no script run from hostile text and no console error. Then the page still
// trains, and the valid files of the corpus load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { launch, openApp, status, screenshotPath } from './browser.mjs';

const CORPUS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../corpus');

/** @returns {{file: string, ok: boolean, words: string[]}[]} */
function cases() {
  return fs.readFileSync(path.join(CORPUS, 'expected.tsv'), 'utf8').split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => {
      const [file, st, , words] = l.split('\t');
      return { file, ok: st === 'ok', words: words.split(' | ') };
    });
}

/** The files to give the page for a corpus entry (a folder: every file in it). */
function entries(file) {
  const p = path.join(CORPUS, file);
  const paths = fs.statSync(p).isDirectory() ? fs.readdirSync(p).sort().map((f) => path.join(p, f)) : [p];
  return paths.map((q) => ({ name: path.basename(q), mimeType: 'application/octet-stream', buffer: fs.readFileSync(q) }));
}

/** A gzip stream of a CSV header and `expanded` bytes of rows, from one sync-flushed raw
 * deflate chunk repeated (each self-contained), so 1 GiB expands from ~1 MB here. */
function gzipBomb(expanded) {
  const CHUNK = 1 << 20;
  const flush = { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const head = zlib.deflateRawSync(Buffer.from('cell,G0\n'), flush);
  const body = zlib.deflateRawSync(Buffer.alloc(CHUNK, 'c,0\n'), flush);
  const n = Math.ceil(expanded / CHUNK);
  const parts = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]), head];
  for (let i = 0; i < n; i++) parts.push(body);
  // A final empty block and a trailer (CRC left zero: the reader stops at its limit first).
  parts.push(Buffer.from([0x03, 0x00, 0, 0, 0, 0]), Buffer.from(new Uint32Array([(n * CHUNK + 8) >>> 0]).buffer));
  return Buffer.concat(parts);
}

/** What must not change when a bad file is refused. */
async function fingerprint(page) {
  return page.evaluate(() => {
    const s = window.cellvae.status();
    return {
      n_cells: s.n_cells, total_counts: s.total_counts, step: s.step,
      z: [0, 1, 350, 699].map((c) => window.cellvae.latentOf(c)),
    };
  });
}

/** Gives `files` to the page (a metadata table, `obs_*`, to the metadata input: it joins
 * the data loaded) and waits until its error box names `name`; returns the text. */
async function refused(page, files, name) {
  const input = files[0].name.startsWith('obs_') ? 'obs-input' : 'file-input';
  await page.setInputFiles(`[data-testid="${input}"]`, files);
  await page.waitForFunction((n) => {
    const e = document.querySelector('[data-testid="error"]');
    return e && !e.hidden && (e.textContent || '').includes(n) && !window.cellvae.status().load?.phase?.match(/reading|parsing/);
  }, name, { timeout: 60_000 });
  return page.textContent('[data-testid="error"]');
}

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`the bad-input corpus on the page (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700 && window.cellvae.status().step === 0, null, { timeout: 60_000 });
      for (let i = 0; i < 2; i++) {
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction((k) => window.cellvae.status().step === k + 1 && !window.cellvae.status().training, i, { timeout: 60_000 });
      }
      const before = await fingerprint(page);
      assert.ok(before.z.every((z) => z && z.every(Number.isFinite)), 'latent means before');
      const all = cases();
      assert.ok(all.length >= 30, `${all.length} corpus entries`);

      /** Each bad entry of `list` refused with its file, place and problem, the demo kept. */
      async function refuseAll(list) {
        const failures = [];
        for (const c of list) {
          const files = entries(c.file);
          // The message names the file the page was given (a folder's error, the file in it).
          const name = files.length === 1 ? files[0].name : c.words[0];
          const started = Date.now();
          const text = await refused(page, files, name);
          const missing = c.words.filter((w) => !text.includes(w));
          if (missing.length) failures.push(`${c.file}: missing ${JSON.stringify(missing)} in ${JSON.stringify(text)}`);
          if (files.length === 1 && !text.startsWith(`${name}`)) failures.push(`${c.file}: the message does not start with the file: ${JSON.stringify(text)}`);
          const now = await fingerprint(page);
          if (JSON.stringify(now) !== JSON.stringify(before)) failures.push(`${c.file}: the loaded data or model changed: ${JSON.stringify(now).slice(0, 300)}`);
          const ms = Date.now() - started;
          if (ms > 10_000) failures.push(`${c.file}: took ${ms} ms`);
        }
        assert.deepEqual(failures, []);
        assert.equal(await page.textContent('#progress'), 'The data loaded before is still there.');
      }
      const isObs = (c) => c.file.startsWith('obs_');

      await t.test('every bad count file is refused with its file, place and problem; the demo stays', async () => {
        await refuseAll(all.filter((c) => !c.ok && !isObs(c)));
      });

      await t.test('a gzip bomb is refused as too large, with the limit, not as damaged', async () => {
        const bomb = gzipBomb((1 << 30) + (1 << 20));
        assert.ok(bomb.length < 2 << 20, `${bomb.length} bytes`);
        const started = Date.now();
        const text = await refused(page, [{ name: 'bomb.csv.gz', mimeType: 'application/gzip', buffer: bomb }], 'bomb.csv.gz');
        for (const w of ['bomb.csv.gz: expands to more than 1 GiB', 'not damaged', 'at most 1 GiB', 'in the browser']) assert.ok(text.includes(w), `${w} in ${text}`);
        assert.deepEqual(await fingerprint(page), before);
        console.log(`${mode}: a ${(bomb.length / 1e6).toFixed(2)} MB bomb refused in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      });

      await t.test('every bad metadata table, joined to the demo, is refused; the demo stays', async () => {
        await refuseAll(all.filter((c) => !c.ok && isObs(c)));
      });

      await t.test('hostile text stayed text; the page still trains the demo', async () => {
        assert.equal(await page.evaluate(() => /** @type {any} */ (window).pwned), undefined);
        assert.equal(await page.evaluate(() => document.querySelector('[data-testid="error"]').childElementCount), 0);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction((k) => window.cellvae.status().step === k + 1 && !window.cellvae.status().training, before.step, { timeout: 60_000 });
        const s = await status(page);
        assert.equal(s.n_cells, 700);
        assert.ok(Number.isFinite(s.elbo), `elbo ${s.elbo}`);
        await page.screenshot({ path: screenshotPath(`corpus-${mode}.png`), fullPage: true });
      });

      await t.test('the valid files of the corpus load', async () => {
        // The bad table chosen last is let go: the demo's counts are read again without it.
        const last = (await status(page)).load.started_at;
        await page.setInputFiles('[data-testid="obs-input"]', []);
        await page.waitForFunction((t0) => {
          const s = window.cellvae.status();
          return s.load.started_at !== t0 && s.load.phase === 'done' && s.n_cells === 700;
        }, last, { timeout: 60_000 });
        // Cells and format of each, so each wait is for that file, not the one before.
        const want = { 'valid_h5ad_float16.h5ad': [3, 'h5ad'], 'valid_csv_duplicate_names.csv': [3, 'csv'], 'valid_tsv_hostile_names.tsv': [2, 'tsv'] };
        for (const c of all.filter((c) => c.ok)) {
          await page.setInputFiles('[data-testid="file-input"]', entries(c.file));
          await page.waitForFunction(([n, f]) => {
            const s = window.cellvae.status();
            return s.n_cells === n && s.format === f && !s.load?.phase?.match(/reading|parsing/);
          }, want[c.file], { timeout: 60_000 });
          assert.equal(await page.isHidden('[data-testid="error"]'), true, `${c.file}: ${await page.textContent('[data-testid="error"]')}`);
          const summary = await page.textContent('[data-testid="summary"]');
          if (c.file.includes('duplicate')) for (const w of c.words) assert.ok(summary.includes(w), `${w} in ${summary}`);
          if (c.file.includes('float16')) assert.match(summary, /raw counts\s*yes/);
        }
        assert.equal(await page.evaluate(() => /** @type {any} */ (window).pwned), undefined);
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
