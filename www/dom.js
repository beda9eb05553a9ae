// @ts-check
// cellvae page: small DOM helpers. Text is only ever set with textContent.

/** @param {string} id @returns {HTMLElement} */
export function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e;
}

/** @param {string} id @returns {HTMLInputElement} */
export const input = (id) => /** @type {HTMLInputElement} */ ($(id));
/** @param {string} id @returns {HTMLSelectElement} */
export const select = (id) => /** @type {HTMLSelectElement} */ ($(id));
/** @param {string} id @returns {HTMLButtonElement} */
export const button = (id) => /** @type {HTMLButtonElement} */ ($(id));
/** @param {string} id @returns {HTMLCanvasElement} */
export const canvas = (id) => /** @type {HTMLCanvasElement} */ ($(id));

/**
 * An element with text (as text) and attributes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {string | number | null} [text] @param {Record<string, string>} [attrs]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** @param {string} value @param {string} text */
export function option(value, text) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text;
  return o;
}

/** The message of an error (or of anything thrown). @param {unknown} e */
export function message(e) {
  return String(e && typeof e === 'object' && 'message' in e ? e.message : e);
}

/** @param {number | null | undefined} x @param {number} [digits] */
export function fmt(x, digits = 1) {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}
