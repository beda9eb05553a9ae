// @ts-check
// cellvae: the training engine. Owns the wasm Dataset and Session, runs the training loop
// and answers the page's requests (www/protocol.js). The same code runs in a dedicated
// Web Worker (engine-worker.js: training at full speed, off the UI thread) or on the page
// (client.js `startPageEngine`, where only the page has WebGPU: training in slices
// between animation frames). The host says which, how long a slice may run and how to
// yield.
//
// One executor handles everything in order: queued requests first, then (while the run
// state is 'training') one training slice, then it yields so new requests get in. Run
// state: 'empty' (no session) -> 'idle' (a session at rest) <-> 'training'. No request
// ever overlaps another or a slice.
//
// The engine also keeps the session in this browser (store.js): the data after a load,
// the model after it is made, every few seconds while training, on pause, after a step
// and when training ends; `restore` brings it back on start-up, `forget` deletes it.
import { core } from './wasm.js';
/** @typedef {import('./pkg/cellvae.js').Session} Session */
/** @typedef {import('./pkg/cellvae.js').Dataset} Dataset */
import { detectGpu } from './gpu-detect.js';
import { readEntries, keptBlob, readKept } from './read.js';
import { CLASSROOM_HANDLERS } from './engine-classroom.js';
import { Keeper, FORMAT, checkData, checkModel, checkSettings, checkGroups } from './store.js';

/** @typedef {import('./protocol.js').Requests} Requests */
/** @typedef {import('./protocol.js').RequestType} RequestType */
/** @typedef {import('./protocol.js').Snapshot} Snapshot */
/** @typedef {import('./protocol.js').SessionInfo} SessionInfo */
/** @typedef {import('./protocol.js').CoreFacts} CoreFacts */
/** @typedef {import('./protocol.js').GpuInfo} GpuInfo */
/** @typedef {import('./protocol.js').GpuRun} GpuRun */
/** @typedef {import('./protocol.js').RunState} RunState */
/** @typedef {import('./protocol.js').Pace} Pace */
/** @typedef {import('./protocol.js').EngineMessage} EngineMessage */
/** @typedef {import('./protocol.js').TrainStatus} TrainStatus */
/** @typedef {import('./protocol.js').EpochRow} EpochRow */
/** @typedef {import('./protocol.js').SessionOptions} SessionOptions */

/**
 * Where the engine runs.
 * @typedef {{
 *   thread: import('./protocol.js').Thread,
 *   post: (m: EngineMessage, transfer?: Transferable[]) => void,
 *   yieldNow: (ms: number) => Promise<void>,
 *   budgetMs: number,
 *   rollMs: number,
 *   parser?: import('./client.js').EngineClient | null,
 *   cpu?: Promise<import('./protocol.js').CpuThreads>,
 * }} EngineHost
 */

/** A request as it arrives: its type, id and payload fields. @typedef {{type: RequestType, id: number} & Record<string, any>} Incoming */

/** Above this many cells, the latent means are refreshed a slice per snapshot (round robin). */
const ROLLING_ABOVE = 3000;
/** At most one snapshot per this many milliseconds while training (20 a second). */
const SNAPSHOT_MS = 50;
const FRAME_MS = 1000 / 60;
/** While training, the model is kept at most this often (milliseconds). */
const KEEP_MS = 5000;

/** @param {unknown} e */
function message(e) {
  return String(e && typeof e === 'object' && 'message' in e ? e.message : e);
}

/** The ArrayBuffers of the typed arrays among a result's fields (transferred, not copied). @param {any} result */
function transferables(result) {
  /** @type {Transferable[]} */
  const out = [];
  if (result && typeof result === 'object') {
    for (const v of Object.values(result)) if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer) out.push(v.buffer);
  }
  return out;
}

