// @ts-check
// cellvae page: what the lessons are built from. A lesson (see index.js `Lesson`) gets a
// box to build its interaction in; these helpers make its buttons (busy while they run,
// an error said in words), its result lines and charts, train the current model to its
// last epoch, start a run with other settings, and record what the lesson measured in
// S.cls.result (what the browser tests read, and what the lesson shows).
import { S } from '../state.js';
import { $, input, select, el, message } from '../dom.js';
import { resetWithSettings } from '../settings.js';
import { evaluateNow } from '../evaluate.js';
import { SNAPSHOT_EVENT } from '../controls.js';

/** Records `value` as what the open lesson measured under `key`. @param {string} key @param {any} value */
export function record(key, value) {
  S.cls.result[key] = value;
}

/** A paragraph for results (its text set by the lesson). @param {string} testid */
export function out(testid) {
  return el('p', '', { class: 'lesson-out small', 'data-testid': testid, role: 'status' });
}

/** A canvas for a chart, sized by the layout like the page's others. @param {string} testid @param {string} label @param {number} [height] */
export function chart(testid, label, height = 170) {
  return el('canvas', null, { class: 'lesson-chart', 'data-testid': testid, 'data-fit': 'css', width: '280', height: String(height), 'aria-label': label });
}

/**
 * A button that runs `fn` (disabled while it runs; an error is shown under it, in words).
 * @param {string} label @param {string} testid @param {() => Promise<void>} fn
 */
export function action(label, testid, fn) {
  const b = el('button', label, { type: 'button', class: 'small', 'data-testid': testid });
  const err = el('p', '', { class: 'error small', role: 'alert' });
  err.hidden = true;
  b.addEventListener('click', async () => {
    b.disabled = true;
    err.hidden = true;
    try {
      if (!S.client || !S.info) throw new Error('set up the lesson first (or load data): there is no model yet');
      await fn();
    } catch (e) {
      err.textContent = message(e);
      err.hidden = false;
    } finally {
      b.disabled = false;
    }
  });
  const box = el('div', null, { class: 'lesson-action' });
  box.append(b, err);
  return box;
}

/** Resolves when `pred` holds after a snapshot (checked at once, then on every snapshot). @param {() => boolean} pred @param {number} [timeoutMs] */
export function until(pred, timeoutMs = 600_000) {
  return new Promise((resolve, reject) => {
    if (pred()) { resolve(undefined); return; }
    const t = setTimeout(() => { window.removeEventListener(SNAPSHOT_EVENT, on); reject(new Error('training took too long')); }, timeoutMs);
    const on = () => {
      if (!pred()) return;
      clearTimeout(t);
      window.removeEventListener(SNAPSHOT_EVENT, on);
      resolve(undefined);
    };
    window.addEventListener(SNAPSHOT_EVENT, on);
  });
}

/** Trains the current model to its last epoch (or until stopped) and waits for the final snapshot. */
export async function trainToEnd() {
  if (!S.client || !S.info) throw new Error('no model');
  const session = S.info.session;
  if (S.status && S.status.finished) return;
  await S.client.request('play', {});
  await until(() => !S.info || S.info.session !== session || (S.run !== 'training' && !!S.status && (S.status.finished || !!S.stopped)));
  if (S.stopped) throw new Error(S.stopped);
}

/** The settings form's element of a setting (as classroom.js names them). @param {string} id */
function formField(id) {
  return /** @type {HTMLInputElement | HTMLSelectElement} */ ($(id));
}

/**
 * A new model with some settings changed (the others as in the form), trained to its end
 * and evaluated; its row in the runs table carries `label`. The form keeps the values.
 * @param {Record<string, string>} changes form element id -> value @param {string} label
 */
export async function trainRun(changes, label) {
  for (const [id, value] of Object.entries(changes)) {
    const f = formField(id);
    f.value = value;
    if (f.value !== value) throw new Error(`${id}: ${value} is not a choice here`);
  }
  const before = S.info ? S.info.session : -1;
  await resetWithSettings();
  if (!S.info || S.info.session === before) throw new Error($('train-error').textContent || 'the new model could not be made');
  await trainToEnd();
  const report = await evaluateNow({ label });
  if (!report) throw new Error(S.ev.error || 'the evaluation failed');
  return report;
}

/** The current value of a form field (for lessons that restore it). @param {string} id */
export function formValue(id) {
  return formField(id).value;
}

/** Asks the engine for a lesson computation (src/session/lessons.rs). @param {string} what @param {Record<string, any>} [args] */
export async function teach(what, args = {}) {
  if (!S.client || !S.info) throw new Error('no model');
  return S.client.request('teach', { what, args });
}

export { input, select, el };
