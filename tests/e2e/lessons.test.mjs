// The classroom: lessons opened from their links, their interactions driven and what they
// should show asserted; the evaluation panel against `cellvae eval` on the same model and
// data; a shared link reproducing a run; controls hidden through the link. WebGPU off and
// on (SwiftShader; the lessons train on the CPU by default there, as the page does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { launch, openApp, status, screenshotPath, BASE_URL, SHARED } from './browser.mjs';

const lesson = (page) => page.evaluate(() => window.cellvae.lesson());
const evaluation = (page) => page.evaluate(() => window.cellvae.evaluation());

// The link of a lesson as the page lists it.
async function lessonLink(page, id) {
  const href = await page.getAttribute(`#lesson-list a[data-lesson-link="${id}"]`, 'href');
  assert.ok(href, `the lesson list links ${id}`);
  return href;
}

async function openLesson(page, id) {
  await openApp(page);
  const href = await lessonLink(page, id);
  await openApp(page, BASE_URL + href);
  await page.waitForSelector(`[data-testid="lesson"][data-lesson="${id}"]`, { timeout: 60_000 });
  const s = await status(page);
  assert.ok(s.n_cells > 0, 'the lesson loaded its data');
  return s;
}

async function clickAndWait(page, testid, pred, timeout = 240_000) {
  await page.click(`[data-testid="${testid}"]`);
  await page.waitForFunction(pred, null, { timeout });
}

