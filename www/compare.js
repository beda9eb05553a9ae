// @ts-check
// cellvae page: comparing two groups of cells with the model (issue 14). The panel's form
// (group 1, group 2 or the rest, decode as, draws, seed) sends a `compare` request to the
// engine (worker or page: src/session/compare.rs, scvi-tools' "change" mode); the answer
// is kept in the state and drawn as a volcano plot (volcano.js) and a table (search, sort
// by a column, the top rows), with its CSV for download. A gene chosen in either colours
// the map by that gene and pins it in the probe's profile. Gene names from the user's
// files are only ever set with textContent (and drawn with fillText).
import { S } from './state.js';
import { $, button, input, select, el, option, message } from './dom.js';
import { fmtNumber } from './plot.js';
import { buildColours } from './colours.js';
import { renderPins, renderProbe } from './probe.js';
import { download } from './export.js';
import { drawVolcano, volcanoHit } from './volcano.js';

/** @typedef {import('./protocol.js').GeneRow} GeneRow */
/** @typedef {import('./protocol.js').CompareOptions} CompareOptions */

/** Rows shown in the table (the search finds the others). */
export const TABLE_ROWS = 200;

/** The table's columns: key, header, how a value is written. */
const COLUMNS = /** @type {const} */ ([
  ['name', 'gene'],
  ['lfc_mean', 'LFC'],
  ['proba_de', 'P(DE)'],
  ['raw_mean1', 'mean 1'],
  ['raw_mean2', 'mean 2'],
]);

/** The group choices: the current selection, the named groups (and for group 2, the rest). */
export function fillGroupChoices() {
  const n = S.sel.current ? S.sel.current.length : 0;
  for (const [id, rest] of /** @type {const} */ ([['cmp-group1', false], ['cmp-group2', true]])) {
    const sel = select(id);
    const prev = sel.value;
    sel.replaceChildren();
    if (rest) sel.append(option('rest', 'the rest (every other cell)'));
    for (const g of S.sel.groups) sel.append(option(`g:${g.id}`, `${g.name} (${g.cells.length})`));
    sel.append(option('sel', `the current selection (${n})`));
    const values = [...sel.options].map((o) => o.value);
    // Keep the choice, unless it is the selection just emptied (made into a group).
    if (values.includes(prev) && (prev !== 'sel' || n > 0)) sel.value = prev;
    else if (!rest) sel.value = S.sel.groups.length ? `g:${S.sel.groups[0].id}` : 'sel';
    else sel.value = S.sel.groups.length > 1 ? `g:${S.sel.groups[1].id}` : 'rest';
  }
  setRunButton();
}

/** The cells and name of a group choice ('rest': none, meaning every other cell). @param {string} v @returns {[Uint32Array, string]} */
function groupOf(v) {
  if (v === 'rest') return [new Uint32Array(0), 'the rest'];
  if (v === 'sel') return [S.sel.current ? S.sel.current.slice() : new Uint32Array(0), 'the selection'];
  const g = S.sel.groups.find((x) => `g:${x.id}` === v);
  return g ? [g.cells.slice(), g.name] : [new Uint32Array(0), v];
}

/** The comparison's settings from the form. @returns {CompareOptions} */
function readCompareOptions() {
  /** @type {CompareOptions} */
  const o = {};
  const n = Math.floor(Number(input('cmp-samples').value));
  if (n >= 1) o.n_samples = n;
  const seed = Math.floor(Number(input('cmp-seed').value));
  if (seed >= 0) o.seed = seed;
  const d = select('cmp-decode').value;
  if (d === 'all') o.decode_as = { kind: 'all_batches' };
  else if (d.startsWith('b:')) o.decode_as = { kind: 'batch', batch: Number(d.slice(2)) };
  else o.decode_as = { kind: 'observed' };
  return o;
}

function setRunButton() {
  button('cmp-run').disabled = !S.info || !S.client || S.cmp.running;
  button('cmp-run').textContent = S.cmp.running ? 'Comparing…' : 'Compare';
  button('cmp-export').disabled = !S.cmp.result;
}

