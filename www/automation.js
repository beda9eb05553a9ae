// @ts-check
// cellvae page: `window.cellvae`, the hooks for automation (the browser tests) and the
// console; the only place they live. status() and the map's readings are synchronous
// (from the page's state); decode and the fault injection ask the engine (promises).
import { S, TRAV_STEPS, genes } from './state.js';
import { $ } from './dom.js';
import { toPixel, drawPoints } from './map.js';
import { ctx2d } from './plot.js';
import { drawMap, mapCanvas } from './map-view.js';
import { setSelection, makeGroup } from './selection.js';
import { tableRows } from './compare.js';
import { volcanoPosition } from './volcano.js';

function probeReady() {
  const p = S.probe, prof = p.profile;
  return !!(p.z && prof && !p.inFlight && prof.batch === S.batch && prof.library === S.library
    && prof.z.length === p.z.length && prof.z.every((v, j) => v === /** @type {Float64Array} */ (p.z)[j]));
}

/** Everything a test or the console may want to know, as plain data. */
function status() {
  const info = S.info, st = S.status, P = S.P, tr = S.trav;
  const sum = S.data ? S.data.summary : null;
  const names = genes();
  return {
    backend: S.pageGpu.ok ? 'webgpu' : 'cpu',
    adapter: S.pageGpu.adapter,
    thread: S.thread,
    cpu_threads: S.cpuThreads.cpu_threads,
    cpu_threads_why: S.cpuThreads.why,
    engine_gpu: S.engineGpu.ok ? S.engineGpu.adapter : null,
    n_cells: sum ? sum.n_cells : 0,
    n_genes: sum ? sum.n_genes : 0,
    epoch: st ? st.epoch : 0,
    step: st ? st.step : 0,
    elbo: st && st.elbo !== undefined ? st.elbo : null,
    training: S.run === 'training' || S.stepsPending > 0,
    finished: st ? st.finished : false,
    stopped: S.stopped,
    run: S.run,
    snapshots: S.snapshots,
    step_ms: S.stepMs,
    format: sum ? sum.format : null,
    total_counts: sum ? sum.total_counts : null,
    load: S.load ? { ...S.load, log: [...S.load.log] } : null,
    n_latent: info ? S.d : 0,
    origin: info ? info.origin : null,
    colour_by: S.colourKey,
    projection: P ? (P.kind === 'pca' ? 'pca' : `z${P.i + 1},z${P.j + 1}`) : null,
    auto_view: S.autoView,
    view: S.view ? { ...S.view } : null,
    canvas: [mapCanvas().width, mapCanvas().height],
    probe: S.probe.z ? Array.from(S.probe.z) : null,
    field_gene: S.field.shown,
    traversal_genes: tr.top.map((g) => names[g]),
    traversal_position: tr.pos,
    pca_axes: P && P.kind === 'pca' ? P.axes.map((a) => Array.from(a)) : null,
    kl_bars: Number($('kl-dims-chart').dataset.bars || 0),
    training_backend: info ? S.backend : null,
    gpu_state: S.gpu.state,
    gpu_error: S.gpu.error || null,
    probe_cell: S.probe.cell,
    pins: S.pins.map((g) => names[g]),
    nearest_cells: S.probe.profile ? Array.from(S.probe.profile.nearest) : null,
    // The profile shown is the one of the probe's current point (not one still coming).
    probe_ready: probeReady(),
    kl_per_dim: S.klDims || [],
    traversal_path: tr.path ? Array.from({ length: TRAV_STEPS }, (_, s) => Array.from(/** @type {Float32Array} */ (tr.path).subarray(s * S.d, (s + 1) * S.d))) : null,
    field_view: S.field.canvas && S.field.view ? { ...S.field.view } : null,
    n_train_cells: info ? info.nTrain : 0,
    model: info ? info.model : null,
    settings: st ? { epochs: st.epochs, kl_warmup_epochs: st.kl_warmup_epochs, beta: st.beta, lr: st.lr } : null,
    batch_key: info ? info.batchKey : null,
    label_key: info ? info.labelKey : null,
    history: S.history.map((r) => ({ ...r })),
    kept: { ...S.kept },
    restored: S.restored ? { ...S.restored } : null,
    tool: S.sel.tool,
    selected: S.sel.current ? S.sel.current.length : 0,
    n_groups: S.sel.groups.length,
  };
}

