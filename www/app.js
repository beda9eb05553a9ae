// @ts-check
// cellvae page: start-up. Loads the wasm core on the page (the probe chart and the WebGPU
// check), starts the training engine in a Web Worker (on the page where only the page has
// WebGPU, or where workers cannot run it), and wires the modules. Text from a user's file
// is only ever set with textContent.
import init from './pkg/cellvae.js';
import { S } from './state.js';
import { $, button, input, message } from './dom.js';
import { detectGpu } from './gpu-detect.js';
import { startWorkerEngine, startPageEngine } from './client.js';
import { wireFiles, showError, setEngineReady } from './files.js';
import { wireControls, applySnapshot, adopt, sendPace } from './controls.js';
import { wireSettings } from './settings.js';
import { wireMapInput } from './map-input.js';
import { wireTraversal } from './traversal.js';
import { wireExport } from './export.js';
import { installAutomation } from './automation.js';
import { wireSelection } from './selection.js';
import { wireCompare } from './compare.js';
import { wirePersist, restoreSession } from './persist.js';
import { wireEvaluation } from './evaluate.js';
import { wireShaders } from './shaders.js';
import { wireClassroom, openFromUrl } from './classroom.js';
import { renderLessonLists } from './lessons/index.js';

/** The page's WebGPU, said in the header. @param {import('./protocol.js').GpuInfo} g */
function renderBackend(g) {
  const label = $('backend');
  if (!g.offered) {
    label.textContent = 'WebGPU is not available in this browser: training runs on the CPU (slower, same results).';
    label.classList.add('cpu');
  } else if (!g.ok) {
    label.textContent = `WebGPU could not be used (${g.error}): training runs on the CPU.`;
    label.classList.add('cpu');
  } else {
    label.textContent = `GPU: WebGPU on ${g.adapter}` + (g.software ? ' (a software adapter)' : '');
  }
}

async function main() {
  await init();
  installAutomation();
  wireFiles();
  wireControls();
  wireSettings();
  wireMapInput();
  wireTraversal();
  wireExport();
  wirePersist();
  wireSelection();
  wireCompare();
  wireEvaluation();
  wireShaders();
  renderLessonLists();
  wireClassroom();
  adopt(null, null);
  // The engine: in a worker (which checks its own WebGPU while the page checks its), unless
  // the worker cannot run (no module workers) or lacks the WebGPU the page has;
  // `?thread=page` asks for the page (diagnostics, tests).
  const ready = (async () => {
    const [pageGpu, worker] = await Promise.all([
      detectGpu().then((g) => { S.pageGpu = g; renderBackend(g); return g; }),
      startWorkerEngine().catch((e) => {
        console.warn(`cellvae: no training worker (${message(e)}); training runs on the page`);
        return null;
      }),
    ]);
    const wantPage = new URLSearchParams(location.search).get('thread') === 'page';
    if (worker && !wantPage && (worker.hello.gpu.ok || !pageGpu.ok)) return worker;
    return startPageEngine(worker ? worker.client : null);
  })();
  setEngineReady(ready);
  button('demo-button').disabled = false;
  input('file-input').disabled = false;
  const { client, hello } = await ready;
  client.onSnapshot = applySnapshot;
  S.client = client;
  S.thread = hello.thread;
  S.cpuThreads = hello.cpu;
  S.engineGpu = hello.gpu;
  sendPace();
  // What this browser kept of the last session comes back before the page says ready.
  await restoreSession();
  // A classroom link (#lesson=...&data=...&<setting>=...) sets the page up before it says ready.
  if (location.hash.length > 1) await openFromUrl();
  document.body.dataset.ready = 'true';
}

main().catch((e) => showError(`cellvae failed to start: ${message(e)}`));
