// @ts-check
// cellvae: which build of the wasm core this thread loads. In a Web Worker of a
// cross-origin isolated page (SharedArrayBuffer; `cargo xtask serve` sends COOP/COEP) the
// threaded build, www/pkg-threads (atomics), when more than one thread is to run the CPU
// kernels: this worker (the engine's) and a rayon pool of Web Workers
// (wasm-bindgen-rayon) of the threads less one. Everywhere else, and where that build is
// missing, the single-threaded www/pkg. The page's own thread always loads www/pkg: it
// may never block, and the pool's callers do.
// Both builds give the same results bit for bit (src/backend/cpu/par.rs).
import * as single from './pkg/cellvae.js';

/** @typedef {typeof import('./pkg/cellvae.js')} Core */

const inWorker = typeof (/** @type {any} */ (globalThis).WorkerGlobalScope) !== 'undefined';
const cores = (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1;
// A worker's location is its script's URL: www/client.js passes the page's `?threads=`.
const asked = Number(new URLSearchParams(globalThis.location.search).get('threads') || NaN);
/**
 * The threads that run the CPU kernels: `?threads=N` (1 to 8) where given, else the
 * cores less one, at most 8: one core stays for the page's frames and the map. The
 * engine's worker is one of them (it takes jobs of every kernel itself,
 * src/backend/cpu/pool.rs), so the pool has one worker fewer; a machine of two cores keeps
 * the single-threaded core by default (two threads there: `?threads=2`, docs/PAGE.md).
 */
const kernelThreads = Number.isInteger(asked) && asked >= 1 ? Math.min(8, asked) : Math.max(1, Math.min(8, cores - 1));
const poolSize = kernelThreads - 1;

/** Why this thread runs the CPU kernels on one thread ('' where it has the pool). */
let why = '';
if (!inWorker) why = 'the page\'s own thread';
else if (globalThis.crossOriginIsolated !== true) why = 'the page is not cross-origin isolated';
else if (asked === 1) why = 'asked for one thread (?threads=1)';
else if (kernelThreads === 1) why = `one of the ${cores} cores is left for the page`;
const wanted = why === '';

/** @type {(Core & {initThreadPool?: (n: number) => Promise<void>}) | null} */
let threaded = null;
if (wanted) {
  try {
    threaded = /** @type {any} */ (await import('./pkg-threads/cellvae.js'));
  } catch (e) {
    why = `the threaded build did not load (${e instanceof Error ? e.message : String(e)})`;
  }
}

/** The build this thread uses (both have the API of `pkg/cellvae.d.ts`). @type {Core} */
export const core = threaded || single;

/**
 * Loads the core; in the threaded build also starts its pool of Web Workers (the kernel
 * threads less one: this worker is the other). Resolves to the threads the CPU kernels
 * will use.
 * @returns {Promise<{cpu_threads: number, why: string}>}
 */
export async function initCore() {
  await core.default();
  if (threaded && threaded.initThreadPool) {
    await threaded.initThreadPool(poolSize);
    return { cpu_threads: kernelThreads, why: '' };
  }
  return { cpu_threads: 1, why };
}
