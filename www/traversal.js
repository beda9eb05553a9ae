// @ts-check
// cellvae page: the walk through the latent space. A path (along a latent axis through the
// probe, or a line from A to B) is decoded by the engine; the 12 genes that change most
// along it are kept and drawn as a heatmap. Scrubbing or animating moves the probe.
import { heatmap } from './plot.js';
import { S, TRAV_STEPS, TRAV_GENES, genes } from './state.js';
import { canvas, input, select, option, message, button } from './dom.js';
import { drawMap } from './map-view.js';
import { requestProbe } from './probe.js';

export function fillTravModes() {
  const sel = select('trav-mode');
  const prev = sel.value;
  sel.replaceChildren();
  for (let k = 0; k < S.d; k++) sel.append(option(`axis:${k}`, `along latent axis z${k + 1}`));
  sel.append(option('line', 'line from A to B'));
  if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
}

/** The path's end points for the chosen mode, or a note saying what is missing. @returns {{from: Float64Array, to: Float64Array} | string} */
function ends() {
  const tr = S.trav, d = S.d;
  if (select('trav-mode').value === 'line') {
    if (!tr.A || !tr.B) return !tr.A ? 'Place the probe on the map and press “A here”.' : 'Move the probe and press “B here”.';
    return { from: tr.A, to: tr.B };
  }
  const k = Number(select('trav-mode').value.split(':')[1]) || 0;
  let lo = Infinity, hi = -Infinity;
  const lat = S.latent;
  if (lat) {
    for (let c = 0; c < S.n; c++) {
      const x = lat[c * d + k];
      if (Number.isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    }
  }
  if (!Number.isFinite(lo)) { lo = -2; hi = 2; }
  const pad = Math.max((hi - lo) * 0.05, 0.05);
  const origin = S.probe.z ? S.probe.z : (S.P ? S.P.base : new Float64Array(d));
  const from = Float64Array.from(origin), to = Float64Array.from(origin);
  from[k] = lo - pad;
  to[k] = hi + pad;
  return { from, to };
}

/** Recomputes the path and asks the engine to decode it (coalesced: one request in flight). */
export function computeTraversal() {
  const tr = S.trav;
  if (!S.info || !S.latent || !S.client) {
    tr.path = null; tr.top = []; tr.values = [];
    tr.note = 'Load data and train to walk through the latent space.';
    drawHeatmap();
    return;
  }
  const e = ends();
  if (typeof e === 'string') {
    tr.path = null; tr.top = []; tr.values = [];
    tr.note = e;
    drawHeatmap();
    drawMap();
    return;
  }
  const d = S.d;
  const path = new Float32Array(TRAV_STEPS * d);
  for (let s = 0; s < TRAV_STEPS; s++) {
    const f = s / (TRAV_STEPS - 1);
    for (let j = 0; j < d; j++) path[s * d + j] = e.from[j] + f * (e.to[j] - e.from[j]);
  }
  tr.path = path;
  tr.stamp = performance.now();
  drawMap();
  if (tr.inFlight) { tr.again = true; return; }
  tr.inFlight = true;
  tr.again = false;
  const session = S.info.session;
  S.client.request('decode', { zs: path, batch: S.batch, library: S.library }).then(
    (r) => {
      if (!S.info || S.info.session !== session || tr.path !== path) return;
      chooseGenes(r.expected);
      tr.note = null;
    },
    (err) => { tr.note = message(err); tr.top = []; tr.values = []; },
  ).finally(() => {
    tr.inFlight = false;
    drawHeatmap();
    if (tr.again) computeTraversal();
  });
}

/** The genes whose log1p expected count changes most along the path. @param {Float32Array} expected */
function chooseGenes(expected) {
  const G = genes().length;
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
  S.trav.top = top;
  S.trav.values = top.map((g) => Array.from({ length: TRAV_STEPS }, (_, s) => expected[s * G + g]));
}

export function drawHeatmap() {
  const tr = S.trav;
  const names = genes();
  heatmap(canvas('traversal-heatmap'), {
    genes: tr.note ? [] : tr.top.map((g) => names[g]),
    values: tr.values,
    steps: TRAV_STEPS,
    position: tr.pos,
    title: tr.note || `The ${tr.top.length} genes that change most along the path (expected counts; each row scaled to its own range)`,
  });
}

/** Moves the probe to position `pos` of the path. @param {number} pos */
export function scrubTo(pos) {
  const tr = S.trav;
  tr.pos = Math.max(0, Math.min(TRAV_STEPS - 1, pos));
  input('trav-slider').value = String(tr.pos);
  if (!tr.path) return;
  S.probe.z = Float64Array.from(tr.path.subarray(tr.pos * S.d, (tr.pos + 1) * S.d));
  S.probe.anchor = Float64Array.from(S.probe.z);
  requestProbe();
  drawHeatmap();
  drawMap();
}

export function stopAnimation() {
  const tr = S.trav;
  if (!tr.timer) return;
  clearInterval(tr.timer);
  tr.timer = null;
  button('trav-play').textContent = 'Animate';
}

export function toggleAnimation() {
  const tr = S.trav;
  tr.shown = true;
  if (tr.timer) { stopAnimation(); return; }
  if (!tr.path) computeTraversal();
  if (!tr.path) return;
  let dir = 1;
  tr.timer = setInterval(() => {
    if (!S.trav.path) { stopAnimation(); return; }
    let next = tr.pos + dir;
    if (next >= TRAV_STEPS || next < 0) { dir = -dir; next = tr.pos + dir; }
    scrubTo(next);
  }, 120);
  button('trav-play').textContent = 'Stop';
}

/** A or B of the line at the probe. @param {'A' | 'B'} which */
export function setEnd(which) {
  if (!S.probe.z) {
    S.trav.note = which === 'A' ? 'Place the probe on the map first, then press “A here”.' : 'Place the probe on the map first.';
    drawHeatmap();
    return;
  }
  S.trav[which] = Float64Array.from(S.probe.z);
  S.trav.shown = true;
  select('trav-mode').value = 'line';
  computeTraversal();
}

export function wireTraversal() {
  select('trav-mode').addEventListener('change', () => { S.trav.shown = true; computeTraversal(); if (S.trav.path) scrubTo(S.trav.pos); });
  button('trav-a').addEventListener('click', () => setEnd('A'));
  button('trav-b').addEventListener('click', () => setEnd('B'));
  input('trav-slider').max = String(TRAV_STEPS - 1);
  input('trav-slider').addEventListener('input', (e) => {
    S.trav.shown = true;
    if (!S.trav.path) computeTraversal();
    scrubTo(Number(/** @type {HTMLInputElement} */ (e.target).value));
  });
  button('trav-play').addEventListener('click', toggleAnimation);
}
