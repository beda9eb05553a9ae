// @ts-check
// cellvae page: the classroom setup in the URL. A link such as
//   index.html#lesson=collapse&data=demo&n_latent=10&beta=4&seed=1&settings_hide&data_hide
// opens the same setup on every computer: the data preset, the model and training
// settings, the seed, the lesson, and which controls are shown (`<control>_hide`, as
// TensorFlow Playground does). The "Share this setup" panel writes the link of the page as
// it is. A link's values go through the same settings form the user edits (settings.js),
// so a bad value gets the same message as typed by hand.
import { S } from './state.js';
import { $, input, select, el, message } from './dom.js';
import { resetWithSettings } from './settings.js';
import { loadDemo, showError } from './files.js';
import { openLesson } from './lessons/index.js';

/** The settings a link may carry: URL key -> form element id (settings.js reads them). */
export const SETTINGS = /** @type {const} */ ({
  n_latent: 'opt-n-latent', n_hidden: 'opt-n-hidden', n_layers: 'opt-n-layers', likelihood: 'opt-likelihood',
  dispersion: 'opt-dispersion', kl_warmup: 'opt-kl-warmup', epochs: 'opt-epochs', batch_size: 'opt-batch-size',
  seed: 'opt-seed', top_genes: 'opt-top-genes', holdout: 'opt-holdout', min_counts: 'opt-min-counts',
  min_genes: 'opt-min-genes', device: 'opt-device', lr: 'lr', beta: 'beta', batch_key: 'opt-batch-key', label_key: 'opt-label-key',
});

/** Settings that name a metadata column: set once the data (and so its columns) is loaded. */
const COLUMN_KEYS = ['batch_key', 'label_key'];

/** The data presets a link may name. */
export const DATA_PRESETS = {
  demo: 'the demo: 700 blood cells (PBMC)',
  'demo-batches': 'the demo split into two batches with a simulated batch effect',
};

/** The controls a link may hide (`<name>_hide`): the page's `[data-control]` elements. */
export const CONTROLS = /** @type {const} */ ({
  data: 'loading data', settings: 'model and training settings', training: 'training panel (speed, lr, beta)',
  lr: 'learning rate', beta: 'beta', pace: 'steps per frame', step: '"1 step" button', reset: 'Reset button',
  colour: 'colour and legend', probe: 'probe', compare: 'compare cells', walk: 'walk through the latent space',
  charts: 'training curves', evaluate: 'evaluation', shaders: 'shaders', export: 'save and load', lessons: 'lessons', share: 'share this setup',
});

/**
 * A setup as a link carries it.
 * @typedef {{lesson: string | null, data: string | null, settings: Record<string, string>, hide: Set<string>, problems: string[]}} Setup
 */

/** Reads a link's hash (`#a=1&b&c_hide`). Unknown keys and values are listed in `problems`. @param {string} hash @returns {Setup} */
export function parseSetup(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  /** @type {Setup} */
  const out = { lesson: null, data: null, settings: {}, hide: new Set(), problems: [] };
  for (const [key, value] of params) {
    if (key === 'lesson') out.lesson = value;
    else if (key === 'data') {
      if (value in DATA_PRESETS) out.data = value;
      else out.problems.push(`data=${value}: no such data preset (known: ${Object.keys(DATA_PRESETS).join(', ')})`);
    } else if (key.endsWith('_hide')) {
      const name = key.slice(0, -5);
      if (name in CONTROLS) { if (value !== 'false') out.hide.add(name); }
      else out.problems.push(`${key}: no such control (known: ${Object.keys(CONTROLS).join(', ')})`);
    } else if (key in SETTINGS) out.settings[key] = value;
    else out.problems.push(`${key}: not a setting of this page`);
  }
  return out;
}

