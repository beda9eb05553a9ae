// @ts-check
// cellvae page: loading data. Files (chosen, dropped, or the built-in demo) go to the
// engine, which reads them (with progress) and parses them off the page; the summary of
// what was read is shown, and a new model made with the current settings. A file that
// cannot be read shows its error and leaves the data (and the model, even mid-training)
// as they were.
import { S } from './state.js';
import { $, input, el, message } from './dom.js';
import { adopt, setStatusText } from './controls.js';
import { readOptions, fillColumnSelects, device } from './settings.js';

/** @typedef {import('./protocol.js').FileEntry} FileEntry */
/** @typedef {import('./protocol.js').Summary} Summary */

/** @type {Promise<unknown>} resolves once the engine is ready (app.js sets it) */
let engineReady = new Promise(() => {});
/** @param {Promise<unknown>} p */
export function setEngineReady(p) { engineReady = p; }

/** @param {string} text */
export function showError(text) {
  const box = $('error');
  box.textContent = text;
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

/** @param {Summary} s */
function renderSummary(s) {
  const root = $('summary');
  root.replaceChildren();
  const table = el('table', null, { class: 'facts' });
  const rows = [
    ['format', s.source ? `${s.format} (${s.source})` : s.format],
    ['cells', s.n_cells.toLocaleString('en-US')],
    ['genes', s.n_genes.toLocaleString('en-US')],
    ['non-zero values', s.nnz.toLocaleString('en-US')],
    ['total counts', s.total_counts.toLocaleString('en-US')],
    ['value range', `${s.min_value} – ${s.max_value}`],
    ['raw counts', s.integer_counts ? 'yes' : 'no: a count likelihood needs raw counts'],
    ['metadata columns', s.obs_columns.length
      ? s.obs_columns.map((c) => `${c.name} (${c.n_levels} ${c.kind === 'numeric' ? 'values' : 'levels'})`).join(', ')
      : 'none'],
  ];
  for (const [k, v] of rows) {
    const tr = el('tr');
    tr.append(el('th', k, { scope: 'row' }), el('td', v, { 'data-field': k.replace(/ /g, '_') }));
    table.append(tr);
  }
  root.append(table);
  if (s.notes && s.notes.length) {
    const ul = el('ul', null, { class: 'notes' });
    for (const n of s.notes) ul.append(el('li', n));
    root.append(ul);
  }
}

/** The data loaded (or restored) in the state and its summary on the page. @param {Summary} summary @param {string[]} geneNames */
export function showData(summary, geneNames) {
  S.data = { summary, geneNames, geneSet: new Set(geneNames) };
  renderSummary(summary);
}

/** @param {string} text @param {number | null} [fraction] undefined: no bar; null: indeterminate */
function setProgress(text, fraction) {
  $('progress').textContent = text;
  const bar = /** @type {HTMLProgressElement} */ ($('load-progress'));
  if (fraction === undefined) bar.hidden = true;
  else {
    bar.hidden = false;
    if (fraction === null) bar.removeAttribute('value');
    else bar.value = fraction;
  }
  if (S.load) S.load.log.push(text);
}

/** @param {number} n */
function mb(n) {
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

/** Reads `files` (+ a metadata table) in the engine and trains a new model on them; whether they were read. @param {FileEntry[]} files @param {FileEntry | null} obs @param {string} what @param {'simulated_batches' | null} [transform] a change made to the data once read (the lessons') @returns {Promise<boolean>} */
export async function load(files, obs, what, transform = null) {
  clearError();
  const started = performance.now();
  const state = { what, phase: 'reading', in_worker: true, started_at: started, parsed_at: /** @type {number | null} */ (null), read_ms: /** @type {number | null} */ (null), parse_ms: /** @type {number | null} */ (null), log: /** @type {string[]} */ ([]) };
  S.load = state;
  setProgress(`Reading ${what}…`, 0);
  const tick = setInterval(() => {
    if (S.load === state && state.phase === 'parsing') {
      setProgress(`Parsing ${what}… ${((performance.now() - started) / 1000).toFixed(1)} s (the page stays usable)`, null);
    }
  }, 500);
  try {
    await engineReady;
    const client = S.client;
    if (!client) throw new Error('the training engine did not start');
    const r = await client.request('load', { files, obs, what, transform }, {
      onProgress: (m) => {
        if (S.load !== state) return;
        state.phase = m.phase;
        if (m.phase === 'reading') setProgress(`Reading ${m.file}: ${mb(m.loaded || 0)} of ${mb(m.total || 0)}`, m.total ? (m.loaded || 0) / m.total : null);
        else setProgress(`Parsing ${what}… (the page stays usable)`, null);
      },
    });
    state.parsed_at = performance.now();
    S.cls.data = null;
    state.read_ms = r.read_ms;
    state.parse_ms = r.parse_ms;
    state.in_worker = r.in_worker;
    fillColumnSelects(r.summary);
    // New data, new model (the engine dropped the old one).
    let made = null, why = '';
    try {
      made = await client.request('reset', { options: readOptions(), device: device(), keep: false });
    } catch (e) {
      why = message(e);
    }
    showData(r.summary, r.geneNames);
    $('restored-note').textContent = '';
    S.restored = null;
    state.phase = 'done';
    setProgress(`Read ${what} in ${((performance.now() - started) / 1000).toFixed(2)} s.`);
    if (made) {
      adopt(made.info, made.snapshot);
      setStatusText('Ready: press Train.');
    } else {
      adopt(null, null);
      setStatusText(`This data cannot be trained on: ${why}`);
    }
    // Next step: bring the Train button into view if it is off screen.
    const box = $('train-toggle').getBoundingClientRect();
    if (box.bottom > window.innerHeight || box.top < 0) $('train-title').scrollIntoView({ block: 'start' });
    return true;
  } catch (e) {
    state.phase = 'failed';
    setProgress(S.data ? 'The data loaded before is still there.' : '');
    showError(message(e));
    return false;
  } finally {
    clearInterval(tick);
  }
}

/** @param {FileList | File[]} list @returns {FileEntry[]} */
function fileEntries(list) {
  return Array.from(list).map((f) => ({ name: f.name, file: f }));
}

/** How the demo's variants are named where the data is kept (persist.js knows them again by it). */
export const DEMO_WHAT = { plain: 'the demo (700 PBMCs)', batches: 'the demo in two simulated batches' };

/**
 * Loads the built-in demo; `variant` 'batches': split into two batches with a simulated
 * batch effect (src/teach: the batch-effect lesson's data). Whether it loaded.
 * @param {'plain' | 'batches'} [variant] @returns {Promise<boolean>}
 */
export async function loadDemo(variant = 'plain') {
  const base = 'www/demo/pbmc68k_reduced_700/';
  /** @param {string} name @returns {Promise<FileEntry>} */
  const get = async (name) => {
    const r = await fetch(base + name);
    if (!r.ok) throw new Error(`demo file ${name}: HTTP ${r.status}`);
    return { name, bytes: new Uint8Array(await r.arrayBuffer()) };
  };
  try {
    const files = await Promise.all(['matrix.mtx.gz', 'features.tsv', 'barcodes.tsv'].map(get));
    const obs = await get('cells.tsv');
    const batches = variant === 'batches';
    const ok = await load(files, obs, DEMO_WHAT[variant], batches ? 'simulated_batches' : null);
    if (ok) S.chosen = files;
    return ok;
  } catch (e) {
    showError(message(e));
    return false;
  }
}

/** Reads count `files` with the metadata table chosen, if any; once read, they are the
 * counts a table chosen later is joined to (a file that failed never is). @param {FileEntry[]} files */
async function loadCounts(files) {
  const obsFiles = input('obs-input').files;
  const obs = obsFiles && obsFiles.length ? fileEntries(obsFiles)[0] : null;
  if (await load(files, obs, files.map((f) => f.name).join(', ') + (obs ? ` with ${obs.name}` : ''))) S.chosen = files;
}

/** @param {FileList | File[] | null} list */
async function loadChosen(list) {
  if (!list || !list.length) return;
  await loadCounts(fileEntries(list));
}

/** A metadata table chosen after the counts (chosen files or the demo's): read the
 * counts loaded last again with it (a table that does not fit leaves the data as it was). */
async function obsChosen() {
  if (S.chosen) await loadCounts(S.chosen);
  else if (input('obs-input').files?.length) showError('A metadata table is joined to the counts: load the count files (or the demo) first, then choose the table.');
}

export function wireFiles() {
  $('demo-button').addEventListener('click', () => { S.cls.data = null; loadDemo().then((ok) => { if (ok) S.cls.data = 'demo'; }); });
  input('file-input').addEventListener('change', () => loadChosen(input('file-input').files));
  input('obs-input').addEventListener('change', obsChosen);
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    loadChosen(e.dataTransfer ? e.dataTransfer.files : null);
  });
}
