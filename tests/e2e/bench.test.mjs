// The page's speed hook (window.cellvae.benchStep, src/bench.rs through the engine's
// `bench_step` request): a training step of the default model on the demo, timed by stage
// on the CPU kernels in the engine's thread (the Web Worker), as `cellvae bench` times
// it natively. Figures are printed, not asserted (this machine is shared and noisy):
// the test checks that the hook measured the step it says (the minibatch, the product
// arithmetic of the demo's architecture, computed here independently) and that its
// figures are times. tests/e2e/measure.mjs prints the same beside the native figures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openApp, status } from './browser.mjs';

for (const webgpu of [false, true]) {
  test(`bench hook times a step by stage in the worker (WebGPU ${webgpu ? 'on' : 'off'})`, async () => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => { const s = window.cellvae.status(); return s.n_cells === 700 && !!s.thread; }, null, { timeout: 120_000 });
      const s = await status(page);
      const r = await page.evaluate(() => window.cellvae.benchStep());
      const st = r.stages;
      const ms = (x) => (1e3 * x).toFixed(2);
      console.log(`[bench hook, WebGPU ${webgpu ? 'on' : 'off'}, ${s.thread}] demo ${s.n_cells} x ${s.n_genes}: step ${ms(r.step_s)} ms `
        + `(encoder ${ms(st.encoder_s)}, decoder ${ms(st.decoder_s)}, likelihood ${ms(st.likelihood_s)}, backward ${ms(st.backward_s)}, `
        + `optimizer ${ms(st.optimizer_s)}); ${r.gflops.toFixed(1)} GFLOP/s, product peak ${r.peak_gflops.toFixed(1)} GFLOP/s; ${st.threads} thread(s)`);
      // The step it timed: a minibatch of 128 cells of the demo's genes, through scvi-tools'
      // default architecture (G -> 128 -> 10 + 10; 10 -> 128 -> G, NB): the first layer's
      // forward and weight gradient, every other layer's forward, input and weight gradient.
      assert.equal(st.batch_cells, 128);
      const G = s.n_genes;
      const macs = 2 * G * 128 + 3 * (128 * 10 + 128 * 10 + 10 * 128 + 128 * G);
      assert.equal(st.flops, 2 * 128 * macs, `the product arithmetic of a ${G}-gene step`);
      assert.equal(s.thread, 'worker', 'the engine runs in its worker');
      for (const k of ['encoder_s', 'decoder_s', 'likelihood_s', 'optimizer_s', 'forward_backward_s']) {
        assert.ok(Number.isFinite(st[k]) && st[k] > 0, `${k} is a time: ${st[k]}`);
      }
      // The parts were timed apart (best of five batches each), the whole once more: they cannot
      // add up to much more than the whole.
      assert.ok(st.encoder_s + st.decoder_s + st.likelihood_s <= 1.5 * st.forward_backward_s,
        `the forward stages (${ms(st.encoder_s + st.decoder_s + st.likelihood_s)} ms) within the whole step's ${ms(st.forward_backward_s)} ms`);
      assert.ok(Math.abs(r.step_s - st.forward_backward_s - st.optimizer_s) < 1e-9);
      assert.ok(r.gflops > 0 && r.peak_gflops > 0);
      assert.deepEqual(b.consoleErrors, []);
    } finally {
      await b.close();
    }
  });
}
