// Page speed figures, run by hand (not part of the test suite): the demo's training speed
// over a fixed wall time and its step timed by stage (the page's bench hook), the frame
// times of the page while 10,000 cells train, and natively in the same run `cellvae bench`
// on the demo (target/release/cellvae, or CELLVAE_RELEASE_BIN) with the page/native ratios.
// WebGPU off and on (SwiftShader: the page trains on the CPU by default there).
//
//   PORT=8181 cargo xtask serve &
//   CELLVAE_BASE_URL=http://127.0.0.1:8181/ CELLVAE_SHARED_DATA=/work/shared/data \
//     node tests/e2e/measure.mjs [--seconds 20] [--frames-seconds 6] [--mode webgpu|no-webgpu]
//
//   ... node tests/e2e/measure.mjs --map [--map-seconds 4] [--cells 10000,100000,1000000]
//
// `--map` measures the latent map instead: for each WebGPU mode, the page with
// `?map=webgl2` (WebGL2 wherever the browser has it, software too) and with `?map=canvas`
// (map.js drawPoints), the demo loaded
// and then synthetic latent means of N cells (12 clusters, coloured by cluster) put in
// the page's state; every animation frame pans the view and redraws the map (drawMap).
// Prints the renderer used, the milliseconds drawMap takes (median, p95), the frame
// intervals meanwhile (median, p95, frames/s), and one latent update (projection,
// upload, draw).
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
const MAP = args.includes('--map');
const MAP_SECONDS = Number(arg('map-seconds', 4));
const CELLS = String(arg('cells', '10000,100000,1000000')).split(',').map(Number);

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
    // The same step timed by stage on the CPU kernels in the engine's thread (src/bench.rs),
    // as `cellvae bench` times it natively (printed beside it at the end).
    const bs = await page.evaluate(() => (window.cellvae.benchStep ? window.cellvae.benchStep() : null));
    if (bs) {
      out.bench_step_ms = 1e3 * bs.step_s;
      out.bench_stages_ms = Object.fromEntries(['encoder', 'decoder', 'likelihood', 'backward', 'optimizer'].map((k) => [k, 1e3 * bs.stages[`${k}_s`]]));
      out.bench_gflops = bs.gflops;
      out.bench_peak_gflops = bs.peak_gflops;
      console.log(`[${mode}] demo step by stage (CPU kernels, engine thread): ${out.bench_step_ms.toFixed(2)} ms ${JSON.stringify(Object.fromEntries(Object.entries(out.bench_stages_ms).map(([k, v]) => [k, +v.toFixed(2)])))}; ${bs.gflops.toFixed(1)} GFLOP/s, product peak ${bs.peak_gflops.toFixed(1)}`);
    }

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

