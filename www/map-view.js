// @ts-check
// cellvae page: the latent map view. `updateProjection` computes the cells' positions in
// the shown plane (and fits the view) when the latent means or the axes change; the render
// functions (drawMap, renderLegend, renderPlaneNote) only draw from the state. The canvas
// may have any size and aspect ratio (www/layout.js sizes it and dispatches
// `cellvae:layout`): every draw reads canvas.width and canvas.height. The cells are drawn
// by WebGL2 (gl-points.js) where it runs on a GPU (or `?map=webgl2`), else (no WebGL2,
// WebGL2 in software, a lost context, or `?map=canvas`) by map.js's drawPoints; the
// canvas's `data-renderer` says which.
import { SCALES, MISSING, drawColourBar, fmtNumber } from './plot.js';
import { axisProjection, pcaProjection, projectAll, projectPoint, fitView, toPixel, drawPoints, drawRings } from './map.js';
import { S, TRAV_STEPS } from './state.js';
import { GROUP_COLOURS, SELECTION_COLOUR, drawnPolygon } from './selection.js';
import { $, canvas as canvasEl, select, el, option } from './dom.js';
import { GlPoints } from './gl-points.js';

export const mapCanvas = () => canvasEl('latent-map');

// Bumped whenever S.proj is rewritten (in place), so the GL renderer uploads positions once
// per latent update and never for a pan or zoom.
let projVersion = 0;
const asked = new URLSearchParams(location.search).get('map');
/** @type {GlPoints | null | undefined} undefined: not tried yet; null: none (see fallbackWhy) */
let glPoints;
/** Why the cells are drawn by drawPoints: 'asked' (?map=canvas), 'unavailable' (no WebGL2), 'software' (WebGL2 on the CPU), 'lost'. */
let fallbackWhy = '';
/** The WebGL renderer's name, where there is one. */
let glName = '';

/**
 * The GL renderer, made on first use; null where the cells are drawn by drawPoints:
 * `?map=canvas`, no WebGL2, or WebGL2 on the CPU (SwiftShader, llvmpipe: drawPoints is
 * faster there) unless `?map=webgl2` asks for it.
 */
function glRenderer() {
  if (glPoints === undefined) {
    glPoints = null;
    if (asked === 'canvas') fallbackWhy = 'asked';
    else {
      try {
        const g = new GlPoints(() => drawMap());
        glName = g.name;
        if (g.software && asked !== 'webgl2') {
          g.dispose();
          fallbackWhy = 'software';
        } else glPoints = g;
      } catch (e) {
        fallbackWhy = 'unavailable';
        console.info(`cellvae: the map draws its cells on a 2-D canvas (${e instanceof Error ? e.message : e})`);
      }
    }
  }
  return glPoints;
}

/**
 * What draws the map's cells (automation, tests): `renderer` 'webgl2' or 'canvas', `why`
 * the canvas ('' | 'asked' | 'unavailable' | 'software' | 'lost'), `gl` the WebGL renderer's name.
 */
export function mapRenderer() {
  const g = glRenderer();
  const on = !!g && g.ready;
  return { renderer: on ? 'webgl2' : 'canvas', why: on ? '' : g ? 'lost' : fallbackWhy, gl: glName };
}

/** Tests: lose the GL renderer's context (the map falls back to drawPoints) or restore it. @param {boolean} lose */
export function testLoseMapContext(lose) {
  const g = glRenderer();
  return g ? g.testLoseContext(lose) : false;
}

/** The cells' positions in the shown plane from the latent means (and the view, while it follows the data). */
export function updateProjection() {
  if (!S.latent) return;
  const sel = select('axes').value;
  if (S.d > 2 && sel === 'pca') {
    S.P = pcaProjection(S.latent, S.n, S.d, S.prevPca);
    S.prevPca = S.P.axes;
  } else {
    const [i, j] = (sel && sel !== 'pca' ? sel : '0,1').split(',').map(Number);
    S.P = axisProjection(S.latent, S.n, S.d, i, Math.min(j, S.d));
  }
  S.proj = projectAll(S.latent, S.n, S.d, S.P, S.proj);
  projVersion++;
  if (S.autoView || !S.view) fitToCanvas();
}

/** Fits the view to the cells at equal x/y scale on the canvas as it is now. */
export function fitToCanvas() {
  if (!S.proj) return;
  const c = mapCanvas();
  S.view = fitView(S.proj, S.n, c.width, c.height);
}

