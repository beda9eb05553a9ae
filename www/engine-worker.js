// @ts-check
// cellvae: the training engine in a dedicated module Web Worker. Loads the wasm core and
// hands every message to the Engine (engine.js), which trains at full speed whatever the
// page's frame rate: slices of ~40 ms of steps, each followed by a yield to this worker's
// message queue (a MessageChannel message: no timer clamping), so requests are answered
// between slices. Where the page is cross-origin isolated, the core is the threaded build
// (www/wasm.js): its CPU kernels run on a pool of workers this one starts. The core and
// the engine are imported dynamically, after `onmessage` is set: wasm.js awaits its
// choice of build at the top level, and a message that arrived before the handler was
// set would be lost.

/** The worker's global scope, as far as it is used here. */
const scope = /** @type {{postMessage(m: unknown, t?: Transferable[]): void, onmessage: ((e: MessageEvent) => void) | null}} */ (
  /** @type {unknown} */ (globalThis));

const channel = new MessageChannel();
/** @type {(() => void)[]} */
const waiting = [];
channel.port1.onmessage = () => { const r = waiting.shift(); if (r) r(); };

/** @param {number} ms */
function yieldNow(ms) {
  return new Promise((resolve) => {
    if (ms > 0) setTimeout(resolve, ms);
    else { waiting.push(() => resolve(undefined)); channel.port2.postMessage(0); }
  });
}

/** The engine, once the core is loaded (and the threaded core's pool started). */
const ready = (async () => {
  const [{ initCore }, { Engine }] = await Promise.all([import('./wasm.js'), import('./engine.js')]);
  const cpu = initCore();
  const engine = new Engine({
    thread: 'worker',
    cpu,
    post: (m, transfer) => scope.postMessage(m, transfer || []),
    yieldNow,
    budgetMs: 40,
    rollMs: 10,
  });
  await cpu;
  return engine;
})();

scope.onmessage = (/** @type {MessageEvent} */ e) => {
  const msg = e.data;
  ready.then(
    (engine) => engine.receive(msg),
    (/** @type {unknown} */ err) => scope.postMessage({ type: 'response', id: msg.id, ok: false, error: `the training worker could not load the wasm core: ${err instanceof Error ? err.message : String(err)}` }),
  );
};
