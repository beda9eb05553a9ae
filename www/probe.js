// @ts-check
// cellvae page: the probe. A point of the latent space (placed by clicking or dragging on
// the map, the keyboard, or the walk) is decoded by the engine together with the observed
// profile of the nearest cells; renderProbe draws the last answer. Requests are coalesced:
// one in flight, the latest position asked for next.
import { draw_profile } from './pkg/cellvae.js';
import { S, NEAREST, genes } from './state.js';
import { $, input, el, message } from './dom.js';
import { setButtons } from './controls.js';

/** Asks the engine for the profile at the probe (now, or after the request in flight). */
export function requestProbe() {
  const p = S.probe;
  if (!S.client || !S.info || !p.z) return;
  if (p.inFlight) { p.again = true; return; }
  p.inFlight = true;
  p.again = false;
  const session = S.info.session;
  const z = Array.from(p.z), batch = S.batch, library = S.library;
  S.client.request('probe', { z, batch, library, k: NEAREST }).then(
    (r) => {
      if (!S.info || S.info.session !== session) return;
      p.profile = { z, batch, library, expected: r.expected, cells: r.mean, nearest: r.cells };
      p.error = null;
    },
    (e) => { p.error = message(e); },
  ).finally(() => {
    p.inFlight = false;
    p.at = performance.now();
    renderProbe();
    if (p.again) requestProbe();
  });
}

/** @param {number} g @param {Float32Array} expected @param {Float32Array} cells @param {number} top */
function profileRow(g, expected, cells, top) {
  const names = genes();
  const li = el('li');
  li.dataset.gene = names[g];
  const name = el('span', names[g], { class: 'gene', title: names[g] });
  const track = el('span', null, { class: 'track' });
  const bar = el('span', null, { class: 'bar' });
  bar.style.width = `${Math.min(100, Math.max(1, (100 * expected[g]) / top)).toFixed(1)}%`;
  const bar2 = el('span', null, { class: 'bar cells' });
  bar2.style.width = `${Math.min(100, Math.max(0.5, (100 * cells[g]) / top)).toFixed(1)}%`;
  track.append(bar, bar2);
  li.append(name, track, el('span', expected[g].toFixed(1), { class: 'value' }), el('span', cells[g].toFixed(1), { class: 'cells-value' }));
  return li;
}

/**
 * Sizes the chart canvas to its box (device pixels) and has plotters (Rust) draw the bars.
 * @param {HTMLCanvasElement} chart @param {number[]} shown @param {Float32Array} expected @param {Float32Array} cells
 */
function drawProfileChart(chart, shown, expected, cells) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(200, (chart.parentElement && chart.parentElement.clientWidth) || 320);
  const height = 34 + 20 * shown.length;
  chart.style.width = `${width}px`;
  chart.style.height = `${height}px`;
  chart.width = Math.round(width * dpr);
  chart.height = Math.round(height * dpr);
  const ctx = chart.getContext('2d');
  if (ctx) ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const names = genes();
  draw_profile(chart, shown.map((g) => names[g]), Float32Array.from(shown.map((g) => expected[g])), Float32Array.from(shown.map((g) => cells[g])));
}

/** Draws the probe's last profile (top 10 genes and the pinned ones), or why there is none. */
export function renderProbe() {
  const root = $('probe-profile');
  root.replaceChildren();
  const p = S.probe;
  const prof = p.profile;
  if (!S.info || !p.z || !prof) {
    if (p.error) root.append(el('p', p.error, { class: 'error' }));
    else root.append(el('p', S.info && !p.z ? 'Click or drag on the map to decode a latent point.' : '', { class: 'muted' }));
    setButtons();
    return;
  }
  const { expected, cells } = prof;
  const order = Array.from(expected.keys()).sort((a, b) => expected[b] - expected[a]).slice(0, 10);
  const shown = order.concat(S.pins);
  const top = Math.max(1e-9, ...shown.map((g) => Math.max(expected[g], cells[g])));
  const zs = prof.z.map((x) => x.toFixed(2));
  const head = el('p', `z = (${zs.length > 6 ? `${zs.slice(0, 6).join(', ')}, …` : zs.join(', ')}), library ${Math.round(prof.library)}: top 10 genes, expected counts`, { class: 'probe-head' });
  const key = el('p', null, { class: 'probe-key' });
  const k1 = el('span');
  const s1 = el('span', null, { class: 'key' });
  s1.style.background = '#2f6fde';
  k1.append(s1, 'decoded at the probe');
  const k2 = el('span');
  const s2 = el('span', null, { class: 'key' });
  s2.style.background = '#f79009';
  k2.append(s2, `the ${prof.nearest.length} nearest cells (observed, same library size)`);
  key.append(k1, k2);
  // The bars: drawn by plotters (Rust) on a canvas; the list below gives the numbers.
  const chart = el('canvas', null, { class: 'probe-chart', role: 'img', 'aria-label': 'decoded expression of the top genes at the probe' });
  chart.dataset.testid = 'probe-chart';
  const list = el('ol', null, { class: 'bars' });
  for (const g of order) list.append(profileRow(g, expected, cells, top));
  root.append(head, key, chart, list);
  try {
    drawProfileChart(chart, shown, expected, cells);
  } catch (e) {
    chart.replaceWith(el('p', `The chart could not be drawn: ${message(e)}`, { class: 'error' }));
  }
  if (S.pins.length) {
    const pinned = el('ol', null, { class: 'bars pinned' });
    pinned.dataset.testid = 'pinned-profile';
    for (const g of S.pins) pinned.append(profileRow(g, expected, cells, top));
    root.append(el('p', 'pinned genes', { class: 'probe-sub' }), pinned);
  }
  if (p.error) root.append(el('p', p.error, { class: 'error' }));
  setButtons();
}

export function renderPins() {
  const root = $('pins');
  root.replaceChildren();
  const names = genes();
  for (const g of S.pins) {
    const li = el('li');
    const x = el('button', '×', { type: 'button', title: `unpin ${names[g]}`, 'aria-label': `unpin ${names[g]}` });
    x.addEventListener('click', () => {
      S.pins = S.pins.filter((q) => q !== g);
      S.pinNames = S.pins.map((q) => names[q]);
      renderPins();
      renderProbe();
    });
    li.append(el('span', names[g]), x);
    root.append(li);
  }
}

export function pinGene() {
  const box = input('pin-gene');
  const name = box.value.trim();
  box.classList.remove('invalid');
  box.title = '';
  if (!name) return;
  const names = genes();
  const g = names.indexOf(name);
  if (g < 0) {
    box.classList.add('invalid');
    box.title = `${name} is not one of the model's genes`;
    return;
  }
  if (!S.pins.includes(g)) S.pins.push(g);
  S.pinNames = S.pins.map((q) => names[q]);
  box.value = '';
  renderPins();
  renderProbe();
}
