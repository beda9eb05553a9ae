// @ts-check
// cellvae page: lessons on what a VAE is: an autoencoder against a VAE (1), the
// generative story (2).
import { S, genes } from '../state.js';
import { action, out, chart, record, trainRun, teach, el } from './kit.js';
import { groupedBars, scatter } from './draw.js';

/** @typedef {import('./index.js').Lesson} Lesson */

/** Lesson 1: a plain autoencoder against the VAE on the same cells. @type {Lesson} */
const autoencoder = {
  id: 'autoencoder',
  title: 'Two machines',
  summary: 'An autoencoder and a VAE on the same cells: which latent space can you sample?',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['reparam', 'kl'],
  text: [
    'An autoencoder squeezes each cell through a few numbers (its code) and rebuilds it. It only has to work for the codes of real cells: what lies between them is never trained, so a point picked at random in its latent space may decode to a profile unlike any cell.',
    'A VAE adds two things: noise (each cell is a small cloud of codes, not a point) and the KL term, which pulls the clouds towards a standard normal prior. The space is then filled, and any point drawn from the prior decodes to something cell-like.',
    'Here the autoencoder is the same network trained with no KL term (beta = 0): nothing then keeps its noise from shrinking, so its code becomes almost deterministic, as an autoencoder\'s is.',
  ],
  look: [
    'The map after each run: the VAE\'s cells fill a round region around the origin; the autoencoder\'s spread out with empty space between groups.',
    'The distances: each random point is decoded and compared with the nearest real cell\'s decoded profile (Hellinger distance of the gene proportions, 0 = the same, 1 = nothing in common). Points drawn in the box around the cells decode further from any real cell in the autoencoder.',
  ],
  build(box) {
    /** @type {Record<string, any>} */
    const runs = {};
    record('machines', runs);
    const c = chart('machines-chart', 'Distance of decoded random points to the nearest real cell');
    const line = out('machines-out');
    const draw = () => {
      const names = Object.keys(runs);
      groupedBars(c, 'median distance to the nearest cell (0-1, lower: more cell-like)', ['prior draws', 'box around the cells', '4x wider box'],
        names.map((n, i) => ({ name: n, colour: ['#2f6fde', '#f79009'][i % 2], values: [runs[n].prior.median, runs[n].data_box.median, runs[n].wide_box.median] })));
      line.textContent = names.map((n) => `${n}: prior ${runs[n].prior.median.toFixed(3)}, box ${runs[n].data_box.median.toFixed(3)}`).join(' · ');
    };
    const run = async (/** @type {string} */ name, /** @type {string} */ beta) => {
      await trainRun({ beta, 'opt-kl-warmup': '0' }, name);
      runs[name] = await teach('decoded_distances', { n_points: 200, seed: 0 });
      draw();
    };
    box.append(
      el('p', 'Train each machine (a few seconds each, same seed), then compare where random points decode.', { class: 'small' }),
      action('Train the VAE', 'machines-vae', () => run('VAE', '1')),
      action('Train the autoencoder (no KL)', 'machines-ae', () => run('autoencoder', '0')),
      c, line,
    );
  },
};