/** The current selection's cells (positions in the map's cell order). */
function selection() {
  return S.sel.current ? Array.from(S.sel.current) : [];
}

/** Makes cells `indices` the current selection (as a lasso would). @param {number[]} indices */
function selectCells(indices) {
  setSelection(Uint32Array.from(indices), 'chosen by automation');
  return S.sel.current ? S.sel.current.length : 0;
}

/** The named groups: id, name, cell count, whether outlined, their cells. */
function groups() {
  return S.sel.groups.map((g) => ({ id: g.id, name: g.name, count: g.cells.length, shown: g.shown, colour: g.colour, cells: Array.from(g.cells) }));
}

/** The comparison as the page shows it (null: none yet), with the state of the run. */
function comparison() {
  const r = S.cmp.result;
  const volcano = /** @type {HTMLCanvasElement} */ ($('volcano'));
  return {
    running: S.cmp.running,
    error: S.cmp.error,
    result: r ? {
      n_genes: r.genes.length, n_cells1: r.n_cells1, n_cells2: r.n_cells2, n_de: r.n_de, options: r.options,
      names: [...S.cmp.names], csv_header: r.csv.split('\n')[0], csv_rows: r.csv.trim().split('\n').length - 1,
      genes: r.genes.map((g) => ({ name: g.name, gene: g.gene, lfc_mean: g.lfc_mean, proba_de: g.proba_de, is_de_fdr: g.is_de_fdr })),
    } : null,
    table: tableRows().map((g) => g.name || g.id).slice(0, 200),
    table_rows: $('cmp-table').querySelectorAll('tbody tr').length,
    volcano_points: Number(volcano.dataset.points || 0),
    volcano_called: Number(volcano.dataset.called || 0),
    chosen: S.cmp.chosen,
  };
}

/** Where gene `name` of the comparison is drawn on the volcano plot, as fractions of the canvas. @param {string} name */
function volcanoPoint(name) {
  const r = S.cmp.result;
  const row = r && r.genes.find((g) => g.name === name);
  return r && row ? volcanoPosition(/** @type {HTMLCanvasElement} */ ($('volcano')), r.genes, row) : null;
}

/** Decodes a latent point with the current model: expected counts per modelled gene. @param {number[]} z @param {number} [batch] @param {number} [library] */
async function decode(z, batch = 0, library) {
  if (!S.client || !S.info) throw new Error('no model');
  const r = await S.client.request('decode', { zs: Float32Array.from(z), batch, library: library ?? S.library });
  return Array.from(r.expected);
}

/** Where cell `c` is drawn on the map, as fractions of the canvas. @param {number} c */
function cellPosition(c) {
  if (!S.proj || !S.view || c < 0 || c >= S.n) return null;
  return toPixel(S.view, 1, 1, S.proj[2 * c], S.proj[2 * c + 1]);
}

/** The latent mean of cell `c` as the map shows it. @param {number} c */
function latentOf(c) {
  if (!S.latent || c < 0 || c >= S.n) return null;
  return Array.from(S.latent.subarray(c * S.d, (c + 1) * S.d));
}

/** Fault injection (tests): the GPU device is lost when training step `step` begins. @param {number} step */
async function testLoseGpuAtStep(step) {
  if (!S.client) throw new Error('no engine');
  await S.client.request('lose_gpu', { step });
}

/**
 * Fault injection (tests): at training step `step` the GPU fails: `lost` (the device is
 * destroyed), `oom` (a buffer allocation runs out of memory) or `shader` (a shader fails
 * validation). Rejects when training is not on the GPU.
 * @param {'lost' | 'oom' | 'shader'} kind @param {number} step
 */
async function testGpuFault(kind, step) {
  if (!S.client) throw new Error('no engine');
  await S.client.request('gpu_fault', { kind, step });
}

/** Fault injection (tests): from now on, every write the engine makes to IndexedDB fails as a full storage makes it fail. */
async function testStorageFull() {
  if (!S.client) throw new Error('no engine');
  await S.client.request('test_storage_full', {});
}

