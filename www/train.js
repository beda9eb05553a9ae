// cellvae page, part 3: train a Session (the wasm core's CPU trainer) in a
// requestAnimationFrame loop; the latent map (colour by metadata, library size or a
// gene; zoom, pan, hover; axis pairs or PCA for more than 2 dimensions; a decoded-gene
// background), the probe, the training curves, latent traversals, and saving/loading.
// Text from a user's file (labels, gene names, cell ids) is only ever set with
// textContent or drawn on a canvas, never parsed as HTML.
import { Session, draw_profile } from './pkg/cellvae.js';
import {
  PALETTE, MISSING, SCALES, css, drawColourBar, fmtNumber, lineChart, barChart, scheduleChart, heatmap,
} from './plot.js';
import {
  axisProjection, pcaProjection, projectAll, projectPoint, planePoint, fitView, toPixel, toPlane,
  zoomView, panView, hitTest, nearestInPlane, drawPoints,
} from './map.js';

const $ = (id) => document.getElementById(id);
const TRAV_STEPS = 25;
const TRAV_GENES = 12;
const FIELD_GRID = 40;

const t = {
  // Milliseconds per training step (running mean) and frames since the last step, for
  // "auto" steps per frame.
  stepMs: 0,
  framesIdle: 0,
  session: null,
  dataset: null,
  summary: null,
  running: false,
  status: null,
  latent: null,      // Float32Array, n_cells x d
  d: 2,
  n: 0,
  proj: null,        // Float32Array, n_cells x 2: the cells in the shown plane
  P: null,           // the projection (see map.js)
  prevPca: null,     // the last PCA axes, for sign alignment
  view: null,        // {x0, x1, y0, y1}
  autoView: true,    // the view follows the data until the user zooms or pans
  colours: null,     // {table, index, order, legend}
  colourKey: '',
  meta: [],          // [{name, codes, levels}] for the tooltip
  cellIds: [],
  libraries: null,
  genes: [],         // modelled genes (decode's columns)
  probeZ: null,      // Float64Array (d) or null
  probeAnchor: null, // the latent point the probe's plane goes through
  probeCell: -1,
  library: 1,
  batch: 0,
  lastProfile: null,
  pins: [],          // pinned genes (indices into genes)
  pinNames: [],      // their names, kept across models
  trav: { shown: false, path: null, pos: 0, top: [], values: [], timer: null, A: null, B: null, stamp: 0 },
  field: { gene: -1, canvas: null, view: null, lo: 0, hi: 0, stamp: 0, timer: null, dirty: false },
  dataGenes: [],          // the loaded data's gene names (for the colour-by search)
  dataGeneSet: new Set(),
  gpuAvailable: false,
  gpuAdapter: null,
  gpuSoftware: false,
  gpu: { state: null },  // {state: 'starting' | 'on' | 'failed', adapter, error, start}
  inFlight: Promise.resolve(),
  busy: 0,
  loop: null,
  rolling: { next: 0, perFrame: 1000 },
  chartsAt: 0,
  chartsEpoch: -1,
  model: null,
  nTrain: 0,
  axesFor: 0,
  colourFor: undefined,
  onStatus: () => {},
};

function message(e) {
  return String(e && e.message ? e.message : e);
}

function setStatusText(text) {
  $('train-status').textContent = text;
}

function showTrainError(text) {
  const box = $('train-error');
  box.textContent = text || '';
  box.hidden = !text;
}

function fmt(x, digits = 1) {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

function describe(s) {
  if (!s) return '';
  const parts = [`epoch ${s.epoch}`, `step ${s.step}`];
  if (s.elbo !== null && s.elbo !== undefined) {
    parts.push(`ELBO ${fmt(s.elbo)}`, `reconstruction ${fmt(s.reconstruction)}`, `KL ${fmt(s.kl, 2)}`,
      `KL weight ${fmt(s.kl_weight, 3)}`);
  }
  if (s.finished) parts.push(`done (${s.epochs} epochs)`);
  return parts.join(' · ');
}

function setButtons() {
  const has = !!t.session;
  const done = has && t.status && t.status.finished;
  $('train-toggle').disabled = !has || done;
  $('train-step').disabled = !has || t.running || done;
  $('train-reset').disabled = !t.dataset;
  $('train-toggle').textContent = t.running ? 'Pause' : 'Train';
  $('train-toggle').setAttribute('aria-pressed', t.running ? 'true' : 'false');
  for (const id of ['export-latent', 'export-model-weights', 'export-model-config', 'export-map-png', 'export-charts-png']) {
    $(id).disabled = !has;
  }
  $('export-probe').disabled = !has || !t.probeZ;
}

function option(value, text) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text;
  return o;
}

// ---- projection and view -------------------------------------------------------------------

function computeProjection() {
  if (!t.latent) return;
  const sel = $('axes').value;
  if (t.d > 2 && sel === 'pca') {
    t.P = pcaProjection(t.latent, t.n, t.d, t.prevPca);
    t.prevPca = t.P.axes;
  } else {
    const [i, j] = (sel && sel !== 'pca' ? sel : '0,1').split(',').map(Number);
    t.P = axisProjection(t.latent, t.n, t.d, i, Math.min(j, t.d));
  }
  t.proj = projectAll(t.latent, t.n, t.d, t.P, t.proj);
  if (t.autoView || !t.view) t.view = fitView(t.proj, t.n);
  updatePlaneNote();
}

function axisName(k) {
  if (!t.P) return '';
  if (t.P.kind === 'pca') return `PC ${k + 1}`;
  return `z${(k === 0 ? t.P.i : t.P.j) + 1}`;
}

function updatePlaneNote() {
  const note = $('plane-note');
  if (!t.session || t.d <= 2) {
    note.textContent = '';
    return;
  }
  let what;
  if (t.P && t.P.kind === 'pca') {
    const [a, b] = t.P.explained.map((x) => `${(100 * x).toFixed(0)}%`);
    what = `${t.d}-D latent space shown by its first two principal components (${a} and ${b} of the variance).`;
  } else {
    what = `${t.d}-D latent space shown on axes ${axisName(0)} and ${axisName(1)}.`;
  }
  const probe = t.probeCell >= 0
    ? ` The probe moves in the shown plane through the latent point of the nearest cell (${t.cellIds[t.probeCell] ?? t.probeCell}); its other coordinates stay fixed.`
    : ' The probe moves in the shown plane through the latent point of the cell nearest to where you click.';
  note.textContent = what + probe;
}

function fillAxes() {
  const sel = $('axes');
  const prev = sel.value;
  sel.replaceChildren();
  if (t.d > 2) sel.append(option('pca', 'PCA of the latent means'));
  for (let i = 0; i < t.d; i++) {
    for (let j = i + 1; j < t.d; j++) sel.append(option(`${i},${j}`, `z${i + 1} vs z${j + 1}`));
  }
  if (t.d < 2) sel.append(option('0,1', 'z1'));
  // Keep the choice while the dimensions stay; PCA first for a new space.
  if (t.d === t.axesFor && [...sel.options].some((o) => o.value === prev)) sel.value = prev;
  t.axesFor = t.d;
  $('axes-label').hidden = t.d <= 2;
}

// ---- colours -------------------------------------------------------------------------------

function categoricalColours(codes, levels, title) {
  const missingIdx = levels.length;
  const table = levels.map((_, i) => PALETTE[i % PALETTE.length]).concat([MISSING]);
  const index = new Uint16Array(codes.length);
  const counts = new Array(levels.length + 1).fill(0);
  for (let c = 0; c < codes.length; c++) {
    const k = codes[c] === null || codes[c] === undefined ? missingIdx : codes[c];
    index[c] = k;
    counts[k]++;
  }
  return { table, index, order: null, legend: { kind: 'categorical', title, levels, counts, table } };
}

