// @ts-check
// cellvae page: the lesson on count likelihoods (6).
import { action, out, chart, record, trainRun, teach, el } from './kit.js';
import { scatter } from './draw.js';

/** @typedef {import('./index.js').Lesson} Lesson */

/** Lesson 6: Poisson, NB and ZINB on the same cells; the mean-variance plot; a Gaussian contrast. @type {Lesson} */
const likelihood = {
  id: 'likelihood',
  title: 'Count likelihoods',
  summary: 'Poisson, negative binomial, zero-inflated: which describes the counts?',
  setup: { data: 'demo', n_latent: '10', epochs: '40', kl_warmup: '0', holdout: '10', seed: '0' },
  kernels: ['poisson_loglik', 'nb_loglik', 'zinb_loglik'],
  text: [
    'The decoder does not output counts: it outputs the parameters of a distribution over counts, and training maximises the likelihood of the observed counts under it. The choice matters. A Poisson distribution has its variance equal to its mean. Real genes vary more than that between cells of one kind (overdispersion): the negative binomial adds a dispersion theta per gene, variance = mean + mean^2 / theta. The zero-inflated NB adds a probability of an extra zero.',
    'A Gaussian on log counts, the habit of many pipelines, describes numbers that are not counts at all: its samples are fractions, and negative on the log scale.',
    'Which fits best is a question for held-out cells, not for the mean-variance plot. Most of a gene\'s extra variance across all cells comes from cells being of different types, and z captures that; given z, UMI counts are often close to Poisson (Sarkar and Stephens, 2021). On this demo the Poisson model scores as well as the NB, or better; on data with more variation within a cell state the NB wins. Try it and see.',
  ],
  look: [
    'The mean-variance plot: each dot a gene, over all cells. Poisson\'s line (variance = mean) runs under most genes; the NB curve, with the model\'s median theta, follows them better.',
    'The runs table (evaluation panel) and the table here: the held-out log p(x) of each likelihood trained on the same cells from the same seed. Higher is better.',
    'The Gaussian samples: how many are not whole numbers.',
  ],
  build(box) {
    /** @type {{likelihood: string, logpx: number}[]} */
    const runs = [];
    record('runs', runs);
    const table = el('table', null, { class: 'lesson-table', 'data-testid': 'likelihood-table' });
    const mv = chart('likelihood-mv', 'Mean and variance of each gene', 220);
    const line = out('likelihood-out');
    const draw = () => {
      const head = el('tr');
      head.append(el('th', 'likelihood'), el('th', 'held-out log p(x)'));
      table.replaceChildren(head, ...runs.map((r) => { const tr = el('tr'); tr.append(el('td', r.likelihood), el('td', r.logpx.toFixed(1))); return tr; }));
    };
    const train = async (/** @type {string} */ lik) => {
      const r = await trainRun({ 'opt-likelihood': lik }, lik.toUpperCase());
      const i = runs.findIndex((x) => x.likelihood === lik);
      const row = { likelihood: lik, logpx: r.heldout_log_px_iw100_per_cell };
      if (i >= 0) runs[i] = row; else runs.push(row);
      draw();
    };
    const plot = async () => {
      const r = await teach('count_variance', { n_samples: 200, seed: 0 });
      /** @type {[number, number][]} */
      const keep = r.gene_mean.map((/** @type {number} */ m, /** @type {number} */ i) => [m, r.gene_variance[i]]).filter((/** @type {[number, number]} */ [m, v]) => m > 0 && v > 0);
      scatter(mv, 'genes (grey); Poisson (blue), NB (purple), ZINB (orange); log-log', {
        points: [{ x: keep.map(([m]) => m), y: keep.map(([, v]) => v), colour: '#98a2b3' }],
        curves: [
          { x: r.curve_mean, y: r.poisson_variance, colour: '#2f6fde', name: 'Poisson' },
          { x: r.curve_mean, y: r.nb_variance, colour: '#7a5af8', name: 'NB' },
          { x: r.curve_mean, y: r.zinb_variance, colour: '#f79009', name: 'ZINB' },
        ],
        logX: true, logY: true, xLabel: 'mean', yLabel: 'variance',
      });
      const over = keep.filter(([m, v]) => v > m).length;
      const g = r.gaussian[0];
      const nbAbove = r.curve_mean.every((/** @type {number} */ m, /** @type {number} */ i) => m <= 0 || r.nb_variance[i] > r.poisson_variance[i]);
      record('mean_variance', { genes: keep.length, overdispersed: over, nb_above_poisson: nbAbove, theta_median: r.theta_median,
        gaussian_gene: g.name, gaussian_non_integer: g.fraction_non_integer, gaussian_negative_log: g.fraction_negative });
      line.textContent = `${over} of ${keep.length} genes vary more than their mean (median theta ${r.theta_median.toFixed(2)}). A Gaussian on log counts of ${g.name}: `
        + `${(100 * g.fraction_non_integer).toFixed(0)}% of its samples are not whole numbers, ${(100 * g.fraction_negative).toFixed(0)}% are negative on the log scale `
        + `(e.g. ${g.samples_counts.slice(0, 4).map((/** @type {number} */ v) => v.toFixed(2)).join(', ')} counts).`;
    };
    box.append(
      el('p', 'Train each likelihood on the same cells (a few seconds each), then compare.', { class: 'small' }),
      action('Train Poisson', 'likelihood-poisson', () => train('poisson')),
      action('Train NB', 'likelihood-nb', () => train('nb')),
      action('Train ZINB', 'likelihood-zinb', () => train('zinb')),
      table,
      action('Plot mean against variance', 'likelihood-plot', plot), mv, line,
    );
  },
};

export const LIKELIHOOD_LESSONS = [likelihood];