/** Runs the comparison the form describes. Resolves when it is drawn (or its error shown). */
export async function runCompare() {
  if (!S.client || !S.info || S.cmp.running) return;
  const [group1, name1] = groupOf(select('cmp-group1').value);
  const [group2, name2] = groupOf(select('cmp-group2').value);
  const options = readCompareOptions();
  const session = S.info.session;
  const epoch = S.status ? S.status.epoch : 0;
  S.cmp.running = true;
  S.cmp.error = null;
  $('cmp-status').textContent = `Comparing ${name1} (${group1.length}) with ${name2}${group2.length ? ` (${group2.length})` : ''}: ${options.n_samples ?? 5000} posterior draws per group…`;
  renderCompare();
  try {
    const r = await S.client.request('compare', { group1, group2, options });
    if (!S.info || S.info.session !== session) throw new Error('the model changed while comparing: run it again');
    S.cmp.result = r;
    S.cmp.names = [name1, name2];
    S.cmp.epoch = epoch;
    S.cmp.chosen = -1;
    $('cmp-status').textContent = '';
  } catch (e) {
    S.cmp.error = `The comparison failed: ${message(e)}`;
    $('cmp-status').textContent = '';
  } finally {
    S.cmp.running = false;
    renderCompare();
  }
}

/** The result's rows the table shows: filtered by the search, sorted by the chosen column. */
export function tableRows() {
  const r = S.cmp.result;
  if (!r) return [];
  const q = S.cmp.filter.trim().toLowerCase();
  const key = /** @type {keyof GeneRow} */ (S.cmp.sort);
  const rows = q ? r.genes.filter((g) => (g.name || g.id).toLowerCase().includes(q) || g.id.toLowerCase().includes(q)) : r.genes.slice();
  const sign = S.cmp.desc ? -1 : 1;
  if (key === 'name') rows.sort((a, b) => sign * (a.name || a.id).localeCompare(b.name || b.id));
  else rows.sort((a, b) => sign * ((Number(a[key]) || 0) - (Number(b[key]) || 0)));
  return rows;
}

/** Colours the map by a gene of the comparison and pins it in the probe's profile. @param {GeneRow} row */
export function chooseGene(row) {
  S.cmp.chosen = row.gene;
  select('colour-by').value = 'gene';
  input('gene-search').value = row.name || row.id;
  buildColours();
  const names = S.info ? S.info.genes : [];
  if (row.gene >= 0 && row.gene < names.length && !S.pins.includes(row.gene)) {
    S.pins.push(row.gene);
    S.pinNames = S.pins.map((q) => names[q]);
    renderPins();
    renderProbe();
  }
  renderCompare();
}

/** @param {GeneRow} g @param {string} key */
function cell(g, key) {
  if (key === 'name') return g.name || g.id;
  if (key === 'proba_de') return g.proba_de.toFixed(3);
  return fmtNumber(/** @type {number} */ (g[/** @type {keyof GeneRow} */ (key)]));
}

function renderTable() {
  const table = $('cmp-table');
  const head = el('tr');
  for (const [key, title] of COLUMNS) {
    const th = el('th', null, { scope: 'col' });
    const b = el('button', title + (S.cmp.sort === key ? (S.cmp.desc ? ' ▼' : ' ▲') : ''), { type: 'button', class: 'sort' });
    b.dataset.sort = key;
    th.setAttribute('aria-sort', S.cmp.sort === key ? (S.cmp.desc ? 'descending' : 'ascending') : 'none');
    th.append(b);
    head.append(th);
  }
  const body = el('tbody');
  const rows = tableRows();
  for (const g of rows.slice(0, TABLE_ROWS)) {
    const tr = el('tr', null, { tabindex: '0' });
    tr.dataset.gene = String(g.gene);
    if (g.is_de_fdr) tr.classList.add('called');
    if (g.gene === S.cmp.chosen) tr.classList.add('chosen');
    for (const [key] of COLUMNS) tr.append(el('td', cell(g, key)));
    body.append(tr);
  }
  const thead = el('thead');
  thead.append(head);
  table.replaceChildren(thead, body);
  const all = S.cmp.result ? S.cmp.result.genes.length : 0;
  $('cmp-shown').textContent = rows.length > TABLE_ROWS
    ? `The first ${TABLE_ROWS} of ${rows.length} genes shown${S.cmp.filter ? ' matching the search' : ''}; search to find the others.`
    : `${rows.length} of ${all} genes${S.cmp.filter ? ' match the search' : ''}.`;
}

