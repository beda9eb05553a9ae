// @ts-check
// cellvae page: the shader viewer. Every WGSL kernel the GPU path compiles (from the wasm
// core, as compiled: shaders/lib/ code prepended where a kernel uses it), and the kernels
// of one training step in the order the GPU runs them, with their dispatch counts (from
// the engine, when the model trains on WebGPU). The lessons link here (showKernel).
import { S } from './state.js';
import { $, select, el, option, message } from './dom.js';
import { shader_sources } from './pkg/cellvae.js';

export function renderShaders() {
  const pick = select('shader-pick');
  if (pick.options.length !== S.sh.sources.length) {
    pick.replaceChildren(...S.sh.sources.map((s) => option(s.name, `${s.name}.wgsl`)));
  }
  pick.value = S.sh.chosen;
  const src = S.sh.sources.find((s) => s.name === S.sh.chosen);
  const pre = $('shader-source');
  pre.textContent = src ? src.source : '';
  pre.dataset.kernel = src ? src.name : '';
  // The library code compiled in front of the kernel, after it and folded.
  const libs = $('shader-library');
  libs.replaceChildren(...(src ? src.library : []).map((l) => {
    const d = el('details');
    d.append(el('summary', `+ ${l.name} (compiled in front of this kernel)`), el('pre', l.source, { class: 'shader-source' }));
    return d;
  }));
  const step = S.sh.step;
  const note = $('step-note');
  const table = $('step-kernels');
  if (!step || !step.length) {
    note.textContent = S.backend === 'webgpu'
      ? 'Train a step on the GPU to see its kernels here.'
      : 'Training runs on the CPU here: it runs the CPU twins of these kernels (src/backend/cpu/) in the same order. With WebGPU, the GPU step is listed here.';
    table.replaceChildren();
    return;
  }
  const total = step.reduce((a, r) => a + r.dispatches, 0);
  note.textContent = `${total} dispatches in ${step.length} runs of a kernel, in the order of the step (forward, loss, backward, optimizer).`;
  const head = el('tr');
  head.append(el('th', '#'), el('th', 'kernel'), el('th', 'pass'), el('th', 'dispatches'));
  table.replaceChildren(head, ...step.map((r, i) => {
    const tr = el('tr');
    const a = el('a', `${r.kernel}.wgsl`, { href: '#', 'data-kernel-link': r.kernel });
    a.addEventListener('click', (e) => { e.preventDefault(); showKernel(r.kernel); });
    const td = el('td');
    td.append(a);
    tr.append(el('td', String(i + 1)), td, el('td', r.pass), el('td', String(r.dispatches)));
    return tr;
  }));
}

/** Asks the engine for the current step's kernels (when the viewer is open). */
async function refreshStep() {
  if (!S.client || !S.info) { S.sh.step = null; renderShaders(); return; }
  try {
    S.sh.step = (await S.client.request('step_kernels', {})).kernels;
  } catch (e) {
    S.sh.step = null;
    $('step-note').textContent = `The step's kernels could not be read: ${message(e)}`;
    return;
  }
  renderShaders();
}

/** Opens the viewer on kernel `name` (the lessons' links). @param {string} name */
export function showKernel(name) {
  if (S.sh.sources.some((s) => s.name === name)) S.sh.chosen = name;
  const panel = /** @type {HTMLDetailsElement} */ ($('shader-pick').closest('details'));
  panel.open = true;
  renderShaders();
  refreshStep();
  $('shader-source').scrollIntoView({ block: 'nearest' });
}

export function wireShaders() {
  S.sh.sources = /** @type {import('./state.js').ShaderSource[]} */ (shader_sources());
  select('shader-pick').addEventListener('change', () => { S.sh.chosen = select('shader-pick').value; renderShaders(); });
  const panel = /** @type {HTMLDetailsElement} */ ($('shader-pick').closest('details'));
  panel.addEventListener('toggle', () => { if (panel.open) refreshStep(); });
  renderShaders();
}
