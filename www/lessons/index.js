// @ts-check
// cellvae page: the lessons. Each lesson (a module of www/lessons/) is a short text beside
// the live map, a preset (data, settings, seed: a link, see classroom.js), a guided
// interaction built in its box, what to look at, and the kernels it is about. This module
// lists them (in the Lessons panel and on the start screen) and opens one.
import { S } from '../state.js';
import { $, el } from '../dom.js';
import { setupHash } from '../classroom.js';
import { showKernel } from '../shaders.js';
import { TRAINING_LESSONS } from './training.js';
import { DECODER_LESSONS } from './decoder.js';
import { MACHINE_LESSONS } from './machines.js';
import { GRADIENT_LESSONS } from './gradients.js';
import { LIKELIHOOD_LESSONS } from './likelihood.js';
import { STRUCTURE_LESSONS } from './structure.js';

/**
 * A lesson. `setup`: the link's parameters (data preset and settings) that set it up;
 * `kernels`: the WGSL kernels it is about (the shader viewer shows them); `build`
 * makes its interaction in `box` (called each time it opens on a model).
 * @typedef {{id: string, title: string, summary: string, setup: Record<string, string>, kernels: string[],
 *   text: string[], look: string[], build: (box: HTMLElement) => void}} Lesson
 */

/** The order of the lessons (ids). */
const ORDER = ['autoencoder', 'generative', 'elbo', 'reparam', 'noise', 'likelihood', 'library', 'batch', 'independence', 'collapse', 'aggregate', 'identifiability'];

/** Every lesson, in the order a course takes through the subject. @type {Lesson[]} */
export const LESSONS = [...MACHINE_LESSONS, ...TRAINING_LESSONS, ...GRADIENT_LESSONS, ...LIKELIHOOD_LESSONS, ...DECODER_LESSONS, ...STRUCTURE_LESSONS].sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));

/** A lesson's number in the course (its place in ORDER). @param {Lesson} l */
export function lessonNumber(l) {
  return ORDER.indexOf(l.id) + 1;
}

/** The link (hash) of a lesson's setup. @param {Lesson} l */
export function lessonHash(l) {
  const { data, ...settings } = l.setup;
  return setupHash({ lesson: l.id, data: data || null, settings, hide: new Set(), problems: [] });
}

/** Fills the lesson lists (the Lessons panel and the start screen's). */
export function renderLessonLists() {
  for (const id of ['lesson-list', 'start-lesson-list']) {
    $(id).replaceChildren(...LESSONS.map((l) => {
      const li = el('li');
      const a = el('a', `${lessonNumber(l)}. ${l.title}`, { href: lessonHash(l), 'data-lesson-link': l.id, title: l.summary });
      li.append(a, el('span', ` ${l.summary}`, { class: 'muted small' }));
      return li;
    }));
  }
}

/** Opens lesson `id` (null: closes the open one). An unknown id says so. @param {string | null} id */
export function openLesson(id) {
  const box = $('lesson');
  S.cls.lesson = id;
  S.cls.result = {};
  if (!id) { box.hidden = true; box.replaceChildren(); delete box.dataset.lesson; return; }
  const l = LESSONS.find((x) => x.id === id);
  box.hidden = false;
  if (!l) {
    S.cls.lesson = null;
    box.replaceChildren(el('p', `There is no lesson called "${id}". Choose one from the list above.`, { class: 'error', role: 'alert' }));
    return;
  }
  box.dataset.lesson = l.id;
  const n = lessonNumber(l);
  const head = el('header');
  head.append(el('h3', `Lesson ${n}: ${l.title}`));
  const again = el('a', 'Set up this lesson again', { href: lessonHash(l), class: 'small', 'data-testid': 'lesson-setup' });
  again.addEventListener('click', (e) => {
    // The same hash does not fire hashchange: apply it here.
    if (location.hash === lessonHash(l)) { e.preventDefault(); window.dispatchEvent(new HashChangeEvent('hashchange')); }
  });
  head.append(again);
  const body = el('div', null, { class: 'lesson-text' });
  for (const p of l.text) body.append(el('p', p));
  const tryBox = el('section', null, { class: 'lesson-try', 'data-testid': 'lesson-try' });
  tryBox.append(el('h4', 'Try it'));
  l.build(tryBox);
  const look = el('section', null, { class: 'lesson-look' });
  look.append(el('h4', 'Look at'));
  const ul = el('ul');
  for (const item of l.look) ul.append(el('li', item));
  look.append(ul);
  const kernels = el('p', 'Kernels: ', { class: 'small lesson-kernels' });
  for (const k of l.kernels) {
    const a = el('a', `${k}.wgsl`, { href: '#', 'data-kernel-link': k });
    a.addEventListener('click', (e) => { e.preventDefault(); showKernel(k); });
    kernels.append(a, ' ');
  }
  box.replaceChildren(head, body, tryBox, look, ...(l.kernels.length ? [kernels] : []));
  const panel = box.closest('details');
  if (panel) /** @type {HTMLDetailsElement} */ (panel).open = true;
  box.scrollIntoView({ block: 'nearest' });
}
