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

// Opens a link in a fresh document (a change of the hash alone would not reload the page:
// the page applies it on hashchange, while the test would already go on).
async function openLink(page, href) {
  await page.goto('about:blank');
  await openApp(page, BASE_URL + href);
}

async function openLesson(page, id) {
  await openLink(page, '');
  const href = await lessonLink(page, id);
  await openLink(page, href);
  await page.waitForSelector(`[data-testid="lesson"][data-lesson="${id}"]`, { timeout: 60_000 });
  const s = await status(page);
  assert.ok(s.n_cells > 0, 'the lesson loaded its data');
  return s;
}

// Opens a lesson and trains its model to the last epoch.
async function trainedLesson(page, id) {
  await openLesson(page, id);
  await page.click('[data-testid="train-toggle"]');
  await page.waitForFunction(() => window.cellvae.status().finished, null, { timeout: 240_000 });
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
        await openLink(page, '');
        const links = await page.$$eval('[data-testid="start-lesson-list"] a', (as) => as.map((a) => a.getAttribute('href')));
        assert.ok(links.length >= 3, `lessons listed: ${links.length}`);
        for (const l of links) assert.match(l, /^#lesson=[a-z]+&data=/);
        assert.ok(await page.isVisible('[data-testid="start-lesson-list"]'), 'visible before any data is loaded');
        await page.screenshot({ path: screenshotPath(`lessons-start-${mode}.png`) });
        // The README lists the same lessons with the same links.
        const readme = fs.readFileSync(path.resolve('README.md'), 'utf8');
        const listed = [...readme.matchAll(/\(index\.html(#lesson=[^)]+)\)/g)].map((m) => m[1]);
        assert.deepEqual(listed, links);
        assert.equal(links.length, 12);
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
        for (const k of ['heldout_elbo_per_cell', 'heldout_log_px_iw100_per_cell', 'heldout_reconstruction_per_cell', 'knn15_accuracy']) {
          assert.ok(Math.abs(page_report[k] - cli[k]) <= 1e-4 * Math.max(1, Math.abs(cli[k])), `${k}: page ${page_report[k]}, cellvae eval ${cli[k]}`);
        }
        const shown = await page.textContent('[data-testid="eval-table"]');
        assert.ok(shown.includes(page_report.heldout_log_px_iw100_per_cell.toFixed(2)), 'the panel shows the number');
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
        await openLink(page, '#data=demo&n_latent=3&seed=7&kl_warmup=0&epochs=20');
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

      await t.test('the shader viewer: a lesson links its kernels; one GPU step lists its kernels in order', async () => {
        await openLesson(page, 'collapse');
        await page.click('[data-testid="lesson"] a[data-kernel-link="kl"]');
        await page.waitForFunction(() => document.querySelector('[data-testid="shader-source"]').dataset.kernel === 'kl');
        const src = await page.textContent('[data-testid="shader-source"]');
        assert.match(src, /@compute/);
        assert.match(src, /fn /);
        // The kernel's own code first; the library compiled in front of it folded below.
        await page.selectOption('[data-testid="shader-pick"]', 'nb_loglik');
        assert.match(await page.textContent('[data-testid="shader-library"]'), /lib\/counts\.wgsl/);
        assert.doesNotMatch(await page.textContent('[data-testid="shader-source"]'), /^\/\/ Philox/);
        if (!webgpu) {
          assert.match(await page.textContent('[data-testid="step-note"]'), /CPU/);
          return;
        }
        await openLink(page, '#data=demo&device=gpu&epochs=5&seed=1');
        await page.waitForFunction(() => window.cellvae.status().training_backend === 'webgpu' || window.cellvae.status().gpu_state === 'on', null, { timeout: 120_000 });
        await page.evaluate(() => window.cellvae.step(2));
        await page.click('[data-testid="shaders"] summary');
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="step-kernels"] tr').length > 10, null, { timeout: 60_000 });
        const rows = await page.$$eval('[data-testid="step-kernels"] tr', (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
        const total = rows.reduce((a, r) => a + Number(r[3]), 0);
        assert.ok(total >= 20, `dispatches in a step: ${total}`);
        const kernels = rows.map((r) => r[1]);
        assert.equal(kernels[0], 'log1p.wgsl', 'the step starts with log1p of the counts');
        assert.equal(kernels.at(-1), 'adam.wgsl', 'and ends with Adam');
        assert.ok(kernels.includes('reparam.wgsl') && kernels.includes('nb_loglik.wgsl'), kernels.join(' '));
        await page.screenshot({ path: screenshotPath(`shaders-${mode}.png`) });
      });

      await t.test('two machines: random points of the autoencoder decode further from any cell', async () => {
        await openLesson(page, 'autoencoder');
        await clickAndWait(page, 'machines-vae', () => !!window.cellvae.lesson().result.machines.VAE);
        await clickAndWait(page, 'machines-ae', () => !!window.cellvae.lesson().result.machines.autoencoder);
        const m = (await lesson(page)).result.machines;
        assert.ok(m.autoencoder.data_box.median > m.VAE.data_box.median, `box medians: AE ${m.autoencoder.data_box.median}, VAE ${m.VAE.data_box.median}`);
        assert.ok(m.VAE.prior.median < m.VAE.wide_box.median, 'the VAE\'s prior draws decode closer to cells than far points');
      });

      await t.test('the generative story: generated cells look like the data', async () => {
        await trainedLesson(page, 'generative');
        await clickAndWait(page, 'generative-run', () => !!window.cellvae.lesson().result.generated);
        const g = (await lesson(page)).result.generated;
        assert.equal(g.n, 300);
        assert.ok(g.integer_counts, 'counts are whole numbers');
        assert.ok(Math.abs(g.mean_total / g.data_mean_library - 1) < 0.3, `library ${g.mean_total} vs ${g.data_mean_library}`);
        assert.ok(g.z_vs_encoded_corr > 0.5, `the encoder finds z again: ${g.z_vs_encoded_corr}`);
        await page.screenshot({ path: screenshotPath(`lesson-generative-${mode}.png`) });
      });

      await t.test('reparameterization: the same gradient, far less variance than the score function', async () => {
        await trainedLesson(page, 'reparam');
        await clickAndWait(page, 'reparam-run', () => !!window.cellvae.lesson().result.reparam);
        const r = (await lesson(page)).result.reparam;
        assert.ok(r.means_agree, 'the estimators agree within their standard errors');
        assert.ok(r.reparam_variance < r.score_baseline_variance, `variances: reparam ${r.reparam_variance}, score+baseline ${r.score_baseline_variance}`);
        assert.ok(r.reparam_variance < r.score_variance);
      });

      await t.test('two sources of noise: the spread falls with minibatch size and with z samples', async () => {
        await openLesson(page, 'noise');
        await clickAndWait(page, 'noise-run', () => !!window.cellvae.lesson().result.noise);
        const n = (await lesson(page)).result.noise;
        for (const series of [n.minibatch, n.monte_carlo]) {
          for (let i = 1; i < series.length; i++) assert.ok(series[i][1] < series[i - 1][1], JSON.stringify(series));
        }
      });

      await t.test('count likelihoods: three models compared on held-out cells; the genes are overdispersed; Gaussian samples are not counts', async () => {
        await openLesson(page, 'likelihood');
        await clickAndWait(page, 'likelihood-poisson', () => window.cellvae.lesson().result.runs.length === 1);
        await clickAndWait(page, 'likelihood-nb', () => window.cellvae.lesson().result.runs.length === 2);
        await clickAndWait(page, 'likelihood-zinb', () => window.cellvae.lesson().result.runs.length === 3);
        const runs = (await lesson(page)).result.runs;
        assert.deepEqual(runs.map((r) => r.likelihood), ['poisson', 'nb', 'zinb']);
        // Each run's number is the evaluation panel's row for it, and, as the lesson says of
        // this demo, the three fit the held-out cells within a few per cent of one another.
        const rows = (await evaluation(page)).runs.slice(-3).map((r) => r.report.heldout_log_px_iw100_per_cell);
        assert.deepEqual(rows, runs.map((r) => r.logpx));
        const lp = runs.map((r) => r.logpx);
        assert.ok(lp.every(Number.isFinite) && (Math.max(...lp) - Math.min(...lp)) < 0.03 * Math.abs(lp[0]), `held-out log p(x): ${lp}`);
        await clickAndWait(page, 'likelihood-plot', () => !!window.cellvae.lesson().result.mean_variance);
        const mv = (await lesson(page)).result.mean_variance;
        assert.ok(mv.nb_above_poisson);
        assert.ok(mv.overdispersed > mv.genes / 2, `${mv.overdispersed} of ${mv.genes} overdispersed`);
        assert.ok(mv.gaussian_non_integer > 0.9, `non-integer Gaussian samples: ${mv.gaussian_non_integer}`);
        await page.screenshot({ path: screenshotPath(`lesson-likelihood-${mode}.png`) });
      });

      await t.test('batch effects: the batch covariate mixes the simulated batches and keeps the cell types', async () => {
        const s = await openLesson(page, 'batch');
        assert.equal((await lesson(page)).data, 'demo-batches');
        assert.ok(s.n_cells === 700);
        await clickAndWait(page, 'batch-without', () => window.cellvae.lesson().result.runs.length === 1);
        await clickAndWait(page, 'batch-with', () => window.cellvae.lesson().result.runs.length === 2);
        const [without, withBatch] = (await lesson(page)).result.runs;
        assert.ok(withBatch.mixing > without.mixing, `mixing: without ${without.mixing}, with ${withBatch.mixing}`);
        assert.ok(withBatch.knn > 0.5, `label accuracy with the covariate: ${withBatch.knn}`);
        assert.equal((await status(page)).colour_by, 'obs:batch');
        await page.screenshot({ path: screenshotPath(`lesson-batch-${mode}.png`) });
      });

      await t.test('what the decoder assumes: generated genes are nearly independent within a neighbourhood', async () => {
        await trainedLesson(page, 'independence');
        await clickAndWait(page, 'independence-run', () => !!window.cellvae.lesson().result.correlations);
        const c = (await lesson(page)).result.correlations;
        assert.ok(c.generated_neighbourhood < c.real_overall, JSON.stringify(c));
        assert.ok(c.generated_neighbourhood < c.generated_overall, JSON.stringify(c));
        assert.ok(c.agreement > 0.5, `overall agreement ${c.agreement}`);
      });

      await t.test('aggregate posterior: the KL splits into information and mismatch; a hole decodes in the probe', async () => {
        await trainedLesson(page, 'aggregate');
        await clickAndWait(page, 'aggregate-run', () => !!window.cellvae.lesson().result.aggregate);
        const a = (await lesson(page)).result.aggregate;
        assert.ok(Math.abs(a.sum - a.mean_kl) <= 4 * a.sum_se + 0.05, JSON.stringify(a));
        assert.ok(a.mi <= a.log_n + 1e-9 && a.mi > 0, JSON.stringify(a));
        await clickAndWait(page, 'aggregate-decode', () => window.cellvae.status().probe_ready);
        const z = (await lesson(page)).result.decoded_hole;
        assert.deepEqual((await status(page)).probe.map((v) => v.toFixed(4)), z.slice(0, 2).map((v) => v.toFixed(4)));
      });

      await t.test('identifiability: the rotated model has the same log-likelihood, its axis another meaning', async () => {
        await trainedLesson(page, 'identifiability');
        const z0 = await page.evaluate(() => window.cellvae.latentOf(5));
        await clickAndWait(page, 'identifiability-run', () => !!window.cellvae.lesson().result.rotation);
        const r = (await lesson(page)).result.rotation;
        assert.ok(Math.abs(r.relative_change) < 0.005, `log p(x) ${r.before} -> ${r.after}`);
        assert.ok(r.genes_changed >= 1, `top genes along z1: ${r.genes_before} / ${r.genes_after}`);
        const after = await status(page);
        assert.match(after.origin, /rotated by 45/);
        // Every cell's code turned by 45 degrees: the same length, another direction.
        const z1 = await page.evaluate(() => window.cellvae.latentOf(5));
        const norm = (z) => Math.hypot(...z);
        assert.ok(Math.abs(norm(z1) / norm(z0) - 1) < 1e-3, `|z| ${norm(z0)} -> ${norm(z1)}`);
        const cos = (z0[0] * z1[0] + z0[1] * z1[1]) / (norm(z0) * norm(z1));
        assert.ok(Math.abs(cos - Math.SQRT1_2) < 1e-3, `turned by acos(${cos})`);
        await page.screenshot({ path: screenshotPath(`lesson-identifiability-${mode}.png`) });
      });

      await t.test('a reload of a lesson keeps its run (the link is not set up again)', async () => {
        await openLesson(page, 'library');
        await page.evaluate(() => window.cellvae.step(7));
        await page.waitForFunction(() => window.cellvae.status().step === 7 && window.cellvae.status().kept.state === 'saved', null, { timeout: 60_000 });
        await page.reload();
        await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
        const s = await status(page);
        assert.equal(s.step, 7, 'the restored run, not a new model');
        assert.equal((await lesson(page)).id, 'library');
        assert.ok(await page.isVisible('[data-testid="lesson"][data-lesson="library"]'));
      });

      await t.test('a lesson link asks before it replaces data the user loaded', async () => {
        await openLink(page, '');
        const h5 = path.join(SHARED, 'scanpy_10x_v3_chr21', 'filtered_feature_bc_matrix.h5');
        await page.setInputFiles('[data-testid="file-input"]', h5);
        await page.waitForFunction(() => window.cellvae.status().n_cells === 1107, null, { timeout: 60_000 });
        await page.waitForFunction(() => window.cellvae.status().kept.state === 'saved', null, { timeout: 60_000 });
        const asked = [];
        page.once('dialog', (d) => { asked.push(d.message()); d.dismiss(); });
        const href = await lessonLink(page, 'library');
        await openLink(page, href);
        assert.equal(asked.length, 1, 'one question');
        assert.match(asked[0], /in place of the data you loaded/);
        assert.equal((await status(page)).n_cells, 1107, 'declined: the user\'s data stays');
        assert.match(await page.textContent('[data-testid="share-note"]'), /your data stays/);
        page.once('dialog', (d) => d.accept());
        await page.click('[data-testid="lesson-setup"]');
        await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      });

      await t.test('a link with an unknown part says what is wrong', async () => {
        await openLink(page, '#lesson=nosuch&data=demo&colour_hide&warp=9');
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