export class Engine {
  /** @param {EngineHost} host */
  constructor(host) {
    this.host = host;
    /** @type {Dataset | null} */
    this.dataset = null;
    /** @type {Session | null} */
    this.session = null;
    /** Counts sessions; snapshots and results name theirs, so the page drops stale ones. */
    this.sessionId = 0;
    /** @type {RunState} */
    this.run = 'empty';
    /** Whether the executor is working (else asleep until a request or play). */
    this.working = false;
    /** @type {Incoming[]} */
    this.queue = [];
    /** @type {GpuInfo} */
    this.gpuInfo = { offered: false, ok: false, adapter: null, software: false, error: null };
    /** @type {GpuRun} */
    this.gpu = { state: null, adapter: null, error: null };
    /** @type {Promise<void> | null} */
    this.gpuStart = null;
    /** @type {Pace} */
    this.pace = 'auto';
    /** Milliseconds per training step (running mean). */
    this.stepMs = 0;
    /** @type {Float32Array | null} the latent means the page shows (rolling refresh for many cells) */
    this.latent = null;
    this.rollNext = 0;
    this.rollCount = 1000;
    this.lastSnapshot = 0;
    this.historyEpoch = -1;
    /** @type {string | null} */
    this.stopped = null;
    this.handlers = handlers;
    /** @type {SessionOptions} the options the session was made with (kept with the model) */
    this.options = {};
    /** @type {string | null} the kept data entry the loaded data is (null: not kept) */
    this.dataId = null;
    this.lastKeep = 0;
    this.keeper = new Keeper((kept) => this.host.post({ type: 'kept', kept }));
  }

  /** A message from the page. @param {Incoming} msg */
  receive(msg) {
    this.queue.push(msg);
    this.pump();
  }

  async pump() {
    if (this.working) return;
    this.working = true;
    try {
      for (;;) {
        const req = this.queue.shift();
        if (req) {
          await this.answer(req);
          continue;
        }
        if (this.run !== 'training') break;
        const t0 = performance.now();
        await this.slice();
        if (this.run !== 'training' || performance.now() - this.lastKeep >= KEEP_MS) this.keepModel();
        // Paced ("k steps per frame"): wait out the rest of the frame's time.
        const wait = this.pace === 'auto' ? 0 : Math.max(0, FRAME_MS - (performance.now() - t0));
        await this.host.yieldNow(wait);
      }
    } finally {
      this.working = false;
    }
  }

  /** @param {Incoming} req */
  async answer(req) {
    const { id, type } = req;
    try {
      const handler = /** @type {Record<string, (this: Engine, r: Incoming) => Promise<any>>} */ (this.handlers)[type];
      if (!handler) throw new Error(`unknown request: ${type}`);
      const result = await handler.call(this, req);
      this.host.post({ type: 'response', id, ok: true, result }, transferables(result));
    } catch (e) {
      this.host.post({ type: 'response', id, ok: false, error: message(e) });
    }
  }

  /** @returns {Session} */
  need() {
    if (!this.session) throw new Error('no model: load data first');
    return this.session;
  }

  dropSession() {
    if (this.session) this.session.free();
    this.session = null;
    this.run = 'empty';
    this.gpu = { state: null, adapter: null, error: null };
    this.gpuStart = null;
    this.latent = null;
    this.stopped = null;
  }

  /** @param {string} device 'auto' | 'gpu' | 'cpu' */
  wantGpu(device) {
    if (!this.gpuInfo.ok || device === 'cpu') return false;
    return device === 'gpu' || !this.gpuInfo.software;
  }

  /** Moves the session's training to the GPU (it stays on the CPU if that fails). @param {Session} s */
  startGpu(s) {
    /** @type {GpuRun} */
    const g = { state: 'starting', adapter: null, error: null };
    this.gpu = g;
    let p;
    try {
      p = s.start_gpu();
    } catch (e) {
      g.state = 'failed';
      g.error = message(e);
      return;
    }
    this.gpuStart = p.then(
      (adapter) => { if (this.gpu === g) { g.state = 'on'; g.adapter = String(adapter); this.postSnapshot('none'); } },
      (e) => { if (this.gpu === g) { g.state = 'failed'; g.error = message(e); this.postSnapshot('none'); } },
    );
  }