/** Draws the comparison panel from the state (form state, error, results). */
export function renderCompare() {
  setRunButton();
  const err = $('cmp-error');
  err.textContent = S.cmp.error || '';
  err.hidden = !S.cmp.error;
  const r = S.cmp.result;
  $('cmp-results').hidden = !r;
  if (!r) return;
  const [a, b] = S.cmp.names;
  const fdr = r.options.fdr_target ?? 0.05;
  const levels = S.info ? S.info.batchLevels : [];
  const dec = r.options.decode_as;
  const decoded = !dec || dec.kind === 'observed' ? (levels.length > 1 ? ' Decoded as each cell’s own batch.' : '')
    : dec.kind === 'all_batches' ? ' Decoded as every batch in turn.' : ` Decoded as batch ${levels[dec.batch] ?? dec.batch}.`;
  $('cmp-summary').textContent = `${a} (${r.n_cells1} cells) vs ${b} (${r.n_cells2} cells): ${r.n_de} of ${r.genes.length} genes `
    + `called at an expected false discovery rate of ${Math.round(fdr * 100)}% (the model at epoch ${S.cmp.epoch}).${decoded}`;
  drawVolcano(/** @type {HTMLCanvasElement} */ ($('volcano')), r.genes, r.options.delta ?? 0.25, S.cmp.chosen);
  renderTable();
}

/**
 * A new session: the decode-as choices for its batches; a result for other cells or genes goes.
 * @param {import('./protocol.js').SessionInfo | null} info @param {boolean} sameCells
 */
export function adoptCompare(info, sameCells) {
  const dec = select('cmp-decode');
  dec.replaceChildren(option('observed', 'each cell’s own batch (observed)'));
  const levels = info ? info.batchLevels : [];
  if (levels.length > 1) {
    dec.append(option('all', 'every batch in turn (batch effects cancel)'));
    levels.forEach((l, i) => dec.append(option(`b:${i}`, `batch ${l}`)));
  }
  $('cmp-decode-label').hidden = levels.length < 2;
  const r = S.cmp.result;
  if (!info || !sameCells || (r && (r.genes.length !== info.nGenes || r.genes.some((g) => info.genes[g.gene] !== g.name)))) {
    S.cmp.result = null;
    S.cmp.chosen = -1;
  }
  S.cmp.error = null;
  renderCompare();
}

export function wireCompare() {
  button('cmp-run').addEventListener('click', () => { runCompare(); });
  button('cmp-export').addEventListener('click', () => {
    const r = S.cmp.result;
    if (r) download('result.csv', new Blob([r.csv], { type: 'text/csv' }), 'cmp-status');
  });
  const search = input('cmp-search');
  search.addEventListener('input', () => { S.cmp.filter = search.value; renderTable(); });
  $('cmp-table').addEventListener('click', (e) => {
    const t = e.target instanceof Element ? e.target : null;
    const sort = t && t.closest('button[data-sort]');
    if (sort instanceof HTMLElement) {
      const key = sort.dataset.sort || 'proba_de';
      S.cmp.desc = S.cmp.sort === key ? !S.cmp.desc : key !== 'name';
      S.cmp.sort = key;
      renderTable();
      return;
    }
    const tr = t && t.closest('tr[data-gene]');
    const r = S.cmp.result;
    if (tr instanceof HTMLElement && r) {
      const row = r.genes.find((g) => String(g.gene) === tr.dataset.gene);
      if (row) chooseGene(row);
    }
  });
  $('cmp-table').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || !(e.target instanceof HTMLElement) || !e.target.matches('tr[data-gene]')) return;
    const r = S.cmp.result;
    const row = r && r.genes.find((g) => String(g.gene) === /** @type {HTMLElement} */ (e.target).dataset.gene);
    if (row) chooseGene(row);
  });
  const volcano = /** @type {HTMLCanvasElement} */ ($('volcano'));
  /** @param {MouseEvent} e */
  const hit = (e) => {
    const r = S.cmp.result;
    if (!r) return null;
    const box = volcano.getBoundingClientRect();
    const px = ((e.clientX - box.left) * volcano.width) / box.width, py = ((e.clientY - box.top) * volcano.height) / box.height;
    return volcanoHit(volcano, r.genes, px, py);
  };
  volcano.addEventListener('click', (e) => { const row = hit(e); if (row) chooseGene(row); });
  volcano.addEventListener('mousemove', (e) => {
    const row = hit(e);
    volcano.title = row ? `${row.name || row.id}: LFC ${fmtNumber(row.lfc_mean)}, P(DE) ${row.proba_de.toFixed(3)}` : '';
    volcano.style.cursor = row ? 'pointer' : '';
  });
  window.addEventListener('cellvae:layout', () => { if (S.cmp.result) renderCompare(); });
  renderCompare();
}
