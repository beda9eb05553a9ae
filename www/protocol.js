// @ts-check
// cellvae page: the types of the messages between the page and the training engine
// (www/engine.js, in a Web Worker or on the page). Types only: this module exports nothing
// at run time. Every request carries an `id` and gets exactly one `response` with that id
// (ok + result, or an error message); `progress` messages carry the id of the `load` or
// `parse` request they belong to; `snapshot` messages come unasked, at most ~20 a second
// while training and after every request that changes the model.

/**
 * Where training runs.
 * @typedef {'worker' | 'page'} Thread
 *
 * The threads the engine's CPU kernels run on (www/wasm.js): more than one in the
 * threaded build; `why` says why only one ('' with the pool).
 * @typedef {{cpu_threads: number, why: string}} CpuThreads
 *
 * The engine's run state: no session, a session at rest, or training.
 * @typedef {'empty' | 'idle' | 'training'} RunState
 *
 * What a thread found about WebGPU (gpu-detect.js).
 * @typedef {{offered: boolean, ok: boolean, adapter: string | null, software: boolean, error: string | null}} GpuInfo
 *
 * The GPU run of the current session: not started, starting (compiling), on, or failed
 * (training is on the CPU then; `error` says why).
 * @typedef {{state: null | 'starting' | 'on' | 'failed', adapter: string | null, error: string | null}} GpuRun
 *
 * `Session.status()` of the wasm core.
 * @typedef {{epoch: number, step: number, elbo: number | null, reconstruction: number | null, kl: number | null,
 *   kl_weight: number | null, finished: boolean, lr: number, epochs: number, beta: number, kl_warmup_epochs: number,
 *   training_backend: string, recoveries: number, last_recovery: string | null}} TrainStatus
 *
 * One finished epoch (`Session.history()`).
 * @typedef {{epoch: number, elbo: number, reconstruction: number, kl: number, kl_weight: number, seconds: number}} EpochRow
 *
 * @typedef {{name: string, kind: string, n_levels: number}} ObsColumnSummary
 * `Dataset.summary()`: the matrix as read.
 * @typedef {{format: string, source: string, n_cells: number, n_genes: number, nnz: number, total_counts: number,
 *   min_value: number, max_value: number, integer_counts: boolean, empty_cells: number, empty_genes: number,
 *   obs_columns: ObsColumnSummary[], notes: string[]}} Summary
 *
 * A file to read: a File (read in chunks, with progress) or bytes already in memory.
 * @typedef {{name: string, file?: File, bytes?: Uint8Array}} FileEntry
 *
 * A metadata column: a code per cell (null: no value) into `levels`.
 * @typedef {{name: string, codes: (number | null)[], levels: string[]}} MetaColumn
 *
 * config.json's `model`.
 * @typedef {{n_genes: number, n_batches: number, n_hidden: number, n_latent: number, n_layers: number,
 *   likelihood: string, dispersion: string}} ModelConfig
 *
 * What the wasm Session's `facts()` returns (src/session/report.rs, `Facts`).
 * @typedef {{n_latent: number, n_cells: number, n_genes: number, n_train: number, gene_names: string[],
 *   cell_ids: string[], library_sizes: number[], median_library: number, columns: MetaColumn[],
 *   model: ModelConfig, batch_levels: string[], preprocess_report: string[], origin: string,
 *   batch_key: string | null, label_key: string | null}} CoreFacts
 *
 * The fixed facts of a session, sent once when it is made (reset, import).
 * @typedef {{session: number, nLatent: number, nCells: number, nGenes: number, genes: string[], cellIds: string[],
 *   libraries: Float32Array, meta: MetaColumn[], model: ModelConfig, nTrain: number, batchLevels: string[],
 *   medianLibrary: number, report: string[], origin: string, batchKey: string | null, labelKey: string | null}} SessionInfo
 *
 * The engine's state as the page shows it. `latent` (latent means of every cell, row-major
 * n x d, transferred) and `klPerDim` come when the map changed, `history` when an epoch ended.
 * `stopped`: why training stopped on an error (shown on the page), else null.
 * @typedef {{type: 'snapshot', session: number, run: RunState, status: TrainStatus | null, backend: string | null,
 *   gpu: GpuRun, stopped: string | null, stepMs: number, latent?: Float32Array, klPerDim?: number[],
 *   history?: EpochRow[]}} Snapshot
 *
 * @typedef {{type: 'progress', id: number, phase: 'reading' | 'parsing', file?: string, loaded?: number, total?: number}} Progress
 *
 * What is kept in this browser (www/store.js): the last write's outcome. 'full': the
 * storage quota was exceeded (nothing more is written until data is loaded again);
 * 'failed': another storage error; 'off': this browser lets the page keep nothing;
 * 'forgotten': everything kept was deleted. `note` says it in words when something is wrong.
 * @typedef {{state: 'idle' | 'saving' | 'saved' | 'full' | 'failed' | 'off' | 'forgotten', savedAt: number | null,
 *   epoch: number | null, step: number | null, note: string | null}} Kept
 *
 * Sent unasked whenever the keeper's state changes.
 * @typedef {{type: 'kept', kept: Kept}} KeptMessage
 *
 * What `restore` brought back: the data (with what it was and when it was kept), the
 * session made from the kept model (null: none kept, or it was discarded: the page makes a
 * new one from the settings), the settings form, and notes on anything discarded.
 * `groups`: the named groups of cells kept with the data (selection.js), if any.
 * @typedef {{data: {summary: Summary, geneNames: string[], what: string, savedAt: number} | null,
 *   made: {info: SessionInfo, snapshot: Snapshot} | null, savedAt: number | null, epoch: number,
 *   form: Record<string, string> | null, notes: string[], groups: KeptGroups | null}} Restored
 *
 * Named groups of cells as kept (store.js `KeptGroup`: id, name, cell positions, outline colour, shown).
 * @typedef {{nextId: number, groups: import('./store.js').KeptGroup[]}} KeptGroups
 *
 * @typedef {{type: 'response', id: number, ok: true, result: any} | {type: 'response', id: number, ok: false, error: string}} Response
 *
 * Anything the engine sends.
 * @typedef {Snapshot | Progress | Response | KeptMessage} EngineMessage
 *
 * Session options as `Session::new` takes them (see src/web.rs `SessionOptions`).
 * @typedef {{[key: string]: number | string | boolean | undefined}} SessionOptions
 *
 * 'auto' or a number of CPU steps per 1/60 s.
 * @typedef {'auto' | number} Pace
 *
 * Options of a comparison (src/de.rs `DeOptions`; fields left out take their defaults).
 * @typedef {{n_samples?: number, n_pairs?: number, delta?: number, fdr_target?: number, pseudocount?: number | null,
 *   test_mode?: 'three' | 'two',
 *   decode_as?: {kind: 'observed'} | {kind: 'batch', batch: number} | {kind: 'all_batches'}, seed?: number}} CompareOptions
 *
 * One gene of a comparison (src/session/compare.rs `GeneRow`).
 * @typedef {{id: string, name: string, gene: number, lfc_mean: number, lfc_std: number, lfc_min: number, lfc_max: number,
 *   proba_de: number, bayes_factor: number, is_de_fdr: boolean, scale1: number, scale2: number, raw_mean1: number,
 *   raw_mean2: number, nonzero1: number, nonzero2: number}} GeneRow
 *
 * `Session.compare`: one row per modelled gene, most probable change first; `csv`: the
 * whole table as `cellvae de` writes it.
 * @typedef {{genes: GeneRow[], n_cells1: number, n_cells2: number, n_de: number, options: CompareOptions, csv: string}} Comparison
 *
 * `Session.evaluate` (src/eval.rs `Report`): what `cellvae eval` prints, in nats per cell.
 * @typedef {{n_cells: number, n_genes: number, n_evaluated_cells: number, heldout: boolean,
 *   heldout_elbo_per_cell: number, heldout_log_px_iw100_per_cell: number, heldout_reconstruction_per_cell: number,
 *   kl_per_dim: number[], active_units: number, n_samples: number, knn15_accuracy: number | null,
 *   batch_mixing15: number | null}} EvalReport
 *
 * `bench_step` (src/bench.rs `Stages`): a step of the default model timed by stage on the
 * CPU kernels, in seconds; `gflops` the step's product arithmetic over its time,
 * `peak_gflops` a 512^3 product's.
 * @typedef {{step_s: number, gflops: number, peak_gflops: number, stages: {encoder_s: number, decoder_s: number,
 *   likelihood_s: number, backward_s: number, optimizer_s: number, forward_backward_s: number, flops: number,
 *   batch_cells: number, threads: number}}} BenchStep
 *
 * Every request: its payload and its result.
 * @typedef {{
 *   hello: {payload: {}, result: {thread: Thread, gpu: GpuInfo, cpu: CpuThreads}},
 *   load: {payload: {files: FileEntry[], obs: FileEntry | null, what?: string, transform?: 'simulated_batches' | null}, result: {summary: Summary, geneNames: string[], read_ms: number, parse_ms: number, in_worker: boolean}},
 *   parse: {payload: {files: FileEntry[], obs: FileEntry | null}, result: {bytes: Uint8Array, read_ms: number, parse_ms: number}},
 *   reset: {payload: {options: SessionOptions, device: string, keep: boolean}, result: {info: SessionInfo, snapshot: Snapshot}},
 *   import: {payload: {safetensors: Uint8Array, config: string, options: SessionOptions, device: string}, result: {info: SessionInfo, snapshot: Snapshot}},
 *   play: {payload: {}, result: {}},
 *   pause: {payload: {}, result: {}},
 *   step: {payload: {n: number}, result: {}},
 *   set: {payload: {lr?: number, beta?: number}, result: {status: TrainStatus}},
 *   pace: {payload: {pace: Pace}, result: {}},
 *   probe: {payload: {z: number[], batch: number, library: number, k: number}, result: {expected: Float32Array, mean: Float32Array, cells: number[]}},
 *   decode: {payload: {zs: Float32Array, batch: number, library: number}, result: {expected: Float32Array}},
 *   decode_genes: {payload: {zs: Float32Array, batch: number, library: number, genes: number[]}, result: {values: Float32Array}},
 *   expression: {payload: {gene: string}, result: {values: Float32Array}},
 *   latent: {payload: {}, result: {latent: Float32Array}},
 *   compare: {payload: {group1: Uint32Array, group2: Uint32Array, options: CompareOptions}, result: Comparison},
 *   evaluate: {payload: {samples: number, seed: number}, result: EvalReport},
 *   teach: {payload: {what: string, args: Record<string, any>}, result: any},
 *   bench_step: {payload: {}, result: BenchStep},
 *   step_kernels: {payload: {}, result: {kernels: {kernel: string, pass: string, dispatches: number}[]}},
 *   rotate: {payload: {i: number, j: number, angle: number, options: SessionOptions, device: string}, result: {info: SessionInfo, snapshot: Snapshot}},
 *   export_model: {payload: {}, result: {safetensors: Uint8Array, config: string}},
 *   export_h5ad: {payload: {keepCounts: boolean}, result: {bytes: Uint8Array}},
 *   export_scvi: {payload: {}, result: {bytes: Uint8Array}},
 *   lose_gpu: {payload: {step: number}, result: {}},
 *   gpu_fault: {payload: {kind: 'lost' | 'oom' | 'shader', step: number}, result: {}},
 *   restore: {payload: {}, result: Restored},
 *   keep_settings: {payload: {form: Record<string, string>}, result: {}},
 *   keep_groups: {payload: KeptGroups, result: {}},
 *   forget: {payload: {}, result: {}},
 *   test_storage_full: {payload: {}, result: {}},
 * }} Requests
 *
 * @typedef {keyof Requests} RequestType
 */

export {};
