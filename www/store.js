// @ts-check
// cellvae engine: the session kept in this browser, so that a reload or a browser restart
// loses nothing. One IndexedDB database of this page's origin ("cellvae"), one object
// store, three entries:
//
// - `data`: the loaded matrix as `Dataset.encode` wrote it (CVMATRX1, the hand-off
//   codec) in a Blob (built and read back a piece at a time, www/read.js; earlier
//   versions kept a Uint8Array, still read), what it was (file names, for the note), when;
// - `model`: the run (`Session.checkpoint`: parameters, Adam's moments, step and epoch;
//   `Session.run_record`: the settings as they are now, the position in the epoch, the
//   history; `model_config_json`), which `Session.resume` continues exactly where it
//   stopped, with the options it was made with and the epoch and step it had reached; it
//   names the `data` entry it belongs to. An entry of an earlier version of the page holds
//   `safetensors` (the parameters only) and a `history` instead of `checkpoint` and
//   `run`: it is still read (`Session.from_model`: training goes on from the parameters);
// - `settings`: the values of the settings form, by element id;
// - `groups`: the named groups of cells (selection.js: name, cell positions, outline
//   colour, shown), for the `data` entry they name.
//
// Only the engine writes (engine.js, through `Keeper`): after a load, after a new model,
// every few seconds while training, on pause, after a step and when training ends. Writes
// never block training: the bytes are taken between slices and written asynchronously, at
// most one write in flight (a newer record replaces a waiting one). What is read back is
// validated (`checkData`, `checkModel`, `checkSettings`; the engine then decodes it with
// the wasm core): anything damaged or foreign is deleted and said, never used. Nothing
// here leaves the machine.

/** @typedef {import('./protocol.js').EpochRow} EpochRow */
/** @typedef {import('./protocol.js').SessionOptions} SessionOptions */
/** @typedef {import('./protocol.js').Kept} Kept */

const DB_NAME = 'cellvae';
const DB_VERSION = 1;
const STORE = 'kept';
/** Every entry carries this tag; an entry without it (another version, another app) is foreign. */
export const FORMAT = 'cellvae-kept-1';

/**
 * @typedef {{format: string, id: string, savedAt: number, what: string, nCells: number, nGenes: number, bytes: Blob | Uint8Array}} DataEntry
 * @typedef {{format: string, dataId: string, savedAt: number, checkpoint?: Uint8Array, run?: string, config: string,
 *   options: SessionOptions, epoch: number, step: number, epochs: number, finished: boolean,
 *   safetensors?: Uint8Array, history?: EpochRow[]}} ModelEntry
 *   `checkpoint` + `run` (this version), or `safetensors` + `history` (an earlier one).
 * @typedef {{format: string, savedAt: number, form: Record<string, string>}} SettingsEntry
 * @typedef {{id: number, name: string, cells: Uint32Array, colour: string, shown: boolean}} KeptGroup
 * @typedef {{format: string, dataId: string, savedAt: number, nextId: number, groups: KeptGroup[]}} GroupsEntry
 * @typedef {{data?: DataEntry | null, model?: ModelEntry | null, settings?: SettingsEntry | null, groups?: GroupsEntry | null}} Write
 *   What to write: an entry to put, null to delete it, absent to leave it.
 */

/** @param {unknown} e */
function errorName(e) {
  return e && typeof e === 'object' && 'name' in e ? String(e.name) : '';
}

/** @param {unknown} e */
function errorText(e) {
  return String(e && typeof e === 'object' && 'message' in e ? e.message : e);
}

/** Whether `e` says the origin's storage is full. @param {unknown} e */
export function isQuota(e) {
  return errorName(e) === 'QuotaExceededError' || /quota/i.test(errorText(e));
}

/** Opens (creating on first use) the database. @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') { reject(new Error('this browser offers no IndexedDB here')); return; }
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error || new Error('IndexedDB could not be opened'));
    req.onblocked = () => reject(new Error('IndexedDB is held by another tab of this page'));
  });
}

/**
 * One transaction over the store; resolves when it has committed.
 * @template T @param {IDBDatabase} db @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => T} body @returns {Promise<T>}
 */
function transact(db, mode, body) {
  return new Promise((resolve, reject) => {
    /** @type {T} */
    let out;
    /** @type {IDBTransaction | null} */
    let tx = null;
    try {
      const t = db.transaction(STORE, mode);
      tx = t;
      t.oncomplete = () => resolve(out);
      t.onabort = () => reject(t.error || new Error('the write was aborted'));
      t.onerror = () => reject(t.error || new Error('the write failed'));
      out = body(t.objectStore(STORE));
    } catch (e) {
      // Nothing of a transaction whose body failed is kept.
      if (tx) try { tx.abort(); } catch { /* already finished */ }
      reject(e);
    }
  });
}

