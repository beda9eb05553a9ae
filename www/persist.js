// @ts-check
// cellvae page: the session kept in this browser (the engine keeps it: store.js). On
// start-up, `restoreSession` asks the engine to bring back the kept data, model, history,
// settings and named groups of cells and shows "Restored your session from …"; the
// settings form is sent to the engine whenever it changes; the keeper's state is shown (saved, or why not: a full
// storage, none offered); "Forget everything" deletes it all and starts the page afresh.
// Text from the kept data (file names) is only ever set with textContent.
import { S } from './state.js';
import { $, button, message } from './dom.js';
import { adopt, setStatusText, sendPace } from './controls.js';
import { readOptions, fillColumnSelects, device } from './settings.js';
import { showData, DEMO_WHAT } from './files.js';
import { restoreGroups } from './selection.js';

/** The form fields kept: every setting, the live learning rate and beta, the pace. */
function formFields() {
  /** @type {(HTMLInputElement | HTMLSelectElement)[]} */
  const out = [];
  for (const e of document.querySelectorAll('#settings input, #settings select, #lr, #beta, #steps-per-frame')) {
    if ((e instanceof HTMLInputElement || e instanceof HTMLSelectElement) && e.id) out.push(e);
  }
  return out;
}

/** The settings form as {id: value}. */
export function readForm() {
  /** @type {Record<string, string>} */
  const form = {};
  for (const e of formFields()) form[e.id] = e.value;
  return form;
}

/** Sets the form from kept values (only known fields; a select only to one of its options). @param {Record<string, string>} form */
function applyForm(form) {
  for (const e of formFields()) {
    const v = form[e.id];
    if (typeof v !== 'string') continue;
    if (e instanceof HTMLSelectElement) {
      if ([...e.options].some((o) => o.value === v)) e.value = v;
    } else e.value = v;
  }
}

/** @param {number} t */
const when = (t) => new Date(t).toLocaleString();

/** The keeper's state, in words, under "Kept in this browser". */
export function renderKept() {
  const k = S.kept;
  const note = $('kept-note');
  note.classList.toggle('warn', !!k.note);
  if (k.note) note.textContent = k.note;
  else if (k.state === 'saved' && k.savedAt) note.textContent = `Kept in this browser at ${new Date(k.savedAt).toLocaleTimeString()}${k.epoch !== null ? ` (epoch ${k.epoch})` : ''}.`;
  else if (k.state === 'saving') note.textContent = note.textContent || 'Keeping…';
  else note.textContent = '';
}

/** @param {import('./protocol.js').Kept} k */
function onKept(k) {
  S.kept = k;
  renderKept();
}

/** @param {string[]} notes */
function showRestoreNotes(notes) {
  const box = $('restore-note');
  box.textContent = notes.join(' ');
  box.hidden = !notes.length;
}

/** Brings back the session kept in this browser, if any. */
async function restore() {
  const client = S.client;
  if (!client) return;
  const r = await client.request('restore', {});
  if (r.form) {
    applyForm(r.form);
    sendPace();
  }
  /** @type {string[]} */
  const notes = [...r.notes];
  // The user may have started a load meanwhile: theirs wins.
  if (r.data && !S.load) {
    fillColumnSelects(r.data.summary);
    if (r.form) applyForm(r.form);
    showData(r.data.summary, r.data.geneNames);
    let made = r.made;
    if (!made) {
      try {
        made = await client.request('reset', { options: readOptions(), device: device(), keep: false });
      } catch (e) {
        notes.push(`No model could be made with the kept settings: ${message(e)}`);
      }
    }
    adopt(made ? made.info : null, made ? made.snapshot : null);
    if (r.groups && made) restoreGroups(r.groups);
    const n = r.data.summary.n_cells.toLocaleString('en-US');
    const text = `Restored your session from ${when(r.savedAt || r.data.savedAt)}: ${n} cells (${r.data.what}), epoch ${r.epoch}.`;
    S.restored = { savedAt: r.savedAt || r.data.savedAt, epoch: r.epoch, cells: r.data.summary.n_cells };
    // A kept demo is the lessons' data preset again (a lesson link need not ask to replace it).
    S.cls.data = r.data.what === DEMO_WHAT.plain ? 'demo' : r.data.what === DEMO_WHAT.batches ? 'demo-batches' : null;
    $('restored-note').textContent = text;
    setStatusText(`${text} Press Train to go on.`);
  }
  showRestoreNotes(notes);
}

/** Restores the kept session (a failure is said, never a broken page) and wires the rest. */
export async function restoreSession() {
  const client = S.client;
  if (!client) return;
  client.onKept = onKept;
  try {
    await restore();
  } catch (e) {
    showRestoreNotes([`The session kept in this browser could not be restored: ${message(e)}`]);
  }
}

let settingsTimer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);

/** Sends the settings form to the engine to keep (soon after the last change). */
function keepSettings() {
  clearTimeout(settingsTimer);
  settingsTimer = setTimeout(() => {
    if (S.client) S.client.request('keep_settings', { form: readForm() }).catch(() => {});
  }, 300);
}

/** Deletes everything kept in this browser, then starts the page afresh. */
async function forget() {
  const btn = button('forget-button');
  btn.disabled = true;
  try {
    if (!S.client) throw new Error('the training engine did not start');
    await S.client.request('forget', {});
    location.reload();
  } catch (e) {
    btn.disabled = false;
    $('kept-note').textContent = `Not forgotten: ${message(e)}`;
  }
}

export function wirePersist() {
  for (const e of formFields()) e.addEventListener('change', keepSettings);
  button('forget-button').addEventListener('click', forget);
}
