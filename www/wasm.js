// @ts-check
// cellvae: which build of the wasm core this thread loads. In a Web Worker of a
// cross-origin isolated page (SharedArrayBuffer; `cargo xtask serve` sends COOP/COEP) the
// threaded build, www/pkg-threads (atomics; the CPU kernels' threads are a rayon pool of
// Web Workers, wasm-bindgen-rayon) of the cores less one (or `?threads=N`), when that is
// more than one; everywhere else, and where that build is missing, the single-threaded
// www/pkg. The page's own thread always loads www/pkg: it may never block, and the
// pool's callers do.
// Both builds give the same results bit for bit (src/backend/cpu/par.rs).
import * as single from './pkg/cellvae.js';

/** @typedef {typeof import('./pkg/cellvae.js')} Core */

const inWorker = typeof (/** @type {any} */ (globalThis).WorkerGlobalScope) !== 'undefined';
const cores = (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1;
// A worker's location is its script's URL: www/client.js passes the page's `?threads=`.
const asked = Number(new URLSearchParams(globalThis.location.search).get('threads') || NaN);
/**
 * The pool's size: `?threads=N` (1 to 8) where given, else the cores less one, at most 8:
 * the engine's worker waits while the pool works, so one core stays for the page (its
 * frames, the map); a machine of two cores keeps the single-threaded core by default.
 */
const poolSize = Number.isInteger(asked) && asked >= 1 ? Math.min(8, asked) : Math.max(1, Math.min(8, cores - 1));

/** Why this thread runs the CPU kernels on one thread ('' where it has the pool). */
let why = '';
if (!inWorker) why = 'the page\'s own thread';
else if (globalThis.crossOriginIsolated !== true) why = 'the page is not cross-origin isolated';
else if (asked === 1) why = 'asked for one thread (?threads=1)';
else if (poolSize === 1) why = `one of the ${cores} cores is left for the page`;
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
 * Loads the core; in the threaded build also starts its pool of `n` workers (the
 * machine's cores, at most 8). Resolves to the threads the CPU kernels will use.
 * @returns {Promise<{cpu_threads: number, why: string}>}
 */
export async function initCore() {
  await core.default();
  if (threaded && threaded.initThreadPool) {
    await threaded.initThreadPool(poolSize);
    return { cpu_threads: poolSize, why: '' };
  }
  return { cpu_threads: 1, why };
}
