// @ts-check
// cellvae page: colours and the small canvas charts (line charts, bars, the KL weight
// schedule, the traversal heatmap). Canvas text is drawn with fillText, never parsed as
// HTML, so gene names from a user's file are safe here.

// Categorical colours (Tableau 20 order: strong colours first, then their light twins).
export const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
  '#bcbd22', '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94',
  '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5',
];
export const MISSING = '#b8bec9';

const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
const EXPRESSION = ['#d9dde4', '#fde0a3', '#fdae61', '#f46d43', '#d73027', '#a50026'];
const FIELD = ['#ffffff', '#e8f0fb', '#c6dbef', '#9ecae1', '#6baed6', '#3182bd', '#08519c'];

/** @param {string} h @returns {number[]} */
function hexToRgb(h) {
  return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
}

// `n` colours interpolated along the stops, as [r, g, b] triples.
/** @param {string[]} stops @param {number} n @returns {number[][]} */
function ramp(stops, n) {
  const rgb = stops.map(hexToRgb);
  /** @type {number[][]} */
  const out = [];
  for (let i = 0; i < n; i++) {
    const x = (i / (n - 1)) * (rgb.length - 1);
    const k = Math.min(Math.floor(x), rgb.length - 2);
    const f = x - k;
    out.push(rgb[k].map((c, j) => Math.round(c + f * (rgb[k + 1][j] - c))));
  }
  return out;
}

export const SCALES = {
  viridis: ramp(VIRIDIS, 64),
  expression: ramp(EXPRESSION, 64),
  field: ramp(FIELD, 64),
};

/** @param {number[]} rgb */
export const css = ([r, g, b]) => `rgb(${r},${g},${b})`;

// A horizontal colour bar of a scale on a canvas.
/** @param {HTMLCanvasElement} canvas @param {number[][]} scale */
export function drawColourBar(canvas, scale) {
  const ctx = ctx2d(canvas);
  const w = canvas.width, h = canvas.height;
  for (let x = 0; x < w; x++) {
    ctx.fillStyle = css(scale[Math.min(scale.length - 1, Math.floor((x / w) * scale.length))]);
    ctx.fillRect(x, 0, 1, h);
  }
}

