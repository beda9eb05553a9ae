// cellvae page: loads the wasm core, detects WebGPU, reads counts through the core and
// shows what was read, then trains on it (www/train.js). Text from a user's file is only
// ever set with textContent.
import init, { read_files, gpu_check } from './pkg/cellvae.js';
import { setupTraining, reset as resetTraining, isRunning, info as trainInfo, decodePoint, benchmarkMap, cellPosition, timeRedraw, latentOf, modelGenes } from './train.js';

const $ = (id) => document.getElementById(id);
const state = {
  backend: 'cpu',
  adapter: null,
  gpuError: null,
  dataset: null,   // the wasm Dataset currently loaded (kept when a new load fails)
  summary: null,
  epoch: 0,
  step: 0,
  elbo: null,
};

// For automation and the console.
window.cellvae = {
  status: () => ({
    backend: state.backend,
    adapter: state.adapter,
    n_cells: state.dataset ? state.dataset.n_cells : 0,
    n_genes: state.dataset ? state.dataset.n_genes : 0,
    epoch: state.epoch,
    step: state.step,
    elbo: state.elbo,
    training: isRunning(),
    format: state.summary ? state.summary.format : null,
    total_counts: state.summary ? state.summary.total_counts : null,
    ...trainInfo(),
  }),
  decode: (z, batch, library) => decodePoint(z, batch, library),
  benchmarkMap: (n, repeats) => benchmarkMap(n, repeats),
  cellPosition: (c) => cellPosition(c),
  timeRedraw: (repeats) => timeRedraw(repeats),
  latentOf: (c) => latentOf(c),
  modelGenes: () => modelGenes(),
};

function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

async function detectBackend() {
  const label = $('backend');
  if (!('gpu' in navigator)) {
    state.backend = 'cpu';
    label.textContent = 'WebGPU is not available in this browser: training runs on the CPU (slower, same results).';
    label.classList.add('cpu');
    return;
  }
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new Error('the browser offers no WebGPU adapter');
    const info = adapter.info || {};
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'WebGPU adapter';
    // Prove the shaders run on this adapter before trusting it.
    const check = await gpu_check(4096);
    if (!(check.max_abs_diff < 1e-4)) throw new Error(`the GPU gave wrong results (max error ${check.max_abs_diff})`);
    state.backend = 'webgpu';
    state.adapter = name;
    label.textContent = `GPU: WebGPU on ${name}`;
  } catch (e) {
    state.backend = 'cpu';
    state.gpuError = String(e && e.message ? e.message : e);
    label.textContent = `WebGPU could not be used (${state.gpuError}): training runs on the CPU.`;
    label.classList.add('cpu');
  }
}

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

async function load(files, obs, what) {
  clearError();
  $('progress').textContent = `Reading ${what}…`;
  // Let the message paint before the (synchronous) parse.
  await new Promise((r) => setTimeout(r, 0));
  const t0 = performance.now();
  try {
    const dataset = read_files(files, obs);
    const summary = dataset.summary();
    if (state.dataset) state.dataset.free();
    state.dataset = dataset;
    state.summary = summary;
    renderSummary(summary);
    $('progress').textContent = `Read ${what} in ${((performance.now() - t0) / 1000).toFixed(2)} s.`;
    // New data, new model: the old session goes whether or not this one can train.
    try {
      resetTraining(dataset, summary);
    } catch (e) {
      $('train-status').textContent = `This data cannot be trained on: ${String(e && e.message ? e.message : e)}`;
    }
  } catch (e) {
    $('progress').textContent = state.dataset ? 'The data loaded before is still there.' : '';
    showError(String(e && e.message ? e.message : e));
  }
}

async function fileEntries(fileList) {
  return Promise.all(Array.from(fileList).map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}

async function loadDemo() {
  const base = 'www/demo/pbmc68k_reduced_700/';
  const get = async (name) => {
    const r = await fetch(base + name);
    if (!r.ok) throw new Error(`demo file ${name}: HTTP ${r.status}`);
    return { name, bytes: new Uint8Array(await r.arrayBuffer()) };
  };
  try {
    const files = await Promise.all(['matrix.mtx.gz', 'features.tsv', 'barcodes.tsv'].map(get));
    const obs = await get('cells.tsv');
    await load(files, obs, 'the demo (700 PBMCs)');
  } catch (e) {
    showError(String(e && e.message ? e.message : e));
  }
}

async function loadChosen(fileList) {
  if (!fileList || !fileList.length) return;
  const files = await fileEntries(fileList);
  const obsFiles = $('obs-input').files;
  const obs = obsFiles && obsFiles.length ? (await fileEntries(obsFiles))[0] : null;
  await load(files, obs, files.map((f) => f.name).join(', '));
}

function onTrainStatus(s) {
  state.epoch = s ? s.epoch : 0;
  state.step = s ? s.step : 0;
  state.elbo = s && s.elbo !== undefined ? s.elbo : null;
}

async function main() {
  await init();
  setupTraining(onTrainStatus);
  $('demo-button').addEventListener('click', loadDemo);
  $('file-input').addEventListener('change', (e) => loadChosen(e.target.files));
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    loadChosen(e.dataTransfer.files);
  });
  $('demo-button').disabled = false;
  $('file-input').disabled = false;
  await detectBackend();
  document.body.dataset.ready = 'true';
}

main().catch((e) => showError(`cellvae failed to start: ${e && e.message ? e.message : e}`));
