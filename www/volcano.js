// @ts-check
// cellvae page: the comparison's volcano plot (canvas 2D): x = mean log2 fold change
// (group 1 over group 2), y = the probability of a change of at least delta; genes called
// at the target false discovery rate in their own colour, the chosen gene ringed and
// named. Pure drawing from its arguments, plus a hit test for clicks. Gene names are drawn
// with fillText (never HTML).
import { ctx2d, fmtNumber } from './plot.js';

/** @typedef {import('./protocol.js').GeneRow} GeneRow */

export const CALLED = '#d92d20';
export const NOT_CALLED = '#98a2b3';
const PAD = { left: 40, right: 10, top: 22, bottom: 34 };

/** The plot's scales on a W x H canvas for `rows`. @param {GeneRow[]} rows @param {number} W @param {number} H */
function scales(rows, W, H) {
  let lo = -1, hi = 1;
  for (const r of rows) {
    if (Number.isFinite(r.lfc_mean)) { lo = Math.min(lo, r.lfc_mean); hi = Math.max(hi, r.lfc_mean); }
  }
  const m = Math.max(Math.abs(lo), Math.abs(hi)) * 1.06;
  const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
  return {
    m,
    x: (/** @type {number} */ v) => x0 + ((v + m) / (2 * m)) * (x1 - x0),
    y: (/** @type {number} */ p) => y0 + p * (y1 - y0),
    x0, x1, y0, y1,
  };
}

/**
 * Draws the volcano plot of `rows` (delta: the threshold lines; chosen: the gene index
 * ringed, -1 for none). Sets `canvas.dataset.points` (the genes drawn) and `called`.
 * @param {HTMLCanvasElement} canvas @param {GeneRow[]} rows @param {number} delta @param {number} chosen
 */
export function drawVolcano(canvas, rows, delta, chosen) {
  const ctx = ctx2d(canvas);
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  ctx.font = '11px system-ui, sans-serif';
  const s = scales(rows, W, H);
  // Frame, ticks and the ±delta lines.
  ctx.strokeStyle = '#d0d5dd';
  ctx.lineWidth = 1;
  ctx.strokeRect(s.x0 + 0.5, s.y1 + 0.5, s.x1 - s.x0, s.y0 - s.y1);
  ctx.fillStyle = '#667085';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const p of [0, 0.5, 1]) ctx.fillText(String(p), s.x0 - 4, s.y(p));
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const step = s.m > 6 ? 4 : s.m > 3 ? 2 : 1;
  for (let v = -Math.floor(s.m / step) * step; v <= s.m; v += step) ctx.fillText(String(v), s.x(v), s.y0 + 3);
  ctx.fillText('log2 fold change (group 1 / group 2)', (s.x0 + s.x1) / 2, H - 14);
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  const title = `P(|LFC| ≥ ${delta})`;
  ctx.fillText(title, 4, 13);
  ctx.setLineDash([3, 3]);
  ctx.beginPath();
  for (const v of [-delta, delta, 0]) { ctx.moveTo(s.x(v), s.y0); ctx.lineTo(s.x(v), s.y1); }
  ctx.stroke();
  ctx.setLineDash([]);
  // Points: not called first, called on top.
  let called = 0;
  for (const pass of [false, true]) {
    ctx.fillStyle = pass ? CALLED : NOT_CALLED;
    ctx.globalAlpha = pass ? 0.85 : 0.6;
    ctx.beginPath();
    for (const r of rows) {
      if (r.is_de_fdr !== pass || !Number.isFinite(r.lfc_mean)) continue;
      if (pass) called++;
      const x = s.x(r.lfc_mean), y = s.y(r.proba_de);
      ctx.moveTo(x + 2.5, y);
      ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
    }
    ctx.fill();
  }
  ctx.globalAlpha = 1;
  // Names of the strongest called changes on each side, and the chosen gene.
  /** @type {number[][]} the boxes of the labels placed (a label that would overlap one is left out), the title's first */
  const placed = [[0, 0, ctx.measureText(title).width + 8, 17]];
  const c = rows.find((r) => r.gene === chosen);
  // The strongest called changes up and down, alternately.
  const called1 = rows.filter((r) => r.is_de_fdr && r.gene !== chosen);
  const up = called1.filter((r) => r.lfc_mean > 0).sort((a, b) => b.lfc_mean - a.lfc_mean).slice(0, 8);
  const down = called1.filter((r) => r.lfc_mean < 0).sort((a, b) => a.lfc_mean - b.lfc_mean).slice(0, 8);
  const top = [];
  for (let i = 0; i < 8; i++) { if (up[i]) top.push(up[i]); if (down[i]) top.push(down[i]); }
  if (c) {
    const x = s.x(c.lfc_mean), y = s.y(c.proba_de);
    ctx.strokeStyle = '#1d2330';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillStyle = '#1d2330';
    ctx.font = 'bold 11px system-ui, sans-serif';
    label(ctx, x, y, `${c.name || c.id} (${fmtNumber(c.lfc_mean)})`, W, placed);
    ctx.font = '11px system-ui, sans-serif';
  }
  ctx.fillStyle = '#1d2330';
  let shown = 0;
  for (const r of top) if (shown < 6 && label(ctx, s.x(r.lfc_mean), s.y(r.proba_de), r.name || r.id, W, placed)) shown++;
  canvas.dataset.points = String(rows.length);
  canvas.dataset.called = String(called);
}

/**
 * Names a point unless the label would overlap one already placed (then nothing is drawn).
 * @param {CanvasRenderingContext2D} ctx @param {number} x @param {number} y @param {string} text @param {number} W
 * @param {number[][]} placed boxes [x0, y0, x1, y1] of the labels drawn so far (the new one is added)
 */
function label(ctx, x, y, text, W, placed) {
  const w = ctx.measureText(text).width;
  // Right of the point, then left of it; above it, then below it.
  for (const [dx, dy] of [[1, -1], [-1, -1], [1, 1], [-1, 1]]) {
    const tx = dx > 0 ? x + 6 : x - 6 - w, ty = dy < 0 ? y - 4 : y + 13;
    if (tx < 1 || tx + w > W - 1 || ty < 10) continue;
    const box = [tx - 1, ty - 10, tx + w + 1, ty + 2];
    if (placed.some((b) => box[0] < b[2] && box[2] > b[0] && box[1] < b[3] && box[3] > b[1])) continue;
    placed.push(box);
    ctx.textAlign = 'left';
    ctx.fillText(text, tx, ty);
    return true;
  }
  return false;
}

/**
 * The gene drawn nearest canvas pixel (px, py) within `radius`, or null.
 * @param {HTMLCanvasElement} canvas @param {GeneRow[]} rows @param {number} px @param {number} py @param {number} [radius]
 */
export function volcanoHit(canvas, rows, px, py, radius = 8) {
  const s = scales(rows, canvas.width, canvas.height);
  let best = null, bestD = radius * radius;
  for (const r of rows) {
    const dx = s.x(r.lfc_mean) - px, dy = s.y(r.proba_de) - py;
    const d2 = dx * dx + dy * dy;
    if (d2 <= bestD) { bestD = d2; best = r; }
  }
  return best;
}

/** Where gene row `r` is drawn, as fractions of the canvas (automation). @param {HTMLCanvasElement} canvas @param {GeneRow[]} rows @param {GeneRow} r */
export function volcanoPosition(canvas, rows, r) {
  const s = scales(rows, canvas.width, canvas.height);
  return [s.x(r.lfc_mean) / canvas.width, s.y(r.proba_de) / canvas.height];
}