/** @param {number} x */
export function fmtNumber(x) {
  if (!Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 0.1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

/** The 2-D context of a canvas. @param {HTMLCanvasElement} canvas */
export function ctx2d(canvas) {
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('this browser gives no 2-D canvas');
  return ctx;
}

/** @param {HTMLCanvasElement} canvas */
function clear(canvas) {
  const ctx = ctx2d(canvas);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = '12px system-ui, sans-serif';
  ctx.textBaseline = 'alphabetic';
  return ctx;
}

// Line chart of one or more series over epochs: series = [{name, colour, values}].
// With `independent`, each series gets its own vertical scale (its last value is shown
// in the legend instead of a shared axis).
/** @typedef {{name: string, colour: string, values: number[]}} Series */
/** @param {HTMLCanvasElement} canvas @param {string} title @param {Series[]} series @param {{empty?: string, independent?: boolean}} [opts] */
export function lineChart(canvas, title, series, { empty = 'no finished epoch yet', independent = false } = {}) {
  if (independent) return independentChart(canvas, title, series, empty);
  const ctx = clear(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText(title, 8, 14);
  const n = Math.max(0, ...series.map((s) => s.values.length));
  if (n < 1) {
    ctx.fillText(empty, 8, H / 2);
    return;
  }
  // Ignore the first epochs' huge values once there are enough points to see a trend.
  const skip = n > 10 ? Math.min(3, n - 2) : 0;
  let lo = Infinity, hi = -Infinity;
  for (const s of series) {
    for (let i = skip; i < s.values.length; i++) {
      const v = s.values[i];
      if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
  }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const L = 52, R = W - 8, T = 22, B = H - 20;
  ctx.strokeStyle = '#e4e7ec';
  ctx.lineWidth = 1;
  ctx.strokeRect(L, T, R - L, B - T);
  ctx.fillText(fmtNumber(hi), 4, T + 8);
  ctx.fillText(fmtNumber(lo), 4, B);
  ctx.textAlign = 'right';
  ctx.fillText(`epoch ${n}`, R, H - 4);
  let legendX = R;
  for (const s of [...series].reverse()) {
    if (series.length < 2) break;
    ctx.fillStyle = s.colour;
    ctx.fillText(s.name, legendX, 14);
    legendX -= ctx.measureText(s.name).width + 14;
  }
  for (const s of series) {
    const shown = s.values.slice(skip);
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    shown.forEach((y, i) => {
      const px = L + (n - skip <= 1 ? 0.5 : i / (n - skip - 1)) * (R - L);
      const py = B - ((y - lo) / (hi - lo)) * (B - T);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }
}

/** @param {HTMLCanvasElement} canvas @param {string} title @param {Series[]} series @param {string} empty */
function independentChart(canvas, title, series, empty) {
  const ctx = clear(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText(title, 8, 14);
  const n = Math.max(0, ...series.map((s) => s.values.length));
  if (n < 1) {
    ctx.fillText(empty, 8, H / 2);
    return;
  }
  const skip = n > 10 ? Math.min(3, n - 2) : 0;
  const L = 10, R = W - 8, T = 40, B = H - 20;
  ctx.strokeStyle = '#e4e7ec';
  ctx.lineWidth = 1;
  ctx.strokeRect(L, T, R - L, B - T);
  ctx.textAlign = 'right';
  ctx.fillText(`epoch ${n}`, R, H - 4);
  let x = 8;
  ctx.textAlign = 'left';
  for (const s of series) {
    const label = `${s.name}: ${fmtNumber(s.values[s.values.length - 1])}`;
    ctx.fillStyle = s.colour;
    ctx.fillRect(x, 25, 10, 3);
    ctx.fillText(label, x + 14, 31);
    x += ctx.measureText(label).width + 30;
    const shown = s.values.slice(skip);
    let lo = Infinity, hi = -Infinity;
    for (const v of shown) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) continue;
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    shown.forEach((y, i) => {
      const px = L + (n - skip <= 1 ? 0.5 : i / (n - skip - 1)) * (R - L);
      const py = B - 4 - ((y - lo) / (hi - lo)) * (B - T - 8);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }
}

// Bar chart: one bar per value, labelled z1..zd.
/** @param {HTMLCanvasElement} canvas @param {string} title @param {number[]} values */
export function barChart(canvas, title, values) {
  const ctx = clear(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText(title, 8, 14);
  canvas.dataset.bars = String(values.length);
  if (!values.length) return;
  const hi = Math.max(1e-9, ...values.filter(Number.isFinite));
  const L = 40, R = W - 8, T = 24, B = H - 20;
  ctx.strokeStyle = '#e4e7ec';
  ctx.beginPath();
  ctx.moveTo(L, B + 0.5); ctx.lineTo(R, B + 0.5);
  ctx.stroke();
  ctx.fillText(fmtNumber(hi), 4, T + 8);
  ctx.fillText('0', 4, B);
  const slot = (R - L) / values.length;
  const bw = Math.max(2, slot * 0.7);
  ctx.textAlign = 'center';
  values.forEach((v, i) => {
    const h = Number.isFinite(v) ? (Math.max(0, v) / hi) * (B - T) : 0;
    const x = L + i * slot + (slot - bw) / 2;
    ctx.fillStyle = v > 0.1 ? '#2f6fde' : '#b8bec9';
    ctx.fillRect(x, B - h, bw, h);
    if (values.length <= 32) {
      ctx.fillStyle = '#667085';
      ctx.fillText(`z${i + 1}`, x + bw / 2, H - 5);
    }
  });
}

// The KL weight over epochs: beta * min(epoch / warmup, 1), with the current epoch marked.
/** @param {HTMLCanvasElement} canvas @param {{epochs: number, warmup: number, beta: number, epoch: number}} s */
export function scheduleChart(canvas, { epochs, warmup, beta, epoch }) {
  const ctx = clear(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText(`KL weight schedule: warm-up over ${warmup} epochs to beta ${fmtNumber(beta)}`, 8, 14);
  if (!(epochs > 0)) return;
  const L = 40, R = W - 8, T = 24, B = H - 20;
  const top = Math.max(beta, 1e-9) * 1.1;
  ctx.strokeStyle = '#e4e7ec';
  ctx.strokeRect(L, T, R - L, B - T);
  ctx.fillText(fmtNumber(beta), 4, B - (beta / top) * (B - T) + 4);
  ctx.fillText('0', 4, B);
  ctx.textAlign = 'right';
  ctx.fillText(`${epochs} epochs`, R, H - 4);
  const w = (/** @type {number} */ e) => (warmup > 0 && e < warmup ? (beta * e) / warmup : beta);
  const px = (/** @type {number} */ e) => L + (e / epochs) * (R - L);
  const py = (/** @type {number} */ v) => B - (v / top) * (B - T);
  ctx.strokeStyle = '#7a5af8';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const steps = 200;
  for (let i = 0; i <= steps; i++) {
    const e = (i / steps) * epochs;
    if (i === 0) ctx.moveTo(px(e), py(w(Math.floor(e)))); else ctx.lineTo(px(e), py(w(Math.floor(e))));
  }
  ctx.stroke();
  const e = Math.min(epoch, epochs);
  ctx.fillStyle = '#d92d20';
  ctx.beginPath();
  ctx.arc(px(e), py(w(e)), 4, 0, 2 * Math.PI);
  ctx.fill();
  ctx.textAlign = e > epochs / 2 ? 'right' : 'left';
  ctx.fillText(`epoch ${epoch}: ${fmtNumber(w(e))}`, px(e) + (e > epochs / 2 ? -8 : 8), py(w(e)) - 6 < T + 10 ? py(w(e)) + 16 : py(w(e)) - 6);
}

// Heatmap: rows = genes (names drawn left), columns = path positions; values row-scaled.
/** @param {HTMLCanvasElement} canvas @param {{genes: string[], values: number[][], steps: number, position: number, title: string}} h */
export function heatmap(canvas, { genes, values, steps, position, title }) {
  const ctx = clear(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText(title, 8, 14);
  canvas.dataset.rows = String(genes.length);
  if (!genes.length) return;
  const L = 120, R = W - 70, T = 24, B = H - 18;
  const rh = (B - T) / genes.length;
  const cw = (R - L) / steps;
  const scale = SCALES.viridis;
  genes.forEach((g, r) => {
    const row = values[r];
    let lo = Infinity, hi = -Infinity;
    for (const v of row) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (let s = 0; s < steps; s++) {
      const f = hi > lo ? (row[s] - lo) / (hi - lo) : 0.5;
      ctx.fillStyle = css(scale[Math.min(scale.length - 1, Math.floor(f * scale.length))]);
      ctx.fillRect(L + s * cw, T + r * rh, Math.ceil(cw), Math.ceil(rh));
    }
    ctx.fillStyle = '#1d2330';
    ctx.textAlign = 'right';
    const name = g.length > 16 ? `${g.slice(0, 15)}…` : g;
    ctx.fillText(name, L - 6, T + r * rh + rh / 2 + 4);
    ctx.textAlign = 'left';
    ctx.fillStyle = '#667085';
    ctx.fillText(`${fmtNumber(lo)}–${fmtNumber(hi)}`, R + 4, T + r * rh + rh / 2 + 4);
  });
  ctx.strokeStyle = '#d92d20';
  ctx.lineWidth = 2;
  const x = L + (position + 0.5) * cw;
  ctx.beginPath();
  ctx.moveTo(x, T - 3); ctx.lineTo(x, B + 3);
  ctx.stroke();
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText('start', L, H - 4);
  ctx.textAlign = 'right';
  ctx.fillText('end', R, H - 4);
}
