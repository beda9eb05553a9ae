// @ts-check
// cellvae page: the latent map's geometry and drawing. Projections of the latent means
// to the plane (an axis pair, or PCA with stable orientation), the view (zoom and pan),
// hit testing, and a fast point renderer (each cell's dot stamped into the canvas's pixels,
// no canvas call per cell; the dot shrinks as the cells grow in number, dotRadius), so
// 100,000 cells redraw in a few milliseconds. Pure functions of their arguments; the map's
// size is whatever the canvas is (any aspect ratio).

/**
 * The plane shown: p = (z - center) . [a1, a2]; `base` is the mean latent point.
 * @typedef {{kind: 'axes', i: number, j: number, center: Float64Array, axes: Float64Array[], base: Float64Array}
 *   | {kind: 'pca', center: Float64Array, axes: Float64Array[], base: Float64Array, explained: number[]}} Projection
 * The part of the plane shown on the canvas.
 * @typedef {{x0: number, x1: number, y0: number, y1: number}} View
 * Colours of the cells: `table` (CSS colours), `index` (a colour per cell), `order` (draw
 * order, later on top; null: cell order), `values` (continuous colourings), `legend`.
 * @typedef {{table: string[], index: Uint16Array, order: Uint32Array | null, values?: ArrayLike<number>, legend?: Legend}} Colours
 * @typedef {{kind: 'categorical', title: string, levels: string[], counts: number[], table: string[]}
 *   | {kind: 'continuous', title: string, lo: number, hi: number, scale: number[][]}
 *   | {kind: 'none', title: string}} Legend
 */

// ---- projection --------------------------------------------------------------------------

/** @param {Float32Array} latent @param {number} n @param {number} d @param {number} i @param {number} j @returns {Projection} */
export function axisProjection(latent, n, d, i, j) {
  const center = new Float64Array(d);
  const a1 = new Float64Array(d);
  const a2 = new Float64Array(d);
  a1[i] = 1;
  if (j < d) a2[j] = 1;
  return { kind: 'axes', i, j, center, axes: [a1, a2], base: meanOf(latent, n, d) };
}

/** @param {Float32Array} latent @param {number} n @param {number} d */
function meanOf(latent, n, d) {
  const m = new Float64Array(d);
  let k = 0;
  for (let c = 0; c < n; c++) {
    let ok = true;
    for (let j = 0; j < d; j++) if (!Number.isFinite(latent[c * d + j])) ok = false;
    if (!ok) continue;
    for (let j = 0; j < d; j++) m[j] += latent[c * d + j];
    k++;
  }
  if (k) for (let j = 0; j < d; j++) m[j] /= k;
  return m;
}

/** @param {ArrayLike<number>} a @param {ArrayLike<number>} b */
function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

// Top eigenvector of a symmetric d x d matrix (row-major) by power iteration.
/** @param {Float64Array} cov @param {number} d @param {ArrayLike<number>} start */
function powerIteration(cov, d, start) {
  let v = Float64Array.from(start);
  if (!(Math.sqrt(dot(v, v)) > 0)) { v = new Float64Array(d); v[0] = 1; }
  let lambda = 0;
  for (let it = 0; it < 300; it++) {
    const w = new Float64Array(d);
    for (let r = 0; r < d; r++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += cov[r * d + c] * v[c];
      w[r] = s;
    }
    const norm = Math.sqrt(dot(w, w));
    if (!(norm > 1e-30)) break;
    for (let r = 0; r < d; r++) w[r] /= norm;
    const diff = Math.abs(1 - Math.abs(dot(w, v)));
    v = w;
    lambda = norm;
    if (diff < 1e-12) break;
  }
  return { v, lambda };
}

