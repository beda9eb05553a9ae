// @ts-check
// cellvae page layout: the part of the page's behaviour that belongs to its layout, not to
// the app. Three jobs, none of which reads or changes app state:
//
// 1. Canvas sizes. Every `<canvas data-fit>` gets a drawing buffer the size of its CSS box
//    (`data-fit="dpr"`, the default: times `Math.min(devicePixelRatio, 2)`; `data-fit="css"`:
//    one buffer pixel per CSS pixel, for charts that draw text in buffer pixels). Setting a
//    canvas's size clears it, so after any change this dispatches
//    `window.dispatchEvent(new CustomEvent('cellvae:layout', { detail: { canvases } }))`;
//    whoever draws on those canvases redraws on that event, reading canvas.width/height.
//    The event comes from a ResizeObserver callback: after layout, before the next paint,
//    so a redraw in the listener shows no blank frame.
// 2. Stage. `<body data-layout>` is "landing" until data is loaded (the `#summary` box
//    changes from its placeholder, or the app sets `<body data-loaded="true">`), then
//    "workspace" for good; style.css lays the page out for each.
// 3. Alerts. When an alert (`[role="alert"]`) is shown, the panels around it open and it
//    is scrolled into view (inside its dock), so an error is never hidden in a closed or
//    scrolled panel.

/** The name of the event dispatched on `window` after fitted canvases changed size. */
export const LAYOUT_EVENT = 'cellvae:layout';

/**
 * @typedef {{ width: number, height: number }} Size
 * A CSS content-box size, in CSS pixels.
 */

/** @type {Map<HTMLCanvasElement, Size>} the CSS size each fitted canvas had last */
const cssSizes = new Map();

/**
 * Drawing-buffer pixels per CSS pixel for `canvas`.
 * @param {HTMLCanvasElement} canvas
 * @returns {number}
 */
function pixelRatio(canvas) {
  if (canvas.dataset.fit === 'css') return 1;
  return Math.min(window.devicePixelRatio || 1, 2);
}

/**
 * Sets `canvas`'s drawing buffer from its last seen CSS size. A canvas that is not laid
 * out (hidden, or in a closed panel: size 0) keeps its buffer.
 * @param {HTMLCanvasElement} canvas
 * @returns {boolean} whether the buffer changed (and so was cleared)
 */
function applySize(canvas) {
  const size = cssSizes.get(canvas);
  if (!size || size.width <= 0 || size.height <= 0) return false;
  const ratio = pixelRatio(canvas);
  const width = Math.max(1, Math.round(size.width * ratio));
  const height = Math.max(1, Math.round(size.height * ratio));
  if (canvas.width === width && canvas.height === height) return false;
  canvas.width = width;
  canvas.height = height;
  return true;
}

/**
 * Tells the page that canvases changed size (their content is gone: redraw them).
 * @param {HTMLCanvasElement[]} canvases
 */
function announce(canvases) {
  if (!canvases.length) return;
  window.dispatchEvent(new CustomEvent(LAYOUT_EVENT, { detail: { canvases } }));
}

const observer = new ResizeObserver((entries) => {
  /** @type {HTMLCanvasElement[]} */
  const changed = [];
  for (const entry of entries) {
    const canvas = /** @type {HTMLCanvasElement} */ (entry.target);
    cssSizes.set(canvas, { width: entry.contentRect.width, height: entry.contentRect.height });
    if (applySize(canvas)) changed.push(canvas);
  }
  announce(changed);
});

/**
 * Keeps `canvas`'s drawing buffer at its CSS size from now on (for canvases added after
 * the page loaded; `<canvas data-fit>` in the page are fitted already).
 * @param {HTMLCanvasElement} canvas
 */
export function fitCanvas(canvas) {
  if (!canvas.dataset.fit) canvas.dataset.fit = 'dpr';
  observer.observe(canvas, { box: 'content-box' });
}

/** Applies the current pixel ratio to every fitted canvas (after a zoom or a move to
 * another screen) and announces the ones that changed. */
export function refit() {
  /** @type {HTMLCanvasElement[]} */
  const changed = [];
  for (const canvas of cssSizes.keys()) if (applySize(canvas)) changed.push(canvas);
  announce(changed);
}

/** Re-fits when devicePixelRatio changes (browser zoom, another screen). */
function watchPixelRatio() {
  const query = window.matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
  query.addEventListener('change', () => {
    refit();
    watchPixelRatio();
  }, { once: true });
}

/** @returns {'landing' | 'workspace'} the page's layout stage now */
export function stage() {
  return document.body.dataset.layout === 'workspace' ? 'workspace' : 'landing';
}

/** Sets `<body data-layout>`: "landing" until data is loaded, then "workspace". */
function watchStage() {
  const body = document.body;
  const summary = document.getElementById('summary');
  const placeholder = summary ? summary.textContent : '';
  const update = () => {
    if (body.dataset.layout === 'workspace') return;
    const text = summary ? summary.textContent || '' : '';
    const loaded = body.dataset.loaded === 'true' || (!!summary && text !== placeholder && text.trim() !== '');
    body.dataset.layout = loaded ? 'workspace' : 'landing';
  };
  if (summary) new MutationObserver(update).observe(summary, { childList: true, subtree: true, characterData: true });
  new MutationObserver(update).observe(body, { attributes: true, attributeFilter: ['data-loaded'] });
  update();
}

/**
 * Opens every `<details>` around `element` (panel, then dock).
 * @param {Element} element
 */
function openAround(element) {
  let details = element.parentElement ? element.parentElement.closest('details') : null;
  while (details) {
    details.open = true;
    details = details.parentElement ? details.parentElement.closest('details') : null;
  }
}

/** Opens the panels around an alert and scrolls it into view when it is shown. */
function watchAlerts() {
  const observer = new MutationObserver((records) => {
    for (const record of records) {
      const alert = /** @type {HTMLElement} */ (record.target);
      if (alert.hidden) continue;
      openAround(alert);
      alert.scrollIntoView({ block: 'nearest' });
    }
  });
  for (const alert of document.querySelectorAll('[role="alert"]')) {
    observer.observe(alert, { attributes: true, attributeFilter: ['hidden'] });
  }
}

for (const canvas of document.querySelectorAll('canvas[data-fit]')) {
  if (canvas instanceof HTMLCanvasElement) fitCanvas(canvas);
}
watchPixelRatio();
watchStage();
watchAlerts();