/** Milliseconds per redraw of the current map (mean of `repeats`; automation). @param {number} repeats */
function timeRedraw(repeats) {
  const t0 = performance.now();
  for (let r = 0; r < repeats; r++) drawMap();
  return (performance.now() - t0) / repeats;
}

/** Milliseconds to draw `n` random cells on a canvas of the map's size (a performance check). @param {number} n @param {number} repeats */
function benchmarkMap(n, repeats) {
  const proj = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) proj[i] = Math.random() * 4 - 2;
  const colours = { table: ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'], index: Uint16Array.from({ length: n }, (_, i) => i % 10), order: null };
  const map = mapCanvas();
  const c = document.createElement('canvas');
  c.width = map.width;
  c.height = map.height;
  const ctx = c.getContext('2d', { willReadFrequently: true }) || ctx2d(c);
  const v = { x0: -2, x1: 2, y0: -2, y1: 2 };
  // One draw first (the JIT's and the canvas's warm-up), then the median redraw: what a
  // frame costs once the map is up, not the first call's compilation.
  /** @type {number[]} */
  const times = [];
  for (let r = 0; r <= repeats; r++) {
    const t0 = performance.now();
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, c.width, c.height);
    drawPoints(ctx, proj, n, v, c.width, c.height, colours);
    if (r > 0) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** The open lesson and what its interactions measured (a deep copy). */
function lesson() {
  return { id: S.cls.lesson, data: S.cls.data, hidden: [...S.cls.hidden], result: JSON.parse(JSON.stringify(S.cls.result)) };
}

/** The evaluation panel: the last report and the runs table's rows. */
function evaluation() {
  return JSON.parse(JSON.stringify({ report: S.ev.report, error: S.ev.error, runs: S.ev.runs }));
}

/** `n` training steps now (as n presses of "1 step"). @param {number} n */
async function step(n) {
  if (!S.client || !S.info) throw new Error('no model');
  await S.client.request('step', { n });
}

/** The model files as the Save buttons write them: config.json's text and model.safetensors' bytes. */
async function modelFiles() {
  if (!S.client || !S.info) throw new Error('no model');
  const r = await S.client.request('export_model', {});
  return { config: r.config, safetensors: Array.from(r.safetensors) };
}

/**
 * Synthetic latent means in the page's state instead of the model's: `n` cells in 12
 * Gaussian clusters of standard deviation `spread` (centres uniform in [-3, 3]^d), each
 * cell coloured by its cluster; seeded (mulberry32), so a test draws the same map each
 * time. For the map's tests and measurements; the caller redraws.
 * @param {number} n @param {number} seed @param {number} spread
 */
function syntheticClusters(n, seed, spread) {
  let state = seed | 0;
  const rnd = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const d = S.d, K = 12;
  const centres = Array.from({ length: K * d }, () => rnd() * 6 - 3);
  const lat = new Float32Array(n * d), index = new Uint16Array(n);
  for (let c = 0; c < n; c++) {
    const k = c % K;
    index[c] = k;
    for (let j = 0; j < d; j++) lat[c * d + j] = centres[k * d + j] + spread * Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
  }
  const table = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];
  S.latent = lat; S.n = n; S.colours = { table, index, order: null }; S.autoView = true; S.prevPca = null;
}

/** A training step timed by stage in the engine's thread (src/bench.rs), as `cellvae bench` times it. */
async function benchStep() {
  if (!S.client) throw new Error('no data');
  return S.client.request('bench_step', {});
}

export function installAutomation() {
  /** @type {any} */ (window).cellvae = {
    status,
    decode,
    cellPosition,
    latentOf,
    modelGenes: () => [...genes()],
    timeRedraw: (repeats = 10) => timeRedraw(repeats),
    benchmarkMap: (n = 10000, repeats = 10) => benchmarkMap(n, repeats),
    testLoseGpuAtStep,
    testGpuFault,
    testStorageFull,
    selection,
    selectCells,
    makeGroup: (/** @type {string | undefined} */ name) => { const g = makeGroup(name); return g ? g.id : null; },
    groups,
    comparison,
    volcanoPoint,
    lesson,
    evaluation,
    step,
    modelFiles,
    benchStep,
    syntheticClusters,
  };
}
