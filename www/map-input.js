// @ts-check
// cellvae page: what the user does to the map and its toolbar. Click or drag: the probe
// (or, with the lasso or box tool chosen, a selection: selection.js);
// wheel: zoom; right- or shift-drag: pan; hover: the cell's id and metadata (as text);
// keyboard: arrows move the probe, + and - zoom, 0 resets the view. Also the colour-by,
// axes, background-gene and probe inputs, and `cellvae:layout` (the map canvas resized).
import { projectPoint, planePoint, toPixel, toPlane, zoomView, panView, hitTest, nearestInPlane, resizeView } from './map.js';
import { fmtNumber } from './plot.js';
import { S, genes } from './state.js';
import { $, input, select, button } from './dom.js';
import { mapCanvas, drawMap, updateProjection, fitToCanvas, renderPlaneNote } from './map-view.js';
import { buildColours } from './colours.js';
import { requestProbe, pinGene } from './probe.js';
import { computeTraversal } from './traversal.js';
import { chooseFieldGene, scheduleField } from './field.js';
import { fillGeneList } from './settings.js';
import { selectionStart, selectionMove, selectionEnd } from './selection.js';

/** Canvas pixels (drawing buffer) of a pointer event. @param {MouseEvent} ev @returns {[number, number]} */
function canvasPoint(ev) {
  const c = mapCanvas();
  const r = c.getBoundingClientRect();
  return [((ev.clientX - r.left) * c.width) / r.width, ((ev.clientY - r.top) * c.height) / r.height];
}

/** The plane's anchor for a probe placed at (u, v): the nearest cell's latent point (more than 2 dimensions). @param {number} u @param {number} v */
function anchorAt(u, v) {
  const P = S.P;
  if (!P || !S.proj || !S.latent) return;
  if (S.d > 2) {
    const c = nearestInPlane(S.proj, S.n, u, v);
    S.probe.cell = c;
    S.probe.anchor = c >= 0 ? Float64Array.from(S.latent.subarray(c * S.d, (c + 1) * S.d)) : Float64Array.from(P.base);
  } else {
    S.probe.cell = -1;
    S.probe.anchor = Float64Array.from(P.base);
  }
  renderPlaneNote();
}

/** Places the probe under the pointer. `start`: a new drag (re-anchors the plane). @param {MouseEvent} ev @param {boolean} start */
function probeAt(ev, start) {
  if (!S.info || !S.view || !S.P) return;
  const c = mapCanvas();
  const [px, py] = canvasPoint(ev);
  const [u, v] = toPlane(S.view, c.width, c.height, px, py);
  if (start || !S.probe.anchor) anchorAt(u, v);
  if (!S.probe.anchor) return;
  S.probe.z = planePoint(u, v, S.probe.anchor, S.P);
  requestProbe();
  drawMap();
}

/** The tooltip of the cell under the pointer (text only). @param {MouseEvent} ev */
function hover(ev) {
  const tip = $('map-tooltip');
  const info = S.info;
  if (!info || !S.proj || !S.view) { tip.hidden = true; return; }
  const c0 = mapCanvas();
  const [px, py] = canvasPoint(ev);
  const c = hitTest(S.proj, S.n, S.view, c0.width, c0.height, px, py, 6);
  if (c < 0) { tip.hidden = true; return; }
  const lines = [info.cellIds[c]];
  for (const m of info.meta) {
    const code = m.codes[c];
    lines.push(`${m.name}: ${code === null || code === undefined ? '(no value)' : m.levels[code]}`);
  }
  lines.push(`library size: ${Math.round(info.libraries[c])}`);
  if (S.colours && S.colours.values && S.colourKey.startsWith('gene:')) {
    lines.push(`${S.colourKey.slice(5)}: ${fmtNumber(S.colours.values[c])} (log1p normalised)`);
  }
  tip.textContent = lines.join('\n');
  tip.dataset.cell = String(c);
  tip.hidden = false;
  const r = c0.getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  tip.style.left = `${Math.min(x + 14, r.width - 200)}px`;
  tip.style.top = `${y + 14}px`;
}

function resetView() {
  S.autoView = true;
  fitToCanvas();
  drawMap();
  scheduleField(0);
}

let lastSize = [0, 0];

/** The canvas's drawing buffer changed size (www/layout.js): keep equal scale, redraw. */
function onLayout() {
  const c = mapCanvas();
  const [w0] = lastSize;
  lastSize = [c.width, c.height];
  if (S.view && !S.autoView && w0 > 0) S.view = resizeView(S.view, w0, c.width, c.height);
  else fitToCanvas();
  drawMap();
  scheduleField();
}