// PCA of the latent means (two components) by power iteration on the d x d covariance
// with deflation. Each component's sign is aligned with `prev` (the last redraw's axes),
// so the picture does not flip while training moves the points.
/** @param {Float32Array} latent @param {number} n @param {number} d @param {Float64Array[] | null} prev @returns {Projection} */
export function pcaProjection(latent, n, d, prev) {
  const mean = meanOf(latent, n, d);
  const cov = new Float64Array(d * d);
  let k = 0;
  const row = new Float64Array(d);
  // Many cells: the covariance of an even subsample of about 3,000 is plenty.
  const stride = Math.max(1, Math.ceil(n / 3000));
  for (let c = 0; c < n; c += stride) {
    let ok = true;
    for (let j = 0; j < d; j++) {
      row[j] = latent[c * d + j] - mean[j];
      if (!Number.isFinite(row[j])) ok = false;
    }
    if (!ok) continue;
    k++;
    for (let r = 0; r < d; r++) for (let s = r; s < d; s++) cov[r * d + s] += row[r] * row[s];
  }
  for (let r = 0; r < d; r++) {
    for (let s = r; s < d; s++) {
      cov[r * d + s] /= Math.max(1, k - 1);
      cov[s * d + r] = cov[r * d + s];
    }
  }
  const start1 = prev ? prev[0] : Float64Array.from({ length: d }, (_, i) => 1 / Math.sqrt(d) + i * 1e-3);
  const { v: v1, lambda: l1 } = powerIteration(cov, d, start1);
  const defl = Float64Array.from(cov);
  for (let r = 0; r < d; r++) for (let s = 0; s < d; s++) defl[r * d + s] -= l1 * v1[r] * v1[s];
  const start2 = prev ? prev[1] : Float64Array.from({ length: d }, (_, i) => (i % 2 ? 1 : -1) / Math.sqrt(d) + i * 1e-3);
  let { v: v2, lambda: l2 } = powerIteration(defl, d, start2);
  // Keep v2 orthogonal to v1 exactly.
  const p = dot(v2, v1);
  for (let r = 0; r < d; r++) v2[r] -= p * v1[r];
  const n2 = Math.sqrt(dot(v2, v2));
  if (n2 > 0) for (let r = 0; r < d; r++) v2[r] /= n2;
  const axes = [v1, v2];
  axes.forEach((v, i) => {
    let flip;
    if (prev) flip = dot(v, prev[i]) < 0;
    else {
      // First time: the largest coordinate positive.
      let big = 0;
      for (let r = 0; r < d; r++) if (Math.abs(v[r]) > Math.abs(v[big])) big = r;
      flip = v[big] < 0;
    }
    if (flip) for (let r = 0; r < d; r++) v[r] = -v[r];
  });
  const total = Array.from({ length: d }, (_, r) => cov[r * d + r]).reduce((a, b) => a + b, 0);
  return { kind: 'pca', center: mean, axes, base: mean, explained: total > 0 ? [l1 / total, l2 / total] : [0, 0] };
}

/** @param {Float32Array} latent @param {number} n @param {number} d @param {Projection} P @param {Float32Array | null} out */
export function projectAll(latent, n, d, P, out) {
  const proj = out && out.length === 2 * n ? out : new Float32Array(2 * n);
  const [a1, a2] = P.axes;
  if (P.kind === 'axes') {
    for (let c = 0; c < n; c++) {
      proj[2 * c] = latent[c * d + P.i];
      proj[2 * c + 1] = P.j < d ? latent[c * d + P.j] : 0;
    }
    return proj;
  }
  for (let c = 0; c < n; c++) {
    let x = 0, y = 0;
    for (let j = 0; j < d; j++) {
      const v = latent[c * d + j] - P.center[j];
      x += v * a1[j];
      y += v * a2[j];
    }
    proj[2 * c] = x;
    proj[2 * c + 1] = y;
  }
  return proj;
}

/** @param {ArrayLike<number>} z @param {Projection} P @returns {[number, number]} */
export function projectPoint(z, P) {
  let x = 0, y = 0;
  for (let j = 0; j < z.length; j++) {
    const v = z[j] - P.center[j];
    x += v * P.axes[0][j];
    y += v * P.axes[1][j];
  }
  return [x, y];
}

