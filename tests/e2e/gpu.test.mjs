// Training on the GPU in the page. Headless Chromium's WebGPU is SwiftShader, a software
// adapter: by default the page trains on the CPU there and says why; chosen in the
// settings, the GPU trains and follows the CPU step for step. Without WebGPU the page
// says the CPU trains. WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, openApp, status, screenshotPath } from './browser.mjs';

async function reset(page, device) {
  await page.selectOption('[data-testid="opt-device"]', device);
  await page.click('[data-testid="train-reset"]');
  await page.waitForFunction(() => window.cellvae.status().step === 0 && window.cellvae.status().gpu_state !== 'starting', null, { timeout: 60_000 });
}

async function steps(page, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const before = (await status(page)).step;
    await page.click('[data-testid="train-step"]');
    await page.waitForFunction((k) => window.cellvae.status().step === k + 1 && !window.cellvae.status().training, before, { timeout: 60_000 });
    const s = await status(page);
    out.push({ elbo: s.elbo, z0: await page.evaluate(() => window.cellvae.latentOf(0)) });
  }
  return out;
}

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`training device (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1100, height: 1400 });
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      await page.click('[data-testid="settings"] summary');
      // A small model: SwiftShader is slow.
      await page.fill('[data-testid="opt-n-hidden"]', '16');
      await page.fill('[data-testid="opt-top-genes"]', '200');
      await page.fill('[data-testid="opt-batch-size"]', '64');

      await t.test('by default the page says where training runs and why', async () => {
        const s = await status(page);
        assert.equal(s.training_backend, 'cpu');
        const note = await page.textContent('[data-testid="train-backend"]');
        if (webgpu) assert.match(note, /CPU: the only WebGPU adapter here is a software one \(.*swiftshader.*\)/i);
        else assert.match(note, /CPU \(this browser offers no usable WebGPU\)/);
      });

      if (webgpu) {
        await t.test('chosen, the GPU trains, step for step as the CPU', async () => {
          await reset(page, 'cpu');
          assert.equal((await status(page)).training_backend, 'cpu');
          const cpu = await steps(page, 3);
          await reset(page, 'gpu');
          const s = await status(page);
          assert.equal(s.gpu_state, 'on', `GPU: ${s.gpu_error}`);
          assert.equal(s.training_backend, 'webgpu');
          assert.match(await page.textContent('[data-testid="train-backend"]'), /Training runs on the GPU: .*swiftshader/i);
          const gpu = await steps(page, 3);
          for (let i = 0; i < 3; i++) {
            assert.ok(Math.abs(gpu[i].elbo - cpu[i].elbo) <= 1e-4 * Math.abs(cpu[i].elbo), `step ${i + 1}: GPU ELBO ${gpu[i].elbo}, CPU ${cpu[i].elbo}`);
            gpu[i].z0.forEach((v, j) => assert.ok(Math.abs(v - cpu[i].z0[j]) < 1e-3, `step ${i + 1} z${j + 1}: ${v} vs ${cpu[i].z0[j]}`));
          }
          // Training runs in a loop on the GPU, the map and the probe follow, lr and beta apply.
          await page.fill('[data-testid="lr"]', '0.002');
          await page.dispatchEvent('[data-testid="lr"]', 'change');
          await page.waitForFunction(() => Math.abs(window.cellvae.status().settings.lr - 0.002) < 1e-9);
          const map = await page.evaluate(() => document.querySelector('[data-testid="latent-map"]').toDataURL());
          await page.click('[data-testid="train-toggle"]');
          await page.waitForFunction(() => window.cellvae.status().step >= 12, null, { timeout: 90_000 });
          await page.click('[data-testid="train-toggle"]');
          await page.waitForFunction(() => !window.cellvae.status().training, null, { timeout: 60_000 });
          assert.notEqual(await page.evaluate(() => document.querySelector('[data-testid="latent-map"]').toDataURL()), map);
          const box = await page.locator('[data-testid="latent-map"]').boundingBox();
          await page.locator('[data-testid="latent-map"]').click({ position: { x: box.width * 0.5, y: box.height * 0.5 } });
          await page.waitForFunction(() => document.querySelectorAll('[data-testid="probe-profile"] li').length === 10);
          const after = await status(page);
          assert.equal(after.training_backend, 'webgpu');
          assert.ok(Number.isFinite(after.elbo));
          await page.screenshot({ path: screenshotPath(`gpu-training-${mode}.png`), fullPage: true });
          // The model saved from a GPU run is the one on the map: loaded back, it gives
          // the latent means the map showed and decodes the probe's point the same way.
          const cells = [0, 1, 100, 350, 699];
          const shown = await page.evaluate((cs) => cs.map((c) => window.cellvae.latentOf(c)), cells);
          const probe = after.probe;
          const decoded = await page.evaluate((z) => window.cellvae.decode(z), probe);
          const saved = fs.mkdtempSync(path.join(os.tmpdir(), 'cellvae-gpu-model-'));
          try {
            for (const [id, name] of [['export-model-weights', 'model.safetensors'], ['export-model-config', 'config.json']]) {
              const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid="${id}"]`)]);
              assert.equal(dl.suggestedFilename(), name);
              fs.copyFileSync(await dl.path(), path.join(saved, name));
            }
            await page.setInputFiles('[data-testid="model-input"]', [path.join(saved, 'model.safetensors'), path.join(saved, 'config.json')]);
            await page.waitForFunction(() => /config\.json/.test(window.cellvae.status().origin || ''), null, { timeout: 60_000 });
          } finally {
            fs.rmSync(saved, { recursive: true, force: true });
          }
          const loaded = await page.evaluate((cs) => cs.map((c) => window.cellvae.latentOf(c)), cells);
          cells.forEach((c, i) => shown[i].forEach((v, j) => assert.ok(Math.abs(loaded[i][j] - v) < 1e-4, `cell ${c} z${j + 1}: map ${v}, loaded model ${loaded[i][j]}`)));
          const again = await page.evaluate((z) => window.cellvae.decode(z), probe);
          again.forEach((v, g) => assert.ok(Math.abs(v - decoded[g]) <= 1e-4 * Math.max(1, Math.abs(decoded[g])), `gene ${g}: ${v} vs ${decoded[g]}`));
        });

        await t.test('the GPU is lost mid-run: training goes on on the CPU, nothing lost', async () => {
          await reset(page, 'gpu');
          assert.equal((await status(page)).training_backend, 'webgpu');
          // 200 genes, minibatches of 64 of the 630 training cells: 10 steps per epoch.
          await page.evaluate(() => window.cellvae.testLoseGpuAtStep(13));
          await page.click('[data-testid="train-toggle"]');
          await page.waitForFunction(() => window.cellvae.status().gpu_state === 'failed', null, { timeout: 120_000 });
          const s = await status(page);
          assert.equal(s.training_backend, 'cpu');
          assert.match(s.gpu_error, /lost/);
          assert.match(await page.textContent('[data-testid="train-backend"]'), /training continues on the CPU/);
          // The CPU continues from the last state read back (the end of epoch 1 at the
          // latest) and takes the steps since again.
          assert.ok(s.step >= 10, `resumed at step ${s.step}`);
          assert.ok(s.epoch >= 1, `epoch ${s.epoch}`);
          await page.waitForFunction(() => window.cellvae.status().step >= 25, null, { timeout: 120_000 });
          const going = await status(page);
          const why = JSON.stringify({ run: going.run, finished: going.finished, stopped: going.stopped, gpu_state: going.gpu_state, step: going.step, epoch: going.epoch });
          assert.ok(going.training && !going.finished, `training stopped after the fallback: ${why}`);
          await page.click('[data-testid="train-toggle"]');
          await page.waitForFunction(() => !window.cellvae.status().training, null, { timeout: 60_000 });
          const after = await status(page);
          assert.ok(Number.isFinite(after.elbo) && after.elbo < 0, `elbo ${after.elbo}`);
          assert.ok(after.epoch >= 2);
          await page.screenshot({ path: screenshotPath(`gpu-fallback-${mode}.png`), fullPage: true });
        });
      } else {
        await t.test('asking for the GPU without WebGPU trains on the CPU', async () => {
          await reset(page, 'gpu');
          assert.equal((await status(page)).training_backend, 'cpu');
          await steps(page, 1);
          assert.ok(Number.isFinite((await status(page)).elbo));
        });
      }

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
