// @ts-check
// cellvae page: the one state object. The engine's snapshots and request results update
// it (controls.js, probe.js, traversal.js, field.js, ...); render functions only draw
// from it.

/** @typedef {import('./protocol.js').SessionInfo} SessionInfo */
/** @typedef {import('./protocol.js').TrainStatus} TrainStatus */
/** @typedef {import('./protocol.js').EpochRow} EpochRow */
/** @typedef {import('./protocol.js').GpuInfo} GpuInfo */
/** @typedef {import('./protocol.js').GpuRun} GpuRun */
/** @typedef {import('./protocol.js').Summary} Summary */
/** @typedef {import('./protocol.js').FileEntry} FileEntry */
/** @typedef {import('./protocol.js').Kept} Kept */
/** @typedef {import('./map.js').Projection} Projection */
/** @typedef {import('./map.js').View} View */
/** @typedef {import('./map.js').Colours} Colours */

/**
 * The last load: what, its phase, whether it was parsed off the page, and its timings
 * (page clock, ms) and progress lines.
 * @typedef {{what: string, phase: string, in_worker: boolean, started_at: number, parsed_at: number | null,
 *   read_ms: number | null, parse_ms: number | null, log: string[]}} LoadState
 *
 * The probe: the latent point, the plane's anchor (the point the shown plane goes
 * through), the nearest cell (more than 2 dimensions), and the last decoded profile.
 * @typedef {{z: Float64Array | null, anchor: Float64Array | null, cell: number,
 *   profile: {z: number[], batch: number, library: number, expected: Float32Array, cells: Float32Array, nearest: number[]} | null,
 *   error: string | null, inFlight: boolean, again: boolean, at: number}} ProbeState
 *
 * The walk through the latent space: the path (TRAV_STEPS x d), the genes that change
 * most along it and their decoded values, the position, end points A and B.
 * @typedef {{shown: boolean, path: Float32Array | null, pos: number, top: number[], values: number[][],
 *   timer: ReturnType<typeof setInterval> | null, A: Float64Array | null, B: Float64Array | null, stamp: number,
 *   note: string | null, inFlight: boolean, again: boolean}} TravState
 *
 * The decoder field: the gene asked for, and the image of the last computed grid (with the
 * view it covers, its range in expected counts and the gene it shows).
 * @typedef {{gene: number, canvas: HTMLCanvasElement | null, view: View | null, lo: number, hi: number,
 *   shown: string | null, stamp: number, timer: ReturnType<typeof setTimeout> | undefined, inFlight: boolean, again: boolean}} FieldState
 *
 * A named group of cells (positions in the map's cell order), its colour on the map, and
 * whether it is highlighted there.
 * @typedef {{id: number, name: string, cells: Uint32Array, colour: string, shown: boolean}} CellGroup
 *
 * Selections (selection.js): the map's tool, the current selection (null: none), the lasso
 * or box being drawn (points of the plane; `adding`: its cells join the selection), the
 * named groups and the data they are for (`for`: cell count and first and last cell id;
 * other data drops them).
 * @typedef {{tool: 'probe' | 'lasso' | 'box', current: Uint32Array | null, how: string, drawing: number[] | null,
 *   adding: boolean, groups: CellGroup[], nextId: number, for: string}} SelectState
 *
 * The comparison (compare.js): the last result (with the groups' names and the epoch the
 * model had reached), whether one runs, its error, and the table's sort, filter and the
 * gene chosen in it.
 * @typedef {{result: import('./protocol.js').Comparison | null, names: [string, string], epoch: number, running: boolean,
 *   error: string | null, sort: string, desc: boolean, filter: string, chosen: number}} CompareState
 *
 * The evaluation panel (evaluate.js): the last report, whether one runs, its error, and
 * the runs made in this page (one row per session: its settings and its last report).
 * @typedef {{report: import('./protocol.js').EvalReport | null, running: boolean, error: string | null,
 *   runs: RunRow[]}} EvalState
 * @typedef {{session: number, label: string, settings: Record<string, string>, epoch: number,
 *   report: import('./protocol.js').EvalReport}} RunRow
 *
 * The classroom (classroom.js, lessons/): the lesson open (null: none), the data preset
 * loaded last ('demo', 'demo-batches'; null: the user's data), the controls hidden by
 * the link, and what the open lesson's interactions measured (read by the tests).
 * @typedef {{lesson: string | null, data: string | null, hidden: Set<string>, result: Record<string, any>}} ClassState
 *
 * The shader viewer (shaders.js): every kernel's WGSL (from the wasm core), the one
 * shown, and one GPU training step's kernels in order (null: not asked yet; empty: the
 * model trains on the CPU or has not stepped on the GPU).
 * @typedef {{name: string, source: string, library: {name: string, source: string}[]}} ShaderSource
 * @typedef {{sources: ShaderSource[], chosen: string,
 *   step: {kernel: string, pass: string, dispatches: number}[] | null}} ShaderState
 */

