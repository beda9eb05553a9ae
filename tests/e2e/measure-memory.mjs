// Memory and speed of the page on a large file, run by hand (not part of the test suite):
// the page opened in headless Chromium (WebGPU off), the file loaded through the file
// input, then 20 s of training; prints the load time, steps per second, the page's frame
// rate while training, and the PSS of every Chromium process together (sampled every
// 250 ms: the peak and the figure now). A file to try:
//
//   cargo run --release --example synthetic_cells -- 100000 2000 10x-h5 /tmp/synth100k.h5 3 0.22
//   PORT=8181 cargo xtask serve &
//   CELLVAE_BASE_URL=http://127.0.0.1:8181/ node tests/e2e/measure-memory.mjs /tmp/synth100k.h5
import fs from 'node:fs';
import { launch, openApp } from './browser.mjs';
function procs() {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      out.push({ pid: Number(d), ppid, cmd });
    } catch {}
  }
  return out;
}
/** The kind of a Chromium process, from its command line. */
function kind(cmd) {
  const t = cmd.match(/--type=([a-z-]+)/);
  if (!t) return 'browser';
  const sub = cmd.match(/--utility-sub-type=([A-Za-z.]+)/);
  return sub ? `${t[1]} ${sub[1].split('.').slice(-2).join('.')}` : t[1];
}
/** PSS in MB of the process tree under `rootPids`, in all and by kind of process. */
function treeBreakdown(rootPids) {
  const ps = procs();
  const set = new Set(rootPids);
  let grew = true;
  while (grew) { grew = false; for (const p of ps) if (!set.has(p.pid) && set.has(p.ppid)) { set.add(p.pid); grew = true; } }
  let kb = 0;
  /** @type {Record<string, number>} */
  const by = {};
  for (const p of ps) {
    if (!set.has(p.pid)) continue;
    try {
      const m = fs.readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)/m);
      if (m) { kb += Number(m[1]); const k = kind(p.cmd); by[k] = (by[k] || 0) + Number(m[1]) / 1024; }
    } catch {}
  }
  return { mb: kb / 1024, by };
}
function treePss(rootPids) { return treeBreakdown(rootPids).mb; }
/** @param {Record<string, number>} by */
const shown = (by) => Object.entries(by).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
const b = await launch(false);
const { page } = b;
const roots = procs().filter((p) => p.cmd.includes('cellvae-chromium-') && p.cmd.includes('chromium')).map((p) => p.pid);
let peak = 0; let peakBy = {}; let phase = 'open'; let peakPhase = phase; const samples = [];
const timer = setInterval(() => {
  const { mb, by } = treeBreakdown(roots);
  if (mb > peak) { peak = mb; peakBy = by; peakPhase = phase; }
  samples.push(mb);
}, 250);
await openApp(page);
console.log('page open', treePss(roots).toFixed(0), 'MB');
/** The engine worker's wasm memory in MB (wasm-bindgen's init returns the loaded instance's exports). */
async function wasmMB() {
  for (const w of page.workers()) {
    if (!w.url().includes('engine-worker.js')) continue;
    return w.evaluate(async () => {
      // The worker's own wasm.js (the same module instance): `core.default()` returns the
      // exports of the instance already loaded.
      const { core } = await import(new URL('./wasm.js', location.href).href);
      const e = await core.default();
      return e && e.memory ? e.memory.buffer.byteLength / 2 ** 20 : NaN;
    });
  }
  return NaN;
}
const t0 = Date.now();
phase = 'loading';
await page.setInputFiles('[data-testid="file-input"]', [process.argv[2]]);
await page.waitForFunction(() => window.cellvae.status().n_cells > 0 && window.cellvae.status().n_latent > 0, null, { timeout: 600_000 });
console.log('loaded in', ((Date.now() - t0) / 1000).toFixed(1), 's; now', treePss(roots).toFixed(0), 'MB; peak', peak.toFixed(0), '; the engine\'s wasm memory', (await wasmMB()).toFixed(0), 'MB');
phase = 'training';
await page.click('[data-testid="train-toggle"]');
const s0 = await page.evaluate(() => window.cellvae.status());
await new Promise((r) => setTimeout(r, 20000));
const s1 = await page.evaluate(() => window.cellvae.status());
const fr = await page.evaluate(() => new Promise((res) => { const out = []; const end = performance.now() + 3000; const f = (x) => { out.push(x); if (x < end) requestAnimationFrame(f); else res(out.length / 3); }; requestAnimationFrame(f); }));
console.log('training:', ((s1.step - s0.step) / 20).toFixed(2), 'steps/s; page', fr.toFixed(1), 'frames/s; now', treePss(roots).toFixed(0), 'MB; peak', peak.toFixed(0), 'MB (PSS of every Chromium process)');
console.log('the engine\'s wasm memory', (await wasmMB()).toFixed(0), 'MB');
console.log(`peak while ${peakPhase}: ${shown(peakBy)} (MB by kind of process)`);
clearInterval(timer);
await b.close();