export function wireMapInput() {
  const canvas = mapCanvas();
  lastSize = [canvas.width, canvas.height];
  window.addEventListener('cellvae:layout', onLayout);
  select('colour-by').addEventListener('change', () => { buildColours(); });
  const search = input('gene-search');
  search.addEventListener('input', () => {
    fillGeneList(/** @type {HTMLDataListElement} */ ($('gene-list')), S.data ? S.data.geneNames : [], search.value);
    if (S.data && S.data.geneSet.has(search.value.trim())) buildColours();
  });
  search.addEventListener('change', () => { buildColours(); });
  select('axes').addEventListener('change', () => {
    S.autoView = true;
    S.prevPca = null;
    updateProjection();
    renderPlaneNote();
    drawMap();
    scheduleField(0);
  });
  button('reset-view').addEventListener('click', resetView);
  const fieldInput = input('field-gene');
  fieldInput.addEventListener('input', () => {
    fillGeneList(/** @type {HTMLDataListElement} */ ($('model-gene-list')), genes(), fieldInput.value);
    if (genes().includes(fieldInput.value.trim()) || !fieldInput.value.trim()) chooseFieldGene();
  });
  fieldInput.addEventListener('change', chooseFieldGene);
  const pinInput = input('pin-gene');
  pinInput.addEventListener('input', () => {
    fillGeneList(/** @type {HTMLDataListElement} */ ($('model-gene-list')), genes(), pinInput.value);
    if (genes().includes(pinInput.value.trim())) pinGene();
  });
  pinInput.addEventListener('change', pinGene);
  select('probe-batch').addEventListener('change', (e) => {
    S.batch = Number(/** @type {HTMLSelectElement} */ (e.target).value) || 0;
    requestProbe();
    computeTraversal();
    scheduleField(0);
  });
  input('probe-library').addEventListener('change', (e) => {
    const box = /** @type {HTMLInputElement} */ (e.target);
    const v = Number(box.value);
    if (Number.isFinite(v) && v > 0) {
      S.library = v;
      box.classList.remove('invalid');
      requestProbe();
      computeTraversal();
      scheduleField(0);
    } else box.classList.add('invalid');
  });

  /** @type {'probe' | 'pan' | 'select' | null} */
  let mode = null;
  /** @type {{x: number, y: number, view: import('./map.js').View} | null} */
  let panStart = null;
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('pointerdown', (e) => {
    if (!S.view) return;
    canvas.setPointerCapture(e.pointerId);
    $('map-tooltip').hidden = true;
    if (e.button === 1 || e.button === 2 || e.shiftKey) {
      mode = 'pan';
      panStart = { x: e.clientX, y: e.clientY, view: { ...S.view } };
      canvas.style.cursor = 'grabbing';
    } else if (e.button === 0 && S.sel.tool !== 'probe') {
      mode = 'select';
      const [px, py] = canvasPoint(e);
      selectionStart(...toPlane(S.view, canvas.width, canvas.height, px, py), e.ctrlKey || e.metaKey);
    } else if (e.button === 0) {
      mode = 'probe';
      probeAt(e, true);
    }
  });
  canvas.addEventListener('pointermove', (e) => {
    if (mode === 'probe') probeAt(e, false);
    else if (mode === 'select' && S.view) {
      const [px, py] = canvasPoint(e);
      selectionMove(...toPlane(S.view, canvas.width, canvas.height, px, py));
    } else if (mode === 'pan' && panStart) {
      const r = canvas.getBoundingClientRect();
      const dx = ((e.clientX - panStart.x) * canvas.width) / r.width;
      const dy = ((e.clientY - panStart.y) * canvas.height) / r.height;
      S.view = panView(panStart.view, canvas.width, canvas.height, dx, dy);
      S.autoView = false;
      drawMap();
    } else hover(e);
  });
  const stop = () => {
    if (mode === 'select') selectionEnd();
    if (mode === 'pan') scheduleField();
    if (mode === 'probe') {
      if (S.trav.path && select('trav-mode').value !== 'line') computeTraversal();
      if (S.d > 2) scheduleField();
    }
    mode = null;
    canvas.style.cursor = '';
  };
  canvas.addEventListener('pointerup', stop);
  canvas.addEventListener('pointercancel', stop);
  canvas.addEventListener('pointerleave', () => { $('map-tooltip').hidden = true; });
  canvas.addEventListener('wheel', (e) => {
    if (!S.view) return;
    e.preventDefault();
    const [px, py] = canvasPoint(e);
    const factor = Math.exp(Math.max(-1, Math.min(1, e.deltaY * 0.0015)));
    S.view = zoomView(S.view, canvas.width, canvas.height, px, py, factor);
    S.autoView = false;
    drawMap();
    scheduleField();
  }, { passive: false });

  canvas.addEventListener('keydown', (e) => {
    const P = S.P;
    if (!S.view || !P || !S.proj || !S.latent) return;
    const W = canvas.width, H = canvas.height;
    /** @type {Record<string, [number, number]>} */
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      const step = (e.shiftKey ? 0.1 : 0.02) * W;
      let px = W / 2, py = H / 2;
      if (S.probe.z) [px, py] = toPixel(S.view, W, H, ...projectPoint(S.probe.z, P));
      const [dx, dy] = moves[e.key];
      const [u, v] = toPlane(S.view, W, H, px + dx * step, py + dy * step);
      if (!S.probe.anchor || S.d <= 2) S.probe.anchor = Float64Array.from(P.base);
      if (S.d > 2 && S.probe.cell < 0) anchorAt(u, v);
      S.probe.z = planePoint(u, v, /** @type {Float64Array} */ (S.probe.anchor), P);
      requestProbe();
      drawMap();
    } else if (e.key === '+' || e.key === '=' || e.key === '-') {
      e.preventDefault();
      S.view = zoomView(S.view, W, H, W / 2, H / 2, e.key === '-' ? 1.25 : 0.8);
      S.autoView = false;
      drawMap();
      scheduleField();
    } else if (e.key === '0') {
      e.preventDefault();
      resetView();
    }
  });
}