  /**
   * Makes `s` the session (made with `options`; `restored`: brought back from what is
   * kept, which is not written again) and keeps it.
   * @param {Session} s @param {string} device @param {SessionOptions} options @param {boolean} [restored] @param {string} [origin]
   * @returns {{info: SessionInfo, snapshot: Snapshot}}
   */
  adopt(s, device, options, restored = false, origin) {
    this.dropSession();
    this.session = s;
    this.options = { ...options };
    this.sessionId += 1;
    this.run = 'idle';
    this.stepMs = 0;
    this.historyEpoch = -1;
    if (this.wantGpu(device)) this.startGpu(s);
    /** @type {CoreFacts} */
    const f = s.facts();
    /** @type {SessionInfo} */
    const info = {
      session: this.sessionId,
      nLatent: f.n_latent,
      nCells: f.n_cells,
      nGenes: f.n_genes,
      genes: f.gene_names,
      cellIds: f.cell_ids,
      libraries: Float32Array.from(f.library_sizes),
      meta: f.columns,
      model: f.model,
      nTrain: f.n_train,
      batchLevels: f.batch_levels,
      medianLibrary: f.median_library,
      report: f.preprocess_report,
      origin: origin || f.origin,
      batchKey: f.batch_key ?? null,
      labelKey: f.label_key ?? null,
    };
    if (!restored) this.keepModel();
    return { info, snapshot: this.snapshot('full') };
  }

  /** The session's status (a resumed session's is the kept run's). @param {Session} s @returns {TrainStatus} */
  statusOf(s) {
    return s.status();
  }

  /** The session's history. @param {Session} s @returns {EpochRow[]} */
  historyOf(s) {
    return s.history();
  }

  /** Keeps the loaded data in this browser (a new entry: the model kept before goes). @param {string} what */
  keepData(what) {
    const d = this.dataset;
    this.dataId = null;
    if (!d) return;
    let bytes;
    try { bytes = keptBlob(d); } catch { return; }
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    this.dataId = id;
    this.keeper.write({ data: { format: FORMAT, id, savedAt: Date.now(), what, nCells: d.n_cells, nGenes: d.n_genes, bytes }, model: null, groups: null });
  }

  /**
   * Keeps the run (its checkpoint and run record: `Session.resume` continues it exactly)
   * and where training stands (written in the background).
   */
  keepModel() {
    const s = this.session;
    this.lastKeep = performance.now();
    if (!s || !this.dataId) return;
    let checkpoint, run, config;
    try {
      checkpoint = s.checkpoint();
      run = s.run_record();
      config = s.model_config_json();
    } catch {
      return; // a failed run has nothing new to keep
    }
    // The record's position: on the GPU while training, the last state read back.
    const st = JSON.parse(run).schedule;
    this.keeper.write({ model: {
      format: FORMAT, dataId: this.dataId, savedAt: Date.now(), checkpoint, run, config,
      options: { ...this.options, lr: st.config.lr, beta: st.config.max_kl_weight },
      epoch: st.epoch, step: st.steps, epochs: st.config.epochs, finished: st.epoch >= st.config.epochs,
    } });
  }

  /** @param {number} ms @param {number} k */
  noteStepTime(ms, k) {
    if (k < 1) return;
    const per = ms / k;
    this.stepMs = this.stepMs ? 0.8 * this.stepMs + 0.2 * per : per;
  }

  /** Runs `k` steps on the GPU run (0: read the latest parameters back). @param {Session} s @param {number} k */
  async gpuSteps(s, k) {
    const t0 = performance.now();
    await s.gpu_step(k);
    this.noteStepTime(performance.now() - t0, k);
    const why = s.take_gpu_fallback();
    if (why) {
      this.gpu.state = 'failed';
      this.gpu.error = `${why}; training continues on the CPU from the last state read back`;
    }
  }