// `clip`: the top of the scale is this quantile (outliers share the top colour).
function continuousColours(values, title, scaleName, lo, clip = 1) {
  const scale = SCALES[scaleName];
  let mn = Infinity, mx = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
  if (clip < 1) {
    const finite = Float64Array.from(Array.from(values).filter(Number.isFinite)).sort();
    if (finite.length) mx = finite[Math.min(finite.length - 1, Math.floor(clip * (finite.length - 1)))];
  }
  if (lo !== undefined) mn = Math.min(lo, mn);
  if (!Number.isFinite(mn)) { mn = 0; mx = 1; }
  const span = mx > mn ? mx - mn : 1;
  const table = scale.map(css).concat([MISSING]);
  const index = new Uint16Array(values.length);
  for (let c = 0; c < values.length; c++) {
    const v = values[c];
    index[c] = Number.isFinite(v) ? Math.min(scale.length - 1, Math.floor(((v - mn) / span) * scale.length)) : scale.length;
  }
  // Low values first, so high ones are drawn on top.
  const order = Uint32Array.from(values.keys());
  order.sort((a, b) => (Number.isFinite(values[a]) ? values[a] : -Infinity) - (Number.isFinite(values[b]) ? values[b] : -Infinity));
  return { table, index, order, values, legend: { kind: 'continuous', title, lo: mn, hi: mx, scale } };
}

function obsKind(name) {
  const cols = (t.summary && t.summary.obs_columns) || [];
  const c = cols.find((x) => x.name === name);
  return c ? c.kind : 'categorical';
}

function fillColourBy() {
  const sel = $('colour-by');
  const prev = sel.value;
  sel.replaceChildren();
  for (const m of t.meta) sel.append(option(`obs:${m.name}`, m.name + (m.name === t.session.batch_key ? ' (batch)' : '')));
  sel.append(option('library', 'library size'));
  sel.append(option('gene', 'a gene’s expression…'));
  const key = t.session.label_key;
  // Keep the choice unless the label column changed.
  if ((key || null) === t.colourFor && [...sel.options].some((o) => o.value === prev)) sel.value = prev;
  else if (key) sel.value = `obs:${key}`;
  else sel.value = 'library';
  t.colourFor = key || null;
}

function buildColours() {
  const sel = $('colour-by').value;
  $('gene-search-label').hidden = sel !== 'gene';
  const search = $('gene-search');
  search.classList.remove('invalid');
  search.title = '';
  t.colourKey = sel;
  if (!t.session) { t.colours = null; return; }
  try {
    if (sel.startsWith('obs:')) {
      const m = t.meta.find((x) => `obs:${x.name}` === sel);
      const numeric = obsKind(m.name) === 'numeric' && m.levels.length > 20;
      if (numeric) {
        const vals = new Float32Array(m.codes.length);
        m.codes.forEach((c, i) => { vals[i] = c === null || c === undefined ? NaN : Number(m.levels[c]); });
        t.colours = continuousColours(vals, m.name, 'viridis');
      } else {
        t.colours = categoricalColours(m.codes, m.levels, m.name);
      }
    } else if (sel === 'library') {
      t.colours = continuousColours(t.libraries, 'library size (counts in the modelled genes; top 1% share the top colour)', 'viridis', undefined, 0.99);
    } else if (sel === 'gene') {
      const g = search.value.trim();
      if (!g || !t.dataset) {
        t.colours = { table: [PALETTE[0]], index: new Uint16Array(t.n), order: null, legend: { kind: 'none', title: 'type a gene name above' } };
      } else {
        const vals = t.dataset.expression(g);
        t.colours = continuousColours(vals, `${g}: log1p(counts / total × 10⁴)`, 'expression', 0);
        t.colourKey = `gene:${g}`;
      }
    }
  } catch (e) {
    search.classList.add('invalid');
    search.title = message(e);
    t.colours = { table: [PALETTE[0]], index: new Uint16Array(t.n), order: null, legend: { kind: 'none', title: message(e) } };
  }
  renderLegend();
}

function renderLegend() {
  const root = $('legend');
  root.replaceChildren();
  const lg = t.colours && t.colours.legend;
  if (lg) {
    const title = document.createElement('p');
    title.className = 'legend-title';
    title.textContent = lg.title;
    root.append(title);
    if (lg.kind === 'categorical') {
      const ul = document.createElement('ul');
      const add = (name, colour, n) => {
        const li = document.createElement('li');
        const sw = document.createElement('span');
        sw.className = 'swatch';
        sw.style.background = colour;
        const label = document.createElement('span');
        label.textContent = `${name} (${n})`;
        li.append(sw, label);
        ul.append(li);
      };
      const shown = Math.min(lg.levels.length, 40);
      for (let i = 0; i < shown; i++) if (lg.counts[i]) add(lg.levels[i], lg.table[i], lg.counts[i]);
      if (lg.levels.length > shown) {
        const li = document.createElement('li');
        li.textContent = `… and ${lg.levels.length - shown} more`;
        ul.append(li);
      }
      if (lg.counts[lg.levels.length]) add('(no value)', MISSING, lg.counts[lg.levels.length]);
      root.append(ul);
    } else if (lg.kind === 'continuous') {
      root.append(colourBar(lg.lo, lg.hi, lg.scale, 'colour-bar'));
    }
  }
  if (t.field.canvas && t.field.gene >= 0) {
    const title = document.createElement('p');
    title.className = 'legend-title';
    title.textContent = `background: decoded ${t.genes[t.field.gene]} (expected counts, log scale)`;
    root.append(title, colourBar(t.field.lo, t.field.hi, SCALES.field, 'field-bar'));
  }
}

function colourBar(lo, hi, scale, testid) {
  const bar = document.createElement('div');
  bar.className = 'colour-bar';
  bar.dataset.testid = testid;
  const a = document.createElement('span');
  a.textContent = fmtNumber(lo);
  const c = document.createElement('canvas');
  c.width = 160;
  c.height = 12;
  drawColourBar(c, scale);
  const b = document.createElement('span');
  b.textContent = fmtNumber(hi);
  bar.append(a, c, b);
  return bar;
}

// Completion over the data's genes: the first 50 that start with (then contain) the text.
function fillGeneList(list, names, text) {
  const q = text.trim().toLowerCase();
  const starts = [], contains = [];
  if (q) {
    for (const g of names) {
      const l = g.toLowerCase();
      if (l.startsWith(q)) starts.push(g);
      else if (l.includes(q)) contains.push(g);
      if (starts.length >= 50) break;
    }
  }
  const chosen = (q ? starts.concat(contains) : names).slice(0, 50);
  list.replaceChildren(...chosen.map((g) => { const o = document.createElement('option'); o.value = g; return o; }));
}

// ---- drawing -------------------------------------------------------------------------------

