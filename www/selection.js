// @ts-check
// cellvae page: selecting cells and keeping them as named groups (for compare.js). The
// map's tool (probe/pan, lasso, box: map-input.js hands the lasso and box drags here, in
// points of the plane), a click on a legend entry (the cells of that metadata value), or
// the k cells nearest the probe in the latent space make the *current selection*; a group
// is made from it, renamed, highlighted on the map or deleted. Groups hold cell positions
// (the map's cell order) and belong to the data they were made on: other data drops them.
// The engine keeps them in this browser with the data (`keep_groups`; persist.js brings
// them back with the session).
// map-view.js draws the selection and the highlighted groups; this module only changes the
// state and draws the panel's lists.
import { S } from './state.js';
import { $, button, input, el } from './dom.js';
import { drawMap } from './map-view.js';
import { fillGroupChoices } from './compare.js';

/** Outline colours of the groups on the map (in turn). */
export const GROUP_COLOURS = ['#d92d20', '#1d4ed8', '#059669', '#7c3aed', '#ea580c', '#0e7490', '#be185d', '#4d7c0f'];
/** Outline colour of the current selection. */
export const SELECTION_COLOUR = '#1d2330';

/** The tool the map's left button uses. @param {'probe' | 'lasso' | 'box'} tool */
export function setTool(tool) {
  S.sel.tool = tool;
  S.sel.drawing = null;
  for (const b of document.querySelectorAll('#map-tools button[data-tool]')) {
    b.setAttribute('aria-pressed', /** @type {HTMLElement} */ (b).dataset.tool === tool ? 'true' : 'false');
  }
  $('latent-map').dataset.tool = tool;
}