/** The hash of a setup (settings in a fixed order, so one setup has one link). @param {Setup} setup */
export function setupHash(setup) {
  const parts = [];
  if (setup.lesson) parts.push(['lesson', setup.lesson]);
  if (setup.data) parts.push(['data', setup.data]);
  for (const key of Object.keys(SETTINGS)) if (setup.settings[key] !== undefined) parts.push([key, setup.settings[key]]);
  const hash = new URLSearchParams(parts).toString();
  const hides = Object.keys(CONTROLS).filter((c) => setup.hide.has(c)).map((c) => `${c}_hide`);
  return '#' + [hash, ...hides].filter(Boolean).join('&');
}

/** The form element of setting `key`. @param {string} key */
function field(key) {
  return /** @type {HTMLInputElement | HTMLSelectElement} */ ($(SETTINGS[/** @type {keyof typeof SETTINGS} */ (key)]));
}

/** A form element's default value (as in index.html). @param {HTMLInputElement | HTMLSelectElement} f */
function defaultOf(f) {
  if (f instanceof HTMLSelectElement) {
    const o = Array.from(f.options).find((x) => x.defaultSelected) || f.options[0];
    return o ? o.value : '';
  }
  return f.defaultValue;
}

/** The page as it is now, as a setup: settings that differ from the defaults, the lesson, the data preset, the hidden controls. @returns {Setup} */
export function currentSetup() {
  /** @type {Record<string, string>} */
  const settings = {};
  for (const key of Object.keys(SETTINGS)) {
    const f = field(key);
    if (f.value !== defaultOf(f)) settings[key] = f.value;
  }
  return { lesson: S.cls.lesson, data: S.cls.data, settings, hide: new Set(S.cls.hidden), problems: [] };
}

/** Shows or hides the page's controls as `hide` says. @param {Set<string>} hide */
export function applyHidden(hide) {
  S.cls.hidden = new Set(hide);
  for (const e of document.querySelectorAll('[data-control]')) {
    const name = /** @type {HTMLElement} */ (e).dataset.control || '';
    e.classList.toggle('class-hidden', hide.has(name));
  }
  renderShare();
}

/** Sets the settings form: every field to its default, then the setup's values. @param {Record<string, string>} settings @param {boolean} columns whether to set the column choices */
function fillForm(settings, columns) {
  for (const key of Object.keys(SETTINGS)) {
    if (COLUMN_KEYS.includes(key) !== columns) continue;
    const f = field(key);
    const value = settings[key] ?? defaultOf(f);
    f.value = value;
    if (f.value !== value) throw new Error(`${key}=${value}: not a choice of this page${f instanceof HTMLSelectElement ? ` (choices: ${Array.from(f.options).map((o) => o.value || '(none)').join(', ')})` : ''}`);
  }
}

let applying = /** @type {Promise<void> | null} */ (null);

/**
 * Opens a setup: the form from its settings, its data preset (loaded again when it
 * names one), a new model when the settings changed, its hidden controls and its lesson.
 * @param {Setup} setup
 */
export async function applySetup(setup) {
  const run = async () => {
    await setUp(setup);
    applyHidden(setup.hide);
    openLesson(setup.lesson);
    // Said last: loading the data clears the error box.
    if (setup.problems.length) {
      showError(`This link has ${setup.problems.length === 1 ? 'a part' : 'parts'} the page does not know: ${setup.problems.join('; ')}. The rest was applied; ask for a new link.`);
    }
  };
  const prev = applying;
  applying = (async () => { if (prev) await prev; await run(); })();
  await applying;
  // A reload of this tab with the same link keeps the run it restored (see openFromUrl).
  try { sessionStorage.setItem(KEPT_SETUP, JSON.stringify({ hash: location.hash, data: S.cls.data })); } catch { /* storage off: a reload sets up again */ }
  document.body.dataset.setup = 'done';
}

