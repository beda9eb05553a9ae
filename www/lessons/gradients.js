// @ts-check
// cellvae page: lessons on the gradient training follows: the reparameterization trick
// against the score function (4), the two sources of noise in it (5).
import { S } from '../state.js';
import { action, out, chart, record, teach, el } from './kit.js';
import { groupedBars, scatter } from './draw.js';

/** @typedef {import('./index.js').Lesson} Lesson */

/** Numbers as a comma-separated list. @param {number[]} xs @param {number} digits */
function fmtList(xs, digits) {
  return xs.map((v) => v.toFixed(digits)).join(', ');
}

/** The cell nearest the probe (its row), or the first cell. */
function probedCell() {
  return S.probe.cell >= 0 ? S.probe.cell : 0;
}

/** Lesson 4: z = mu + sigma * eps, and the variance of two estimators of one gradient. @type {Lesson} */
const reparam = {
  id: 'reparam',
  title: 'The reparameterization trick',
  summary: 'Two ways to estimate the same gradient through a random draw, and their noise.',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['reparam'],
  text: [
    'Training needs the gradient of E_q[log p(x|z)] with respect to the encoder\'s outputs, but z is random. Write the draw as z = mu + sigma x eps, with eps from N(0, 1): the randomness is now outside the network, and the gradient flows through mu and sigma like through any other layer. That is the reparameterization trick; reparam.wgsl does exactly this on the GPU.',
    'The alternative, the score function (REINFORCE) estimator, multiplies log p(x|z) by the gradient of log q(z|x): it needs no gradient of the decoder, but it is much noisier. Both estimate the same gradient; here each is computed from 2,000 draws for one cell.',
  ],
  look: [
    'The draws: each dot is one z = mu + sigma x eps around the cell\'s mean (the cross).',
    'The table: both estimators\' means agree within their standard errors; the score function\'s variance is hundreds to thousands of times larger (a baseline helps, but not enough).',
  ],
  build(box) {
    const draws = chart('reparam-draws', 'z = mu + sigma * eps: the draws for one cell', 200);
    const vars = chart('reparam-variance', 'Variance of each gradient estimator (log10)');
    const table = el('table', null, { class: 'lesson-table', 'data-testid': 'reparam-table' });
    const line = out('reparam-out');
    let timer = /** @type {ReturnType<typeof setInterval> | undefined} */ (undefined);
    const run = async () => {
      const cell = probedCell();
      const r = await teach('gradient_estimators', { cell, n_draws: 2000, n_shown: 24, seed: 0 });
      const d = r.mu.length;
      // The draws appear one by one (the page animates z = mu + sigma * eps).
      let shown = 0;
      clearInterval(timer);
      timer = setInterval(() => {
        shown = Math.min(r.n_shown, shown + 1);
        scatter(draws, `cell ${S.info ? S.info.cellIds[cell] : cell}: mu (black), draws (blue)`, {
          points: [
            { x: Array.from({ length: shown }, (_, i) => r.z_shown[i * d]), y: Array.from({ length: shown }, (_, i) => r.z_shown[i * d + (d > 1 ? 1 : 0)]), colour: '#2f6fde' },
            { x: [r.mu[0]], y: [r.mu[d > 1 ? 1 : 0]], colour: '#101828' },
          ],
          xLabel: 'z1', yLabel: d > 1 ? 'z2' : 'z1',
        });
        if (shown >= r.n_shown || !box.isConnected) clearInterval(timer);
      }, 120);
      const est = [['reparameterization', r.reparameterization], ['score function', r.score_function], ['score function + baseline', r.score_function_baseline]];
      const head = el('tr');
      for (const h of ['estimator', 'mean (z1)', '± s.e.', 'variance (total)']) head.append(el('th', h));
      table.replaceChildren(head, ...est.map(([name, e]) => {
        const tr = el('tr');
        tr.append(el('td', name), el('td', e.mean_per_dim[0].toFixed(3)), el('td', e.standard_error_per_dim[0].toFixed(3)), el('td', e.total_variance.toExponential(2)));
        return tr;
      }));
      groupedBars(vars, 'log10 of the total variance over 2,000 draws', ['reparam.', 'score', 'score + baseline'],
        [{ name: 'log10 variance', colour: '#7a5af8', values: est.map(([, e]) => Math.log10(Math.max(1e-12, e.total_variance))) }]);
      const agree = r.mu.every((/** @type {number} */ _, /** @type {number} */ j) => Math.abs(r.reparameterization.mean_per_dim[j] - r.score_function_baseline.mean_per_dim[j])
        <= 4 * Math.hypot(r.reparameterization.standard_error_per_dim[j], r.score_function_baseline.standard_error_per_dim[j]));
      const ratio = r.score_function_baseline.total_variance / r.reparameterization.total_variance;
      record('reparam', { cell, reparam_variance: r.reparameterization.total_variance, score_variance: r.score_function.total_variance,
        score_baseline_variance: r.score_function_baseline.total_variance, means_agree: agree });
      line.textContent = `mu = (${fmtList(r.mu, 2)}), sigma = (${fmtList(r.sigma, 3)}). The score function with a baseline is ${ratio.toFixed(0)} times as noisy as the reparameterized gradient; the means ${agree ? 'agree' : 'do not agree'} within their errors.`;
    };
    box.append(el('p', 'Train the model, click a cell on the map (the probe picks the nearest cell), then estimate.', { class: 'small' }),
      action('Estimate both gradients', 'reparam-run', run), draws, table, vars, line);
  },
};