// ---- validation ----------------------------------------------------------------------

/** @param {unknown} v @returns {v is Record<string, unknown>} */
const isObject = (v) => !!v && typeof v === 'object' && !Array.isArray(v);
/** @param {unknown} v */
const isCount = (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
/** @param {unknown} v */
const isTime = (v) => typeof v === 'number' && Number.isFinite(v) && v > 0;
/** @param {unknown} v */
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);
/** @param {unknown} v @param {number} max */
const isText = (v, max) => typeof v === 'string' && v.length <= max;

/** A data entry as written by this page, else null. @param {unknown} v @returns {DataEntry | null} */
export function checkData(v) {
  if (!isObject(v) || v.format !== FORMAT) return null;
  if (!isText(v.id, 100) || !isTime(v.savedAt) || !isText(v.what, 10_000)) return null;
  if (!isCount(v.nCells) || !isCount(v.nGenes) || !(v.bytes instanceof Uint8Array || v.bytes instanceof Blob)) return null;
  return /** @type {DataEntry} */ (/** @type {unknown} */ (v));
}

/** @param {unknown} r @returns {r is EpochRow} */
function isRow(r) {
  return isObject(r) && isCount(r.epoch) && ['elbo', 'reconstruction', 'kl', 'kl_weight', 'seconds'].every((k) => isNumber(r[k]));
}

/** @param {unknown} v @returns {v is SessionOptions} */
function isOptions(v) {
  return isObject(v) && Object.entries(v).every(([k, x]) => /^[a-z_0-9]{1,40}$/.test(k)
    && (isNumber(x) || typeof x === 'boolean' || isText(x, 1000)));
}

/** A model entry as written by this page for the data entry `dataId`, else null. @param {unknown} v @param {string} dataId @returns {ModelEntry | null} */
export function checkModel(v, dataId) {
  if (!isObject(v) || v.format !== FORMAT || v.dataId !== dataId || !isTime(v.savedAt)) return null;
  if (!isText(v.config, 10_000_000) || !isOptions(v.options)) return null;
  const run = v.checkpoint instanceof Uint8Array && isText(v.run, 100_000_000);
  const older = v.safetensors instanceof Uint8Array && Array.isArray(v.history) && v.history.every(isRow);
  if (!run && !older) return null;
  if (!isCount(v.epoch) || !isCount(v.step) || !isCount(v.epochs) || typeof v.finished !== 'boolean') return null;
  return /** @type {ModelEntry} */ (/** @type {unknown} */ (v));
}

/** A settings entry, else null (only short string values under element-id keys). @param {unknown} v @returns {SettingsEntry | null} */
export function checkSettings(v) {
  if (!isObject(v) || v.format !== FORMAT || !isTime(v.savedAt) || !isObject(v.form)) return null;
  const ok = Object.entries(v.form).every(([k, x]) => /^[a-z][a-z0-9-]{0,40}$/.test(k) && isText(x, 200));
  return ok ? /** @type {SettingsEntry} */ (/** @type {unknown} */ (v)) : null;
}

/**
 * A groups entry as written by this page for the data entry `dataId` of `nCells` cells,
 * else null (every cell position in range, short names, a #rrggbb colour).
 * @param {unknown} v @param {string} dataId @param {number} nCells @returns {GroupsEntry | null}
 */
export function checkGroups(v, dataId, nCells) {
  if (!isObject(v) || v.format !== FORMAT || v.dataId !== dataId || !isTime(v.savedAt) || !isCount(v.nextId)) return null;
  if (!Array.isArray(v.groups) || v.groups.length > 1000) return null;
  const ok = v.groups.every((g) => isObject(g) && isCount(g.id) && isText(g.name, 200) && typeof g.shown === 'boolean'
    && typeof g.colour === 'string' && /^#[0-9a-f]{6}$/i.test(g.colour)
    && g.cells instanceof Uint32Array && g.cells.every((c) => c < nCells));
  return ok ? /** @type {GroupsEntry} */ (/** @type {unknown} */ (v)) : null;
}

// ---- the keeper ------------------------------------------------------------------------

/**
 * The engine's side of the store: writes in order, one at a time, never awaited by
 * training; says how it went through `onState` (the engine forwards it to the page).
 */
export class Keeper {
  /** @param {(k: Kept) => void} onState */
  constructor(onState) {
    this.onState = onState;
    /** @type {Promise<IDBDatabase> | null} */
    this.db = null;
    /** @type {Write | null} the write waiting for the one in flight */
    this.waiting = null;
    this.writing = false;
    /** @type {Kept} */
    this.state = { state: 'idle', savedAt: null, epoch: null, step: null, note: null };
    /** Set by `forget` (and by a full store until the next load): nothing more is written. */
    this.stopped = false;
    this.forgotten = false;
  }

