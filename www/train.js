// cellvae page, part 3: train a Session (the wasm core's CPU trainer) in a
// requestAnimationFrame loop, draw the latent map and the ELBO chart live, and probe the
// map by decoding the latent point under the pointer. Text from a user's file (labels,
// gene names) is only ever set with textContent.
import { Session } from './pkg/cellvae.js';

const $ = (id) => document.getElementById(id);

// Categorical colours (Tableau 20 order: strong colours first, then their light twins).
const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
  '#bcbd22', '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94',
  '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5',
];
const MISSING = '#b8bec9';

const t = {
  session: null,
  running: false,
  frame: 0,
  status: null,      // the last status object from the session
  latent: null,      // Float32Array, n_cells x n_latent
  nLatent: 2,
  labels: null,      // {codes, levels} or null
  view: null,        // {x0, x1, y0, y1}: the map's data range
  probe: null,       // [z1, z2] or null
  library: 1,
  genes: [],
  onStatus: () => {},
};

function message(e) {
  return String(e && e.message ? e.message : e);
}

function setStatusText(text) {
  $('train-status').textContent = text;
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
  $('train-toggle').textContent = t.running ? 'Pause' : 'Train';
  $('train-toggle').setAttribute('aria-pressed', t.running ? 'true' : 'false');
}

// ---- drawing ---------------------------------------------------------------------------

function colourOf(i) {
  if (!t.labels) return PALETTE[0];
  const c = t.labels.codes[i];
  return c === null || c === undefined ? MISSING : PALETTE[c % PALETTE.length];
}

function computeView() {
  const z = t.latent;
  const d = t.nLatent;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i + d <= z.length; i += d) {
    const x = z[i], y = d > 1 ? z[i + 1] : 0;
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < x0) x0 = x; if (x > x1) x1 = x;
    if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  if (!Number.isFinite(x0)) return { x0: -1, x1: 1, y0: -1, y1: 1 };
  const px = Math.max((x1 - x0) * 0.06, 1e-3), py = Math.max((y1 - y0) * 0.06, 1e-3);
  return { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
}

function toPixel(v, canvas, x, y) {
  return [(x - v.x0) / (v.x1 - v.x0) * canvas.width, (1 - (y - v.y0) / (v.y1 - v.y0)) * canvas.height];
}

function toLatent(v, canvas, px, py) {
  return [v.x0 + px / canvas.width * (v.x1 - v.x0), v.y0 + (1 - py / canvas.height) * (v.y1 - v.y0)];
}