  /** `k` steps, on the GPU when it trains, else on the CPU. @param {Session} s @param {number} k */
  async steps(s, k) {
    if (this.gpu.state === 'starting') await this.gpuStart;
    if (this.session !== s) return;
    if (this.gpu.state === 'on') await this.gpuSteps(s, k);
    else {
      const t0 = performance.now();
      s.step(k);
      this.noteStepTime(performance.now() - t0, k);
    }
  }

  /** One slice of training: steps for about the host's budget (or the pace's k steps). */
  async slice() {
    const s = this.session;
    if (!s) { this.run = 'empty'; return; }
    const t0 = performance.now();
    const budget = this.host.budgetMs;
    const most = this.pace === 'auto' ? Infinity : this.pace;
    try {
      if (this.gpu.state === 'starting') await this.gpuStart;
      if (this.session !== s || this.run !== 'training') return;
      if (this.gpu.state === 'on') {
        const k = Math.max(1, Math.min(32, most, Math.floor(budget / (this.stepMs || budget))));
        await this.gpuSteps(s, k);
      } else {
        let done = 0;
        do {
          const t = performance.now();
          s.step(1);
          this.noteStepTime(performance.now() - t, 1);
          done++;
        } while (done < most && performance.now() - t0 + this.stepMs < budget);
      }
      if (this.session !== s) return;
      if (s.status().finished) this.run = 'idle';
      const now = performance.now();
      if (this.run !== 'training') this.postSnapshot('full');
      else if (now - this.lastSnapshot >= SNAPSHOT_MS) this.postSnapshot('rolling');
    } catch (e) {
      if (this.session !== s) return;
      this.run = 'idle';
      this.stopped = `Training stopped: ${message(e)}`;
      this.postSnapshot('none');
    }
  }

  /**
   * The latent means to show: every cell ('full', or few cells), or the next slice of
   * them (many cells while training; the rest keep their last values).
   * @param {Session} s @param {'full' | 'rolling'} mode @returns {Float32Array}
   */
  refreshLatent(s, mode) {
    const n = s.n_cells, d = s.n_latent;
    if (mode === 'full' || n <= ROLLING_ABOVE || !this.latent || this.latent.length !== n * d) {
      this.latent = s.latent();
      this.rollNext = 0;
    } else {
      const count = Math.max(200, Math.min(n, Math.round(this.rollCount)));
      const t0 = performance.now();
      const part = s.latent_range(this.rollNext, count);
      const ms = performance.now() - t0;
      this.latent.set(part, this.rollNext * d);
      const got = part.length / d;
      this.rollNext = this.rollNext + got >= n ? 0 : this.rollNext + got;
      if (ms > 0) this.rollCount = Math.max(200, Math.min(n, (got * this.host.rollMs) / ms));
    }
    return this.latent.slice();
  }

  /** @param {'full' | 'rolling' | 'none'} latent @returns {Snapshot} */
  snapshot(latent) {
    const s = this.session;
    /** @type {Snapshot} */
    const snap = {
      type: 'snapshot', session: this.sessionId, run: this.run, status: s ? this.statusOf(s) : null,
      backend: s ? s.backend : null, gpu: { ...this.gpu }, stopped: this.stopped, stepMs: this.stepMs,
    };
    if (s && latent !== 'none') {
      snap.latent = this.refreshLatent(s, latent);
      snap.klPerDim = Array.from(s.kl_per_dim());
    }
    const st = snap.status;
    if (s && st && (st.epoch !== this.historyEpoch || latent === 'full')) {
      snap.history = this.historyOf(s);
      this.historyEpoch = st.epoch;
    }
    this.lastSnapshot = performance.now();
    return snap;
  }

  /** @param {'full' | 'rolling' | 'none'} latent */
  postSnapshot(latent) {
    const snap = this.snapshot(latent);
    this.host.post(snap, snap.latent ? [snap.latent.buffer] : []);
  }