// The map's frame figures for N synthetic cells, on the page as opened (see --map).
async function measureMap(webgpu, canvasPath) {
  const mode = `${webgpu ? 'webgpu' : 'no-webgpu'}, ?map=${canvasPath ? 'canvas' : 'webgl2'}`;
  const b = await launch(webgpu);
  const rows = [];
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1280, height: 900 });
    await openApp(page, new URL(`?map=${canvasPath ? 'canvas' : 'webgl2'}`, process.env.CELLVAE_BASE_URL).href);
    await page.click('[data-testid="demo-button"]');
    await waitStatus(page, '(s) => s.n_cells === 700');
    await page.waitForFunction(() => window.cellvae.cellPosition(0) !== null, null, { timeout: 60_000 });
    for (const n of CELLS) {
      const r = await page.evaluate(async ({ n, ms }) => {
        const base = document.baseURI;
        const { S } = await import(new URL('www/state.js', base).href);
        const mv = await import(new URL('www/map-view.js', base).href);
        // Clusters in the latent space (12, seeded), each cell a little off its centre.
        /** @type {any} */ (window).cellvae.syntheticClusters(n, 1, 0.4);
        const t0 = performance.now();
        mv.updateProjection();
        const t1 = performance.now();
        mv.drawMap();
        const t2 = performance.now();
        const v0 = { ...S.view };
        const w = v0.x1 - v0.x0;
        const draws = [], frames = [];
        await new Promise((res) => {
          const end = performance.now() + ms;
          const f = (t) => {
            frames.push(t);
            // Pan back and forth (a fifth of the width), as a right-drag does.
            const dx = 0.2 * w * Math.sin(frames.length / 20);
            S.autoView = false;
            S.view = { x0: v0.x0 + dx, x1: v0.x1 + dx, y0: v0.y0, y1: v0.y1 };
            const a = performance.now();
            mv.drawMap();
            draws.push(performance.now() - a);
            if (t < end) requestAnimationFrame(f); else res(null);
          };
          requestAnimationFrame(f);
        });
        const c = document.querySelector('[data-testid="latent-map"]');
        return {
          renderer: mv.mapRenderer(), canvas: [c.width, c.height], project_ms: t1 - t0, first_draw_ms: t2 - t1, draws,
          gaps: frames.slice(1).map((x, i) => x - frames[i]),
        };
      }, { n, ms: MAP_SECONDS * 1000 });
      const draws = [...r.draws].sort((a, c) => a - c), gaps = [...r.gaps].sort((a, c) => a - c);
      const row = {
        mode, cells: n, renderer: r.renderer.renderer + (r.renderer.why ? ` (${r.renderer.why})` : ''), gl: r.renderer.gl, canvas: r.canvas.join('x'),
        draw_ms_median: quantile(draws, 0.5), draw_ms_p95: quantile(draws, 0.95),
        frame_ms_median: quantile(gaps, 0.5), frame_ms_p95: quantile(gaps, 0.95), fps: r.gaps.length / (r.gaps.reduce((a, x) => a + x, 0) / 1000),
        latent_update_ms: r.project_ms + r.first_draw_ms,
      };
      rows.push(row);
      console.log(`[${mode}] ${n} cells, ${row.renderer}, map ${row.canvas}: drawMap median ${row.draw_ms_median.toFixed(1)} ms, p95 ${row.draw_ms_p95.toFixed(1)} ms; frames ${row.fps.toFixed(1)}/s (median ${row.frame_ms_median.toFixed(1)} ms, p95 ${row.frame_ms_p95.toFixed(1)} ms); a latent update (project + upload + draw) ${row.latent_update_ms.toFixed(0)} ms`);
    }
  } finally {
    await b.close();
  }
  return rows;
}

let chromium = '';
try { chromium = execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim(); } catch { /* unknown */ }
const load0 = os.loadavg();
const results = [];
if (MAP) {
  for (const webgpu of MODES) for (const canvasPath of [false, true]) results.push(...(await measureMap(webgpu, canvasPath)));
} else {
  for (const webgpu of MODES) results.push(await measure(webgpu));
}
// Natively, in the same run: `cellvae bench` on the demo (release build, where one exists).
let native = null;
const bin = process.env.CELLVAE_RELEASE_BIN || path.resolve('target/release/cellvae');
if (!MAP) {
  try {
    const text = execFileSync(bin, ['bench', 'www/demo/pbmc68k_reduced_700', '--epochs', '20'], { encoding: 'utf8' });
    const row = text.split('\n').find((l) => l.startsWith('| ') && l.includes('| cpu |'));
    if (row) {
      const c = row.split('|').map((x) => x.trim());
      native = { s_per_epoch: Number(c[5]), epochs_per_s: 1 / Number(c[5]), step_ms: Number(c[7]), row };
      console.log(`[native] ${row}`);
      for (const r of results) {
        console.log(`[${r.mode}] page / native: epochs/s ${(native.epochs_per_s / r.demo_epochs_per_s).toFixed(2)}x slower; timed step ${(r.bench_step_ms / native.step_ms).toFixed(2)}x`);
      }
    }
  } catch (e) {
    console.log(`[native] no figures (${bin}: ${String(e).split('\n')[0]}); build it with \`cargo build --release --bin cellvae\``);
  }
}
const summary = {
  date: new Date().toISOString(), chromium, native, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
  loadavg_before: load0.map((x) => x.toFixed(2)), loadavg_after: os.loadavg().map((x) => x.toFixed(2)),
  seconds: SECONDS, results,
};
console.log(JSON.stringify(summary, null, 1));