/**
 * @typedef {{
 *   client: import('./client.js').EngineClient | null,
 *   thread: import('./protocol.js').Thread | null,
 *   cpuThreads: import('./protocol.js').CpuThreads,
 *   pageGpu: GpuInfo,
 *   engineGpu: GpuInfo,
 *   data: {summary: Summary, geneNames: string[], geneSet: Set<string>} | null,
 *   load: LoadState | null,
 *   chosen: FileEntry[] | null,
 *   info: SessionInfo | null,
 *   run: import('./protocol.js').RunState,
 *   stepsPending: number,
 *   status: TrainStatus | null,
 *   history: EpochRow[],
 *   klDims: number[],
 *   backend: string | null,
 *   gpu: GpuRun,
 *   stopped: string | null,
 *   latent: Float32Array | null,
 *   n: number,
 *   d: number,
 *   proj: Float32Array | null,
 *   P: Projection | null,
 *   prevPca: Float64Array[] | null,
 *   view: View | null,
 *   autoView: boolean,
 *   colours: Colours | null,
 *   colourKey: string,
 *   colourFor: string | null | undefined,
 *   colourSeq: number,
 *   axesFor: number,
 *   probe: ProbeState,
 *   library: number,
 *   batch: number,
 *   pins: number[],
 *   pinNames: string[],
 *   trav: TravState,
 *   field: FieldState,
 *   chartsAt: number,
 *   snapshots: number,
 *   stepMs: number,
 *   kept: Kept,
 *   restored: {savedAt: number, epoch: number, cells: number} | null,
 *   sel: SelectState,
 *   cmp: CompareState,
 *   ev: EvalState,
 *   cls: ClassState,
 *   sh: ShaderState,
 * }} PageState
 */

export const TRAV_STEPS = 25;
export const TRAV_GENES = 12;
export const FIELD_GRID = 40;
export const NEAREST = 15;

/** @type {PageState} */
export const S = {
  client: null, // the engine's client (worker or page)
  thread: null, // where the engine runs
  cpuThreads: { cpu_threads: 1, why: 'not started' }, // the engine's CPU kernels' threads
  pageGpu: { offered: false, ok: false, adapter: null, software: false, error: null }, // the page's WebGPU
  engineGpu: { offered: false, ok: false, adapter: null, software: false, error: null }, // the engine thread's
  data: null, // the loaded data: summary and gene names (the matrix itself lives in the engine)
  load: null,
  chosen: null, // the count files loaded last (chosen, dropped or the demo's), read again with a metadata table
  info: null, // the current session's fixed facts
  run: 'empty', // the engine's run state, from its last snapshot
  stepsPending: 0, // "1 step" requests not yet answered
  status: null,
  history: [],
  klDims: [],
  backend: null, // where training runs: 'cpu' | 'webgpu'
  gpu: { state: null, adapter: null, error: null },
  stopped: null,
  latent: null, // latent means, n x d, as last sent by the engine
  n: 0,
  d: 2,
  proj: null, // the cells in the shown plane, n x 2
  P: null, // the projection (map.js)
  prevPca: null, // the last PCA axes, for sign alignment
  view: null,
  autoView: true, // the view follows the data until the user zooms or pans
  colours: null,
  colourKey: '',
  colourFor: undefined, // the label column the colour choice was made for
  colourSeq: 0, // numbers gene-expression requests (only the latest is shown)
  axesFor: 0,
  probe: { z: null, anchor: null, cell: -1, profile: null, error: null, inFlight: false, again: false, at: 0 },
  library: 1,
  batch: 0,
  pins: [], // pinned genes (indices into info.genes)
  pinNames: [], // their names, kept across models
  trav: { shown: false, path: null, pos: 0, top: [], values: [], timer: null, A: null, B: null, stamp: 0, note: null, inFlight: false, again: false },
  field: { gene: -1, canvas: null, view: null, lo: 0, hi: 0, shown: null, stamp: 0, timer: undefined, inFlight: false, again: false },
  chartsAt: 0,
  snapshots: 0, // snapshots taken (automation: their rate)
  stepMs: 0, // the engine's milliseconds per training step
  kept: { state: 'idle', savedAt: null, epoch: null, step: null, note: null }, // what the engine keeps in this browser (persist.js)
  restored: null, // the session restored on start-up, if any
  sel: { tool: 'probe', current: null, how: '', drawing: null, adding: false, groups: [], nextId: 1, for: '' }, // selections and groups (selection.js)
  cmp: { result: null, names: ['', ''], epoch: 0, running: false, error: null, sort: 'proba_de', desc: true, filter: '', chosen: -1 }, // the comparison (compare.js)
  ev: { report: null, running: false, error: null, runs: [] }, // the evaluation panel (evaluate.js)
  cls: { lesson: null, data: null, hidden: new Set(), result: {} }, // the classroom: lesson, preset, hidden controls (classroom.js)
  sh: { sources: [], chosen: 'reparam', step: null }, // the shader viewer (shaders.js)
};

/** The modelled genes (decode's columns). */
export function genes() {
  return S.info ? S.info.genes : [];
}
