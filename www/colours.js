// @ts-check
// cellvae page: the map's colourings (computed here, drawn by map-view.js): a metadata
// column (categorical, or continuous when numeric with many values), library size, or a
// gene's expression (asked of the engine, which holds the matrix).
import { PALETTE, MISSING, SCALES, css } from './plot.js';
import { S } from './state.js';
import { $, input, select, message } from './dom.js';
import { renderLegend, drawMap } from './map-view.js';

/** @typedef {import('./map.js').Colours} Colours */

/** @param {(number | null)[]} codes @param {string[]} levels @param {string} title @returns {Colours} */
export function categoricalColours(codes, levels, title) {
  const missingIdx = levels.length;
  const table = levels.map((_, i) => PALETTE[i % PALETTE.length]).concat([MISSING]);
  const index = new Uint16Array(codes.length);
  const counts = new Array(levels.length + 1).fill(0);
  for (let c = 0; c < codes.length; c++) {
    const code = codes[c];
    const k = code === null || code === undefined ? missingIdx : code;
    index[c] = k;
    counts[k]++;
  }
  return { table, index, order: null, legend: { kind: 'categorical', title, levels, counts, table } };
}

/**
 * `clip`: the top of the scale is this quantile (outliers share the top colour).
 * @param {ArrayLike<number>} values @param {string} title @param {'viridis' | 'expression' | 'field'} scaleName
 * @param {number} [lo] @param {number} [clip] @returns {Colours}
 */
export function continuousColours(values, title, scaleName, lo, clip = 1) {
  const scale = SCALES[scaleName];
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
  }
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
  const key = (/** @type {number} */ i) => (Number.isFinite(values[i]) ? values[i] : -Infinity);
  const order = Uint32Array.from({ length: values.length }, (_, i) => i);
  order.sort((a, b) => key(a) - key(b));
  return { table, index, order, values, legend: { kind: 'continuous', title, lo: mn, hi: mx, scale } };
}

/** @param {string} name */
function obsKind(name) {
  const cols = (S.data && S.data.summary.obs_columns) || [];
  const c = cols.find((x) => x.name === name);
  return c ? c.kind : 'categorical';
}

/** One colour for every cell, with a note in the legend. @param {string} title @returns {Colours} */
function plain(title) {
  return { table: [PALETTE[0]], index: new Uint16Array(S.n), order: null, legend: { kind: 'none', title } };
}

/**
 * Colours the cells as the "colour by" choice says, then redraws the map and legend. A
 * gene's expression comes from the engine: the colouring changes when it arrives (only the
 * latest request counts; an unknown gene is marked, with the core's message).
 */
export async function buildColours() {
  const sel = select('colour-by').value;
  const search = input('gene-search');
  $('gene-search-label').hidden = sel !== 'gene';
  search.classList.remove('invalid');
  search.title = '';
  const seq = ++S.colourSeq;
  const info = S.info;
  if (!info) { S.colours = null; S.colourKey = sel; renderLegend(); return; }
  if (sel.startsWith('obs:')) {
    const m = info.meta.find((x) => `obs:${x.name}` === sel);
    if (!m) S.colours = plain(`${sel.slice(4)}: no such column`);
    else if (obsKind(m.name) === 'numeric' && m.levels.length > 20) {
      const vals = new Float32Array(m.codes.length);
      m.codes.forEach((c, i) => { vals[i] = c === null || c === undefined ? NaN : Number(m.levels[c]); });
      S.colours = continuousColours(vals, m.name, 'viridis');
    } else S.colours = categoricalColours(m.codes, m.levels, m.name);
    S.colourKey = sel;
  } else if (sel === 'library') {
    S.colours = continuousColours(info.libraries, 'library size (counts in the modelled genes; top 1% share the top colour)', 'viridis', undefined, 0.99);
    S.colourKey = sel;
  } else {
    const g = search.value.trim();
    if (!g || !S.client) {
      S.colours = plain('type a gene name above');
      S.colourKey = sel;
    } else {
      try {
        const { values } = await S.client.request('expression', { gene: g });
        if (seq !== S.colourSeq) return;
        S.colours = continuousColours(values, `${g}: log1p(counts / total × 10⁴)`, 'expression', 0);
        S.colourKey = `gene:${g}`;
      } catch (e) {
        if (seq !== S.colourSeq) return;
        search.classList.add('invalid');
        search.title = message(e);
        S.colours = plain(message(e));
        S.colourKey = sel;
      }
    }
  }
  renderLegend();
  drawMap();
}