/** Lesson 2: z from the prior, proportions, a library size, NB counts. @type {Lesson} */
const generative = {
  id: 'generative',
  title: 'The generative story',
  summary: 'Draw new cells from the model: z, proportions, depth, counts.',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['softmax', 'nb_loglik'],
  text: [
    'A VAE is a story of how a cell\'s counts came to be. Draw a cell state z from the prior N(0, I). The decoder turns z into proportions over the genes (they sum to one). Draw a library size, how many molecules were counted, from a log-normal fitted to the data. Each gene\'s count is then a negative binomial draw around library size x proportion.',
    'Training makes this story likely for the real cells. If the prior and the cells\' codes agreed, cells drawn from the story would look like real ones. Here 300 are drawn and put on a map through the encoder, like real cells.',
  ],
  look: [
    'The scatter: where do generated cells (orange) land? Those in the cells\' regions (grey) look like real cells; those in the gaps between them land where no real cell lives: the prior has mass there, the cells\' codes do not (lesson 11 measures this).',
    'The bars: the genes\' mean counts in real and generated cells. Cells generated in the gaps are blends, so the marker genes of each type come out weaker than in real cells.',
    'The line below: the library sizes follow the real ones (they are drawn separately from z), and the encoder finds each generated cell\'s z again.',
    'Train longer or with more latent dimensions and generate again: does the match improve?',
  ],
  build(box) {
    const map = chart('generative-map', 'Real and generated cells in the latent space', 220);
    const bars = chart('generative-genes', 'Mean counts of the top genes');
    const line = out('generative-out');
    let draw = 0;
    const gen = async () => {
      const r = await teach('generate', { n: 300, seed: draw++ });
      const d = S.d, n = r.n_cells, g = r.n_genes;
      const real = S.latent;
      if (!real) throw new Error('train the model first');
      scatter(map, 'latent means: real (grey), generated (orange)', {
        points: [
          { x: Array.from({ length: S.n }, (_, i) => real[i * d]), y: Array.from({ length: S.n }, (_, i) => real[i * d + 1]), colour: '#c0c6d0' },
          { x: Array.from({ length: n }, (_, i) => r.encoded_mean[i * d]), y: Array.from({ length: n }, (_, i) => r.encoded_mean[i * d + 1]), colour: '#f79009' },
        ],
        xLabel: 'z1', yLabel: 'z2',
      });
      const genMean = new Array(g).fill(0);
      for (let i = 0; i < n; i++) for (let j = 0; j < g; j++) genMean[j] += r.counts[i * g + j] / n;
      const profile = S.info ? await realMeans() : [];
      const top = profile.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, 8).map(([, j]) => j);
      groupedBars(bars, 'mean counts per cell: real and generated', top.map((j) => genes()[j]), [
        { name: 'real', colour: '#98a2b3', values: top.map((j) => profile[j]) },
        { name: 'generated', colour: '#f79009', values: top.map((j) => genMean[j]) },
      ]);
      const meanTotal = r.total_counts.reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0) / n;
      const integers = r.counts.every((/** @type {number} */ v) => Number.isInteger(v));
      // How well the encoder finds each generated cell's z again (first axis).
      const zx = Array.from({ length: n }, (_, i) => r.z[i * d]), ex = Array.from({ length: n }, (_, i) => r.encoded_mean[i * d]);
      const corr = pearson(zx, ex);
      record('generated', { n, mean_total: meanTotal, data_mean_library: r.data_mean_library, integer_counts: integers, z_vs_encoded_corr: corr });
      line.textContent = `Generated library sizes average ${meanTotal.toFixed(0)} counts (real cells: ${r.data_mean_library.toFixed(0)}); every count is a whole number: ${integers ? 'yes' : 'no'}. The encoder finds the z a cell was drawn from again (correlation ${corr.toFixed(2)} on z1).`;
    };
    box.append(el('p', 'Train the model (press Train), then draw cells from it.', { class: 'small' }), action('Generate 300 cells', 'generative-run', gen), map, bars, line);
  },
};

/** Pearson correlation of two equal-length arrays. @param {number[]} a @param {number[]} b */
export function pearson(a, b) {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n, mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) { sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) ** 2; sbb += (b[i] - mb) ** 2; }
  return sab / Math.sqrt(saa * sbb);
}

/** The real cells' mean decoded-gene counts: the nearest-cells profile at the origin with every cell. */
async function realMeans() {
  if (!S.client || !S.info) return [];
  const r = await S.client.request('teach', { what: 'count_variance', args: { n_samples: 1 } });
  return /** @type {number[]} */ (r.gene_mean);
}

export const MACHINE_LESSONS = [autoencoder, generative];