// The latent point that projects to (u, v) in the plane through `anchor` spanned by the
// projection's axes.
/** @param {number} u @param {number} v @param {Float64Array} anchor @param {Projection} P */
export function planePoint(u, v, anchor, P) {
  const [pu, pv] = projectPoint(anchor, P);
  const z = Float64Array.from(anchor);
  for (let j = 0; j < z.length; j++) z[j] += (u - pu) * P.axes[0][j] + (v - pv) * P.axes[1][j];
  return z;
}

// ---- view ----------------------------------------------------------------------------------

/**
 * The view that shows every cell with a margin, at equal x and y scale on a W x H canvas
 * (the shorter extent widened), so a non-square map does not stretch the latent space.
 * @param {Float32Array} proj @param {number} n @param {number} W @param {number} H @returns {View}
 */
export function fitView(proj, n, W, H) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let c = 0; c < n; c++) {
    const x = proj[2 * c], y = proj[2 * c + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < x0) x0 = x; if (x > x1) x1 = x;
    if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  if (!Number.isFinite(x0)) return equalScale({ x0: -1, x1: 1, y0: -1, y1: 1 }, W, H);
  const px = Math.max((x1 - x0) * 0.06, 1e-3), py = Math.max((y1 - y0) * 0.06, 1e-3);
  return equalScale({ x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py }, W, H);
}

/** Widens the shorter extent of `v` (about its centre) so x and y have one scale on W x H. @param {View} v @param {number} W @param {number} H @returns {View} */
export function equalScale(v, W, H) {
  const sx = (v.x1 - v.x0) / W, sy = (v.y1 - v.y0) / H;
  if (!(W > 0 && H > 0) || !(sx > 0 && sy > 0)) return v;
  if (sx > sy) {
    const cy = (v.y0 + v.y1) / 2, h = (sx * H) / 2;
    return { x0: v.x0, x1: v.x1, y0: cy - h, y1: cy + h };
  }
  const cx = (v.x0 + v.x1) / 2, w = (sy * W) / 2;
  return { x0: cx - w, x1: cx + w, y0: v.y0, y1: v.y1 };
}

/** The view kept at its centre and x scale when the canvas changes to W x H. @param {View} v @param {number} oldW @param {number} W @param {number} H @returns {View} */
export function resizeView(v, oldW, W, H) {
  const scale = (v.x1 - v.x0) / Math.max(1, oldW);
  const cx = (v.x0 + v.x1) / 2, cy = (v.y0 + v.y1) / 2;
  return { x0: cx - (scale * W) / 2, x1: cx + (scale * W) / 2, y0: cy - (scale * H) / 2, y1: cy + (scale * H) / 2 };
}

/** @param {View} v @param {number} W @param {number} H @param {number} x @param {number} y @returns {[number, number]} */
export function toPixel(v, W, H, x, y) {
  return [((x - v.x0) / (v.x1 - v.x0)) * W, (1 - (y - v.y0) / (v.y1 - v.y0)) * H];
}

/** @param {View} v @param {number} W @param {number} H @param {number} px @param {number} py @returns {[number, number]} */
export function toPlane(v, W, H, px, py) {
  return [v.x0 + (px / W) * (v.x1 - v.x0), v.y0 + (1 - py / H) * (v.y1 - v.y0)];
}

// Zoom by `factor` (< 1 zooms in) around the pixel (px, py).
/** @param {View} v @param {number} W @param {number} H @param {number} px @param {number} py @param {number} factor @returns {View} */
export function zoomView(v, W, H, px, py, factor) {
  const [cx, cy] = toPlane(v, W, H, px, py);
  return {
    x0: cx + (v.x0 - cx) * factor, x1: cx + (v.x1 - cx) * factor,
    y0: cy + (v.y0 - cy) * factor, y1: cy + (v.y1 - cy) * factor,
  };
}