/** Whether (x, y) lies inside the polygon `poly` (x0, y0, x1, y1, ...; even-odd rule). @param {number[]} poly @param {number} x @param {number} y */
export function insidePolygon(poly, x, y) {
  let inside = false;
  const m = poly.length / 2;
  for (let i = 0, j = m - 1; i < m; j = i++) {
    const xi = poly[2 * i], yi = poly[2 * i + 1], xj = poly[2 * j], yj = poly[2 * j + 1];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The cells whose map positions lie inside `poly` (points of the plane). @param {number[]} poly */
function cellsInPolygon(poly) {
  const proj = S.proj;
  /** @type {number[]} */
  const out = [];
  if (!proj || poly.length < 6) return Uint32Array.from(out);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < poly.length; i += 2) {
    x0 = Math.min(x0, poly[i]); x1 = Math.max(x1, poly[i]);
    y0 = Math.min(y0, poly[i + 1]); y1 = Math.max(y1, poly[i + 1]);
  }
  for (let c = 0; c < S.n; c++) {
    const x = proj[2 * c], y = proj[2 * c + 1];
    if (x < x0 || x > x1 || y < y0 || y > y1) continue;
    if (insidePolygon(poly, x, y)) out.push(c);
  }
  return Uint32Array.from(out);
}

/** The outline drawn so far, as a polygon of the plane (a box: its four corners). */
export function drawnPolygon() {
  const d = S.sel.drawing;
  if (!d || d.length < 4) return null;
  if (S.sel.tool !== 'box') return d;
  const [ax, ay] = d, bx = d[d.length - 2], by = d[d.length - 1];
  return [ax, ay, bx, ay, bx, by, ax, by];
}

/** A lasso or box drag starts at (u, v) of the plane (`add`: Ctrl or ⌘ held, its cells join the selection). @param {number} u @param {number} v @param {boolean} add */
export function selectionStart(u, v, add) {
  S.sel.drawing = [u, v];
  S.sel.adding = add;
  drawMap();
}

/** @param {number} u @param {number} v */
export function selectionMove(u, v) {
  const d = S.sel.drawing;
  if (!d) return;
  if (S.sel.tool === 'box') S.sel.drawing = [d[0], d[1], u, v];
  else d.push(u, v);
  drawMap();
}

/** The drag ends: the cells inside become the selection (nothing when it was cancelled). */
export function selectionEnd() {
  if (!S.sel.drawing) return;
  const poly = drawnPolygon();
  const tool = S.sel.tool;
  S.sel.drawing = null;
  setSelection(poly ? cellsInPolygon(poly) : new Uint32Array(0), tool === 'box' ? 'box' : 'lasso', S.sel.adding);
}

/**
 * Makes `cells` the current selection (`how`: said in the panel), or adds them to it.
 * @param {Uint32Array} cells @param {string} how @param {boolean} [add]
 */
export function setSelection(cells, how, add = false) {
  const cur = S.sel.current;
  if (add && cur && cur.length) {
    const union = new Set(cur);
    for (const c of cells) union.add(c);
    S.sel.current = Uint32Array.from(union).sort();
    S.sel.how = `${S.sel.how} + ${how}`;
  } else {
    S.sel.current = cells;
    S.sel.how = how;
  }
  renderGroups();
  drawMap();
}

/** The cells of metadata level `k` of the colouring shown (a legend click; `add`: with Ctrl or ⌘). @param {number} k @param {boolean} [add] */
export function selectLegendLevel(k, add = false) {
  const col = S.colours;
  const lg = col && col.legend;
  if (!col || !lg || lg.kind !== 'categorical') return;
  /** @type {number[]} */
  const out = [];
  for (let c = 0; c < col.index.length; c++) if (col.index[c] === k) out.push(c);
  const name = k < lg.levels.length ? lg.levels[k] : '(no value)';
  setSelection(Uint32Array.from(out), `${lg.title} = ${name}`, add);
}

/** The `k` cells nearest the probe in the latent space (latent means, Euclidean). @param {number} k */
export function selectNearProbe(k) {
  const z = S.probe.z, lat = S.latent, d = S.d;
  if (!z || !lat) return false;
  const dist = new Float64Array(S.n);
  for (let c = 0; c < S.n; c++) {
    let s = 0;
    for (let j = 0; j < d; j++) { const t = lat[c * d + j] - z[j]; s += t * t; }
    dist[c] = Number.isFinite(s) ? s : Infinity;
  }
  const order = Uint32Array.from({ length: S.n }, (_, i) => i).sort((a, b) => dist[a] - dist[b]);
  const kk = Math.max(1, Math.min(S.n, Math.floor(k)));
  setSelection(order.slice(0, kk).sort(), `the ${kk} cells nearest the probe (latent space)`);
  return true;
}

/** Sends the groups to the engine to keep with the data (store.js); a failure only means they are not kept. */
function keepGroups() {
  if (!S.client || !S.info) return;
  const groups = S.sel.groups.map((g) => ({ id: g.id, name: g.name, cells: g.cells.slice(), colour: g.colour, shown: g.shown }));
  S.client.request('keep_groups', { nextId: S.sel.nextId, groups }).catch(() => {});
}

/** The groups kept with the restored session (persist.js). @param {import('./protocol.js').KeptGroups} kept */
export function restoreGroups(kept) {
  if (!S.info) return;
  S.sel.for = cellsKey(S.info);
  S.sel.groups = kept.groups.map((g) => ({ id: g.id, name: g.name, cells: Uint32Array.from(g.cells), colour: g.colour, shown: g.shown }));
  S.sel.nextId = Math.max(kept.nextId, ...S.sel.groups.map((g) => g.id + 1));
  renderGroups();
  drawMap();
}

/** A new group from the current selection. @param {string} [name] */
export function makeGroup(name) {
  const cur = S.sel.current;
  if (!cur || !cur.length) return null;
  const id = S.sel.nextId++;
  const colour = GROUP_COLOURS[(id - 1) % GROUP_COLOURS.length];
  const group = { id, name: (name || '').trim() || `group ${id}`, cells: cur.slice(), colour, shown: true };
  S.sel.groups.push(group);
  S.sel.current = null;
  S.sel.how = '';
  renderGroups();
  drawMap();
  keepGroups();
  return group;
}

/** @param {number} id @param {string} name */
export function renameGroup(id, name) {
  const g = S.sel.groups.find((x) => x.id === id);
  if (g && name.trim()) g.name = name.trim();
  renderGroups();
  keepGroups();
}

/** @param {number} id */
export function deleteGroup(id) {
  S.sel.groups = S.sel.groups.filter((x) => x.id !== id);
  renderGroups();
  drawMap();
  keepGroups();
}

/** Shows or hides a group's outline on the map. @param {number} id @param {boolean} shown */
function showGroup(id, shown) {
  const g = S.sel.groups.find((x) => x.id === id);
  if (g) g.shown = shown;
  drawMap();
  keepGroups();
}

/** A key of the session's cells: groups made on other cells are dropped. @param {import('./protocol.js').SessionInfo | null} info */
function cellsKey(info) {
  if (!info) return '';
  const ids = info.cellIds;
  return `${ids.length}:${ids[0] ?? ''}:${ids[ids.length - 1] ?? ''}`;
}

/**
 * A new session: keep the selection and groups when it shows the same cells, else drop
 * them. Returns whether the cells are the same.
 * @param {import('./protocol.js').SessionInfo | null} info
 */
export function adoptGroups(info) {
  const key = cellsKey(info);
  if (!info) { renderGroups(); return false; }
  const same = key === S.sel.for;
  if (!same) {
    S.sel.for = key;
    S.sel.current = null;
    S.sel.how = '';
    S.sel.groups = [];
    S.sel.nextId = 1;
  } else if (S.sel.groups.length) keepGroups(); // the same cells loaded again: keep them with the new data entry
  S.sel.drawing = null;
  renderGroups();
  return same;
}

/** Draws the selection line and the groups' list, and refreshes the comparison's choices. */
export function renderGroups() {
  const cur = S.sel.current;
  const n = cur ? cur.length : 0;
  $('selection-note').textContent = n
    ? `Selected: ${n.toLocaleString('en-US')} cells (${S.sel.how}).`
    : 'Nothing selected: draw a lasso or a box on the map, click a legend entry, or pick the cells nearest the probe (hold Ctrl or ⌘ to add to a selection).';
  $('selection-note').dataset.count = String(n);
  button('group-make').disabled = !n;
  button('selection-clear').disabled = !n;
  button('select-near').disabled = !S.info;
  const list = $('groups');
  list.replaceChildren();
  for (const g of S.sel.groups) {
    const li = el('li');
    li.dataset.group = String(g.id);
    const show = el('input', null, { type: 'checkbox', title: 'outline these cells on the map', 'aria-label': `outline ${g.name} on the map` });
    show.checked = g.shown;
    show.addEventListener('change', () => showGroup(g.id, show.checked));
    const sw = el('span', null, { class: 'swatch ring' });
    sw.style.borderColor = g.colour;
    const name = el('input', null, { type: 'text', class: 'group-name', 'aria-label': 'group name', spellcheck: 'false' });
    name.value = g.name;
    name.addEventListener('change', () => renameGroup(g.id, name.value));
    const count = el('span', `${g.cells.length.toLocaleString('en-US')} cells`, { class: 'group-count' });
    const del = el('button', '×', { type: 'button', class: 'group-delete', title: `delete ${g.name}`, 'aria-label': `delete ${g.name}` });
    del.addEventListener('click', () => deleteGroup(g.id));
    li.append(show, sw, name, count, del);
    list.append(li);
  }
  if (!S.sel.groups.length) list.append(el('li', 'No groups yet.', { class: 'muted' }));
  fillGroupChoices();
}

export function wireSelection() {
  for (const b of document.querySelectorAll('#map-tools button[data-tool]')) {
    const tool = /** @type {HTMLElement} */ (b).dataset.tool;
    b.addEventListener('click', () => setTool(tool === 'lasso' || tool === 'box' ? tool : 'probe'));
  }
  setTool('probe');
  // Keys on the map: L lasso, B box, P probe; Escape drops the outline being drawn.
  $('latent-map').addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    /** @type {Record<string, 'probe' | 'lasso' | 'box'>} */
    const keys = { l: 'lasso', b: 'box', p: 'probe' };
    const tool = keys[e.key.toLowerCase()];
    if (tool) { e.preventDefault(); setTool(tool); }
    else if (e.key === 'Escape' && S.sel.drawing) { e.preventDefault(); S.sel.drawing = null; drawMap(); }
  });
  // A click on a legend entry (colour by a metadata column) selects its cells.
  $('legend').addEventListener('click', (e) => {
    const li = e.target instanceof Element ? e.target.closest('li[data-level]') : null;
    if (li instanceof HTMLElement) selectLegendLevel(Number(li.dataset.level), e.ctrlKey || e.metaKey);
  });
  $('legend').addEventListener('keydown', (e) => {
    const li = e.target instanceof HTMLElement && e.target.matches('li[data-level]') ? e.target : null;
    if (li && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); selectLegendLevel(Number(li.dataset.level), e.ctrlKey || e.metaKey); }
  });
  button('group-make').addEventListener('click', () => {
    makeGroup(input('group-name').value);
    input('group-name').value = '';
  });
  button('selection-clear').addEventListener('click', () => setSelection(new Uint32Array(0), ''));
  button('select-near').addEventListener('click', () => {
    const k = Number(input('near-k').value);
    if (!(k >= 1)) { input('near-k').classList.add('invalid'); return; }
    input('near-k').classList.remove('invalid');
    if (!selectNearProbe(k)) $('selection-note').textContent = 'Place the probe first: click on the map with the probe tool.';
  });
  renderGroups();
}
