// @ts-check
// cellvae: does this thread (the page or a worker) have a working WebGPU adapter? Proves
// the shaders run on it (the log1p kernel against its CPU twin) before trusting it.
import { core } from './wasm.js';

/** @typedef {import('./protocol.js').GpuInfo} GpuInfo */

/** @returns {Promise<GpuInfo>} */
export async function detectGpu() {
  /** @type {{gpu?: {requestAdapter(): Promise<{info?: Record<string, unknown>} | null>}}} */
  const nav = /** @type {any} */ (globalThis.navigator);
  if (!nav || !nav.gpu) return { offered: false, ok: false, adapter: null, software: false, error: null };
  try {
    const adapter = await nav.gpu.requestAdapter();
    if (!adapter) throw new Error('the browser offers no WebGPU adapter');
    const info = adapter.info || {};
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'WebGPU adapter';
    const check = await core.gpu_check(4096);
    if (!(check.max_abs_diff < 1e-4)) throw new Error(`the GPU gave wrong results (max error ${check.max_abs_diff})`);
    const software = !!info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(name);
    return { offered: true, ok: true, adapter: name, software, error: null };
  } catch (e) {
    return { offered: true, ok: false, adapter: null, software: false, error: String(e && typeof e === 'object' && 'message' in e ? e.message : e) };
  }
}
