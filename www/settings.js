// @ts-check
// cellvae page: the model and training settings. Reset applies them (a new session; a
// setting the data cannot take says why and keeps the current one); learning rate and beta
// apply at once, even while training runs.
import { S } from './state.js';
import { $, input, select, option, message } from './dom.js';
import { adopt, setStatusText } from './controls.js';
import { drawCharts } from './charts.js';

/** @typedef {import('./protocol.js').SessionOptions} SessionOptions */

/** @param {string} id @param {string} label @param {number} min @param {boolean} [optional] @returns {number | undefined} */
function intField(id, label, min, optional = false) {
  const raw = input(id).value.trim();
  if (raw === '' && optional) return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new Error(`${label} must be a whole number of at least ${min}`);
  return v;
}

/** The session options from the settings (throws a readable message on a bad value). @returns {SessionOptions} */
export function readOptions() {
  /** @type {SessionOptions} */
  const opts = {
    n_latent: intField('opt-n-latent', 'latent dimensions', 1),
    n_hidden: intField('opt-n-hidden', 'hidden units', 1),
    n_layers: intField('opt-n-layers', 'hidden layers', 1),
    likelihood: select('opt-likelihood').value,
    dispersion: select('opt-dispersion').value,
    kl_warmup_epochs: intField('opt-kl-warmup', 'KL warm-up epochs', 0),
    batch_size: intField('opt-batch-size', 'minibatch size', 2),
    seed: intField('opt-seed', 'seed', 0),
    min_counts: intField('opt-min-counts', 'minimum counts per cell', 0),
    min_genes: intField('opt-min-genes', 'minimum genes per cell', 0),
  };
  const epochs = intField('opt-epochs', 'epochs', 1, true);
  if (epochs !== undefined) opts.epochs = epochs;
  const top = intField('opt-top-genes', 'top variable genes', 1, true);
  if (top !== undefined) opts.top_genes = top;
  const holdout = intField('opt-holdout', 'hold out every Kth cell', 2, true);
  if (holdout !== undefined) opts.holdout_every = holdout;
  if (select('opt-batch-key').value) opts.batch_key = select('opt-batch-key').value;
  if (select('opt-label-key').value) opts.label_key = select('opt-label-key').value;
  Object.assign(opts, liveOptions());
  if (opts.dispersion === 'gene-batch' && !opts.batch_key) throw new Error('dispersion per gene and batch needs a batch column');
  return opts;
}

/** Learning rate and beta as set (defaults where not a valid number). */
export function liveOptions() {
  const lr = Number(input('lr').value);
  const beta = Number(input('beta').value);
  return { lr: Number.isFinite(lr) && lr > 0 ? lr : 1e-3, beta: Number.isFinite(beta) && beta >= 0 ? beta : 1 };
}

/** The device choice ('auto' | 'gpu' | 'cpu'). */
export const device = () => select('opt-device').value;

/** The batch and label column choices for the metadata columns of data just read. @param {import('./protocol.js').Summary} summary */
export function fillColumnSelects(summary) {
  const cols = summary.obs_columns.map((c) => c.name);
  for (const [id, first] of [['opt-batch-key', 'none'], ['opt-label-key', 'automatic']]) {
    const sel = select(id);
    const prev = sel.value;
    sel.replaceChildren(option('', first), ...cols.map((c) => option(c, c)));
    sel.value = cols.includes(prev) ? prev : '';
  }
}

/**
 * Completion over gene names: the first 50 that start with (then contain) the text.
 * @param {HTMLDataListElement} list @param {string[]} names @param {string} text
 */
export function fillGeneList(list, names, text) {
  const q = text.trim().toLowerCase();
  const starts = [], contains = [];
  if (q) {
    for (const g of names) {
      const l = g.toLowerCase();
      if (l.startsWith(q)) starts.push(g);
      else if (l.includes(q)) contains.push(g);
      if (starts.length >= 50) break;
    }
  }
  const chosen = (q ? starts.concat(contains) : names).slice(0, 50);
  list.replaceChildren(...chosen.map((g) => { const o = document.createElement('option'); o.value = g; return o; }));
}

/** @param {string} text */
function showTrainError(text) {
  const box = $('train-error');
  box.textContent = text || '';
  box.hidden = !text;
}

/** A new session with the settings on the current data. On failure the current one stays. */
export async function resetWithSettings() {
  if (!S.data || !S.client) return;
  showTrainError('');
  let options;
  try {
    options = readOptions();
  } catch (e) {
    showTrainError(`The settings were not applied: ${message(e)}`);
    return;
  }
  try {
    const r = await S.client.request('reset', { options, device: device(), keep: true });
    adopt(r.info, r.snapshot);
    setStatusText('Ready: press Train.');
  } catch (e) {
    showTrainError(`The settings were not applied: ${message(e)}`);
  }
}

/** Applies the learning rate or beta to the session now. @param {HTMLInputElement} box @param {'lr' | 'beta'} key @param {string} what */
async function applyLive(box, key, what) {
  if (!S.client || !S.info) return;
  const v = Number(box.value);
  try {
    const r = await S.client.request('set', { [key]: v });
    box.classList.remove('invalid');
    box.title = '';
    S.status = r.status;
    drawCharts();
  } catch (e) {
    box.classList.add('invalid');
    box.title = `${what}: ${message(e)}`;
    setStatusText(`${what}: ${message(e)}`);
  }
}

export function wireSettings() {
  $('train-reset').addEventListener('click', resetWithSettings);
  input('lr').addEventListener('change', () => applyLive(input('lr'), 'lr', 'learning rate'));
  input('beta').addEventListener('change', () => applyLive(input('beta'), 'beta', 'beta'));
}