/** @param {View} v @param {number} W @param {number} H @param {number} dxPx @param {number} dyPx @returns {View} */
export function panView(v, W, H, dxPx, dyPx) {
  const dx = (-dxPx / W) * (v.x1 - v.x0), dy = (dyPx / H) * (v.y1 - v.y0);
  return { x0: v.x0 + dx, x1: v.x1 + dx, y0: v.y0 + dy, y1: v.y1 + dy };
}

// The cell nearest to pixel (px, py) within `radius` pixels, or -1.
/** @param {Float32Array} proj @param {number} n @param {View} v @param {number} W @param {number} H @param {number} px @param {number} py @param {number} [radius] */
export function hitTest(proj, n, v, W, H, px, py, radius = 6) {
  const sx = W / (v.x1 - v.x0), sy = H / (v.y1 - v.y0);
  let best = -1, bestD = radius * radius;
  for (let c = 0; c < n; c++) {
    const dx = (proj[2 * c] - v.x0) * sx - px;
    const dy = H - (proj[2 * c + 1] - v.y0) * sy - py;
    const d2 = dx * dx + dy * dy;
    if (d2 <= bestD) { bestD = d2; best = c; }
  }
  return best;
}

// The cell nearest to a point of the plane (no radius).
/** @param {Float32Array} proj @param {number} n @param {number} x @param {number} y */
export function nearestInPlane(proj, n, x, y) {
  let best = -1, bestD = Infinity;
  for (let c = 0; c < n; c++) {
    const dx = proj[2 * c] - x, dy = proj[2 * c + 1] - y;
    const d2 = dx * dx + dy * dy;
    if (d2 < bestD) { bestD = d2; best = c; }
  }
  return best;
}

// ---- points --------------------------------------------------------------------------------

// The size of a cell's dot falls as the number of cells grows (as scanpy's default marker
// area, 120,000 / n, and CELLxGENE's shrinking points do): at 100,000 cells and more, big
// dots only cover one another. A dot is a disc of radius `dotRadius(n)` px: 2.6 up to
// 20,000 cells, then its area falls as 1 / n (radius 2.6 sqrt(20,000 / n)) down to a
// single pixel (radius 0.5) from 540,800 cells on. So the ink of the whole map stays about
// what 20,000 cells put down, the clusters keep their shape instead of growing into
// blobs, and a million cells draw as a million pixels. Every path draws this one rule
// (gl-points.js sizes its points by it too).
export const DOT_RADIUS = 2.6;
export const DOT_FULL_UNTIL = 20000;
/** The radius in px of each cell's dot when `n` cells are drawn. @param {number} n */
export function dotRadius(n) {
  if (!(n > DOT_FULL_UNTIL)) return DOT_RADIUS;
  return Math.max(0.5, DOT_RADIUS * Math.sqrt(DOT_FULL_UNTIL / n));
}

/** Half the side of the square a dot of radius `r` covers: its pixels lie within dx, dy in -R..R. @param {number} r */
export function dotReach(r) {
  return Math.max(0, Math.ceil(r + 0.5) - 1);
}

/**
 * The pixels of a dot of radius `r` centred on a pixel: [dx, dy, coverage], coverage the
 * part of the pixel (its centre at distance d) inside the disc, clamp(r + 0.5 - d, 0, 1).
 * @param {number} r
 */
export function dotStamp(r) {
  /** @type {number[][]} */
  const out = [];
  const R = dotReach(r);
  for (let dy = -R; dy <= R; dy++) {
    for (let dx = -R; dx <= R; dx++) {
      const cover = Math.max(0, Math.min(1, r + 0.5 - Math.hypot(dx, dy)));
      if (cover > 0) out.push([dx, dy, cover]);
    }
  }
  return out;
}
const ALPHA = 0.85;

/** @type {Map<string, number[]>} */
const rgbCache = new Map();
/** The r, g, b of a CSS colour as colours.js writes them (#rrggbb or rgb(r, g, b)). @param {string} colour */
export function rgbOf(colour) {
  let v = rgbCache.get(colour);
  if (!v) {
    const m = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(colour);
    v = m ? [Number(m[1]), Number(m[2]), Number(m[3])]
      : [parseInt(colour.slice(1, 3), 16), parseInt(colour.slice(3, 5), 16), parseInt(colour.slice(5, 7), 16)];
    rgbCache.set(colour, v);
  }
  return v;
}