  /** Reads and parses files (here, or in the parser worker when on the page). @param {Incoming} req */
  async readDataset(req) {
    /** @param {Omit<import('./protocol.js').Progress, 'type' | 'id'>} p */
    const progress = (p) => this.host.post({ type: 'progress', id: req.id, ...p });
    const t0 = performance.now();
    if (this.host.parser) {
      const r = await this.host.parser.request('parse', { files: req.files, obs: req.obs }, { onProgress: progress });
      const t1 = performance.now();
      return { dataset: core.Dataset.from_bytes(r.bytes), read_ms: r.read_ms, parse_ms: r.parse_ms + (performance.now() - t1), in_worker: true };
    }
    const entries = await readEntries(req.files, req.obs, progress);
    progress({ phase: 'parsing' });
    const t1 = performance.now();
    const dataset = core.read_files(entries.files, entries.obs);
    return { dataset, read_ms: t1 - t0, parse_ms: performance.now() - t1, in_worker: this.host.thread === 'worker' };
  }
}

/** @type {{[K in RequestType]: (this: Engine, req: Incoming) => Promise<Requests[K]['result']>}} */
const handlers = {
  ...CLASSROOM_HANDLERS,
  async hello() {
    this.gpuInfo = await detectGpu();
    const cpu = this.host.cpu ? await this.host.cpu : { cpu_threads: 1, why: 'the page\'s own thread' };
    return { thread: this.host.thread, gpu: this.gpuInfo, cpu };
  },

  async load(req) {
    const r = await this.readDataset(req);
    if (req.transform === 'simulated_batches') {
      // The batch-effect lesson's data: the same cells in two batches (seeded, documented in src/teach/mixing.rs).
      const split = r.dataset.with_simulated_batches(0);
      r.dataset.free();
      r.dataset = split;
    }
    const summary = r.dataset.summary();
    const geneNames = r.dataset.gene_names();
    // New data, new model: the old session goes (a failed read above keeps both).
    this.dropSession();
    if (this.dataset) this.dataset.free();
    this.dataset = r.dataset;
    this.keepData(typeof req.what === 'string' ? req.what : 'your data');
    return { summary, geneNames, read_ms: r.read_ms, parse_ms: r.parse_ms, in_worker: r.in_worker };
  },

  async parse(req) {
    const progress = (/** @type {any} */ p) => this.host.post({ type: 'progress', id: req.id, ...p });
    const t0 = performance.now();
    const entries = await readEntries(req.files, req.obs, progress);
    progress({ phase: 'parsing' });
    const t1 = performance.now();
    const dataset = core.read_files(entries.files, entries.obs);
    const bytes = dataset.to_bytes();
    dataset.free();
    return { bytes, read_ms: t1 - t0, parse_ms: performance.now() - t1 };
  },

  async reset(req) {
    if (!this.dataset) throw new Error('load data first');
    if (!req.keep) this.dropSession();
    // On failure the current session (when kept) stays as it was.
    const s = new core.Session(this.dataset, req.options);
    return this.adopt(s, req.device, req.options);
  },

  async import(req) {
    if (!this.dataset) throw new Error('load the data first: the model is shown on the cells loaded in step 1');
    const s = core.Session.from_model(this.dataset, req.safetensors, req.config, req.options);
    return this.adopt(s, req.device, req.options);
  },

  async play() {
    const s = this.need();
    if (this.statusOf(s).finished) return {};
    this.run = 'training';
    this.stopped = null;
    this.postSnapshot('none');
    return {};
  },

  async pause() {
    const s = this.session;
    if (!s || this.run !== 'training') return {};
    this.run = 'idle';
    // A GPU run reads its parameters back a few times a second: fetch the latest.
    if (this.gpu.state === 'on') await this.gpuSteps(s, 0);
    this.postSnapshot('full');
    this.keepModel();
    return {};
  },

  async step(req) {
    const s = this.need();
    if (this.run === 'training') throw new Error('training is running: pause it first');
    if (this.statusOf(s).finished) return {};
    await this.steps(s, Math.max(1, Math.floor(req.n)));
    // On the GPU, the whole state now (what is kept), as after a pause.
    if (this.session === s && this.gpu.state === 'on') await this.gpuSteps(s, 0);
    if (this.session === s) {
      this.postSnapshot('full');
      this.keepModel();
    }
    return {};
  },

  async set(req) {
    const s = this.need();
    if (req.lr !== undefined) s.set_lr(req.lr);
    if (req.beta !== undefined) s.set_beta(req.beta);
    if (this.run !== 'training') this.keepModel();
    return { status: this.statusOf(s) };
  },

  async pace(req) {
    const p = req.pace;
    this.pace = p === 'auto' || !(Number(p) >= 1) ? 'auto' : Math.min(50, Math.floor(Number(p)));
    return {};
  },

  async probe(req) {
    const s = this.need();
    const z = Float32Array.from(req.z);
    const expected = s.decode(z, req.batch, req.library);
    const near = s.nearest_profile(z, req.k, req.library);
    return { expected, mean: Float32Array.from(near.mean), cells: near.cells };
  },

  async decode(req) {
    return { expected: this.need().decode(req.zs, req.batch, req.library) };
  },

  async decode_genes(req) {
    return { values: this.need().decode_genes(req.zs, req.batch, req.library, Uint32Array.from(req.genes)) };
  },

  async expression(req) {
    if (!this.dataset) throw new Error('no data loaded');
    return { values: this.dataset.expression(req.gene) };
  },

  async latent() {
    return { latent: this.need().latent() };
  },

  async compare(req) {
    // The model's differential expression (src/session/compare.rs) with the parameters as
    // they are now; group2 empty: every other cell.
    return this.need().compare(Uint32Array.from(req.group1), Uint32Array.from(req.group2), req.options);
  },

  async export_scvi() {
    return { bytes: this.need().scvi_model() };
  },

  async export_h5ad(req) {
    return { bytes: this.need().h5ad(req.keepCounts) };
  },

  async export_model() {
    const s = this.need();
    return { safetensors: s.model_safetensors(), config: s.model_config_json() };
  },

  async lose_gpu(req) {
    this.need().test_lose_gpu_at_step(req.step);
    return {};
  },

  async gpu_fault(req) {
    this.need().test_gpu_fault(req.kind, req.step);
    return {};
  },

  async restore() {
    return restoreKept(this);
  },

  async keep_settings(req) {
    const form = /** @type {Record<string, string>} */ (req.form);
    const entry = checkSettings({ format: FORMAT, savedAt: Date.now(), form });
    if (entry) this.keeper.write({ settings: entry });
    return {};
  },

  async keep_groups(req) {
    // The named groups of cells, kept with the loaded data (a foreign or damaged list is not written).
    if (!this.dataId || !this.dataset) return {};
    const entry = checkGroups({ format: FORMAT, dataId: this.dataId, savedAt: Date.now(), nextId: req.nextId, groups: req.groups },
      this.dataId, this.dataset.n_cells);
    if (!entry) throw new Error('the groups could not be kept: they do not fit the loaded data');
    this.keeper.write({ groups: entry });
    return {};
  },

  async forget() {
    this.run = this.session ? 'idle' : 'empty';
    await this.keeper.forget();
    this.dropSession();
    if (this.dataset) this.dataset.free();
    this.dataset = null;
    this.dataId = null;
    return {};
  },

  async test_storage_full() {
    // Fault injection (tests): every write to IndexedDB in this thread fails as a full
    // storage makes it fail, from now on.
    IDBObjectStore.prototype.put = function () {
      throw new DOMException('the storage quota for this page is exceeded (simulated by a test)', 'QuotaExceededError');
    };
    return {};
  },
};