  /** @returns {Promise<IDBDatabase>} */
  open() {
    if (!this.db) {
      this.db = openDb();
      this.db.catch(() => { this.db = null; });
    }
    return this.db;
  }

  /** @param {Partial<Kept>} s */
  say(s) {
    this.state = { ...this.state, ...s };
    this.onState({ ...this.state });
  }

  /**
   * Everything kept, raw (validate before use). Null when the browser keeps nothing for
   * this page or IndexedDB cannot be used (the note says why).
   * @returns {Promise<{data: unknown, model: unknown, settings: unknown, groups: unknown} | null>}
   */
  async read() {
    try {
      const db = await this.open();
      return await transact(db, 'readonly', (s) => {
        const out = { data: /** @type {unknown} */ (undefined), model: /** @type {unknown} */ (undefined), settings: /** @type {unknown} */ (undefined), groups: /** @type {unknown} */ (undefined) };
        for (const k of /** @type {const} */ (['data', 'model', 'settings', 'groups'])) {
          const req = s.get(k);
          req.onsuccess = () => { out[k] = req.result; };
        }
        return out;
      });
    } catch (e) {
      this.say({ state: 'off', note: `Nothing is kept in this browser (${errorText(e)}): the page works as usual, but a reload starts afresh.` });
      return null;
    }
  }

  /** Deletes the entries named (damaged or foreign ones found on start-up). @param {('data' | 'model' | 'settings' | 'groups')[]} keys */
  async discard(keys) {
    try {
      const db = await this.open();
      await transact(db, 'readwrite', (s) => { for (const k of keys) s.delete(k); });
    } catch { /* nothing to lose: they are not used */ }
  }

  /**
   * Queues a write (a newer one merges over a waiting one). A new data set (`data` in the
   * write) also lifts a stop after a full store: it may fit now.
   * @param {Write} w
   */
  write(w) {
    if (this.forgotten) return;
    if (w.data) this.stopped = false;
    if (this.stopped) return;
    this.waiting = this.waiting ? { ...this.waiting, ...w } : w;
    if (!this.writing) this.drain();
  }

  async drain() {
    this.writing = true;
    try {
      while (this.waiting && !this.forgotten && !this.stopped) {
        const w = this.waiting;
        this.waiting = null;
        await this.commit(w);
      }
    } finally {
      this.writing = false;
    }
  }

  /** @param {Write} w */
  async commit(w) {
    this.say({ state: 'saving' });
    try {
      const db = await this.open();
      if (w.data && typeof navigator !== 'undefined' && navigator.storage && navigator.storage.estimate) {
        // Refuse up front what cannot fit (the write would fail at commit anyway).
        const est = await navigator.storage.estimate().catch(() => null);
        const b = w.data.bytes;
        const need = (b instanceof Blob ? b.size : b.length) + (w.model && w.model.checkpoint ? w.model.checkpoint.length : 0);
        if (est && est.quota !== undefined && est.usage !== undefined && est.usage + need > est.quota) {
          throw new DOMException(`${(need / 1e6).toFixed(1)} MB do not fit in the ${((est.quota - est.usage) / 1e6).toFixed(1)} MB left`, 'QuotaExceededError');
        }
      }
      await transact(db, 'readwrite', (s) => {
        for (const [k, v] of Object.entries(w)) {
          if (v === undefined) continue;
          if (v === null) s.delete(k);
          else s.put(v, k);
        }
      });
      const m = w.model;
      const keepsOld = w.model === undefined;
      this.say({ state: 'saved', savedAt: Date.now(), epoch: m ? m.epoch : keepsOld ? this.state.epoch : null, step: m ? m.step : keepsOld ? this.state.step : null, note: null });
    } catch (e) {
      // A failed write wrote nothing; if it was a new data set, what is kept is the old
      // one: delete it and its model, so a reload never brings back the wrong data.
      if (w.data) await this.discard(['data', 'model', 'groups']);
      this.stopped = true;
      this.waiting = null;
      if (isQuota(e)) {
        const detail = /MB/.test(errorText(e)) ? ` (${errorText(e)})` : '';
        this.say({ state: 'full', note: `Not kept in this browser: its storage for this page is full${detail}. `
          + 'The page works as before, but a reload will not bring this session back. Loading smaller data, or freeing space '
          + '(Forget everything frees what this page kept), lets it keep again.' });
      } else {
        this.say({ state: 'failed', note: `Not kept in this browser: ${errorText(e)}. The page works as before, but a reload will not bring this session back.` });
      }
    }
  }

  /** Deletes everything kept and writes nothing more (until the page is loaded again). */
  async forget() {
    this.forgotten = true;
    this.waiting = null;
    const db = await this.open();
    await transact(db, 'readwrite', (s) => { s.clear(); });
    this.say({ state: 'forgotten', savedAt: null, epoch: null, step: null, note: null });
  }
}
