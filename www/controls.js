// @ts-check
// cellvae page: the training controls and the session on the page. Train / Pause / 1 step
// and the pace go to the engine; its snapshots update the state (applySnapshot) and the
// views redraw from it; a new session's facts (adopt) reset the page's per-model state.
import { S } from './state.js';
import { $, button, select, option, message, fmt } from './dom.js';
import { updateProjection, drawMap, renderLegend, renderPlaneNote, fillAxes } from './map-view.js';
import { buildColours } from './colours.js';
import { drawCharts } from './charts.js';
import { renderProbe, renderPins, requestProbe } from './probe.js';
import { computeTraversal, drawHeatmap, fillTravModes, stopAnimation } from './traversal.js';
import { clearField, computeField } from './field.js';
import { fillGeneList } from './settings.js';
import { adoptGroups } from './selection.js';
import { adoptCompare } from './compare.js';

/** @typedef {import('./protocol.js').Snapshot} Snapshot */
/** @typedef {import('./protocol.js').SessionInfo} SessionInfo */
/** @typedef {import('./protocol.js').TrainStatus} TrainStatus */

/** The event dispatched on `window` after a snapshot from the engine was applied. */
export const SNAPSHOT_EVENT = 'cellvae:snapshot';

/** @param {string} text */
export function setStatusText(text) {
  $('train-status').textContent = text;
}

/** @param {TrainStatus | null} s */
function describe(s) {
  if (!s) return '';
  const parts = [`epoch ${s.epoch}`, `step ${s.step}`];
  if (s.elbo !== null && s.elbo !== undefined) {
    parts.push(`ELBO ${fmt(s.elbo)}`, `reconstruction ${fmt(s.reconstruction)}`, `KL ${fmt(s.kl, 2)}`, `KL weight ${fmt(s.kl_weight, 3)}`);
  }
  if (s.recoveries > 0) {
    parts.push(`diverged and recovered ${s.recoveries}× (learning rate now ${Number(s.lr.toPrecision(3))})`);
  }
  if (s.finished) parts.push(`done (${s.epochs} epochs)`);
  return parts.join(' · ');
}

export function setButtons() {
  const has = !!S.info;
  const done = has && !!S.status && S.status.finished;
  const running = S.run === 'training';
  button('train-toggle').disabled = !has || done;
  button('train-step').disabled = !has || running || done;
  button('train-reset').disabled = !S.data;
  button('train-toggle').textContent = running ? 'Pause' : 'Train';
  button('train-toggle').setAttribute('aria-pressed', running ? 'true' : 'false');
  for (const id of ['export-latent', 'export-h5ad', 'export-h5ad-small', 'export-scvi', 'export-model-weights', 'export-model-config', 'export-map-png', 'export-charts-png']) button(id).disabled = !has;
  button('export-probe').disabled = !has || !S.probe.profile;
  button('eval-run').disabled = !has || S.ev.running;
}

/** Where and on what training runs, and why. */
export function renderBackendNote() {
  const note = $('train-backend');
  const g = S.gpu, eg = S.engineGpu;
  note.classList.remove('warn');
  if (!S.info) { note.textContent = ''; return; }
  let text;
  if (g.state === 'starting') text = 'Starting the GPU (compiling the kernels)…';
  else if (g.state === 'on') text = `Training runs on the GPU: ${eg.adapter || g.adapter}.`;
  else if (g.state === 'failed') {
    text = `Training runs on the CPU: the GPU could not be used (${g.error}).`;
    note.classList.add('warn');
  } else if (eg.ok && select('opt-device').value === 'cpu') text = 'Training runs on the CPU, as chosen in the settings.';
  else if (eg.ok && eg.software) {
    text = `Training runs on the CPU: the only WebGPU adapter here is a software one (${eg.adapter}), slower than the CPU path. Choose “GPU” under “train on” in the settings to use it anyway.`;
  } else text = 'Training runs on the CPU (this browser offers no usable WebGPU).';
  if (S.thread === 'worker') {
    text += ' It runs in a background worker, so the page stays responsive.';
    if (g.state !== 'on') text += S.cpuThreads.cpu_threads > 1 ? ` The CPU path uses ${S.cpuThreads.cpu_threads} threads.` : ` The CPU path uses one thread (${S.cpuThreads.why}).`;
  }
  else if (S.pageGpu.ok && !eg.ok) text += ' It runs on the page between frames: this browser offers WebGPU to the page but not to workers.';
  else text += ' It runs on the page between frames.';
  note.textContent = text;
}

/** The "colour by" choices for the session (its metadata columns, library size, a gene). */
function fillColourBy() {
  const info = S.info;
  if (!info) return;
  const sel = select('colour-by');
  const prev = sel.value;
  sel.replaceChildren();
  for (const m of info.meta) sel.append(option(`obs:${m.name}`, m.name + (m.name === info.batchKey ? ' (batch)' : '')));
  sel.append(option('library', 'library size'), option('gene', 'a gene’s expression…'));
  const key = info.labelKey;
  // Keep the choice unless the label column changed.
  if ((key || null) === S.colourFor && [...sel.options].some((o) => o.value === prev)) sel.value = prev;
  else if (key) sel.value = `obs:${key}`;
  else sel.value = 'library';
  S.colourFor = key || null;
}

/** Takes the state of a snapshot of the current session. @param {Snapshot} snap */
function takeSnapshot(snap) {
  S.run = snap.run;
  S.status = snap.status;
  S.backend = snap.backend;
  S.gpu = snap.gpu;
  S.stopped = snap.stopped;
  S.snapshots += 1;
  S.stepMs = snap.stepMs;
  if (snap.history) S.history = snap.history;
  if (snap.klPerDim) S.klDims = snap.klPerDim;
  if (snap.latent) {
    S.latent = snap.latent;
    S.n = Math.floor(snap.latent.length / Math.max(1, S.d));
    updateProjection();
  }
}

