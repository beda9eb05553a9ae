// cellvae page: loads the wasm core, detects WebGPU, reads counts through the core and
// shows what was read, then trains on it (www/train.js). Text from a user's file is only
// ever set with textContent.
import init, { read_files, gpu_check, Dataset } from './pkg/cellvae.js';
import { setupTraining, reset as resetTraining, isRunning, setGpuAvailable, info as trainInfo, decodePoint, benchmarkMap, cellPosition, timeRedraw, latentOf, modelGenes, testLoseGpuAtStep } from './train.js';

const $ = (id) => document.getElementById(id);
const state = {
  backend: 'cpu',
  adapter: null,
  gpuError: null,
  softwareAdapter: false,
  dataset: null,   // the wasm Dataset currently loaded (kept when a new load fails)
  summary: null,
  epoch: 0,
  step: 0,
  elbo: null,
  chosen: null,    // the count files chosen last ([{name, file}]), read again with a metadata table
  load: null,      // the last load: {what, phase, in_worker, started_at, parsed_at, read_ms, parse_ms, log}
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
    load: state.load ? { ...state.load, log: [...state.load.log] } : null,
    ...trainInfo(),
  }),
  decode: (z, batch, library) => decodePoint(z, batch, library),
  benchmarkMap: (n, repeats) => benchmarkMap(n, repeats),
  cellPosition: (c) => cellPosition(c),
  timeRedraw: (repeats) => timeRedraw(repeats),
  latentOf: (c) => latentOf(c),
  modelGenes: () => modelGenes(),
  testLoseGpuAtStep: (step) => testLoseGpuAtStep(step),
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
    state.softwareAdapter = !!info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(name);
    label.textContent = `GPU: WebGPU on ${name}` + (state.softwareAdapter ? ' (a software adapter)' : '');
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

function setProgress(text, fraction) {
  $('progress').textContent = text;
  const bar = $('load-progress');
  if (fraction === undefined) {
    bar.hidden = true;
  } else {
    bar.hidden = false;
    if (fraction === null) bar.removeAttribute('value'); // indeterminate
    else bar.value = fraction;
  }
  if (state.load) state.load.log.push(text);
}

function mb(n) {
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

// Reads and parses in a Web Worker (the page stays responsive), reporting progress.
// Entries are {name, file} (a File) or {name, bytes}. Resolves to a Dataset.
function readInWorker(files, obs, what) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(new URL('./read-worker.js', import.meta.url), { type: 'module' });
    } catch (e) {
      reject(Object.assign(new Error(`no worker: ${e && e.message ? e.message : e}`), { noWorker: true }));
      return;
    }
    const started = performance.now();
    const tick = setInterval(() => {
      if (state.load && state.load.phase === 'parsing') {
        setProgress(`Parsing ${what}… ${((performance.now() - started) / 1000).toFixed(1)} s (the page stays usable)`, null);
      }
    }, 500);
    const finish = () => { clearInterval(tick); worker.terminate(); };
    worker.onerror = (e) => {
      finish();
      reject(Object.assign(new Error(`the reading worker failed: ${e.message || 'unknown error'}`), { noWorker: true }));
    };
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'progress') {
        state.load.phase = m.phase;
        if (m.phase === 'reading') {
          setProgress(`Reading ${m.file}: ${mb(m.loaded)} of ${mb(m.total)}`, m.total ? m.loaded / m.total : null);
        } else {
          setProgress(`Parsing ${what}… (the page stays usable)`, null);
        }
      } else if (m.type === 'done') {
        finish();
        state.load.parsed_at = performance.now();
        state.load.read_ms = m.read_ms;
        state.load.parse_ms = m.parse_ms;
        try {
          resolve(Dataset.from_bytes(m.bytes));
        } catch (err) {
          reject(err);
        }
      } else if (m.type === 'error') {
        finish();
        reject(new Error(m.message));
      }
    };
    worker.postMessage({ files, obs });
  });
}

async function load(files, obs, what) {
  clearError();
  state.load = { what, phase: 'reading', in_worker: true, started_at: performance.now(), parsed_at: null, read_ms: null, parse_ms: null, log: [] };
  setProgress(`Reading ${what}…`, 0);
  const t0 = performance.now();
  try {
    let dataset;
    try {
      dataset = await readInWorker(files, obs, what);
    } catch (e) {
      if (!e.noWorker) throw e;
      // No worker here: parse on the page (it may pause while parsing).
      state.load.in_worker = false;
      setProgress(`Reading ${what}…`, null);
      await new Promise((r) => setTimeout(r, 0));
      const bytesOf = async (f) => (f.bytes ? f : { name: f.name, bytes: new Uint8Array(await f.file.arrayBuffer()) });
      const entries = await Promise.all(files.map(bytesOf));
      dataset = read_files(entries, obs ? await bytesOf(obs) : null);
      state.load.parsed_at = performance.now();
    }
    const summary = dataset.summary();
    if (state.dataset) state.dataset.free();
    state.dataset = dataset;
    state.summary = summary;
    renderSummary(summary);
    state.load.phase = 'done';
    setProgress(`Read ${what} in ${((performance.now() - t0) / 1000).toFixed(2)} s.`);
    // New data, new model: the old session goes whether or not this one can train.
    try {
      resetTraining(dataset, summary);
    } catch (e) {
      $('train-status').textContent = `This data cannot be trained on: ${String(e && e.message ? e.message : e)}`;
    }
    // Next step: bring the Train button into view if it is off screen.
    const r = $('train-toggle').getBoundingClientRect();
    if (r.bottom > window.innerHeight || r.top < 0) $('train-title').scrollIntoView({ block: 'start' });
  } catch (e) {
    state.load.phase = 'failed';
    setProgress(state.dataset ? 'The data loaded before is still there.' : '');
    showError(String(e && e.message ? e.message : e));
  }
}

function fileEntries(fileList) {
  return Array.from(fileList).map((f) => ({ name: f.name, file: f }));
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
  const files = fileEntries(fileList);
  state.chosen = files;
  const obsFiles = $('obs-input').files;
  const obs = obsFiles && obsFiles.length ? fileEntries(obsFiles)[0] : null;
  await load(files, obs, files.map((f) => f.name).join(', ') + (obs ? ` with ${obs.name}` : ''));
}

// A metadata table chosen after the counts: read the counts again with it.
async function obsChosen() {
  if (state.chosen) await loadChosen(state.chosen.map((f) => f.file));
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
  $('obs-input').addEventListener('change', obsChosen);
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
  setGpuAvailable(state.backend === 'webgpu', state.adapter, !!state.softwareAdapter);
  document.body.dataset.ready = 'true';
}

main().catch((e) => showError(`cellvae failed to start: ${e && e.message ? e.message : e}`));
