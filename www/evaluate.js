// @ts-check
// cellvae page: the evaluation panel. "Evaluate" asks the engine for src/eval.rs's
// report on the model as it is now (the numbers `cellvae eval` prints: held-out ELBO,
// importance-weighted log p(x), reconstruction, KL per dimension, active units, kNN label
// accuracy, batch mixing) and keeps one row per run made in this page, its settings
// beside its results, so a class can compare runs. Render functions only draw from S.ev.
import { S } from './state.js';
import { $, button, input, el, message } from './dom.js';
import { readOptions } from './settings.js';

/** @typedef {import('./protocol.js').EvalReport} EvalReport */

/** The settings a run is told apart by, in the runs table (short names, URL keys). */
const RUN_KEYS = [
  ['likelihood', 'likelihood'], ['n_latent', 'latent'], ['beta', 'beta'], ['kl_warmup_epochs', 'warm-up'],
  ['batch_key', 'batch'], ['batch_size', 'minibatch'], ['seed', 'seed'], ['lr', 'lr'],
];

/** The rows of the report table: label, value, what it means. @param {EvalReport} r @returns {[string, string, string][]} */
export function reportRows(r) {
  const f = (/** @type {number} */ x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  const where = r.heldout ? `${r.n_evaluated_cells} held-out cells` : `${r.n_evaluated_cells} training cells (none held out)`;
  /** @type {[string, string, string][]} */
  const rows = [
    ['evaluated on', where, 'set "hold out every Kth cell" and press Reset to keep cells out of training'],
    ['ELBO', f(r.heldout_elbo_per_cell), 'nats per cell: reconstruction minus KL (higher is better)'],
    ['log p(x), importance-weighted', f(r.heldout_log_px_iw100_per_cell), `nats per cell, ${r.n_samples} samples: a tighter bound than the ELBO`],
    ['gap: log p(x) - ELBO', f(r.heldout_log_px_iw100_per_cell - r.heldout_elbo_per_cell), 'about the KL from q(z|x) to the true posterior'],
    ['reconstruction', f(r.heldout_reconstruction_per_cell), 'E_q[log p(x|z)], nats per cell'],
    ['KL', f(r.kl_per_dim.reduce((a, b) => a + b, 0)), 'KL(q(z|x) || p(z)), nats per cell'],
    ['KL per dimension', r.kl_per_dim.map((k) => f(k)).join(' · '), 'a dimension near 0 carries no information'],
    ['active units', `${r.active_units} of ${r.kl_per_dim.length}`, 'dimensions whose mean varies across cells (> 0.01)'],
  ];
  if (r.knn15_accuracy !== null) rows.push(['kNN label accuracy', f(r.knn15_accuracy, 3), '15 neighbours, 5 folds: how well the map keeps cell types apart']);
  if (r.batch_mixing15 !== null) rows.push(['batch mixing', f(r.batch_mixing15, 3), 'entropy of batches among 15 neighbours: 1 mixed, 0 separated']);
  return rows;
}

export function renderEvaluation() {
  const ev = S.ev;
  $('eval-status').textContent = ev.running ? 'Evaluating…' : ev.report ? `At epoch ${S.status ? S.status.epoch : 0}.` : '';
  const err = $('eval-error');
  err.textContent = ev.error || '';
  err.hidden = !ev.error;
  button('eval-run').disabled = !S.info || ev.running;
  const table = $('eval-table');
  table.replaceChildren(...(ev.report ? reportRows(ev.report).map(([k, v, what]) => {
    const tr = el('tr', '', { title: what });
    tr.append(el('th', k), el('td', v));
    tr.dataset.metric = k;
    return tr;
  }) : []));
  renderRuns();
}

function renderRuns() {
  const table = $('runs-table');
  const runs = S.ev.runs;
  if (!runs.length) { table.replaceChildren(); return; }
  const head = el('tr');
  for (const h of ['run', ...RUN_KEYS.map(([, name]) => name), 'epoch', 'ELBO', 'log p(x)', 'active', 'kNN', 'mixing']) head.append(el('th', h));
  const f = (/** @type {number | null} */ x, d = 2) => (x === null || x === undefined ? '–' : x.toFixed(d));
  const rows = runs.map((r) => {
    const tr = el('tr');
    tr.dataset.session = String(r.session);
    tr.append(el('td', r.label));
    for (const [key] of RUN_KEYS) tr.append(el('td', r.settings[key] ?? ''));
    tr.append(el('td', String(r.epoch)), el('td', f(r.report.heldout_elbo_per_cell)), el('td', f(r.report.heldout_log_px_iw100_per_cell)),
      el('td', String(r.report.active_units)), el('td', f(r.report.knn15_accuracy, 3)), el('td', f(r.report.batch_mixing15, 3)));
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

/** The settings of the current run, as strings (from the form it was made with). @returns {Record<string, string>} */
function runSettings() {
  /** @type {Record<string, string>} */
  const out = {};
  try {
    const o = readOptions();
    for (const [key] of RUN_KEYS) if (o[key] !== undefined) out[key] = String(o[key]);
  } catch { /* a form being edited: the row shows what it can */ }
  if (S.status) { out.beta = String(S.status.beta); out.lr = String(S.status.lr); out.kl_warmup_epochs = String(S.status.kl_warmup_epochs); }
  if (S.info && S.info.model) out.likelihood = S.info.model.likelihood;
  if (S.info) out.n_latent = String(S.info.nLatent);
  out.batch_key = S.info && S.info.batchKey ? S.info.batchKey : 'none';
  return out;
}

/**
 * Evaluates the model now and records the run's row (the lessons call this too).
 * @param {{samples?: number, seed?: number, label?: string}} [opts] @returns {Promise<EvalReport | null>}
 */
export async function evaluateNow(opts = {}) {
  if (!S.client || !S.info) return null;
  const samples = opts.samples ?? Number(input('eval-samples').value);
  const ev = S.ev;
  ev.running = true;
  ev.error = null;
  renderEvaluation();
  const session = S.info.session;
  try {
    const report = await S.client.request('evaluate', { samples, seed: opts.seed ?? 0 });
    ev.report = report;
    const row = { session, label: opts.label || `run ${session}`, settings: runSettings(), epoch: S.status ? S.status.epoch : 0, report };
    const i = ev.runs.findIndex((r) => r.session === session);
    if (i >= 0) ev.runs[i] = { ...row, label: opts.label || ev.runs[i].label };
    else ev.runs.push(row);
    return report;
  } catch (e) {
    ev.error = `The evaluation failed: ${message(e)}`;
    return null;
  } finally {
    ev.running = false;
    renderEvaluation();
  }
}

export function wireEvaluation() {
  $('eval-run').addEventListener('click', () => { evaluateNow(); });
}