function drawMap() {
  const canvas = $('latent-map');
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!t.latent) {
    ctx.fillStyle = '#667085';
    ctx.font = '14px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText(t.session ? 'Press Train to start.' : 'Load data to train.', canvas.width / 2, canvas.height / 2);
    return;
  }
  const v = t.view;
  const d = t.nLatent;
  // Axes through zero, when in range.
  ctx.strokeStyle = '#eef0f4';
  ctx.lineWidth = 1;
  const [ox, oy] = toPixel(v, canvas, 0, 0);
  ctx.beginPath();
  if (ox > 0 && ox < canvas.width) { ctx.moveTo(ox, 0); ctx.lineTo(ox, canvas.height); }
  if (oy > 0 && oy < canvas.height) { ctx.moveTo(0, oy); ctx.lineTo(canvas.width, oy); }
  ctx.stroke();
  ctx.globalAlpha = 0.8;
  const n = Math.floor(t.latent.length / d);
  for (let i = 0; i < n; i++) {
    const [x, y] = toPixel(v, canvas, t.latent[i * d], d > 1 ? t.latent[i * d + 1] : 0);
    ctx.fillStyle = colourOf(i);
    ctx.beginPath();
    ctx.arc(x, y, 2.6, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.globalAlpha = 1;
  if (t.probe) {
    const [x, y] = toPixel(v, canvas, t.probe[0], t.probe[1]);
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

function drawChart() {
  const canvas = $('elbo-chart');
  const ctx = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = '#667085';
  ctx.font = '12px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.fillText('ELBO per epoch (higher is better)', 8, 14);
  const ys = t.session ? t.session.elbo_history() : [];
  if (ys.length < 1) {
    ctx.fillText('no finished epoch yet', 8, H / 2);
    return;
  }
  // Ignore the first epochs' huge values once there are enough points to see a trend.
  const skip = ys.length > 10 ? Math.min(3, ys.length - 2) : 0;
  const shown = Array.from(ys.slice(skip));
  let lo = Math.min(...shown), hi = Math.max(...shown);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const L = 52, R = W - 8, T = 22, B = H - 20;
  ctx.strokeStyle = '#e4e7ec';
  ctx.strokeRect(L, T, R - L, B - T);
  ctx.fillText(hi.toFixed(0), 4, T + 8);
  ctx.fillText(lo.toFixed(0), 4, B);
  ctx.textAlign = 'right';
  ctx.fillText(`epoch ${ys.length}`, R, H - 4);
  ctx.strokeStyle = '#2f6fde';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  shown.forEach((y, i) => {
    const px = L + (shown.length === 1 ? 0.5 : i / (shown.length - 1)) * (R - L);
    const py = B - (y - lo) / (hi - lo) * (B - T);
    if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
  });
  ctx.stroke();
}

function renderLegend() {
  const root = $('legend');
  root.replaceChildren();
  if (!t.labels) return;
  const counts = new Array(t.labels.levels.length).fill(0);
  let missing = 0;
  for (const c of t.labels.codes) {
    if (c === null || c === undefined) missing++;
    else counts[c]++;
  }
  const add = (name, colour, n) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = colour;
    const label = document.createElement('span');
    label.textContent = `${name} (${n})`;
    li.append(sw, label);
    root.append(li);
  };
  t.labels.levels.forEach((name, i) => add(name, PALETTE[i % PALETTE.length], counts[i]));
  if (missing) add('(no value)', MISSING, missing);
}

function renderProbe() {
  const root = $('probe-profile');
  root.replaceChildren();
  if (!t.session || !t.probe) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = t.session ? 'Click or drag on the map to decode a latent point.' : '';
    root.append(p);
    return;
  }
  const z = new Float32Array(t.nLatent);
  z[0] = t.probe[0];
  if (t.nLatent > 1) z[1] = t.probe[1];
  let expected;
  try {
    expected = t.session.decode(z, 0, t.library);
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = message(e);
    root.append(p);
    return;
  }
  const order = Array.from(expected.keys()).sort((a, b) => expected[b] - expected[a]).slice(0, 10);
  const top = expected[order[0]] || 1;
  const head = document.createElement('p');
  head.className = 'probe-head';
  head.textContent = `z = (${t.probe.map((x) => x.toFixed(2)).join(', ')}), library ${Math.round(t.library)}: top 10 genes, expected counts`;
  const list = document.createElement('ol');
  list.className = 'bars';
  for (const g of order) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'gene';
    name.textContent = t.genes[g];
    const track = document.createElement('span');
    track.className = 'track';
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.max(1, 100 * expected[g] / top).toFixed(1)}%`;
    track.append(bar);
    const val = document.createElement('span');
    val.className = 'value';
    val.textContent = expected[g].toFixed(1);
    li.append(name, track, val);
    list.append(li);
  }
  root.append(head, list);
}

function refresh() {
  if (t.session && t.status && t.status.step > 0) {
    t.latent = t.session.latent();
    t.view = computeView();
  }
  drawMap();
  drawChart();
  if (t.probe) renderProbe();
  setStatusText(t.status ? describe(t.status) : '');
  t.onStatus(t.status);
}

// ---- training loop ---------------------------------------------------------------------

function stepsPerFrame() {
  const k = Number($('steps-per-frame').value);
  return Number.isFinite(k) && k >= 1 ? Math.min(Math.floor(k), 50) : 1;
}

function runSteps(k) {
  try {
    t.status = t.session.step(k);
    return true;
  } catch (e) {
    pause();
    setStatusText(`Training stopped: ${message(e)}`);
    return false;
  }
}

function frame() {
  if (!t.running || !t.session) return;
  if (!runSteps(stepsPerFrame())) return;
  refresh();
  if (t.status.finished) {
    pause();
    return;
  }
  requestAnimationFrame(frame);
}

function play() {
  if (!t.session || t.running) return;
  t.running = true;
  setButtons();
  requestAnimationFrame(frame);
}

function pause() {
  t.running = false;
  setButtons();
}

function applyNumber(input, setter, what) {
  const v = Number(input.value);
  try {
    if (!t.session) return;
    setter(v);
    input.classList.remove('invalid');
    input.title = '';
  } catch (e) {
    input.classList.add('invalid');
    input.title = `${what}: ${message(e)}`;
    setStatusText(`${what}: ${message(e)}`);
  }
}

// ---- probe -----------------------------------------------------------------------------

function probeAt(ev) {
  if (!t.session || !t.view) return;
  const canvas = $('latent-map');
  const r = canvas.getBoundingClientRect();
  const px = (ev.clientX - r.left) * canvas.width / r.width;
  const py = (ev.clientY - r.top) * canvas.height / r.height;
  t.probe = toLatent(t.view, canvas, px, py);
  renderProbe();
  drawMap();
}

// ---- public ----------------------------------------------------------------------------

/// Wires the controls once; `onStatus(status)` is called after every redraw.
export function setupTraining(onStatus) {
  t.onStatus = onStatus;
  $('train-toggle').addEventListener('click', () => (t.running ? pause() : play()));
  $('train-step').addEventListener('click', () => {
    if (t.session && !t.running && runSteps(1)) refresh();
    setButtons();
  });
  $('lr').addEventListener('change', (e) => applyNumber(e.target, (v) => t.session.set_lr(v), 'learning rate'));
  $('beta').addEventListener('change', (e) => applyNumber(e.target, (v) => t.session.set_beta(v), 'beta'));
  const canvas = $('latent-map');
  let dragging = false;
  canvas.addEventListener('pointerdown', (e) => {
    dragging = true;
    canvas.setPointerCapture(e.pointerId);
    probeAt(e);
  });
  canvas.addEventListener('pointermove', (e) => { if (dragging) probeAt(e); });
  const stop = () => { dragging = false; };
  canvas.addEventListener('pointerup', stop);
  canvas.addEventListener('pointercancel', stop);
  reset(null);
}

/// Starts a fresh session on `dataset` (null: none). Throws the core's message when the
/// data cannot be trained on; the old session is gone either way.
export function reset(dataset) {
  pause();
  if (t.session) t.session.free();
  Object.assign(t, { session: null, status: null, latent: null, labels: null, view: null, probe: null, genes: [] });
  $('legend').replaceChildren();
  try {
    if (dataset) {
      const lr = Number($('lr').value);
      const beta = Number($('beta').value);
      t.session = new Session(dataset, {
        lr: Number.isFinite(lr) && lr > 0 ? lr : 1e-3,
        beta: Number.isFinite(beta) && beta >= 0 ? beta : 1,
      });
      t.nLatent = t.session.n_latent;
      t.library = t.session.median_library();
      t.genes = t.session.gene_names();
      const key = t.session.label_key;
      t.labels = key ? t.session.labels(key) : null;
      t.status = t.session.status();
      // The untrained map, so there is something to probe from the start.
      t.latent = t.session.latent();
      t.view = computeView();
      renderLegend();
      const what = `${t.session.n_cells} cells × ${t.session.n_genes} genes, ${t.nLatent}-D latent space`
        + (key ? `, coloured by ${key}` : '') + (t.nLatent > 2 ? ' (dimensions 1 and 2 shown)' : '');
      $('train-what').textContent = what;
    } else {
      $('train-what').textContent = '';
    }
  } catch (e) {
    t.session = null;
    $('train-what').textContent = '';
    throw e;
  } finally {
    drawMap();
    drawChart();
    renderProbe();
    setButtons();
    setStatusText(t.session ? 'Ready: press Train.' : 'Load data to train.');
    t.onStatus(t.status);
  }
}

/// Whether a session is training now.
export function isRunning() {
  return t.running;
}