for (const webgpu of [false, true]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';
  test(`lessons and the classroom (${mode})`, { timeout: 1_500_000 }, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1400, height: 1000 });

      await t.test('the start screen lists every lesson with its link', async () => {
        await openApp(page);
        const links = await page.$$eval('[data-testid="start-lesson-list"] a', (as) => as.map((a) => a.getAttribute('href')));
        assert.ok(links.length >= 3, `lessons listed: ${links.length}`);
        for (const l of links) assert.match(l, /^#lesson=[a-z]+&data=/);
        assert.ok(await page.isVisible('[data-testid="start-lesson-list"]'), 'visible before any data is loaded');
        await page.screenshot({ path: screenshotPath(`lessons-start-${mode}.png`) });
      });

      await t.test('library size: proportions stay, counts scale', async () => {
        await openLesson(page, 'library');
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().finished, null, { timeout: 240_000 });
        await clickAndWait(page, 'library-decode', () => !!window.cellvae.lesson().result.library);
        const r = (await lesson(page)).result.library;
        assert.deepEqual(r.depths, [1000, 4000, 16000]);
        r.totals.forEach((t, i) => assert.ok(Math.abs(t / r.depths[i] - 1) < 1e-3, `total ${t} at depth ${r.depths[i]}`));
        assert.ok(r.max_relative_proportion_difference < 1e-4, `proportions differ by ${r.max_relative_proportion_difference}`);
        await page.screenshot({ path: screenshotPath(`lesson-library-${mode}.png`) });
      });

      await t.test('ELBO: measured while training, the importance-weighted log p(x) stays above the ELBO', async () => {
        await openLesson(page, 'elbo');
        await page.check('[data-testid="elbo-follow"]');
        await page.click('[data-testid="train-toggle"]');
        await page.waitForFunction(() => window.cellvae.status().finished && !window.cellvae.evaluation().report === false
          && window.cellvae.lesson().result.measurements.length >= 4
          && window.cellvae.lesson().result.measurements.at(-1).epoch === window.cellvae.status().epoch, null, { timeout: 300_000 });
        const m = (await lesson(page)).result.measurements;
        for (const p of m) assert.ok(p.gap >= 0, `gap at epoch ${p.epoch}: ${p.gap}`);
        assert.ok(m.at(-1).elbo > m[0].elbo, `ELBO rose: ${m[0].elbo} -> ${m.at(-1).elbo}`);
        assert.ok(m.at(-1).logpx > m[0].logpx, `log p(x) rose: ${m[0].logpx} -> ${m.at(-1).logpx}`);
        await page.screenshot({ path: screenshotPath(`lesson-elbo-${mode}.png`) });
      });

      await t.test('the evaluation panel equals `cellvae eval` on the same model and data', async () => {
        const bin = process.env.CELLVAE_BIN;
        assert.ok(bin && fs.existsSync(bin), `CELLVAE_BIN (the native cellvae binary) is set and exists: ${bin}`);
        await page.click('[data-testid="eval-run"]');
        await page.waitForFunction(() => { const e = window.cellvae.evaluation(); return e.report && !document.querySelector('[data-testid="eval-run"]').disabled; });
        const page_report = (await evaluation(page)).report;
        assert.equal(page_report.heldout, true);
        const files = await page.evaluate(() => window.cellvae.modelFiles());
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cellvae-eval-'));
        fs.writeFileSync(path.join(dir, 'config.json'), files.config);
        fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.from(files.safetensors));
        const demo = path.resolve('www/demo/pbmc68k_reduced_700');
        const out = execFileSync(bin, ['eval', dir, demo, '--obs', path.join(demo, 'cells.tsv'),
          '--holdout-every', '10', '--label-key', 'cell_type', '--eval-samples', String(page_report.n_samples), '--seed', '0'], { encoding: 'utf8' });
        const cli = JSON.parse(out.slice(out.indexOf('{')));
        fs.rmSync(dir, { recursive: true, force: true });
        for (const k of ['n_cells', 'n_genes', 'n_evaluated_cells', 'active_units', 'n_samples', 'heldout']) assert.equal(page_report[k], cli[k], k);
        for (const k of ['heldout_elbo_per_cell', 'heldout_log_px_iw_per_cell', 'heldout_reconstruction_per_cell', 'knn15_accuracy']) {
          assert.ok(Math.abs(page_report[k] - cli[k]) <= 1e-4 * Math.max(1, Math.abs(cli[k])), `${k}: page ${page_report[k]}, cellvae eval ${cli[k]}`);
        }
        const shown = await page.textContent('[data-testid="eval-table"]');
        assert.ok(shown.includes(page_report.heldout_log_px_iw_per_cell.toFixed(2)), 'the panel shows the number');
        assert.ok((await page.$$('[data-testid="runs-table"] tr')).length >= 2, 'the run has a row');
      });

      await t.test('posterior collapse: raising beta drops active units', async () => {
        await openLesson(page, 'collapse');
        await clickAndWait(page, 'collapse-beta1', () => window.cellvae.lesson().result.runs.length === 1);
        await clickAndWait(page, 'collapse-beta8', () => window.cellvae.lesson().result.runs.length === 2);
        const [one, eight] = (await lesson(page)).result.runs;
        assert.ok(eight.used < one.used, `dimensions in use: beta 1 ${one.used}, beta 8 ${eight.used}`);
        assert.ok(eight.active <= one.active, `active units: beta 1 ${one.active}, beta 8 ${eight.active}`);
        assert.ok(eight.kl < one.kl, `KL: beta 1 ${one.kl}, beta 8 ${eight.kl}`);
        const rows = await page.$$('[data-testid="runs-table"] tr');
        assert.ok(rows.length >= 3, 'both runs in the runs table');
        await page.screenshot({ path: screenshotPath(`lesson-collapse-${mode}.png`) });
      });

      await t.test('a shared link reproduces the run and hides what it says', async () => {
        await openApp(page, `${BASE_URL}#data=demo&n_latent=3&seed=7&kl_warmup=0&epochs=20`);
        await page.click('[data-testid="share"] summary');
        await page.check('[data-testid="hide-beta"]');
        await page.check('[data-testid="hide-compare"]');
        const link = await page.inputValue('[data-testid="share-link"]');
        assert.match(link, /seed=7/);
        assert.match(link, /beta_hide/);
        const losses = [];
        for (let run = 0; run < 2; run++) {
          const p2 = await b.context.newPage();
          await openApp(p2, link);
          assert.equal(await p2.isVisible('[data-testid="beta"]'), false, 'beta hidden');
          assert.equal(await p2.isVisible('[data-testid="compare"]'), false, 'compare hidden');
          assert.equal(await p2.inputValue('[data-testid="opt-seed"]'), '7');
          const s0 = await status(p2);
          assert.equal(s0.n_latent, 3);
          await p2.evaluate(() => window.cellvae.step(12));
          await p2.waitForFunction(() => window.cellvae.status().step === 12);
          losses.push((await status(p2)).elbo);
          await p2.close();
        }
        assert.ok(Number.isFinite(losses[0]), `a loss: ${losses[0]}`);
        assert.equal(losses[0], losses[1], 'the same link and seed give the same losses');
      });

      await t.test('a link with an unknown part says what is wrong', async () => {
        await openApp(page, `${BASE_URL}#lesson=nosuch&data=demo&colour_hide&warp=9`);
        const err = await page.textContent('[data-testid="error"]');
        assert.match(err, /warp: not a setting/);
        assert.match(await page.textContent('[data-testid="lesson"]'), /no lesson called "nosuch"/);
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), []);
    } finally {
      await b.close();
    }
  });
}
