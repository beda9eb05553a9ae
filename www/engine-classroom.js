// @ts-check
// cellvae: the engine's requests for the classroom (www/engine.js merges them into its
// handlers): the evaluation panel, the lessons' computations, lesson 12's rotated model,
// the shader viewer's step and the speed figures' timed step. Each only calls the wasm
// Session (src/session/lessons.rs, evaluate.rs) or src/bench.rs and converts.
import { core } from './wasm.js';

/** @typedef {import('./engine.js').Engine} Engine */
/** @typedef {import('./protocol.js').Requests} Requests */
/** @typedef {{type: string, id: number} & Record<string, any>} Incoming */
/** @typedef {'evaluate' | 'teach' | 'rotate' | 'step_kernels' | 'bench_step'} ClassroomRequest */

/** @type {{[K in ClassroomRequest]: (this: Engine, req: Incoming) => Promise<Requests[K]['result']>}} */
export const CLASSROOM_HANDLERS = {
  async evaluate(req) {
    // The evaluation panel: src/eval.rs `report`, as `cellvae eval` computes it.
    return this.need().evaluate(req.samples, req.seed);
  },

  async teach(req) {
    // A lesson's computation (src/session/teach.rs), by name, with its arguments.
    return this.need().teach(req.what, req.args);
  },

  async rotate(req) {
    // Lesson 12: the current model rotated in a plane of the latent space, shown as a new
    // session (as a loaded model is), on the same data.
    const s = this.need();
    if (!this.dataset) throw new Error('no data loaded');
    const bytes = s.rotated_model(req.i, req.j, req.angle);
    const config = s.model_config_json();
    const r = core.Session.from_model(this.dataset, bytes, config, req.options);
    return this.adopt(r, req.device, req.options, false, `the model rotated by ${req.angle}° in the plane z${req.i + 1}, z${req.j + 1}`);
  },

  async step_kernels() {
    // The shader viewer: one GPU step's kernels in order (empty on the CPU).
    return { kernels: this.need().step_kernels() };
  },

  async bench_step() {
    // A step of the default model on the loaded data timed by stage on the CPU kernels, as
    // `cellvae bench` times it natively (src/bench.rs); tests/e2e/bench.test.mjs prints it.
    if (!this.dataset) throw new Error('no data loaded');
    return core.bench_step(this.dataset);
  },
};
