// Threads in the page: `cargo xtask serve` sends COOP/COEP, so the page is cross-origin
// isolated and the training worker can load the threaded core (www/pkg-threads,
// www/wasm.js), whose CPU kernels run on the engine's worker and a pool of Web Workers:
// by default on the cores less one (one core stays for the page, so a 2-core machine keeps
// one thread), `?threads=N` sets it (2 here: the engine's worker and one pool worker),
// `?threads=1` loads the single-threaded core. The two train the demo to the same ELBO, bit for bit (each output element
// is computed by one thread in the serial order: src/backend/cpu/par.rs), and the bench
// hook's step runs on the pool's threads. Speed figures are printed, not asserted (this
// machine is shared and noisy). WebGPU on and off (with only a software adapter the page
// trains on the CPU either way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openApp, status, BASE_URL } from './browser.mjs';

const STEPS = 12;

async function run(webgpu, query, train = true) {
  const b = await launch(webgpu);
  try {
    const { page } = b;
    await openApp(page, new URL(query, BASE_URL).href);
    await page.click('[data-testid="demo-button"]');
    await page.waitForFunction(() => { const s = window.cellvae.status(); return s.n_cells === 700 && s.n_latent > 0; }, null, { timeout: 120_000 });
    const isolated = await page.evaluate(() => globalThis.crossOriginIsolated);
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    if (!train) return { isolated, cores, s: await status(page) };
    const t0 = Date.now();
    await page.evaluate((n) => window.cellvae.step(n), STEPS);
    await page.waitForFunction((n) => { const s = window.cellvae.status(); return s.step >= n && !s.training; }, STEPS, { timeout: 120_000 });
    const train_ms = Date.now() - t0;
    const s = await status(page);
    const bench = await page.evaluate(() => window.cellvae.benchStep());
    assert.deepEqual(b.consoleErrors, []);
    return { isolated, cores, s, bench, train_ms };
  } finally {
    await b.close();
  }
}

for (const webgpu of [false, true]) {
  test(`the page trains on a pool of threads where it is cross-origin isolated, to the single thread's bits (WebGPU ${webgpu ? 'on' : 'off'})`, async () => {
    const many = await run(webgpu, './?threads=2');
    const one = await run(webgpu, './?threads=1');
    const plain = await run(webgpu, './', false);
    const ms = (x) => (1e3 * x).toFixed(2);
    for (const [what, r] of [['pool', many], ['?threads=1', one]]) {
      console.log(`[threads, WebGPU ${webgpu ? 'on' : 'off'}, ${what}] ${r.s.cpu_threads} CPU thread(s) (${r.s.cpu_threads_why || 'pool'}), ${r.cores} cores; ${STEPS} demo steps in ${r.train_ms} ms; `
        + `bench step ${ms(r.bench.step_s)} ms on ${r.bench.stages.threads} thread(s) (encoder ${ms(r.bench.stages.encoder_s)}, decoder ${ms(r.bench.stages.decoder_s)}, `
        + `likelihood ${ms(r.bench.stages.likelihood_s)}, backward ${ms(r.bench.stages.backward_s)}); elbo ${r.s.elbo}`);
    }
    assert.equal(many.isolated, true, 'the served page is cross-origin isolated (COOP/COEP)');
    assert.equal(many.s.thread, 'worker');
    assert.equal(many.s.cpu_threads, 2, `?threads=2 gives a pool of 2: ${many.s.cpu_threads_why}`);
    assert.equal(many.s.cpu_threads_why, '');
    assert.equal(many.bench.stages.threads, 2, 'the kernels run on the pool');
    // By default: the cores less one, at most 8 (one stays for the page).
    const want = Math.max(1, Math.min(8, plain.cores - 1));
    console.log(`[threads, WebGPU ${webgpu ? 'on' : 'off'}, default] ${plain.s.cpu_threads} CPU thread(s) on ${plain.cores} cores (${plain.s.cpu_threads_why || 'pool'})`);
    assert.equal(plain.isolated, true);
    assert.equal(plain.s.cpu_threads, want, `the default pool on ${plain.cores} cores`);
    if (want === 1) assert.match(plain.s.cpu_threads_why, /left for the page/);
    else assert.equal(plain.s.cpu_threads_why, '');
    assert.equal(one.s.cpu_threads, 1);
    assert.match(one.s.cpu_threads_why, /threads=1/);
    assert.equal(one.bench.stages.threads, 1);
    assert.equal(many.s.step, one.s.step);
    assert.ok(Number.isFinite(many.s.elbo));
    assert.equal(many.s.elbo, one.s.elbo, 'the same ELBO to the bit on the pool and on one thread');
  });
}
