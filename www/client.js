// @ts-check
// cellvae page: the client of the training engine (engine.js), which runs in a Web Worker
// (startWorkerEngine) or on the page (startPageEngine) behind the same interface:
// promise-based requests with ids (an error comes back as a rejected promise with the
// engine's message), snapshots pushed to `onSnapshot`, progress to the request's
// `onProgress`.

/** @typedef {import('./protocol.js').Requests} Requests */
/** @typedef {import('./protocol.js').RequestType} RequestType */
/** @typedef {import('./protocol.js').EngineMessage} EngineMessage */
/** @typedef {import('./protocol.js').Snapshot} Snapshot */
/** @typedef {import('./protocol.js').Progress} Progress */
/** @typedef {import('./protocol.js').Thread} Thread */

/** @typedef {{resolve: (r: any) => void, reject: (e: Error) => void, onProgress?: (p: Progress) => void}} Pending */

export class EngineClient {
  /** @param {Thread} thread @param {(m: object, transfer: Transferable[]) => void} send */
  constructor(thread, send) {
    this.thread = thread;
    this.send = send;
    this.nextId = 1;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
    /** @type {(s: Snapshot) => void} */
    this.onSnapshot = () => {};
    /** @type {(k: import('./protocol.js').Kept) => void} */
    this.onKept = () => {};
    /** @type {string | null} why the engine is gone, once it is */
    this.dead = null;
  }

  /**
   * @template {RequestType} K
   * @param {K} type @param {Requests[K]['payload']} payload
   * @param {{transfer?: Transferable[], onProgress?: (p: Progress) => void}} [opts]
   * @returns {Promise<Requests[K]['result']>}
   */
  request(type, payload, opts = {}) {
    if (this.dead) return Promise.reject(new Error(this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress: opts.onProgress });
      this.send({ ...payload, id, type }, opts.transfer || []);
    });
  }

  /** A message from the engine. @param {EngineMessage} m */
  dispatch(m) {
    if (m.type === 'snapshot') this.onSnapshot(m);
    else if (m.type === 'kept') this.onKept(m.kept);
    else if (m.type === 'progress') {
      const p = this.pending.get(m.id);
      if (p && p.onProgress) p.onProgress(m);
    } else if (m.type === 'response') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error));
    }
  }

  /** The engine is gone: every pending request fails with `why`. @param {string} why */
  fail(why) {
    this.dead = why;
    for (const p of this.pending.values()) p.reject(new Error(why));
    this.pending.clear();
  }
}

/** The engine in a dedicated module worker. Rejects when the browser cannot run it. */
export async function startWorkerEngine() {
  // `?threads=N` on the page reaches the worker's core (www/wasm.js): the CPU pool's size.
  const threads = new URLSearchParams(location.search).get('threads');
  const query = threads ? `?threads=${encodeURIComponent(threads)}` : '';
  const worker = new Worker(new URL(`./engine-worker.js${query}`, import.meta.url), { type: 'module' });
  const client = new EngineClient('worker', (m, t) => worker.postMessage(m, t));
  worker.onmessage = (e) => client.dispatch(e.data);
  worker.onerror = (e) => { e.preventDefault(); client.fail(`the training worker failed: ${e.message || 'it could not start'}`); };
  const hello = await client.request('hello', {});
  return { client, hello };
}

/**
 * The engine on the page's main thread, in slices between animation frames (where only
 * the page has WebGPU). `parser`: a worker engine that parses files, so the page never
 * freezes while reading (null: parse here).
 * @param {EngineClient | null} parser
 */
export async function startPageEngine(parser) {
  const { Engine } = await import('./engine.js');
  /** @type {EngineClient} */
  let client;
  const engine = new Engine({
    thread: 'page',
    post: (m) => queueMicrotask(() => client.dispatch(m)),
    // After the next frame is drawn: the slice and the map share each frame.
    yieldNow: () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))),
    budgetMs: 10,
    rollMs: 4,
    parser,
  });
  client = new EngineClient('page', (m) => engine.receive(/** @type {any} */ (m)));
  const hello = await client.request('hello', {});
  return { client, hello };
}