function drawMap() {
  const canvas = $('latent-map');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  if (!t.latent || !t.proj) {
    ctx.fillStyle = '#667085';
    ctx.font = '14px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText(t.session ? 'Press Train to start.' : 'Load data to train.', W / 2, H / 2);
    return;
  }
  const v = t.view;
  if (t.field.canvas && t.field.view) {
    const f = t.field.view;
    const [x0, y0] = toPixel(v, W, H, f.x0, f.y1);
    const [x1, y1] = toPixel(v, W, H, f.x1, f.y0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(t.field.canvas, x0, y0, x1 - x0, y1 - y0);
  }
  // Axes through zero, when in range.
  ctx.strokeStyle = '#e4e7ec';
  ctx.lineWidth = 1;
  const [ox, oy] = toPixel(v, W, H, 0, 0);
  ctx.beginPath();
  if (ox > 0 && ox < W) { ctx.moveTo(ox, 0); ctx.lineTo(ox, H); }
  if (oy > 0 && oy < H) { ctx.moveTo(0, oy); ctx.lineTo(W, oy); }
  ctx.stroke();
  if (t.colours) drawPoints(ctx, t.proj, t.n, v, W, H, t.colours);
  ctx.fillStyle = '#667085';
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'right';
  ctx.fillText(axisName(0), W - 6, H - 6);
  ctx.textAlign = 'left';
  ctx.fillText(axisName(1), 6, 14);
  drawTraversalPath(ctx, W, H);
  if (t.probeZ) {
    const [px, py] = projectPoint(t.probeZ, t.P);
    const [x, y] = toPixel(v, W, H, px, py);
    ctx.strokeStyle = '#1d2330';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.moveTo(x - 12, y); ctx.lineTo(x - 4, y);
    ctx.moveTo(x + 4, y); ctx.lineTo(x + 12, y);
    ctx.moveTo(x, y - 12); ctx.lineTo(x, y - 4);
    ctx.moveTo(x, y + 4); ctx.lineTo(x, y + 12);
    ctx.stroke();
  }
}

function drawTraversalPath(ctx, W, H) {
  const path = t.trav.path;
  if (!path || !t.trav.shown) return;
  const d = t.d;
  const a = projectPoint(path.subarray(0, d), t.P);
  const b = projectPoint(path.subarray((TRAV_STEPS - 1) * d, TRAV_STEPS * d), t.P);
  const [x0, y0] = toPixel(t.view, W, H, a[0], a[1]);
  const [x1, y1] = toPixel(t.view, W, H, b[0], b[1]);
  ctx.strokeStyle = 'rgba(217, 45, 32, 0.75)';
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = '#d92d20';
  ctx.font = 'bold 12px system-ui, sans-serif';
  ctx.textAlign = 'center';
  const clampX = (x) => Math.max(18, Math.min(W - 18, x));
  const clampY = (y) => Math.max(14, Math.min(H - 4, y));
  ctx.fillText('start', clampX(x0), clampY(y0 - 8));
  ctx.fillText('end', clampX(x1), clampY(y1 - 8));
}

function drawCharts() {
  const hist = t.session ? t.session.history() : [];
  lineChart($('elbo-chart'), 'ELBO per epoch (higher is better)', [
    { name: 'ELBO', colour: '#2f6fde', values: hist.map((r) => r.elbo) },
  ]);
  lineChart($('loss-chart'), 'Reconstruction error and KL per epoch (per cell)', [
    { name: 'reconstruction', colour: '#f79009', values: hist.map((r) => r.reconstruction) },
    { name: 'KL', colour: '#7a5af8', values: hist.map((r) => r.kl) },
  ], { independent: true });
  let kl = [];
  if (t.session && t.latent) {
    try { kl = Array.from(t.session.kl_per_dim()); } catch (e) { kl = []; }
  }
  t.klDims = kl;
  barChart($('kl-dims-chart'), 'KL per latent dimension (nats per cell; grey: < 0.1, unused)', kl);
  const s = t.status;
  scheduleChart($('kl-schedule-chart'), s
    ? { epochs: s.epochs, warmup: s.kl_warmup_epochs, beta: s.beta, epoch: s.epoch }
    : { epochs: 0, warmup: 0, beta: 1, epoch: 0 });
}

// ---- probe ---------------------------------------------------------------------------------

function decodeAt(z) {
  return t.session.decode(Float32Array.from(z), t.batch, t.library);
}

const NEAREST = 15;

function profileRow(g, expected, cells, top) {
  const li = document.createElement('li');
  li.dataset.gene = t.genes[g];
  const name = document.createElement('span');
  name.className = 'gene';
  name.textContent = t.genes[g];
  name.title = t.genes[g];
  const track = document.createElement('span');
  track.className = 'track';
  const bar = document.createElement('span');
  bar.className = 'bar';
  bar.style.width = `${Math.min(100, Math.max(1, (100 * expected[g]) / top)).toFixed(1)}%`;
  track.append(bar);
  if (cells) {
    const bar2 = document.createElement('span');
    bar2.className = 'bar cells';
    bar2.style.width = `${Math.min(100, Math.max(0.5, (100 * cells[g]) / top)).toFixed(1)}%`;
    track.append(bar2);
  }
  const val = document.createElement('span');
  val.className = 'value';
  val.textContent = expected[g].toFixed(1);
  const cv = document.createElement('span');
  cv.className = 'cells-value';
  cv.textContent = cells ? cells[g].toFixed(1) : '';
  li.append(name, track, val, cv);
  return li;
}

// Sizes the canvas to its box (device pixels) and has plotters draw the bars.
function drawProfileChart(canvas, genes, expected, cells) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(200, canvas.parentElement.clientWidth || 320);
  const height = 34 + 20 * genes.length;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.getContext('2d').setTransform(dpr, 0, 0, dpr, 0, 0);
  try {
    draw_profile(
      canvas,
      genes.map((g) => t.genes[g]),
      Float32Array.from(genes.map((g) => expected[g])),
      Float32Array.from(genes.map((g) => cells[g])),
    );
  } catch (e) {
    console.error(e);
  }
}

function renderProbe() {
  const root = $('probe-profile');
  root.replaceChildren();
  if (!t.session || !t.probeZ) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = t.session ? 'Click or drag on the map to decode a latent point.' : '';
    root.append(p);
    t.lastProfile = null;
    setButtons();
    return;
  }
  let expected, near;
  try {
    expected = decodeAt(t.probeZ);
    near = t.session.nearest_profile(Float32Array.from(t.probeZ), NEAREST, t.library);
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = message(e);
    root.append(p);
    return;
  }
  const cells = near.mean;
  t.lastProfile = { z: Array.from(t.probeZ), batch: t.batch, library: t.library, expected, cells, nearest: near.cells };
  const order = Array.from(expected.keys()).sort((a, b) => expected[b] - expected[a]).slice(0, 10);
  const shown = order.concat(t.pins);
  const top = Math.max(1e-9, ...shown.map((g) => Math.max(expected[g], cells[g])));
  const head = document.createElement('p');
  head.className = 'probe-head';
  const zs = Array.from(t.probeZ).map((x) => x.toFixed(2));
  head.textContent = `z = (${zs.length > 6 ? `${zs.slice(0, 6).join(', ')}, …` : zs.join(', ')}), library ${Math.round(t.library)}: top 10 genes, expected counts`;
  const key = document.createElement('p');
  key.className = 'probe-key';
  const k1 = document.createElement('span');
  const s1 = document.createElement('span');
  s1.className = 'key';
  s1.style.background = '#2f6fde';
  k1.append(s1, 'decoded at the probe');
  const k2 = document.createElement('span');
  const s2 = document.createElement('span');
  s2.className = 'key';
  s2.style.background = '#f79009';
  k2.append(s2, `the ${near.cells.length} nearest cells (observed, same library size)`);
  key.append(k1, k2);
  // The bars: drawn by plotters (Rust) on a canvas; the list below gives the numbers.
  const chart = document.createElement('canvas');
  chart.className = 'probe-chart';
  chart.dataset.testid = 'probe-chart';
  chart.setAttribute('role', 'img');
  chart.setAttribute('aria-label', 'decoded expression of the top genes at the probe');
  const list = document.createElement('ol');
  list.className = 'bars';
  for (const g of order) list.append(profileRow(g, expected, cells, top));
  root.append(head, key, chart, list);
  drawProfileChart(chart, shown, expected, cells);
  if (t.pins.length) {
    const sub = document.createElement('p');
    sub.className = 'probe-sub';
    sub.textContent = 'pinned genes';
    const pinned = document.createElement('ol');
    pinned.className = 'bars pinned';
    pinned.dataset.testid = 'pinned-profile';
    for (const g of t.pins) pinned.append(profileRow(g, expected, cells, top));
    root.append(sub, pinned);
  }
  setButtons();
}

function renderPins() {
  const root = $('pins');
  root.replaceChildren();
  for (const g of t.pins) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = t.genes[g];
    const x = document.createElement('button');
    x.type = 'button';
    x.textContent = '×';
    x.title = `unpin ${t.genes[g]}`;
    x.setAttribute('aria-label', `unpin ${t.genes[g]}`);
    x.addEventListener('click', () => {
      t.pins = t.pins.filter((p) => p !== g);
      t.pinNames = t.pins.map((p) => t.genes[p]);
      renderPins();
      renderProbe();
    });
    li.append(name, x);
    root.append(li);
  }
}

function pinGene() {
  const input = $('pin-gene');
  const name = input.value.trim();
  input.classList.remove('invalid');
  input.title = '';
  if (!name) return;
  const g = t.genes.indexOf(name);
  if (g < 0) {
    input.classList.add('invalid');
    input.title = `${name} is not one of the model's genes`;
    return;
  }
  if (!t.pins.includes(g)) t.pins.push(g);
  t.pinNames = t.pins.map((p) => t.genes[p]);
  input.value = '';
  renderPins();
  renderProbe();
}