/** The data and the model of a setup (the user's own data only replaced when they agree). @param {Setup} setup */
async function setUp(setup) {
  try {
    const wanted = setup.data;
    // The user's own data is never replaced without asking (a lesson link loads the demo).
    if (wanted && S.data && S.cls.data === null
      && !window.confirm(`This link loads ${DATA_PRESETS[/** @type {keyof typeof DATA_PRESETS} */ (wanted)]} in place of the data you loaded (${S.data.summary.source}). Load it?`)) {
      $('share-note').textContent = 'The link was not applied: your data stays. Open it again to load its data.';
      return;
    }
    fillForm(setup.settings, false);
    if (wanted && (wanted !== S.cls.data || !S.info)) {
      if (!(await loadDemo(wanted === 'demo-batches' ? 'batches' : 'plain'))) return;
      S.cls.data = wanted;
      if (COLUMN_KEYS.some((k) => setup.settings[k] !== undefined)) {
        fillForm(setup.settings, true);
        await resetWithSettings();
      }
    } else if (S.data) {
      fillForm(setup.settings, true);
      await resetWithSettings();
    }
  } catch (e) {
    showError(`The link's settings could not be applied: ${message(e)}`);
  }
}

/** Where this tab remembers the link it set up last (sessionStorage: this tab only). */
const KEPT_SETUP = 'cellvae:setup';

/**
 * Start-up: sets up the page from its link. When the page restored the session kept in
 * this browser and this tab set up the same link before (a reload), the restored run
 * stays (nothing is lost): only the controls and the lesson are applied.
 */
export async function openFromUrl() {
  const setup = parseSetup(location.hash);
  /** @type {{hash: string, data: string | null} | null} */
  let kept = null;
  try { kept = JSON.parse(sessionStorage.getItem(KEPT_SETUP) || 'null'); } catch { kept = null; }
  if (S.restored && S.info && kept && kept.hash === location.hash && kept.data === S.cls.data) {
    S.cls.data = kept.data;
    applyHidden(setup.hide);
    openLesson(setup.lesson);
    document.body.dataset.setup = 'done';
    return;
  }
  await applySetup(setup);
}

/** The link of the current page (origin, path, hash of its setup). */
export function shareLink() {
  return `${location.origin}${location.pathname}${setupHash(currentSetup())}`;
}

export function renderShare() {
  const box = $('share-controls');
  if (!box.childElementCount) {
    for (const [name, label] of Object.entries(CONTROLS)) {
      const id = `hide-${name}`;
      const cb = el('input', null, { type: 'checkbox', id, 'data-testid': id });
      cb.addEventListener('change', () => {
        const hide = new Set(S.cls.hidden);
        if (/** @type {HTMLInputElement} */ (cb).checked) hide.add(name); else hide.delete(name);
        S.cls.hidden = hide;
        renderShare();
      });
      const lab = el('label', null, { for: id, class: 'small' });
      lab.append(cb, ` ${label}`);
      box.append(lab);
    }
  }
  for (const name of Object.keys(CONTROLS)) input(`hide-${name}`).checked = S.cls.hidden.has(name);
  input('share-link').value = shareLink();
}

export function wireClassroom() {
  renderShare();
  // Any change of a setting changes the link.
  document.addEventListener('change', (e) => {
    const t = /** @type {HTMLElement} */ (e.target);
    if (t && t.closest && t.closest('#settings, .panel-training')) renderShare();
  });
  $('share-copy').addEventListener('click', async () => {
    const link = shareLink();
    input('share-link').value = link;
    try {
      await navigator.clipboard.writeText(link);
      $('share-note').textContent = 'Copied. Paste it where your class will find it.';
    } catch {
      input('share-link').select();
      $('share-note').textContent = 'Select the link and copy it (this browser did not let the page copy it).';
    }
  });
  window.addEventListener('hashchange', () => { applySetup(parseSetup(location.hash)); });
  // The select for the column choices is filled when data loads; keep the link in step.
  select('opt-batch-key').addEventListener('change', renderShare);
}
