// @ts-check
// cellvae page: the lessons' charts (render functions: they only draw what they are given).
import { ctx2d, fmtNumber } from '../plot.js';

/** @typedef {{name: string, colour: string, values: number[]}} Series */

/** Clears a chart and writes its title; returns the context and the plot box. @param {HTMLCanvasElement} canvas @param {string} title */
function frame(canvas, title) {
  const ctx = ctx2d(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'left';
  ctx.fillText(title, 6, 12);
  return { ctx, L: 40, R: W - 6, T: 30, B: H - 18, W, H };
}

/** Grouped bars: one group per label, one bar per series. @param {HTMLCanvasElement} canvas @param {string} title @param {string[]} labels @param {Series[]} series */
export function groupedBars(canvas, title, labels, series) {
  const { ctx, L, R, T, B, H } = frame(canvas, title);
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  if (!labels.length || !all.length) return;
  const hi = Math.max(1e-12, ...all);
  ctx.fillText(fmtNumber(hi), 2, T + 4);
  ctx.fillText('0', 2, B);
  let x = L;
  for (const s of series) {
    ctx.fillStyle = s.colour;
    ctx.fillRect(x, 17, 8, 6);
    ctx.fillStyle = '#667085';
    ctx.fillText(s.name, x + 11, 24);
    x += ctx.measureText(s.name).width + 22;
  }
  const slot = (R - L) / labels.length;
  const bw = Math.max(1, (slot * 0.8) / series.length);
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const v = s.values[i];
      const h = Number.isFinite(v) ? (Math.max(0, v) / hi) * (B - T) : 0;
      ctx.fillStyle = s.colour;
      ctx.fillRect(L + i * slot + slot * 0.1 + j * bw, B - h, bw - 0.5, h);
    });
    const chars = Math.floor(slot / 6.5);
    if (chars >= 3) {
      ctx.save();
      ctx.fillStyle = '#667085';
      ctx.textAlign = 'center';
      ctx.fillText(label.length > chars ? label.slice(0, chars - 1) + '…' : label, L + (i + 0.5) * slot, H - 5);
      ctx.restore();
    }
  });
}

/**
 * Points (and optional curves) on linear or log10 axes.
 * @param {HTMLCanvasElement} canvas @param {string} title
 * @param {{points: {x: number[], y: number[], colour: string, name?: string}[], curves?: {x: number[], y: number[], colour: string, name: string}[], logX?: boolean, logY?: boolean, xLabel?: string, yLabel?: string, diagonal?: boolean}} p
 */
export function scatter(canvas, title, p) {
  const { ctx, L, R, T, B, H } = frame(canvas, title);
  const tx = (/** @type {number} */ v) => (p.logX ? Math.log10(v) : v);
  const ty = (/** @type {number} */ v) => (p.logY ? Math.log10(v) : v);
  const xs = [...p.points.flatMap((s) => s.x), ...(p.curves || []).flatMap((c) => c.x)].map(tx).filter(Number.isFinite);
  const ys = [...p.points.flatMap((s) => s.y), ...(p.curves || []).flatMap((c) => c.y)].map(ty).filter(Number.isFinite);
  if (!xs.length || !ys.length) return;
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (p.diagonal) { x0 = y0 = Math.min(x0, y0); x1 = y1 = Math.max(x1, y1); }
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const px = (/** @type {number} */ v) => L + ((tx(v) - x0) / (x1 - x0)) * (R - L);
  const py = (/** @type {number} */ v) => B - ((ty(v) - y0) / (y1 - y0)) * (B - T);
  ctx.strokeStyle = '#e4e7ec';
  ctx.strokeRect(L, T, R - L, B - T);
  ctx.fillStyle = '#667085';
  const lab = (/** @type {number} */ v, /** @type {boolean | undefined} */ log) => fmtNumber(log ? 10 ** v : v);
  ctx.fillText(lab(y1, p.logY), 2, T + 4);
  ctx.fillText(lab(y0, p.logY), 2, B);
  ctx.textAlign = 'right';
  ctx.fillText(`${p.xLabel ? p.xLabel + ' ' : ''}${lab(x1, p.logX)}`, R, H - 4);
  ctx.textAlign = 'left';
  ctx.fillText(lab(x0, p.logX), L, H - 4);
  if (p.yLabel) ctx.fillText(p.yLabel, L + 4, T + 10);
  if (p.diagonal) {
    ctx.strokeStyle = '#d0d5dd';
    ctx.beginPath();
    ctx.moveTo(L, B); ctx.lineTo(R, T);
    ctx.stroke();
  }
  let lx = L;
  for (const s of p.points) {
    ctx.fillStyle = s.colour;
    for (let i = 0; i < s.x.length; i++) {
      const X = px(s.x[i]), Y = py(s.y[i]);
      if (Number.isFinite(X) && Number.isFinite(Y)) ctx.fillRect(X - 1.5, Y - 1.5, 3, 3);
    }
    if (s.name) { ctx.fillText(s.name, lx, 24); lx += ctx.measureText(s.name).width + 12; }
  }
  for (const c of p.curves || []) {
    ctx.strokeStyle = c.colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    for (let i = 0; i < c.x.length; i++) {
      const X = px(c.x[i]), Y = py(c.y[i]);
      if (!Number.isFinite(X) || !Number.isFinite(Y)) continue;
      if (!started) { ctx.moveTo(X, Y); started = true; } else ctx.lineTo(X, Y);
    }
    ctx.stroke();
    ctx.fillStyle = c.colour;
    ctx.fillText(c.name, lx, 24);
    lx += ctx.measureText(c.name).width + 12;
  }
}