/** Lesson 5: minibatch noise and Monte Carlo noise in the gradient. @type {Lesson} */
const noise = {
  id: 'noise',
  title: 'Two sources of noise',
  summary: 'Minibatches and sampled z both make the gradient noisy: how much, and what helps.',
  setup: { data: 'demo', n_latent: '2', epochs: '20', kl_warmup: '0', seed: '0' },
  kernels: ['reparam', 'linear'],
  text: [
    'Each training step uses a gradient that is noisy twice over. It is computed on a minibatch of cells, not all of them; and for each cell on one random z, not the expectation over q(z|x).',
    'Here the gradient of the current model is computed many times: once varying only the minibatch (the z noise fixed), once varying only the z draws (the minibatch fixed). The spread is the total variance of the gradient vector over the repeats.',
  ],
  look: [
    'Spread against minibatch size: it falls roughly as 1 / size. Larger minibatches give cleaner steps but fewer of them per epoch.',
    'Spread against z samples per cell: it falls as 1 / samples too, but on a fixed minibatch the z noise is much smaller than the minibatch noise: one sample per cell, as scVI uses, is usually enough.',
  ],
  build(box) {
    const c = chart('noise-chart', 'Gradient spread', 200);
    const line = out('noise-out');
    const run = async () => {
      const r = await teach('gradient_noise', { seed: 0 });
      const mb = r.minibatch, mc = r.monte_carlo;
      scatter(c, 'spread of the gradient (log10): minibatch size (blue), z samples (orange)', {
        points: [
          { x: mb.map((/** @type {any} */ s) => s.batch_size), y: mb.map((/** @type {any} */ s) => s.trace_cov_all_params), colour: '#2f6fde', name: 'minibatch size' },
          { x: mc.map((/** @type {any} */ s) => s.z_samples), y: mc.map((/** @type {any} */ s) => s.trace_cov_all_params), colour: '#f79009', name: 'z samples' },
        ],
        curves: [
          { x: mb.map((/** @type {any} */ s) => s.batch_size), y: mb.map((/** @type {any} */ s) => s.trace_cov_all_params), colour: '#2f6fde', name: '' },
          { x: mc.map((/** @type {any} */ s) => s.z_samples), y: mc.map((/** @type {any} */ s) => s.trace_cov_all_params), colour: '#f79009', name: '' },
        ],
        logX: true, logY: true, xLabel: 'size',
      });
      record('noise', { minibatch: mb.map((/** @type {any} */ s) => [s.batch_size, s.trace_cov_all_params]), monte_carlo: mc.map((/** @type {any} */ s) => [s.z_samples, s.trace_cov_all_params]) });
      line.textContent = `Minibatch ${mb.map((/** @type {any} */ s) => `${s.batch_size}: ${s.trace_cov_all_params.toExponential(1)}`).join(', ')}. `
        + `z samples on a minibatch of ${r.monte_carlo_batch_size}: ${mc.map((/** @type {any} */ s) => `${s.z_samples}: ${s.trace_cov_all_params.toExponential(1)}`).join(', ')}.`;
    };
    box.append(el('p', 'Train for a while (or not at all: the noise is there from the first step), then measure.', { class: 'small' }),
      action('Measure the gradient noise', 'noise-run', run), c, line);
  },
};

export const GRADIENT_LESSONS = [reparam, noise];