function canvasPoint(ev) {
  const canvas = $('latent-map');
  const r = canvas.getBoundingClientRect();
  return [((ev.clientX - r.left) * canvas.width) / r.width, ((ev.clientY - r.top) * canvas.height) / r.height];
}

// Places the probe under the pointer. `start`: a new drag (re-anchors the plane).
function probeAt(ev, start) {
  if (!t.session || !t.view || !t.P) return;
  const canvas = $('latent-map');
  const [px, py] = canvasPoint(ev);
  const [u, v] = toPlane(t.view, canvas.width, canvas.height, px, py);
  if (start || !t.probeAnchor) {
    if (t.d > 2) {
      const c = nearestInPlane(t.proj, t.n, u, v);
      t.probeCell = c;
      t.probeAnchor = c >= 0 ? Float64Array.from(t.latent.subarray(c * t.d, (c + 1) * t.d)) : Float64Array.from(t.P.base);
    } else {
      t.probeCell = -1;
      t.probeAnchor = Float64Array.from(t.P.base);
    }
    updatePlaneNote();
  }
  t.probeZ = planePoint(u, v, t.probeAnchor, t.P);
  renderProbe();
  drawMap();
}

// ---- hover ---------------------------------------------------------------------------------

function hover(ev) {
  const tip = $('map-tooltip');
  if (!t.proj || !t.view) { tip.hidden = true; return; }
  const canvas = $('latent-map');
  const [px, py] = canvasPoint(ev);
  const c = hitTest(t.proj, t.n, t.view, canvas.width, canvas.height, px, py, 6);
  if (c < 0) { tip.hidden = true; return; }
  const lines = [t.cellIds[c]];
  for (const m of t.meta) {
    const code = m.codes[c];
    lines.push(`${m.name}: ${code === null || code === undefined ? '(no value)' : m.levels[code]}`);
  }
  lines.push(`library size: ${Math.round(t.libraries[c])}`);
  if (t.colours && t.colours.values && t.colourKey.startsWith('gene:')) {
    lines.push(`${t.colourKey.slice(5)}: ${fmtNumber(t.colours.values[c])} (log1p normalised)`);
  }
  tip.textContent = lines.join('\n');
  tip.dataset.cell = String(c);
  tip.hidden = false;
  const r = canvas.getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  tip.style.left = `${Math.min(x + 14, r.width - 200)}px`;
  tip.style.top = `${y + 14}px`;
}

// ---- traversal -----------------------------------------------------------------------------

function fillTravModes() {
  const sel = $('trav-mode');
  const prev = sel.value;
  sel.replaceChildren();
  for (let k = 0; k < t.d; k++) sel.append(option(`axis:${k}`, `along latent axis z${k + 1}`));
  sel.append(option('line', 'line from A to B'));
  if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
}

function computeTraversal() {
  const tr = t.trav;
  tr.path = null;
  tr.top = [];
  tr.values = [];
  if (!t.session || !t.latent) { drawHeatmap('Load data and train to walk through the latent space.'); return; }
  const d = t.d;
  const mode = $('trav-mode').value;
  let from, to;
  if (mode === 'line') {
    if (!tr.A || !tr.B) {
      drawHeatmap(!tr.A ? 'Place the probe on the map and press “A here”.' : 'Move the probe and press “B here”.');
      drawMap();
      return;
    }
    from = tr.A; to = tr.B;
  } else {
    const k = Number(mode.split(':')[1]);
    let lo = Infinity, hi = -Infinity;
    for (let c = 0; c < t.n; c++) {
      const x = t.latent[c * d + k];
      if (Number.isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    }
    if (!Number.isFinite(lo)) { lo = -2; hi = 2; }
    const pad = Math.max((hi - lo) * 0.05, 0.05);
    const origin = t.probeZ ? t.probeZ : (t.P ? t.P.base : new Float64Array(d));
    from = Float64Array.from(origin); to = Float64Array.from(origin);
    from[k] = lo - pad; to[k] = hi + pad;
  }
  const path = new Float32Array(TRAV_STEPS * d);
  for (let s = 0; s < TRAV_STEPS; s++) {
    const f = s / (TRAV_STEPS - 1);
    for (let j = 0; j < d; j++) path[s * d + j] = from[j] + f * (to[j] - from[j]);
  }
  let expected;
  try {
    expected = t.session.decode(path, t.batch, t.library);
  } catch (e) {
    drawHeatmap(message(e));
    return;
  }
  const G = t.genes.length;
  const range = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let lo = Infinity, hi = -Infinity;
    for (let s = 0; s < TRAV_STEPS; s++) {
      const v = Math.log1p(expected[s * G + g]);
      lo = Math.min(lo, v); hi = Math.max(hi, v);
    }
    range[g] = hi - lo;
  }
  const top = Array.from(range.keys()).sort((a, b) => range[b] - range[a]).slice(0, Math.min(TRAV_GENES, G));
  tr.path = path;
  tr.top = top;
  tr.values = top.map((g) => Array.from({ length: TRAV_STEPS }, (_, s) => expected[s * G + g]));
  tr.stamp = performance.now();
  drawHeatmap();
  drawMap();
}

function drawHeatmap(note) {
  const canvas = $('traversal-heatmap');
  const tr = t.trav;
  heatmap(canvas, {
    genes: note ? [] : tr.top.map((g) => t.genes[g]),
    values: tr.values,
    steps: TRAV_STEPS,
    position: tr.pos,
    title: note || `The ${tr.top.length} genes that change most along the path (expected counts; each row scaled to its own range)`,
  });
}

function scrubTo(pos) {
  const tr = t.trav;
  tr.pos = Math.max(0, Math.min(TRAV_STEPS - 1, pos));
  $('trav-slider').value = String(tr.pos);
  if (!tr.path) return;
  t.probeZ = Float64Array.from(tr.path.subarray(tr.pos * t.d, (tr.pos + 1) * t.d));
  t.probeAnchor = Float64Array.from(t.probeZ);
  renderProbe();
  drawHeatmap();
  drawMap();
}

function toggleAnimation() {
  const tr = t.trav;
  tr.shown = true;
  if (tr.timer) {
    clearInterval(tr.timer);
    tr.timer = null;
    $('trav-play').textContent = 'Animate';
    return;
  }
  if (!tr.path) computeTraversal();
  if (!tr.path) return;
  let dir = 1;
  tr.timer = setInterval(() => {
    if (!t.trav.path) { toggleAnimation(); return; }
    let next = tr.pos + dir;
    if (next >= TRAV_STEPS || next < 0) { dir = -dir; next = tr.pos + dir; }
    scrubTo(next);
  }, 120);
  $('trav-play').textContent = 'Stop';
}

// ---- decoder field -------------------------------------------------------------------------

