// @ts-check
// cellvae page: the decoder field. A grid of latent points over the visible plane is
// decoded by the engine for one gene; the result becomes a small image that the map view
// draws under the cells (log scale, with a colour bar in the legend).
import { SCALES, ctx2d } from './plot.js';
import { planePoint } from './map.js';
import { S, FIELD_GRID, genes } from './state.js';
import { input, el, message } from './dom.js';
import { drawMap, mapCanvas, renderLegend } from './map-view.js';

/** Clears the field (no gene). */
export function clearField() {
  const f = S.field;
  f.gene = -1;
  f.canvas = null;
  f.shown = null;
  f.view = null;
  clearTimeout(f.timer);
  delete mapCanvas().dataset.field;
}

/** Asks the engine for the field over the current view (coalesced: one request in flight). */
export function computeField() {
  const f = S.field;
  if (!S.info || !S.client || !S.view || !S.P || f.gene < 0) {
    f.canvas = null;
    f.shown = null;
    renderLegend();
    drawMap();
    return;
  }
  if (f.inFlight) { f.again = true; return; }
  // Each decode costs ~hidden x genes: keep a grid's work bounded (smaller while training).
  const budget = S.run === 'training' ? 3e5 : 1.2e6;
  const N = Math.max(8, Math.min(FIELD_GRID, Math.floor(Math.sqrt(budget / Math.max(1, genes().length)))));
  const d = S.d;
  const v = { ...S.view };
  const base = S.d > 2 && S.probe.anchor ? S.probe.anchor : S.P.base;
  const zs = new Float32Array(N * N * d);
  for (let r = 0; r < N; r++) {
    for (let c = 0; c < N; c++) {
      const u = v.x0 + ((c + 0.5) / N) * (v.x1 - v.x0);
      const w = v.y1 - ((r + 0.5) / N) * (v.y1 - v.y0);
      zs.set(planePoint(u, w, base, S.P), (r * N + c) * d);
    }
  }
  f.inFlight = true;
  f.again = false;
  const gene = f.gene;
  const session = S.info.session;
  S.client.request('decode_genes', { zs, batch: S.batch, library: S.library, genes: [gene] }).then(
    (r) => {
      if (!S.info || S.info.session !== session || f.gene !== gene) return;
      fieldImage(r.values, N, v, gene);
      input('field-gene').title = '';
    },
    (e) => {
      f.canvas = null;
      f.shown = null;
      input('field-gene').title = message(e);
    },
  ).finally(() => {
    f.inFlight = false;
    f.stamp = performance.now();
    renderLegend();
    drawMap();
    if (f.again) computeField();
  });
}

/** The field's image from the decoded values (N x N, log scale). @param {Float32Array} vals @param {number} N @param {import('./map.js').View} v @param {number} gene */
function fieldImage(vals, N, v, gene) {
  const f = S.field;
  let lo = Infinity, hi = -Infinity;
  const logs = new Float32Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    logs[i] = Math.log1p(vals[i]);
    lo = Math.min(lo, logs[i]); hi = Math.max(hi, logs[i]);
  }
  const span = hi > lo ? hi - lo : 1;
  const canvas = f.canvas || el('canvas');
  canvas.width = N;
  canvas.height = N;
  const ctx = ctx2d(canvas);
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
  f.shown = genes()[gene];
  mapCanvas().dataset.field = f.shown;
}

/** Recomputes the field soon (after the view settles). */
export function scheduleField(delay = 250) {
  const f = S.field;
  if (f.gene < 0) return;
  clearTimeout(f.timer);
  f.timer = setTimeout(computeField, delay);
}

export function chooseFieldGene() {
  const box = input('field-gene');
  const name = box.value.trim();
  box.classList.remove('invalid');
  box.title = '';
  if (!name) {
    clearField();
    renderLegend();
    drawMap();
    return;
  }
  const g = genes().indexOf(name);
  if (g < 0) {
    box.classList.add('invalid');
    box.title = `${name} is not one of the model's genes`;
    return;
  }
  S.field.gene = g;
  computeField();
}
