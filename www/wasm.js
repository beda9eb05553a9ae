// @ts-check
// cellvae: which build of the wasm core this thread loads. In a Web Worker of a
// cross-origin isolated page (SharedArrayBuffer; `cargo xtask serve` sends COOP/COEP) the
// threaded build, www/pkg-threads (atomics; the CPU kernels' threads are a rayon pool of
// Web Workers, wasm-bindgen-rayon), unless the worker was started with `?threads=1`;
// everywhere else, and where that build is missing, the single-threaded www/pkg. The
// page's own thread always loads www/pkg: it may never block, and the pool's callers do.
// Both builds give the same results bit for bit (src/backend/cpu/par.rs).
import * as single from './pkg/cellvae.js';

/** @typedef {typeof import('./pkg/cellvae.js')} Core */

const inWorker = typeof (/** @type {any} */ (globalThis).WorkerGlobalScope) !== 'undefined';
// A worker's location is its script's URL: www/client.js passes the page's `?threads=1`.
const wanted = inWorker && globalThis.crossOriginIsolated === true
  && new URLSearchParams(globalThis.location.search).get('threads') !== '1';

/** Why this thread runs the CPU kernels on one thread ('' where it has the pool). */
let why = inWorker ? (globalThis.crossOriginIsolated ? '' : 'the page is not cross-origin isolated') : 'the page\'s own thread';
if (inWorker && !why && !wanted) why = 'asked for one thread (?threads=1)';

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
    const n = Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
    await threaded.initThreadPool(n);
    return { cpu_threads: n, why: '' };
  }
  return { cpu_threads: 1, why };
}