// Draws every cell into the canvas's pixels: `colours.table` (CSS colours),
// `colours.index` (per cell), `colours.order` (draw order, later on top), each a dot of
// radius dotRadius(n). One getImageData/putImageData per redraw and no canvas call per
// cell. The pixels are read and written as 32-bit words (RGBA in memory; WebAssembly and
// every browser this page runs in are little-endian, so a word is 0xAABBGGRR) and blended
// in 32-bit integers, red and blue in one multiply: out = (a c + (256 - a) dst + 128) >> 8,
// a the alpha in 256ths, within a level of the float blend; a c + 128 is worked out once
// for each colour and pixel of the dot. A dot of one pixel (many cells) has a loop of its
// own. (The fallback of gl-points.js, and the picture it is tested against.)
/** @param {CanvasRenderingContext2D} ctx @param {Float32Array} proj @param {number} n @param {View} v @param {number} W @param {number} H @param {Colours} colours */
export function drawPoints(ctx, proj, n, v, W, H, colours) {
  const img = ctx.getImageData(0, 0, W, H);
  const px = new Int32Array(img.data.buffer, img.data.byteOffset, W * H);
  const sx = W / (v.x1 - v.x0), sy = H / (v.y1 - v.y0);
  const x0 = v.x0, y0 = v.y0;
  const order = colours.order, index = colours.index;
  const m = Math.min(n, order ? order.length : n);
  const radius = dotRadius(n);
  const R = dotReach(radius);
  // The dot's pixels (those whose alpha rounds to 0 in 256ths are left out: they would not
  // change), as offsets into `px` for this width, with 256 - alpha.
  const stamp = dotStamp(radius).filter((o) => Math.round(ALPHA * o[2] * 256) > 0);
  const nd = stamp.length;
  const off = new Int32Array(nd), keep = new Int32Array(nd), sdx = new Int32Array(nd), sdy = new Int32Array(nd);
  // Each colour at each of the dot's pixels: a c + 128 for red and blue (one word, 16 bits
  // each), and for green.
  const nt = colours.table.length;
  const crb = new Int32Array(nt * nd), cg = new Int32Array(nt * nd);
  for (let q = 0; q < nd; q++) {
    sdx[q] = stamp[q][0];
    sdy[q] = stamp[q][1];
    off[q] = sdy[q] * W + sdx[q];
    const a = Math.round(ALPHA * stamp[q][2] * 256);
    keep[q] = 256 - a;
    for (let t = 0; t < nt; t++) {
      const [r, g, b] = rgbOf(colours.table[t]);
      crb[t * nd + q] = (Math.imul(r | (b << 16), a) + 0x800080) | 0;
      cg[t * nd + q] = Math.imul(g << 8, a) + 0x8000;
    }
  }
  if (R === 0) {
    // One pixel a cell.
    const na = keep[0];
    for (let k = 0; k < m; k++) {
      const c = order ? order[k] : k;
      // x = round((px - x0) sx), y = round(H - (py - y0) sy), as toPixel and the GL path.
      const fx = (proj[2 * c] - x0) * sx + 0.5;
      const fy = H - (proj[2 * c + 1] - y0) * sy + 0.5;
      if (!(fx >= 0 && fx < W && fy >= 0 && fy < H)) continue;
      const i = (fy | 0) * W + (fx | 0);
      const p = px[i], t = index[c];
      px[i] = ((((Math.imul(p & 0xff00ff, na) + crb[t]) | 0) >>> 8) & 0xff00ff) | (((Math.imul(p & 0xff00, na) + cg[t]) >>> 8) & 0xff00) | (p & -0x1000000);
    }
    ctx.putImageData(img, 0, 0);
    return;
  }
  for (let k = 0; k < m; k++) {
    const c = order ? order[k] : k;
    const fx = (proj[2 * c] - x0) * sx + 0.5;
    const fy = H - (proj[2 * c + 1] - y0) * sy + 0.5;
    if (!(fx > -R && fx < W + R && fy > -R && fy < H + R)) continue;
    // floor(f) for f > -R - 1 (truncation of a positive number).
    const x = ((fx + R + 1) | 0) - R - 1, y = ((fy + R + 1) | 0) - R - 1;
    const tq = index[c] * nd;
    if (x >= R && y >= R && x < W - R && y < H - R) {
      // Wholly inside: no bounds checks.
      const base = y * W + x;
      for (let q = 0; q < nd; q++) {
        const i = base + off[q], p = px[i], na = keep[q];
        px[i] = ((((Math.imul(p & 0xff00ff, na) + crb[tq + q]) | 0) >>> 8) & 0xff00ff) | (((Math.imul(p & 0xff00, na) + cg[tq + q]) >>> 8) & 0xff00) | (p & -0x1000000);
      }
      continue;
    }
    for (let q = 0; q < nd; q++) {
      const xx = x + sdx[q], yy = y + sdy[q];
      if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
      const i = yy * W + xx, p = px[i], na = keep[q];
      px[i] = ((((Math.imul(p & 0xff00ff, na) + crb[tq + q]) | 0) >>> 8) & 0xff00ff) | (((Math.imul(p & 0xff00, na) + cg[tq + q]) >>> 8) & 0xff00) | (p & -0x1000000);
    }
  }
  ctx.putImageData(img, 0, 0);
}

