// @ts-check
// cellvae page: saving and loading. Latent means (CSV), the model (model.safetensors +
// config.json, the files `cellvae train` writes), the probe's profile (CSV), the map and
// the curves (PNG); a saved model loads back onto the loaded data.
import { S } from './state.js';
import { $, button, input, message } from './dom.js';
import { mapCanvas } from './map-view.js';
import { CHART_IDS } from './charts.js';
import { ctx2d } from './plot.js';
import { adopt, setStatusText } from './controls.js';
import { liveOptions, device } from './settings.js';
import { canvas } from './dom.js';

/** Downloads `blob` as `name` and says so in the note `noteId`. @param {string} name @param {Blob} blob @param {string} [noteId] */
export function download(name, blob, noteId = 'export-note') {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  $(noteId).textContent = `Saved ${name}.`;
}

/** @param {unknown} s */
function csvField(s) {
  const v = String(s);
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** @param {number} x */
function num(x) {
  return Number.isFinite(x) ? String(Math.fround(x) === x ? Number(x.toPrecision(9)) : x) : 'NaN';
}

/** @param {unknown} e */
function exportFailed(e) {
  $('export-note').textContent = `Not saved: ${message(e)}`;
}

async function exportLatent() {
  if (!S.client || !S.info) return;
  const { latent } = await S.client.request('latent', {});
  const d = S.d;
  const ids = S.info.cellIds;
  const lines = [['cell_id', ...Array.from({ length: d }, (_, j) => `z${j + 1}`)].join(',')];
  for (let c = 0; c < ids.length; c++) {
    const row = [csvField(ids[c])];
    for (let j = 0; j < d; j++) row.push(num(latent[c * d + j]));
    lines.push(row.join(','));
  }
  download('latent.csv', new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
}

/** The cells, metadata and latent means as AnnData (.h5ad). @param {boolean} keepCounts */
async function exportH5ad(keepCounts) {
  if (!S.client || !S.info) return;
  const { bytes } = await S.client.request('export_h5ad', { keepCounts });
  download(keepCounts ? 'cellvae.h5ad' : 'cellvae-minified.h5ad', new Blob([bytes.slice()], { type: 'application/x-hdf5' }));
}

/** The model as scvi-tools' model.pt (scvi.model.SCVI.load(dir, adata=...) loads it). */
async function exportScvi() {
  if (!S.client || !S.info) return;
  const { bytes } = await S.client.request('export_scvi', {});
  download('model.pt', new Blob([bytes.slice()], { type: 'application/octet-stream' }));
}

/** @param {'weights' | 'config'} part */
async function exportModel(part) {
  if (!S.client || !S.info) return;
  const m = await S.client.request('export_model', {});
  if (part === 'weights') download('model.safetensors', new Blob([m.safetensors.slice()], { type: 'application/octet-stream' }));
  else download('config.json', new Blob([m.config], { type: 'application/json' }));
}

function exportProbe() {
  const p = S.probe.profile;
  if (!p || !S.info) return;
  const lines = [`gene,expected_count,nearest_${p.nearest.length}_cells_mean`];
  S.info.genes.forEach((g, i) => lines.push(`${csvField(g)},${num(p.expected[i])},${num(p.cells[i])}`));
  download('probe-profile.csv', new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
}

/** @param {HTMLCanvasElement} c @param {string} name */
function exportCanvas(c, name) {
  c.toBlob((blob) => { if (blob) download(name, blob); }, 'image/png');
}

function exportCharts() {
  const cs = CHART_IDS.map((id) => canvas(id));
  const w = cs[0].width, h = cs[0].height, gap = 10;
  const out = document.createElement('canvas');
  out.width = 2 * w + 3 * gap;
  out.height = 2 * h + 3 * gap;
  const ctx = ctx2d(out);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, out.width, out.height);
  cs.forEach((c, i) => ctx.drawImage(c, gap + (i % 2) * (w + gap), gap + Math.floor(i / 2) * (h + gap)));
  exportCanvas(out, 'charts.png');
}

/** Loads model.safetensors + config.json, or an scvi-tools model.pt, onto the loaded data. @param {FileList | null} list */
async function importModel(list) {
  const box = $('import-error');
  box.hidden = true;
  box.textContent = '';
  const files = Array.from(list || []);
  if (!files.length) return;
  try {
    if (!S.data || !S.client) throw new Error('load the data first: the model is shown on the cells loaded in step 1');
    // An scvi-tools model.pt carries its configuration; cellvae's model is two files.
    const pt = files.find((f) => f.name.toLowerCase().endsWith('.pt'));
    const st = pt || files.find((f) => f.name.toLowerCase().endsWith('.safetensors'));
    const cfg = pt ? null : files.find((f) => f.name.toLowerCase().endsWith('.json'));
    if (!st || (!pt && !cfg)) throw new Error('choose both files of the model (model.safetensors and config.json), or the model.pt of an scvi-tools model');
    const safetensors = new Uint8Array(await st.arrayBuffer());
    const config = cfg ? await cfg.text() : '';
    /** @type {import('./protocol.js').SessionOptions} */
    const options = { ...liveOptions() };
    const label = /** @type {HTMLSelectElement} */ ($('opt-label-key')).value;
    if (label) options.label_key = label;
    const r = await S.client.request('import', { safetensors, config, options, device: device() }, { transfer: [safetensors.buffer] });
    adopt(r.info, r.snapshot);
    input('opt-n-latent').value = String(r.info.nLatent);
    setStatusText('Model loaded: explore it, or press Train to continue training it.');
    $('export-note').textContent = cfg ? `Loaded ${st.name} and ${cfg.name}.` : `Loaded the scvi-tools model ${st.name}.`;
  } catch (e) {
    box.textContent = `The model was not loaded: ${message(e)}`;
    box.hidden = false;
  }
}

export function wireExport() {
  button('export-latent').addEventListener('click', () => exportLatent().catch(exportFailed));
  button('export-scvi').addEventListener('click', () => exportScvi().catch(exportFailed));
  button('export-h5ad').addEventListener('click', () => exportH5ad(true).catch(exportFailed));
  button('export-h5ad-small').addEventListener('click', () => exportH5ad(false).catch(exportFailed));
  button('export-model-weights').addEventListener('click', () => exportModel('weights').catch(exportFailed));
  button('export-model-config').addEventListener('click', () => exportModel('config').catch(exportFailed));
  button('export-probe').addEventListener('click', exportProbe);
  button('export-map-png').addEventListener('click', () => exportCanvas(mapCanvas(), 'latent-map.png'));
  button('export-charts-png').addEventListener('click', exportCharts);
  input('model-input').addEventListener('change', () => importModel(input('model-input').files));
}
