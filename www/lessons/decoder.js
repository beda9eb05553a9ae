// @ts-check
// cellvae page: lessons on what the decoder produces: library size (7).
import { S, genes } from '../state.js';
import { action, out, chart, record, el } from './kit.js';
import { groupedBars } from './draw.js';

/** @typedef {import('./index.js').Lesson} Lesson */

/** The probe's latent point, or the origin when no probe is placed. @returns {number[]} */
function probePoint() {
  return S.probe.z ? Array.from(S.probe.z) : new Array(S.d).fill(0);
}

/** Lesson 7: the same z decoded at several sequencing depths. @type {Lesson} */
const library = {
  id: 'library',
  title: 'Library size',
  summary: 'The same cell state sequenced deeper: proportions stay, counts scale.',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['softmax', 'nb_loglik'],
  text: [
    'Two cells of the same type can differ tenfold in their total counts: capture efficiency and sequencing depth vary from droplet to droplet. The decoder keeps this out of z: it turns z into proportions over genes (a softmax, summing to one), and the expected count of a gene is its proportion times the cell\'s library size, its total count.',
    'So z describes what the cell is; the library size only how deeply it was measured. Here the same latent point is decoded at three depths.',
  ],
  look: [
    'The bars: each gene\'s expected count grows in step with the depth, four and sixteen times.',
    'The proportions: identical at every depth (the line under the chart gives the largest difference).',
    'Move the probe on the map and decode again: other genes lead, the scaling stays.',
  ],
  build(box) {
    const depths = [1000, 4000, 16000];
    const c = chart('library-chart', 'Expected counts of the top genes at three library sizes');
    const line = out('library-out');
    const decodeAll = async () => {
      if (!S.client || !S.info) throw new Error('no model');
      const z = probePoint();
      /** @type {number[][]} */
      const profiles = [];
      for (const library of depths) {
        const r = await S.client.request('decode', { zs: Float32Array.from(z), batch: S.batch, library });
        profiles.push(Array.from(r.expected));
      }
      const props = profiles.map((p) => { const t = p.reduce((a, b) => a + b, 0); return p.map((v) => v / t); });
      let maxPropDiff = 0;
      for (let d = 1; d < depths.length; d++) {
        for (let g = 0; g < props[0].length; g++) maxPropDiff = Math.max(maxPropDiff, Math.abs(props[d][g] - props[0][g]) / Math.max(props[0][g], 1e-12));
      }
      const totals = profiles.map((p) => p.reduce((a, b) => a + b, 0));
      const top = props[0].map((v, g) => [v, g]).sort((a, b) => b[0] - a[0]).slice(0, 8).map(([, g]) => g);
      const names = genes();
      groupedBars(c, `Expected counts at z = (${z.map((v) => v.toFixed(2)).join(', ')})`, top.map((g) => names[g]),
        depths.map((d, i) => ({ name: `${d} counts`, colour: ['#98a2b3', '#2f6fde', '#0b3b8f'][i], values: top.map((g) => profiles[i][g]) })));
      record('library', { z, depths, totals, max_relative_proportion_difference: maxPropDiff, top_genes: top.map((g) => names[g]) });
      line.textContent = `Totals ${totals.map((t) => t.toFixed(0)).join(' / ')}: the depths asked for. Largest relative difference between the depths' proportions: ${maxPropDiff.toExponential(1)}.`;
    };
    box.append(
      el('p', 'Place the probe on the map (click), then decode its point at 1,000, 4,000 and 16,000 counts.', { class: 'small' }),
      action('Decode at three depths', 'library-decode', decodeAll), c, line,
    );
  },
};

export const DECODER_LESSONS = [library];