// Pixels of a ring of radius r and line width w with their coverage.
/** @param {number} r @param {number} w */
function ringStamp(r, w) {
  /** @type {number[][]} */
  const out = [];
  const R = Math.ceil(r + w);
  for (let dy = -R; dy <= R; dy++) {
    for (let dx = -R; dx <= R; dx++) {
      const cover = Math.max(0, Math.min(1, w / 2 + 0.5 - Math.abs(Math.hypot(dx, dy) - r)));
      if (cover > 0) out.push([dx, dy, cover]);
    }
  }
  return out;
}

/** @type {Map<string, number[][]>} */
const ringCache = new Map();

// Rings around sets of cells (a group's, the selection's), stamped into the canvas's
// pixels like drawPoints (one getImageData/putImageData for every set), so outlining
// thousands of cells costs a few milliseconds.
/**
 * @param {CanvasRenderingContext2D} ctx @param {Float32Array} proj @param {number} n @param {View} v @param {number} W @param {number} H
 * @param {{cells: ArrayLike<number>, colour: string, radius: number, width: number}[]} sets
 */
export function drawRings(ctx, proj, n, v, W, H, sets) {
  if (!sets.some((s) => s.cells.length)) return;
  const img = ctx.getImageData(0, 0, W, H);
  const px = img.data;
  const sx = W / (v.x1 - v.x0), sy = H / (v.y1 - v.y0);
  for (const set of sets) {
    const key = `${set.radius}/${set.width}`;
    let stamp = ringCache.get(key);
    if (!stamp) { stamp = ringStamp(set.radius, set.width); ringCache.set(key, stamp); }
    const [r, g, b] = rgbOf(set.colour);
    const m = Math.ceil(set.radius + set.width) + 1;
    for (let k = 0; k < set.cells.length; k++) {
      const c = set.cells[k];
      if (c >= n) continue;
      const x = Math.round((proj[2 * c] - v.x0) * sx);
      const y = Math.round(H - (proj[2 * c + 1] - v.y0) * sy);
      if (!(x > -m && x < W + m && y > -m && y < H + m)) continue;
      for (const [dx, dy, a] of stamp) {
        const xx = x + dx, yy = y + dy;
        if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
        const i = (yy * W + xx) * 4;
        px[i] += a * (r - px[i]);
        px[i + 1] += a * (g - px[i + 1]);
        px[i + 2] += a * (b - px[i + 2]);
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}