/** @param {number} k */
export function axisName(k) {
  const P = S.P;
  if (!P) return '';
  if (P.kind === 'pca') return `PC ${k + 1}`;
  return `z${(k === 0 ? P.i : P.j) + 1}`;
}

export function drawMap() {
  const canvas = mapCanvas();
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) return;
  const W = canvas.width, H = canvas.height;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  const v = S.view;
  if (!S.latent || !S.proj || !v || !S.P) {
    ctx.fillStyle = '#667085';
    ctx.font = '14px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText(S.info ? 'Press Train to start.' : 'Load data to train.', W / 2, H / 2);
    return;
  }
  const f = S.field;
  if (f.canvas && f.view) {
    const [x0, y0] = toPixel(v, W, H, f.view.x0, f.view.y1);
    const [x1, y1] = toPixel(v, W, H, f.view.x1, f.view.y0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(f.canvas, x0, y0, x1 - x0, y1 - y0);
  }
  // Axes through zero, when in range.
  ctx.strokeStyle = '#e4e7ec';
  ctx.lineWidth = 1;
  const [ox, oy] = toPixel(v, W, H, 0, 0);
  ctx.beginPath();
  if (ox > 0 && ox < W) { ctx.moveTo(ox, 0); ctx.lineTo(ox, H); }
  if (oy > 0 && oy < H) { ctx.moveTo(0, oy); ctx.lineTo(W, oy); }
  ctx.stroke();
  if (S.colours && S.colours.index.length === S.n) {
    // Cells above the field and axes, below the labels, rings, walk and probe.
    const g = glRenderer();
    const onGpu = !!g && g.draw(ctx, S.proj, projVersion, S.n, v, W, H, S.colours);
    if (!onGpu) drawPoints(ctx, S.proj, S.n, v, W, H, S.colours);
    canvas.dataset.renderer = onGpu ? 'webgl2' : 'canvas';
  }
  ctx.fillStyle = '#667085';
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'right';
  ctx.fillText(axisName(0), W - 6, H - 6);
  ctx.textAlign = 'left';
  ctx.fillText(axisName(1), 6, 14);
  drawGroups(ctx, W, H);
  drawTraversalPath(ctx, W, H);
  if (S.probe.z) {
    const [px, py] = projectPoint(S.probe.z, S.P);
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

/**
 * Rings around the cells of the highlighted groups (each in its colour) and of the current
 * selection, and the lasso or box being drawn.
 * @param {CanvasRenderingContext2D} ctx @param {number} W @param {number} H
 */
function drawGroups(ctx, W, H) {
  const proj = S.proj, v = S.view;
  if (!proj || !v) return;
  const sets = S.sel.groups.filter((g) => g.shown).map((g) => ({ cells: g.cells, colour: g.colour || GROUP_COLOURS[0], radius: 4.5, width: 1.4 }));
  if (S.sel.current && S.sel.current.length) sets.push({ cells: S.sel.current, colour: SELECTION_COLOUR, radius: 5.8, width: 1.5 });
  drawRings(ctx, proj, S.n, v, W, H, sets);
  const poly = drawnPolygon();
  if (poly) {
    ctx.strokeStyle = SELECTION_COLOUR;
    ctx.fillStyle = 'rgba(47, 111, 222, 0.08)';
    ctx.lineWidth = 1.5;
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    for (let i = 0; i < poly.length; i += 2) {
      const [x, y] = toPixel(v, W, H, poly[i], poly[i + 1]);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
    ctx.setLineDash([]);
  }
}

/** @param {CanvasRenderingContext2D} ctx @param {number} W @param {number} H */
function drawTraversalPath(ctx, W, H) {
  const path = S.trav.path;
  if (!path || !S.trav.shown || !S.P || !S.view) return;
  const d = S.d;
  const a = projectPoint(path.subarray(0, d), S.P);
  const b = projectPoint(path.subarray((TRAV_STEPS - 1) * d, TRAV_STEPS * d), S.P);
  const [x0, y0] = toPixel(S.view, W, H, a[0], a[1]);
  const [x1, y1] = toPixel(S.view, W, H, b[0], b[1]);
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
  const clampX = (/** @type {number} */ x) => Math.max(18, Math.min(W - 18, x));
  const clampY = (/** @type {number} */ y) => Math.max(14, Math.min(H - 4, y));
  ctx.fillText('start', clampX(x0), clampY(y0 - 8));
  ctx.fillText('end', clampX(x1), clampY(y1 - 8));
}

/** The legend of the colouring, and of the decoder field when shown. */
export function renderLegend() {
  const root = $('legend');
  root.replaceChildren();
  const lg = S.colours && S.colours.legend;
  if (lg) {
    root.append(el('p', lg.title, { class: 'legend-title' }));
    if (lg.kind === 'categorical') {
      const ul = el('ul');
      // Each entry selects its cells when clicked (selection.js listens on #legend).
      /** @param {string} name @param {string} colour @param {number} n @param {number} k */
      const add = (name, colour, n, k) => {
        const li = el('li', null, { class: 'pick', tabindex: '0', role: 'button', title: `select the ${n} cells of ${name}` });
        li.dataset.level = String(k);
        const sw = el('span', null, { class: 'swatch' });
        sw.style.background = colour;
        li.append(sw, el('span', `${name} (${n})`));
        ul.append(li);
      };
      const shown = Math.min(lg.levels.length, 40);
      for (let i = 0; i < shown; i++) if (lg.counts[i]) add(lg.levels[i], lg.table[i], lg.counts[i], i);
      if (lg.levels.length > shown) ul.append(el('li', `… and ${lg.levels.length - shown} more`));
      if (lg.counts[lg.levels.length]) add('(no value)', MISSING, lg.counts[lg.levels.length], lg.levels.length);
      root.append(ul, el('p', 'Click an entry to select its cells.', { class: 'legend-hint' }));
    } else if (lg.kind === 'continuous') {
      root.append(colourBar(lg.lo, lg.hi, lg.scale, 'colour-bar'));
    }
  }
  const f = S.field;
  if (f.canvas && f.shown) {
    root.append(el('p', `background: decoded ${f.shown} (expected counts, log scale)`, { class: 'legend-title' }),
      colourBar(f.lo, f.hi, SCALES.field, 'field-bar'));
  }
}

/** @param {number} lo @param {number} hi @param {number[][]} scale @param {string} testid */
function colourBar(lo, hi, scale, testid) {
  const bar = el('div', null, { class: 'colour-bar' });
  bar.dataset.testid = testid;
  const c = el('canvas');
  c.width = 160;
  c.height = 12;
  drawColourBar(c, scale);
  bar.append(el('span', fmtNumber(lo)), c, el('span', fmtNumber(hi)));
  return bar;
}

/** What the map shows when the latent space has more than 2 dimensions. */
export function renderPlaneNote() {
  const note = $('plane-note');
  if (!S.info || S.d <= 2) {
    note.textContent = '';
    return;
  }
  let what;
  const P = S.P;
  if (P && P.kind === 'pca') {
    const [a, b] = P.explained.map((x) => `${(100 * x).toFixed(0)}%`);
    what = `${S.d}-D latent space shown by its first two principal components (${a} and ${b} of the variance).`;
  } else {
    what = `${S.d}-D latent space shown on axes ${axisName(0)} and ${axisName(1)}.`;
  }
  const probe = S.probe.cell >= 0
    ? ` The probe moves in the shown plane through the latent point of the nearest cell (${S.info.cellIds[S.probe.cell] ?? S.probe.cell}); its other coordinates stay fixed.`
    : ' The probe moves in the shown plane through the latent point of the cell nearest to where you click.';
  note.textContent = what + probe;
}

/** The axis choices for the session's dimensions (PCA first for more than 2). */
export function fillAxes() {
  const sel = select('axes');
  const prev = sel.value;
  sel.replaceChildren();
  if (S.d > 2) sel.append(option('pca', 'PCA of the latent means'));
  for (let i = 0; i < S.d; i++) {
    for (let j = i + 1; j < S.d; j++) sel.append(option(`${i},${j}`, `z${i + 1} vs z${j + 1}`));
  }
  if (S.d < 2) sel.append(option('0,1', 'z1'));
  // Keep the choice while the dimensions stay; PCA first for a new space.
  if (S.d === S.axesFor && [...sel.options].some((o) => o.value === prev)) sel.value = prev;
  S.axesFor = S.d;
  $('axes-label').hidden = S.d <= 2;
}