/**
 * A snapshot from the engine: update the state, redraw what changed. While training, the
 * views that need the engine again (probe, walk, field) refresh at a few per second.
 * @param {Snapshot} snap
 */
export function applySnapshot(snap) {
  if (!S.info || snap.session !== S.info.session) return;
  takeSnapshot(snap);
  const training = S.run === 'training';
  const now = performance.now();
  if (snap.latent) {
    drawMap();
    if (S.probe.z && (!training || now - S.probe.at > 200)) requestProbe();
    const tr = S.trav;
    if (tr.path && !tr.timer && (!training || now - tr.stamp > (tr.shown ? 500 : 3000))) computeTraversal();
    if (S.field.gene >= 0 && (!training || now - S.field.stamp > 2000)) computeField();
  }
  if (!training || snap.history || now - S.chartsAt > 200) drawCharts();
  setStatusText(S.stopped || describe(S.status));
  // Whoever follows training (the open lesson) hears of every snapshot applied.
  window.dispatchEvent(new CustomEvent(SNAPSHOT_EVENT));
  // The last recovery in full (step, why, where training went back to), on hover.
  $('train-status').title = (S.status && S.status.last_recovery) || '';
  setButtons();
  renderBackendNote();
}

/** Resets the page's per-model state for a new session (null: none) and draws it. @param {SessionInfo | null} info @param {Snapshot | null} snap */
export function adopt(info, snap) {
  stopAnimation();
  clearField();
  $('field-gene').classList.remove('invalid');
  /** @type {HTMLInputElement} */ ($('field-gene')).value = '';
  Object.assign(S, {
    info, run: info ? 'idle' : 'empty', status: null, history: [], klDims: [], backend: null, stopped: null,
    gpu: { state: null, adapter: null, error: null }, latent: null, n: 0, proj: null, P: null, prevPca: null,
    view: null, autoView: true, colours: null,
  });
  S.probe = { z: null, anchor: null, cell: -1, profile: null, error: null, inFlight: false, again: false, at: 0 };
  Object.assign(S.trav, { path: null, A: null, B: null, pos: 0, shown: false, top: [], values: [], note: null });
  $('legend').replaceChildren();
  $('map-tooltip').hidden = true;
  adoptCompare(info, adoptGroups(info));
  if (!info || !snap) {
    $('prep-report').hidden = true;
    $('train-what').textContent = '';
    S.info = null;
    redrawAll();
    return;
  }
  S.d = info.nLatent;
  S.library = info.medianLibrary;
  /** @type {HTMLInputElement} */ ($('probe-library')).value = String(Math.round(S.library));
  S.batch = 0;
  const batch = select('probe-batch');
  batch.replaceChildren(...info.batchLevels.map((l, i) => option(String(i), l || '(one batch)')));
  batch.disabled = info.batchLevels.length < 2;
  S.pins = S.pinNames.map((n) => info.genes.indexOf(n)).filter((g) => g >= 0);
  renderPins();
  fillGeneList(/** @type {HTMLDataListElement} */ ($('model-gene-list')), info.genes, '');
  fillAxes();
  fillTravModes();
  fillColourBy();
  takeSnapshot(snap);
  buildColours();
  $('prep-lines').replaceChildren(...info.report.map((l) => { const li = document.createElement('li'); li.textContent = l; return li; }));
  $('prep-report').hidden = info.report.length === 0;
  const key = info.labelKey;
  const origin = info.origin === 'new' ? '' : ` Loaded ${info.origin}.`;
  const qc = info.nTrain < info.nCells ? ` (${info.nTrain} train; ${info.nCells - info.nTrain} removed by QC or empty, shown but not trained on)` : '';
  const m = info.model;
  $('train-what').textContent = `${info.nCells} cells${qc} × ${info.nGenes} genes, ${S.d}-D latent space, `
    + `${m.likelihood.toUpperCase()} likelihood, ${m.n_hidden} hidden × ${m.n_layers} layer${m.n_layers > 1 ? 's' : ''}`
    + (key ? `, labels from ${key}` : '') + (info.batchKey ? `, batches from ${info.batchKey}` : '')
    + (S.d > 2 ? ' (two dimensions shown at a time)' : '') + '.' + origin;
  redrawAll();
}

/** Draws every view from the state. */
export function redrawAll() {
  drawMap();
  renderLegend();
  drawCharts();
  renderProbe();
  computeTraversal();
  drawHeatmap();
  setButtons();
  renderPlaneNote();
  renderBackendNote();
}

/** @param {unknown} e */
function stopped(e) {
  setStatusText(`Training stopped: ${message(e)}`);
}

export function wireControls() {
  button('train-toggle').addEventListener('click', () => {
    if (!S.client || !S.info) return;
    S.client.request(S.run === 'training' ? 'pause' : 'play', {}).catch(stopped);
  });
  button('train-step').addEventListener('click', () => {
    if (!S.client || !S.info || S.run === 'training') return;
    S.stepsPending += 1;
    setButtons();
    S.client.request('step', { n: 1 }).catch(stopped).finally(() => { S.stepsPending -= 1; setButtons(); });
  });
  select('steps-per-frame').addEventListener('change', sendPace);
  select('opt-device').addEventListener('change', renderBackendNote);
}

/** The pace ("steps per frame") to the engine. */
export function sendPace() {
  const v = select('steps-per-frame').value;
  if (S.client) S.client.request('pace', { pace: v === 'auto' ? 'auto' : Number(v) }).catch(stopped);
}