function computeField() {
  const f = t.field;
  f.dirty = false;
  if (!t.session || !t.view || !t.P || f.gene < 0) {
    f.canvas = null;
    renderLegend();
    drawMap();
    return;
  }
  // Each decode costs ~hidden x genes: keep a grid's work bounded (smaller while training).
  const budget = t.running ? 3e5 : 1.2e6;
  const N = Math.max(8, Math.min(FIELD_GRID, Math.floor(Math.sqrt(budget / Math.max(1, t.genes.length)))));
  const d = t.d;
  const v = { ...t.view };
  const base = t.d > 2 && t.probeAnchor ? t.probeAnchor : t.P.base;
  const zs = new Float32Array(N * N * d);
  for (let r = 0; r < N; r++) {
    for (let c = 0; c < N; c++) {
      const u = v.x0 + ((c + 0.5) / N) * (v.x1 - v.x0);
      const w = v.y1 - ((r + 0.5) / N) * (v.y1 - v.y0);
      zs.set(planePoint(u, w, base, t.P), (r * N + c) * d);
    }
  }
  let vals;
  try {
    vals = t.session.decode_genes(zs, t.batch, t.library, Uint32Array.of(f.gene));
  } catch (e) {
    f.canvas = null;
    $('field-gene').title = message(e);
    return;
  }
  let lo = Infinity, hi = -Infinity;
  const logs = new Float32Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    logs[i] = Math.log1p(vals[i]);
    lo = Math.min(lo, logs[i]); hi = Math.max(hi, logs[i]);
  }
  const span = hi > lo ? hi - lo : 1;
  const canvas = f.canvas || document.createElement('canvas');
  canvas.width = N;
  canvas.height = N;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(N, N);
  const scale = SCALES.field;
  for (let i = 0; i < N * N; i++) {
    const k = Math.min(scale.length - 1, Math.floor(((logs[i] - lo) / span) * scale.length));
    const [r, g, b] = scale[k];
    img.data.set([r, g, b, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
  f.canvas = canvas;
  f.view = v;
  f.lo = Math.expm1(lo);
  f.hi = Math.expm1(hi);
  f.stamp = performance.now();
  $('latent-map').dataset.field = t.genes[f.gene];
  renderLegend();
  drawMap();
}

// Recomputes the field soon (after the view settles).
function scheduleField(delay = 250) {
  const f = t.field;
  if (f.gene < 0) return;
  f.dirty = true;
  clearTimeout(f.timer);
  f.timer = setTimeout(computeField, delay);
}

function chooseFieldGene() {
  const input = $('field-gene');
  const name = input.value.trim();
  input.classList.remove('invalid');
  input.title = '';
  if (!name) {
    t.field.gene = -1;
    t.field.canvas = null;
    delete $('latent-map').dataset.field;
    renderLegend();
    drawMap();
    return;
  }
  const g = t.genes.indexOf(name);
  if (g < 0) {
    input.classList.add('invalid');
    input.title = `${name} is not one of the model's genes`;
    return;
  }
  t.field.gene = g;
  computeField();
}

// ---- refresh -------------------------------------------------------------------------------

function refreshLatent() {
  t.latent = t.session.latent();
  t.n = Math.floor(t.latent.length / t.d);
  computeProjection();
}

// Large data: re-encode a slice of the cells per frame (about 4 ms of work), round robin,
// so no frame stalls; the map updates as the slices come in.
const ROLLING_ABOVE = 3000;
function refreshLatentSlice() {
  const r = t.rolling;
  const count = Math.max(200, Math.min(t.n, Math.round(r.perFrame)));
  const t0 = performance.now();
  const part = t.session.latent_range(r.next, count);
  const ms = performance.now() - t0;
  t.latent.set(part, r.next * t.d);
  const got = part.length / t.d;
  r.next = r.next + got >= t.n ? 0 : r.next + got;
  // Aim for ~4 ms per frame (a training step of 128 cells takes ~20 ms on the CPU).
  if (ms > 0) r.perFrame = Math.max(200, Math.min(t.n, (got * 4) / ms));
  computeProjection();
}

function refresh(force = false) {
  if (t.session && t.status && t.status.step > 0) {
    if (force || t.n <= ROLLING_ABOVE) refreshLatent();
    else refreshLatentSlice();
  }
  drawMap();
  const now = performance.now();
  // The curves change once per epoch; KL per dimension slowly: 5 redraws a second do.
  if (force || now - t.chartsAt > 200 || (t.status && t.status.epoch !== t.chartsEpoch)) {
    drawCharts();
    t.chartsAt = now;
    t.chartsEpoch = t.status ? t.status.epoch : 0;
  }
  if (t.probeZ) renderProbe();
  // The heatmap follows training: twice a second once the walk is in use, else every 3 s.
  if (t.trav.path && !t.trav.timer && (force || now - t.trav.stamp > (t.trav.shown ? 500 : 3000))) computeTraversal();
  if (t.field.gene >= 0 && (force || now - t.field.stamp > 2000)) computeField();
  setStatusText(t.status ? describe(t.status) : '');
  t.onStatus(t.status);
}

// ---- training loop -------------------------------------------------------------------------

// Training time allowed per frame in "auto" mode: with the map's redraw (~10 ms for
// 10,000 cells) a frame stays under 33 ms, so the map keeps 30 frames per second.
const TRAIN_BUDGET_MS = 14;

function stepsPerFrame() {
  const v = $('steps-per-frame').value;
  if (v === 'auto') {
    const ms = t.stepMs || 4;
    if (ms <= TRAIN_BUDGET_MS) return Math.max(1, Math.min(50, Math.floor(TRAIN_BUDGET_MS / ms)));
    // A step slower than the budget runs every few frames; the map redraws in between.
    t.framesIdle += 1;
    if (t.framesIdle >= Math.ceil(ms / TRAIN_BUDGET_MS)) {
      t.framesIdle = 0;
      return 1;
    }
    return 0;
  }
  const k = Number(v);
  return Number.isFinite(k) && k >= 1 ? Math.min(Math.floor(k), 50) : 1;
}

// Folds the duration of `k` steps into the running mean of a step's time.
function noteStepTime(ms, k) {
  if (k < 1) return;
  const per = ms / Math.max(1, k);
  t.stepMs = t.stepMs ? 0.8 * t.stepMs + 0.2 * per : per;
}

// ---- GPU -----------------------------------------------------------------------------------

function updateBackendNote() {
  const el = $('train-backend');
  const g = t.gpu;
  el.classList.remove('warn');
  if (!t.session) el.textContent = '';
  else if (g.state === 'starting') el.textContent = 'Starting the GPU (compiling the kernels)…';
  else if (g.state === 'on') el.textContent = `Training runs on the GPU: ${t.gpuAdapter || g.adapter}.`;
  else if (g.state === 'failed') {
    el.textContent = `Training runs on the CPU: the GPU could not be used (${g.error}).`;
    el.classList.add('warn');
  } else if (t.gpuAvailable && $('opt-device').value === 'cpu') {
    el.textContent = 'Training runs on the CPU, as chosen in the settings.';
  } else if (t.gpuAvailable && t.gpuSoftware) {
    el.textContent = `Training runs on the CPU: the only WebGPU adapter here is a software one (${t.gpuAdapter}), slower than the CPU path. Choose “GPU” under “train on” in the settings to use it anyway.`;
  } else el.textContent = 'Training runs on the CPU (this browser offers no usable WebGPU).';
}

// Moves `session`'s training to the GPU (it stays on the CPU if that fails).
function startGpu(session) {
  const g = { state: 'starting', adapter: null, error: null, start: null };
  t.gpu = g;
  updateBackendNote();
  let p;
  try {
    p = session.start_gpu();
  } catch (e) {
    g.state = 'failed';
    g.error = message(e);
    updateBackendNote();
    return;
  }
  g.start = p.then(
    (adapter) => { if (t.gpu === g) { g.state = 'on'; g.adapter = adapter; updateBackendNote(); } },
    (e) => { if (t.gpu === g) { g.state = 'failed'; g.error = message(e); updateBackendNote(); } },
  );
}

// ---- training loop -------------------------------------------------------------------------

// Runs a group of `k` steps on the current session, on the GPU or the CPU. Groups never
// overlap; resolves to whether the steps ran (false: stopped, or the session changed).
function runSteps(k) {
  const session = t.session;
  const run = async () => {
    if (!session || t.session !== session) return false;
    if (t.gpu.state === 'starting') await t.gpu.start;
    if (t.session !== session) return false;
    if (t.gpu.state === 'on') {
      const t0 = performance.now();
      await session.gpu_step(k);
      noteStepTime(performance.now() - t0, k);
      if (t.session !== session) return false;
      const why = session.take_gpu_fallback();
      if (why) {
        t.gpu.state = 'failed';
        t.gpu.error = `${why}; training continues on the CPU from the last state read back`;
        updateBackendNote();
      }
      t.status = session.status();
    } else {
      const t0 = performance.now();
      t.status = session.step(k);
      noteStepTime(performance.now() - t0, k);
    }
    return true;
  };
  t.busy++;
  const p = t.inFlight.then(run).catch((e) => {
    if (t.session === session) {
      pause();
      setStatusText(`Training stopped: ${message(e)}`);
    }
    return false;
  }).finally(() => { t.busy--; });
  t.inFlight = p.then(() => undefined);
  return p;
}

async function frame(token) {
  if (token !== t.loop || !t.running || !t.session) return;
  const session = t.session;
  const k = stepsPerFrame();
  if (k > 0) {
    const ok = await runSteps(k);
    if (!ok || t.session !== session) return;
  }
  refresh();
  if (t.status.finished) {
    pause();
    return;
  }
  if (token === t.loop && t.running) requestAnimationFrame(() => frame(token));
}

function play() {
  if (!t.session || t.running) return;
  t.running = true;
  const token = {};
  t.loop = token;
  setButtons();
  requestAnimationFrame(() => frame(token));
}

function pause() {
  const was = t.running;
  t.running = false;
  t.loop = null;
  setButtons();
  if (!was || !t.session) return;
  if (t.gpu.state === 'on') {
    // The GPU run reads its parameters back a few times a second while it trains: fetch
    // the latest (a group of 0 steps) before the final redraw.
    const session = t.session;
    runSteps(0).then(() => { if (t.session === session && !t.running) refresh(true); });
  } else refresh(true);
}

function applyNumber(input, setter, what) {
  const v = Number(input.value);
  try {
    if (!t.session) return;
    setter(v);
    input.classList.remove('invalid');
    input.title = '';
    t.status = t.session.status();
    drawCharts();
  } catch (e) {
    input.classList.add('invalid');
    input.title = `${what}: ${message(e)}`;
    setStatusText(`${what}: ${message(e)}`);
  }
}

// ---- settings ------------------------------------------------------------------------------

function intField(id, label, min, optional = false) {
  const raw = $(id).value.trim();
  if (raw === '' && optional) return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new Error(`${label} must be a whole number of at least ${min}`);
  return v;
}

// The session options from the settings (throws a readable message on a bad value).
function readOptions() {
  const opts = {
    n_latent: intField('opt-n-latent', 'latent dimensions', 1),
    n_hidden: intField('opt-n-hidden', 'hidden units', 1),
    n_layers: intField('opt-n-layers', 'hidden layers', 1),
    likelihood: $('opt-likelihood').value,
    dispersion: $('opt-dispersion').value,
    kl_warmup_epochs: intField('opt-kl-warmup', 'KL warm-up epochs', 0),
    batch_size: intField('opt-batch-size', 'minibatch size', 2),
    seed: intField('opt-seed', 'seed', 0),
    min_counts: intField('opt-min-counts', 'minimum counts per cell', 0),
    min_genes: intField('opt-min-genes', 'minimum genes per cell', 0),
  };
  const epochs = intField('opt-epochs', 'epochs', 1, true);
  if (epochs !== undefined) opts.epochs = epochs;
  const top = intField('opt-top-genes', 'top variable genes', 1, true);
  if (top !== undefined) opts.top_genes = top;
  if ($('opt-batch-key').value) opts.batch_key = $('opt-batch-key').value;
  if ($('opt-label-key').value) opts.label_key = $('opt-label-key').value;
  Object.assign(opts, liveOptions());
  if (opts.dispersion === 'gene-batch' && !opts.batch_key) {
    throw new Error('dispersion per gene and batch needs a batch column');
  }
  return opts;
}

function liveOptions() {
  const lr = Number($('lr').value);
  const beta = Number($('beta').value);
  return { lr: Number.isFinite(lr) && lr > 0 ? lr : 1e-3, beta: Number.isFinite(beta) && beta >= 0 ? beta : 1 };
}

function fillColumnSelects() {
  const cols = ((t.summary && t.summary.obs_columns) || []).map((c) => c.name);
  for (const [id, first] of [['opt-batch-key', 'none'], ['opt-label-key', 'automatic']]) {
    const sel = $(id);
    const prev = sel.value;
    sel.replaceChildren(option('', first), ...cols.map((c) => option(c, c)));
    sel.value = cols.includes(prev) ? prev : '';
  }
}

// ---- sessions ------------------------------------------------------------------------------

// Makes `session` the current one (the old one is freed).
function adopt(session) {
  pause();
  if (t.trav.timer) toggleAnimation();
  if (t.session) t.session.free();
  Object.assign(t, {
    session, status: null, latent: null, proj: null, P: null, prevPca: null, view: null, autoView: true,
    colours: null, meta: [], cellIds: [], libraries: null, genes: [], probeZ: null, probeAnchor: null,
    probeCell: -1, lastProfile: null,
  });
  t.trav.path = null; t.trav.A = null; t.trav.B = null; t.trav.pos = 0; t.trav.shown = false;
  t.field.canvas = null; t.field.gene = -1;
  $('field-gene').value = '';
  $('field-gene').classList.remove('invalid');
  delete $('latent-map').dataset.field;
  $('legend').replaceChildren();
  $('map-tooltip').hidden = true;
  if (!session) {
    $('prep-report').hidden = true;
    t.gpu = { state: null };
    updateBackendNote();
    $('train-what').textContent = '';
    return;
  }
  t.gpu = { state: null };
  if (wantGpu()) startGpu(session);
  else updateBackendNote();
  t.d = session.n_latent;
  t.library = session.median_library();
  $('probe-library').value = String(Math.round(t.library));
  t.batch = 0;
  const levels = session.batch_levels();
  $('probe-batch').replaceChildren(...levels.map((l, i) => option(String(i), l || '(one batch)')));
  $('probe-batch').disabled = levels.length < 2;
  t.genes = session.gene_names();
  t.pins = t.pinNames.map((n) => t.genes.indexOf(n)).filter((g) => g >= 0);
  renderPins();
  t.cellIds = session.cell_ids();
  t.libraries = session.library_sizes();
  t.meta = session.obs_columns().map((name) => ({ name, ...session.labels(name) }));
  t.model = session.model_config();
  t.nTrain = session.trained_mask().reduce((a, b) => a + b, 0);
  t.status = session.status();
  fillGeneList($('model-gene-list'), t.genes, '');
  fillAxes();
  fillTravModes();
  fillColourBy();
  // The untrained map, so there is something to probe from the start.
  t.latent = session.latent();
  t.n = Math.floor(t.latent.length / t.d);
  computeProjection();
  buildColours();
  const lines = session.preprocess_report();
  $('prep-lines').replaceChildren(...lines.map((l) => { const li = document.createElement('li'); li.textContent = l; return li; }));
  $('prep-report').hidden = lines.length === 0;
  const key = session.label_key;
  const origin = session.origin === 'new' ? '' : ` Loaded ${session.origin}.`;
  const qc = t.nTrain < session.n_cells ? ` (${t.nTrain} train; ${session.n_cells - t.nTrain} removed by QC or empty, shown but not trained on)` : '';
  $('train-what').textContent = `${session.n_cells} cells${qc} × ${session.n_genes} genes, ${t.d}-D latent space, `
    + `${t.model.likelihood.toUpperCase()} likelihood, ${t.model.n_hidden} hidden × ${t.model.n_layers} layer${t.model.n_layers > 1 ? 's' : ''}`
    + (key ? `, labels from ${key}` : '') + (session.batch_key ? `, batches from ${session.batch_key}` : '')
    + (t.d > 2 ? ' (two dimensions shown at a time)' : '') + '.' + origin;
}

function redrawAll() {
  drawMap();
  drawCharts();
  renderProbe();
  computeTraversal();
  setButtons();
  updatePlaneNote();
  t.onStatus(t.status);
}

// A new session with the settings on the current data. On failure the current one stays.
function resetWithSettings() {
  if (!t.dataset) return;
  showTrainError('');
  let session;
  try {
    session = new Session(t.dataset, readOptions());
  } catch (e) {
    showTrainError(`The settings were not applied: ${message(e)}`);
    return;
  }
  adopt(session);
  setStatusText('Ready: press Train.');
  redrawAll();
}

// ---- export and import ---------------------------------------------------------------------

function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  $('export-note').textContent = `Saved ${name}.`;
}

function csvField(s) {
  const v = String(s);
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

function num(x) {
  return Number.isFinite(x) ? String(Math.fround(x) === x ? Number(x.toPrecision(9)) : x) : 'NaN';
}

function exportLatent() {
  if (!t.session) return;
  const z = t.session.latent();
  const d = t.d;
  const ids = t.session.cell_ids();
  const lines = [['cell_id', ...Array.from({ length: d }, (_, j) => `z${j + 1}`)].join(',')];
  for (let c = 0; c < ids.length; c++) {
    const row = [csvField(ids[c])];
    for (let j = 0; j < d; j++) row.push(num(z[c * d + j]));
    lines.push(row.join(','));
  }
  download('latent.csv', new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
}

function exportProbe() {
  const p = t.lastProfile;
  if (!p) return;
  const lines = [`gene,expected_count,nearest_${p.nearest.length}_cells_mean`];
  t.genes.forEach((g, i) => lines.push(`${csvField(g)},${num(p.expected[i])},${num(p.cells[i])}`));
  download('probe-profile.csv', new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
}

function exportCanvas(canvas, name) {
  canvas.toBlob((blob) => { if (blob) download(name, blob); }, 'image/png');
}

function exportCharts() {
  const ids = ['elbo-chart', 'loss-chart', 'kl-dims-chart', 'kl-schedule-chart'];
  const cs = ids.map($);
  const w = cs[0].width, h = cs[0].height, gap = 10;
  const out = document.createElement('canvas');
  out.width = 2 * w + 3 * gap;
  out.height = 2 * h + 3 * gap;
  const ctx = out.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, out.width, out.height);
  cs.forEach((c, i) => ctx.drawImage(c, gap + (i % 2) * (w + gap), gap + Math.floor(i / 2) * (h + gap)));
  exportCanvas(out, 'charts.png');
}

async function importModel(fileList) {
  const box = $('import-error');
  box.hidden = true;
  box.textContent = '';
  const files = Array.from(fileList || []);
  if (!files.length) return;
  try {
    if (!t.dataset) throw new Error('load the data first: the model is shown on the cells loaded in step 1');
    const st = files.find((f) => f.name.toLowerCase().endsWith('.safetensors'));
    const cfg = files.find((f) => f.name.toLowerCase().endsWith('.json'));
    if (!st || !cfg) throw new Error('choose both files of the model: model.safetensors and config.json');
    const bytes = new Uint8Array(await st.arrayBuffer());
    const text = await cfg.text();
    const opts = liveOptions();
    if ($('opt-label-key').value) opts.label_key = $('opt-label-key').value;
    const session = Session.from_model(t.dataset, bytes, text, opts);
    adopt(session);
    $('opt-n-latent').value = String(session.n_latent);
    setStatusText('Model loaded: explore it, or press Train to continue training it.');
    $('export-note').textContent = `Loaded ${st.name} and ${cfg.name}.`;
    redrawAll();
  } catch (e) {
    box.textContent = `The model was not loaded: ${message(e)}`;
    box.hidden = false;
  }
}

// ---- public --------------------------------------------------------------------------------

/// Wires the controls once; `onStatus(status)` is called after every redraw.
export function setupTraining(onStatus) {
  t.onStatus = onStatus;
  $('train-toggle').addEventListener('click', () => (t.running ? pause() : play()));
  $('train-step').addEventListener('click', () => {
    if (!t.session || t.running) return;
    runSteps(1).then((ok) => {
      if (ok) refresh(true);
      setButtons();
    });
  });
  $('train-reset').addEventListener('click', resetWithSettings);
  $('lr').addEventListener('change', (e) => applyNumber(e.target, (v) => t.session.set_lr(v), 'learning rate'));
  $('beta').addEventListener('change', (e) => applyNumber(e.target, (v) => t.session.set_beta(v), 'beta'));

  $('colour-by').addEventListener('change', () => { buildColours(); drawMap(); });
  const search = $('gene-search');
  search.addEventListener('input', () => {
    fillGeneList($('gene-list'), t.dataGenes, search.value);
    if (t.dataGeneSet.has(search.value.trim())) { buildColours(); drawMap(); }
  });
  search.addEventListener('change', () => { buildColours(); drawMap(); });
  $('axes').addEventListener('change', () => {
    t.autoView = true;
    t.prevPca = null;
    computeProjection();
    drawMap();
    scheduleField(0);
  });
  $('reset-view').addEventListener('click', () => {
    t.autoView = true;
    if (t.proj) t.view = fitView(t.proj, t.n);
    drawMap();
    scheduleField(0);
  });
  const fieldInput = $('field-gene');
  fieldInput.addEventListener('input', () => {
    fillGeneList($('model-gene-list'), t.genes, fieldInput.value);
    if (t.genes.includes(fieldInput.value.trim()) || !fieldInput.value.trim()) chooseFieldGene();
  });
  fieldInput.addEventListener('change', chooseFieldGene);
  const pinInput = $('pin-gene');
  pinInput.addEventListener('input', () => {
    fillGeneList($('model-gene-list'), t.genes, pinInput.value);
    if (t.genes.includes(pinInput.value.trim())) pinGene();
  });
  pinInput.addEventListener('change', pinGene);

  $('probe-batch').addEventListener('change', (e) => {
    t.batch = Number(e.target.value) || 0;
    renderProbe();
    computeTraversal();
    scheduleField(0);
  });
  $('probe-library').addEventListener('change', (e) => {
    const v = Number(e.target.value);
    if (Number.isFinite(v) && v > 0) {
      t.library = v;
      e.target.classList.remove('invalid');
      renderProbe();
      computeTraversal();
      scheduleField(0);
    } else {
      e.target.classList.add('invalid');
    }
  });

  const canvas = $('latent-map');
  let mode = null; // 'probe' | 'pan'
  let panStart = null;
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('pointerdown', (e) => {
    if (!t.view) return;
    canvas.setPointerCapture(e.pointerId);
    $('map-tooltip').hidden = true;
    if (e.button === 1 || e.button === 2 || e.shiftKey) {
      mode = 'pan';
      panStart = { x: e.clientX, y: e.clientY, view: { ...t.view } };
      canvas.style.cursor = 'grabbing';
    } else if (e.button === 0) {
      mode = 'probe';
      probeAt(e, true);
    }
  });
  canvas.addEventListener('pointermove', (e) => {
    if (mode === 'probe') probeAt(e, false);
    else if (mode === 'pan') {
      const r = canvas.getBoundingClientRect();
      const dx = ((e.clientX - panStart.x) * canvas.width) / r.width;
      const dy = ((e.clientY - panStart.y) * canvas.height) / r.height;
      t.view = panView(panStart.view, canvas.width, canvas.height, dx, dy);
      t.autoView = false;
      drawMap();
    } else hover(e);
  });
  const stop = () => {
    if (mode === 'pan') scheduleField();
    if (mode === 'probe') {
      if (t.trav.path && $('trav-mode').value !== 'line') computeTraversal();
      if (t.d > 2) scheduleField();
    }
    mode = null;
    canvas.style.cursor = '';
  };
  canvas.addEventListener('pointerup', stop);
  canvas.addEventListener('pointercancel', stop);
  canvas.addEventListener('pointerleave', () => { $('map-tooltip').hidden = true; });
  canvas.addEventListener('wheel', (e) => {
    if (!t.view) return;
    e.preventDefault();
    const [px, py] = canvasPoint(e);
    const factor = Math.exp(Math.max(-1, Math.min(1, e.deltaY * 0.0015)));
    t.view = zoomView(t.view, canvas.width, canvas.height, px, py, factor);
    t.autoView = false;
    drawMap();
    scheduleField();
  }, { passive: false });

  // Keyboard: arrows move the probe (shift: farther), + and - zoom, 0 resets the view.
  canvas.addEventListener('keydown', (e) => {
    if (!t.view || !t.P) return;
    const W = canvas.width, H = canvas.height;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      const step = (e.shiftKey ? 0.1 : 0.02) * W;
      let px = W / 2, py = H / 2;
      if (t.probeZ) [px, py] = toPixel(t.view, W, H, ...projectPoint(t.probeZ, t.P));
      const [dx, dy] = moves[e.key];
      const [u, v] = toPlane(t.view, W, H, px + dx * step, py + dy * step);
      if (!t.probeAnchor || t.d <= 2) t.probeAnchor = Float64Array.from(t.P.base);
      if (t.d > 2 && t.probeCell < 0) {
        const c = nearestInPlane(t.proj, t.n, u, v);
        t.probeCell = c;
        if (c >= 0) t.probeAnchor = Float64Array.from(t.latent.subarray(c * t.d, (c + 1) * t.d));
        updatePlaneNote();
      }
      t.probeZ = planePoint(u, v, t.probeAnchor, t.P);
      renderProbe();
      drawMap();
    } else if (e.key === '+' || e.key === '=' || e.key === '-') {
      e.preventDefault();
      t.view = zoomView(t.view, W, H, W / 2, H / 2, e.key === '-' ? 1.25 : 0.8);
      t.autoView = false;
      drawMap();
      scheduleField();
    } else if (e.key === '0') {
      e.preventDefault();
      $('reset-view').click();
    }
  });

  $('trav-mode').addEventListener('change', () => { t.trav.shown = true; computeTraversal(); if (t.trav.path) scrubTo(t.trav.pos); });
  $('trav-a').addEventListener('click', () => {
    if (!t.probeZ) { drawHeatmap('Place the probe on the map first, then press “A here”.'); return; }
    t.trav.A = Float64Array.from(t.probeZ);
    t.trav.shown = true;
    $('trav-mode').value = 'line';
    computeTraversal();
  });
  $('trav-b').addEventListener('click', () => {
    if (!t.probeZ) { drawHeatmap('Place the probe on the map first.'); return; }
    t.trav.B = Float64Array.from(t.probeZ);
    t.trav.shown = true;
    $('trav-mode').value = 'line';
    computeTraversal();
  });
  $('trav-slider').max = String(TRAV_STEPS - 1);
  $('trav-slider').addEventListener('input', (e) => {
    t.trav.shown = true;
    if (!t.trav.path) computeTraversal();
    scrubTo(Number(e.target.value));
  });
  $('trav-play').addEventListener('click', toggleAnimation);

  $('export-latent').addEventListener('click', exportLatent);
  $('export-model-weights').addEventListener('click', () => {
    if (t.session) download('model.safetensors', new Blob([t.session.model_safetensors()], { type: 'application/octet-stream' }));
  });
  $('export-model-config').addEventListener('click', () => {
    if (t.session) download('config.json', new Blob([t.session.model_config_json()], { type: 'application/json' }));
  });
  $('export-probe').addEventListener('click', exportProbe);
  $('export-map-png').addEventListener('click', () => exportCanvas($('latent-map'), 'latent-map.png'));
  $('export-charts-png').addEventListener('click', exportCharts);
  $('model-input').addEventListener('change', (e) => importModel(e.target.files));

  reset(null);
}

/// Starts a fresh session on `dataset` (null: none) with the current settings. Throws the
/// core's message when the data cannot be trained on; the old session is gone either way.
export function reset(dataset, summary) {
  t.stepMs = 0;
  t.framesIdle = 0;
  t.dataset = dataset;
  t.dataGenes = dataset ? dataset.gene_names() : [];
  t.dataGeneSet = new Set(t.dataGenes);
  t.summary = summary || (dataset ? dataset.summary() : null);
  fillColumnSelects();
  showTrainError('');
  try {
    adopt(null);
    if (dataset) adopt(new Session(dataset, readOptions()));
  } finally {
    redrawAll();
    setStatusText(t.session ? 'Ready: press Train.' : 'Load data to train.');
  }
}

/// Whether a session is training now.
export function isRunning() {
  return t.running || t.busy > 0;
}

/// Whether the page found a working WebGPU adapter: sessions then train on the GPU.
/// `software`: the adapter is a software rasteriser (SwiftShader, llvmpipe), slower than
/// the CPU path, so it is only used when the settings ask for the GPU.
export function setGpuAvailable(ok, adapter = null, software = false) {
  t.gpuAvailable = ok;
  t.gpuAdapter = adapter;
  t.gpuSoftware = software;
  if (wantGpu() && t.session && !t.gpu.state) startGpu(t.session);
  else updateBackendNote();
}

function wantGpu() {
  const choice = $('opt-device').value;
  if (!t.gpuAvailable || choice === 'cpu') return false;
  return choice === 'gpu' || !t.gpuSoftware;
}

/// State for `window.cellvae` (automation and the console).
export function info() {
  return {
    n_latent: t.session ? t.d : 0,
    origin: t.session ? t.session.origin : null,
    colour_by: t.colourKey,
    projection: t.P ? (t.P.kind === 'pca' ? 'pca' : `z${t.P.i + 1},z${t.P.j + 1}`) : null,
    auto_view: t.autoView,
    view: t.view ? { ...t.view } : null,
    probe: t.probeZ ? Array.from(t.probeZ) : null,
    field_gene: t.field.gene >= 0 ? t.genes[t.field.gene] : null,
    traversal_genes: t.trav.top.map((g) => t.genes[g]),
    traversal_position: t.trav.pos,
    pca_axes: t.P && t.P.kind === 'pca' ? t.P.axes.map((a) => Array.from(a)) : null,
    kl_bars: Number($('kl-dims-chart').dataset.bars || 0),
    training_backend: t.session ? t.session.backend : null,
    gpu_state: t.gpu.state,
    gpu_error: t.gpu.error || null,
    probe_cell: t.probeCell,
    pins: t.pins.map((g) => t.genes[g]),
    nearest_cells: t.lastProfile ? Array.from(t.lastProfile.nearest) : null,
    kl_per_dim: t.klDims || [],
    traversal_path: t.trav.path ? Array.from({ length: TRAV_STEPS }, (_, s) => Array.from(t.trav.path.subarray(s * t.d, (s + 1) * t.d))) : null,
    field_view: t.field.canvas && t.field.view ? { ...t.field.view } : null,
    n_train_cells: t.nTrain,
    model: t.model,
    settings: t.status ? {
      epochs: t.status.epochs, kl_warmup_epochs: t.status.kl_warmup_epochs, beta: t.status.beta, lr: t.status.lr,
    } : null,
    batch_key: t.session ? t.session.batch_key ?? null : null,
    label_key: t.session ? t.session.label_key ?? null : null,
  };
}

/// Where cell `c` is drawn on the map, as fractions of the canvas (for automation).
export function cellPosition(c) {
  if (!t.proj || !t.view || c < 0 || c >= t.n) return null;
  const [x, y] = toPixel(t.view, 1, 1, t.proj[2 * c], t.proj[2 * c + 1]);
  return [x, y];
}

/// The modelled genes, in decode order (for automation).
export function modelGenes() {
  return [...t.genes];
}

/// Fault injection (tests): the GPU device is lost when training step `step` begins.
export function testLoseGpuAtStep(step) {
  if (t.session) t.session.test_lose_gpu_at_step(step);
}

/// The latent mean of cell `c` (for automation).
export function latentOf(c) {
  if (!t.latent || c < 0 || c >= t.n) return null;
  return Array.from(t.latent.subarray(c * t.d, (c + 1) * t.d));
}

/// Decodes a latent point with the current model (expected counts per modelled gene).
export function decodePoint(z, batch = 0, library) {
  if (!t.session) throw new Error('no model');
  return Array.from(t.session.decode(Float32Array.from(z), batch, library ?? t.library));
}

/// Milliseconds per redraw of the current map (mean of `repeats`).
export function timeRedraw(repeats = 10) {
  const t0 = performance.now();
  for (let r = 0; r < repeats; r++) drawMap();
  return (performance.now() - t0) / repeats;
}

/// Milliseconds to draw the map once with `n` random cells (a performance check).
export function benchmarkMap(n = 10000, repeats = 10) {
  const proj = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) proj[i] = Math.random() * 4 - 2;
  const colours = { table: PALETTE.slice(0, 10), index: Uint16Array.from({ length: n }, (_, i) => i % 10), order: null };
  const canvas = document.createElement('canvas');
  canvas.width = 520;
  canvas.height = 520;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const v = { x0: -2, x1: 2, y0: -2, y1: 2 };
  const t0 = performance.now();
  for (let r = 0; r < repeats; r++) {
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, 520, 520);
    drawPoints(ctx, proj, n, v, 520, 520, colours);
  }
  return (performance.now() - t0) / repeats;
}
