// Page speed figures, run by hand (not part of the test suite): the demo's training speed
// over a fixed wall time, and the frame times of the page while 10,000 cells train.
// WebGPU off and on (SwiftShader: the page trains on the CPU by default there).
//
//   PORT=8181 cargo xtask serve &
//   CELLVAE_BASE_URL=http://127.0.0.1:8181/ CELLVAE_SHARED_DATA=/work/shared/data \
//     node tests/e2e/measure.mjs [--seconds 20] [--frames-seconds 6] [--mode webgpu|no-webgpu]
//
// Prints one line per figure and a JSON summary at the end. Works on the page before and
// after training moved into a worker (status() may be sync or async; `thread` is printed
// when the page reports it).
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { launch, openApp, SHARED } from './browser.mjs';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const SECONDS = Number(arg('seconds', 20));
const FRAME_SECONDS = Number(arg('frames-seconds', 6));
const MODES = arg('mode', 'both') === 'both' ? [false, true] : [arg('mode') === 'webgpu'];

const status = (page) => page.evaluate(() => window.cellvae.status());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function setEpochs(page, epochs) {
  if (!(await page.isVisible('[data-testid="opt-epochs"]'))) await page.click('[data-testid="settings"] summary');
  await page.fill('[data-testid="opt-epochs"]', String(epochs));
  await page.click('[data-testid="train-reset"]');
  await page.waitForFunction(() => Promise.resolve(window.cellvae.status()).then((s) => s.step === 0 && s.settings && s.settings.epochs > 1000), null, { timeout: 60_000 });
}

async function waitStatus(page, pred, arg0, timeout = 120_000) {
  await page.waitForFunction(`Promise.resolve(window.cellvae.status()).then((s) => (${pred})(s, ${JSON.stringify(arg0 ?? null)}))`, null, { timeout });
}

// rAF timestamps for `seconds`, collected on the page.
function frames(page, seconds) {
  return page.evaluate((ms) => new Promise((res) => {
    const out = [];
    const end = performance.now() + ms;
    const f = (x) => { out.push(x); if (x < end) requestAnimationFrame(f); else res(out); };
    requestAnimationFrame(f);
  }), seconds * 1000);
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
}

async function measure(webgpu) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';
  const b = await launch(webgpu);
  const out = { mode };
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1280, height: 900 });
    await openApp(page);

    // 1. The demo: epochs per second over SECONDS of wall time.
    await page.click('[data-testid="demo-button"]');
    await waitStatus(page, '(s) => s.n_cells === 700');
    await setEpochs(page, 100000);
    await page.click('[data-testid="train-toggle"]');
    await waitStatus(page, '(s) => s.step > 0');
    const s0 = await status(page);
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const s1 = await status(page);
    const secs = (Date.now() - t0) / 1000;
    await page.click('[data-testid="train-toggle"]');
    await waitStatus(page, '(s) => !s.training');
    out.thread = s1.thread ?? 'page (before the worker)';
    out.training_backend = s1.training_backend;
    out.demo_epochs_per_s = (s1.epoch - s0.epoch) / secs;
    out.demo_steps_per_s = (s1.step - s0.step) / secs;
    console.log(`[${mode}] demo (700 cells): ${out.demo_epochs_per_s.toFixed(2)} epochs/s, ${out.demo_steps_per_s.toFixed(1)} steps/s over ${secs.toFixed(1)} s (epoch ${s0.epoch} -> ${s1.epoch}; ${out.training_backend}, thread ${out.thread})`);

    // 2. 10,000 cells: frame times while training (auto pace), and their training speed.
    const dir = path.join(SHARED, 'mouse_10k_1000');
    await page.setInputFiles('[data-testid="file-input"]', ['matrix.mtx.gz', 'features.tsv', 'barcodes.tsv'].map((f) => path.join(dir, f)));
    await waitStatus(page, '(s) => s.n_cells === 10000');
    await page.selectOption('[data-testid="steps-per-frame"]', 'auto');
    const idle = await frames(page, 2);
    await page.click('[data-testid="train-toggle"]');
    await waitStatus(page, '(s) => s.step > 5');
    const f0 = await status(page);
    const ft0 = Date.now();
    const ts = await frames(page, FRAME_SECONDS);
    const f1 = await status(page);
    const fsecs = (Date.now() - ft0) / 1000;
    await page.click('[data-testid="train-toggle"]');
    await waitStatus(page, '(s) => !s.training');
    const gaps = ts.slice(1).map((x, i) => x - ts[i]).sort((a, c) => a - c);
    const idleGaps = idle.slice(1).map((x, i) => x - idle[i]).sort((a, c) => a - c);
    out.frames = gaps.length;
    out.frame_ms_median = quantile(gaps, 0.5);
    out.frame_ms_p95 = quantile(gaps, 0.95);
    out.frame_ms_max = gaps[gaps.length - 1];
    out.fps = gaps.length / (FRAME_SECONDS);
    out.idle_frame_ms_median = quantile(idleGaps, 0.5);
    out.cells10k_steps_per_s = (f1.step - f0.step) / fsecs;
    out.cells10k_epochs_per_s = out.cells10k_steps_per_s / Math.ceil(10000 / 128);
    console.log(`[${mode}] 10,000 cells training: ${out.frames} frames in ${FRAME_SECONDS} s (${out.fps.toFixed(1)} fps), frame median ${out.frame_ms_median.toFixed(1)} ms, p95 ${out.frame_ms_p95.toFixed(1)} ms, max ${out.frame_ms_max.toFixed(0)} ms (idle median ${out.idle_frame_ms_median.toFixed(1)} ms); ${out.cells10k_steps_per_s.toFixed(1)} steps/s`);
  } finally {
    await b.close();
  }
  return out;
}

let chromium = '';
try { chromium = execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim(); } catch { /* unknown */ }
const load0 = os.loadavg();
const results = [];
for (const webgpu of MODES) results.push(await measure(webgpu));
const summary = {
  date: new Date().toISOString(), chromium, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
  loadavg_before: load0.map((x) => x.toFixed(2)), loadavg_after: os.loadavg().map((x) => x.toFixed(2)),
  seconds: SECONDS, results,
};
console.log(JSON.stringify(summary, null, 1));