/**
 * Brings back what is kept in this browser: the data (decoded by the wasm core), the run
 * on it (`Session.resume`: exactly where it stopped; an entry of an earlier version of the
 * page: `Session.from_model`, training going on from its parameters), and the settings form.
 * A damaged or foreign entry is deleted and named in `notes`; nothing is half-restored
 * (a model whose data is gone goes too).
 * @param {Engine} engine @returns {Promise<import('./protocol.js').Restored>}
 */
async function restoreKept(engine) {
  /** @type {import('./protocol.js').Restored} */
  const out = { data: null, made: null, savedAt: null, epoch: 0, form: null, notes: [], groups: null };
  const raw = await engine.keeper.read();
  if (!raw) {
    if (engine.keeper.state.note) out.notes.push(engine.keeper.state.note);
    return out;
  }
  /** @type {('data' | 'model' | 'settings' | 'groups')[]} */
  const bad = [];
  const settings = raw.settings === undefined ? null : checkSettings(raw.settings);
  if (raw.settings !== undefined && !settings) {
    bad.push('settings');
    out.notes.push('The settings kept in this browser were damaged or not this page’s: they were discarded.');
  }
  out.form = settings ? { ...settings.form } : null;
  const data = raw.data === undefined ? null : checkData(raw.data);
  /** @type {Dataset | null} */
  let dataset = null;
  if (raw.data !== undefined && !data) {
    bad.push('data', 'model', 'groups');
    out.notes.push('The data kept in this browser was damaged or not this page’s: it was discarded.');
  } else if (data) {
    try {
      dataset = await readKept(data.bytes);
      if (dataset.n_cells !== data.nCells || dataset.n_genes !== data.nGenes) throw new Error('its size does not match its record');
    } catch (e) {
      if (dataset) dataset.free();
      dataset = null;
      bad.push('data', 'model', 'groups');
      out.notes.push(`The data kept in this browser could not be read back (${message(e)}): it was discarded.`);
    }
  } else {
    if (raw.model !== undefined) bad.push('model');
    if (raw.groups !== undefined) bad.push('groups');
  }
  if (!dataset || !data) {
    if (bad.length) await engine.keeper.discard(bad);
    return out;
  }
  engine.dropSession();
  if (engine.dataset) engine.dataset.free();
  engine.dataset = dataset;
  engine.dataId = data.id;
  out.data = { summary: dataset.summary(), geneNames: dataset.gene_names(), what: data.what, savedAt: data.savedAt };
  out.savedAt = data.savedAt;
  const groups = raw.groups === undefined ? null : checkGroups(raw.groups, data.id, dataset.n_cells);
  if (raw.groups !== undefined && !groups) {
    bad.push('groups');
    out.notes.push('The groups of cells kept in this browser were damaged or not for this data: they were discarded.');
  }
  out.groups = groups ? { nextId: groups.nextId, groups: groups.groups } : null;
  const model = raw.model === undefined ? null : checkModel(raw.model, data.id);
  if (raw.model !== undefined && !model) {
    bad.push('model');
    out.notes.push('The model kept in this browser was damaged or not for this data: it was discarded, and a new model made.');
  }
  if (model) {
    const device = out.form && ['auto', 'gpu', 'cpu'].includes(out.form['opt-device']) ? out.form['opt-device'] : 'auto';
    try {
      let s;
      if (model.checkpoint && model.run) s = core.Session.resume(dataset, model.checkpoint, model.config, model.run);
      else if (model.safetensors) {
        s = core.Session.from_model(dataset, model.safetensors, model.config, { ...model.options, epochs: Math.max(1, model.epochs - model.epoch) });
        out.notes.push('This session was kept by an earlier version of the page: its model is back and training goes on from it, counted afresh (its optimizer state and earlier history were not kept).');
      } else throw new Error('it holds no model');
      out.made = engine.adopt(s, device, model.options, true, `the session kept in this browser (saved ${new Date(model.savedAt).toLocaleString()})`);
      out.savedAt = model.savedAt;
      out.epoch = s.status().epoch;
    } catch (e) {
      bad.push('model');
      out.notes.push(`The model kept in this browser could not be loaded (${message(e)}): it was discarded, and a new model made.`);
    }
  }
  if (bad.length) await engine.keeper.discard(bad);
  return out;
}
