// @ts-check
// cellvae page: lessons on the latent space's structure: batch effects (8), what the
// decoder assumes (9), the aggregate posterior against the prior (11), identifiability (12).
import { S, genes } from '../state.js';
import { select } from '../dom.js';
import { adopt } from '../controls.js';
import { readOptions, device } from '../settings.js';
import { requestProbe } from '../probe.js';
import { action, out, chart, record, trainRun, teach, el } from './kit.js';
import { scatter } from './draw.js';

/** @typedef {import('./index.js').Lesson} Lesson */

/** Colours the map by a metadata column, as the "colour by" menu does. @param {string} column */
function colourBy(column) {
  const sel = select('colour-by');
  if (![...sel.options].some((o) => o.value === `obs:${column}`)) return;
  sel.value = `obs:${column}`;
  sel.dispatchEvent(new Event('change'));
}

/** Lesson 8: a batch effect, without and with the batch covariate. @type {Lesson} */
const batch = {
  id: 'batch',
  title: 'Batch effects',
  summary: 'Two batches of the same cells: the model separates them, unless told about them.',
  setup: { data: 'demo-batches', n_latent: '10', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['onehot', 'linear'],
  text: [
    'Cells measured in different batches (days, chips, labs) differ for technical reasons: some genes are captured more efficiently in one batch than another. A model that knows nothing of batches spends latent dimensions on that difference, and the map splits each cell type in two.',
    'scVI gives the decoder (and here the encoder too) the batch as an input. The latent space then need not encode it: cells of one type from both batches land together, while the types stay apart.',
    'This data is simulated and said so: the demo has one batch, so the page splits its cells into batches A and B (alternating within each cell type) and scales batch B\'s counts of each gene by a random factor (log-normal, sd 0.7), drawing whole counts. The biology is identical in both batches by construction.',
  ],
  look: [
    'The map coloured by batch after each run (the lesson sets it): without the covariate, A and B sit apart; with it, they mix.',
    'Colour by cell_type: the types stay apart in both.',
    'The table: batch mixing (entropy of batches among each cell\'s 15 neighbours, 1 = perfectly mixed) and kNN label accuracy (cell types kept apart).',
  ],
  build(box) {
    /** @type {{run: string, mixing: number, knn: number | null}[]} */
    const runs = [];
    record('runs', runs);
    const table = el('table', null, { class: 'lesson-table', 'data-testid': 'batch-table' });
    const draw = () => {
      const head = el('tr');
      for (const h of ['model', 'batch mixing', 'label accuracy']) head.append(el('th', h));
      table.replaceChildren(head, ...runs.map((r) => {
        const tr = el('tr');
        tr.append(el('td', r.run), el('td', r.mixing.toFixed(3)), el('td', r.knn === null ? '–' : r.knn.toFixed(3)));
        return tr;
      }));
    };
    const run = async (/** @type {string} */ name, /** @type {string} */ key) => {
      if (!S.info || !S.info.meta.some((m) => m.name === 'batch')) throw new Error('this lesson needs its data: press "Set up this lesson again"');
      await trainRun({ 'opt-batch-key': key }, name);
      const m = await teach('batch_mixing', { column: 'batch', k: 15 });
      const row = { run: name, mixing: m.batch_mixing_entropy, knn: m.label_knn_accuracy };
      const i = runs.findIndex((r) => r.run === name);
      if (i >= 0) runs[i] = row; else runs.push(row);
      colourBy('batch');
      draw();
    };
    box.append(
      el('p', 'Train without, then with, the batch covariate (same seed, a few seconds each).', { class: 'small' }),
      action('Train without the batch covariate', 'batch-without', () => run('without batch', '')),
      action('Train with the batch covariate', 'batch-with', () => run('with batch', 'batch')),
      table,
    );
  },
};

/** Lesson 9: genes are independent given z; real cells' genes are not. @type {Lesson} */
const independence = {
  id: 'independence',
  title: 'What the decoder assumes',
  summary: 'Genes independent given z: where the model is right and where it is not.',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['nb_loglik'],
  text: [
    'Given z, the decoder draws every gene\'s count independently. All the co-variation of genes across cells must come from z: genes rise and fall together because the cells\' states differ, not because of anything within one state.',
    'Here the correlations of the most variable genes (on normalised log counts) are computed in the real cells and in cells generated from the model (each real cell\'s posterior z, decoded, counts drawn), once over all cells and once within one small neighbourhood of the latent space (the 60 cells nearest the probe).',
  ],
  look: [
    'Over all cells (left dots): generated correlations follow the real ones, because z carries the cell types.',
    'Within one neighbourhood (right dots): the generated genes are nearly uncorrelated; real cells keep some correlation there (programmes the 2 latent dimensions do not capture, and technical covariation such as depth).',
  ],
  build(box) {
    const c = chart('independence-chart', 'Gene-gene correlations: real against generated', 220);
    const line = out('independence-out');
    const run = async () => {
      const centre = S.probe.z ? Array.from(S.probe.z) : new Array(S.d).fill(0);
      const r = await teach('decoder_correlations', { k_genes: 12, centre, k_neighbours: 60, draws_per_neighbour: 5, seed: 0 });
      const k = r.genes.length;
      const off = (/** @type {number[]} */ m) => { const v = []; for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) v.push(m[i * k + j]); return v; };
      scatter(c, 'each dot a gene pair: real (x) vs generated (y); all cells (blue), one neighbourhood (orange)', {
        points: [
          { x: off(r.real_overall.correlation), y: off(r.generated_overall.correlation), colour: '#2f6fde', name: 'all cells' },
          { x: off(r.real_neighbourhood.correlation), y: off(r.generated_neighbourhood.correlation), colour: '#f79009', name: 'neighbourhood' },
        ],
        diagonal: true, xLabel: 'real', yLabel: 'generated',
      });
      const v = {
        real_overall: r.real_overall.mean_abs_offdiag, generated_overall: r.generated_overall.mean_abs_offdiag,
        real_neighbourhood: r.real_neighbourhood.mean_abs_offdiag, generated_neighbourhood: r.generated_neighbourhood.mean_abs_offdiag,
        agreement: r.overall_agreement,
      };
      record('correlations', v);
      line.textContent = `Mean |correlation|: all cells real ${v.real_overall.toFixed(2)}, generated ${v.generated_overall.toFixed(2)}; `
        + `one neighbourhood real ${v.real_neighbourhood.toFixed(2)}, generated ${v.generated_neighbourhood.toFixed(2)}. Genes: ${r.gene_names.slice(0, 6).join(', ')}…`;
    };
    box.append(el('p', 'Train, place the probe where you want the neighbourhood, then compare.', { class: 'small' }),
      action('Compare correlations', 'independence-run', run), c, line);
  },
};

/** Lesson 11: the aggregate posterior against the prior, its holes, the KL split. @type {Lesson} */
const aggregate = {
  id: 'aggregate',
  title: 'The aggregate posterior and the prior',
  summary: 'Where the prior puts mass and no cell lives: holes, and the KL split in two.',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', seed: '0' },
  kernels: ['kl'],
  text: [
    'Each cell has its posterior q(z|x); pooled over all cells they form the aggregate posterior q(z), the cloud the map shows. The prior p(z) is a standard normal. Generating cells means drawing from the prior, so wherever the prior has mass and q(z) has none, the model generates cells it never saw anything like: holes.',
    'The KL term averaged over cells splits exactly in two (ELBO surgery, Hoffman and Johnson 2016): the mutual information between a cell and its code, which a useful code needs, plus KL(q(z) || p(z)), the mismatch between the cloud and the prior, which is pure cost.',
  ],
  look: [
    'The numbers: mean KL = information + mismatch. The information is at most log(number of cells).',
    'The plot: prior draws in holes (red) against the cells (grey). Decode a hole with the probe: its profile is a blend that matches no cell type well.',
  ],
  build(box) {
    const c = chart('aggregate-chart', 'Cells and the prior draws in holes', 220);
    const line = out('aggregate-out');
    /** @type {number[][]} */
    let holes = [];
    const run = async () => {
      const r = await teach('aggregate_posterior', { max_cells: 2000, draws_per_cell: 10, n_prior: 2000, n_holes: 6, seed: 0 });
      holes = r.holes.map((/** @type {{z: number[]}} */ h) => h.z);
      const d = S.d, real = S.latent;
      if (!real) throw new Error('train the model first');
      scatter(c, 'latent means (grey), prior draws in holes (red)', {
        points: [
          { x: Array.from({ length: S.n }, (_, i) => real[i * d]), y: Array.from({ length: S.n }, (_, i) => real[i * d + 1]), colour: '#c0c6d0' },
          { x: holes.map((z) => z[0]), y: holes.map((z) => z[1]), colour: '#d92d20' },
        ],
        xLabel: 'z1', yLabel: 'z2',
      });
      record('aggregate', { mean_kl: r.mean_kl_nats, mi: r.mutual_information_nats, kl_aggregate: r.kl_aggregate_prior_nats,
        sum: r.sum_of_parts_nats, sum_se: r.sum_of_parts_se_nats, log_n: r.log_n_cells, in_holes: r.prior_fraction_in_holes });
      line.textContent = `Mean KL ${r.mean_kl_nats.toFixed(2)} nats = information ${r.mutual_information_nats.toFixed(2)} (at most log ${r.n_cells} = ${r.log_n_cells.toFixed(2)}) `
        + `+ mismatch ${r.kl_aggregate_prior_nats.toFixed(2)} (sum ${r.sum_of_parts_nats.toFixed(2)} ± ${r.sum_of_parts_se_nats.toFixed(2)}). `
        + `${(100 * r.prior_fraction_in_holes).toFixed(0)}% of prior draws fall where almost no cell's posterior reaches.`;
    };
    const decodeHole = async () => {
      if (!holes.length) throw new Error('find the holes first');
      const z = holes[0];
      S.probe.z = Float64Array.from(z.slice(0, S.d));
      S.probe.anchor = Float64Array.from(z.slice(0, S.d));
      requestProbe();
      record('decoded_hole', z);
    };
    box.append(el('p', 'Train, then find the holes.', { class: 'small' }),
      action('Split the KL, find the holes', 'aggregate-run', run), action('Decode a hole with the probe', 'aggregate-decode', decodeHole), c, line);
  },
};

/** The genes whose decoded expected count changes most between z = -2 and z = +2 along axis 1 (the rest at 0). */
async function axisGenes() {
  if (!S.client || !S.info) throw new Error('no model');
  const d = S.d;
  const a = new Float32Array(d), b = new Float32Array(d);
  a[0] = -2; b[0] = 2;
  const lib = S.library;
  const ea = (await S.client.request('decode', { zs: a, batch: 0, library: lib })).expected;
  const eb = (await S.client.request('decode', { zs: b, batch: 0, library: lib })).expected;
  const change = Array.from(ea, (v, g) => [Math.abs(Math.log2((eb[g] + 0.1) / (v + 0.1))), g]).sort((x, y) => y[0] - x[0]);
  return { genes: change.slice(0, 5).map(([, g]) => genes()[g]), profile: Array.from(eb) };
}

/** Lesson 12: rotate the latent space; the likelihood stays, the axes' meaning changes. @type {Lesson} */
const identifiability = {
  id: 'identifiability',
  title: 'Identifiability',
  summary: 'Rotate the latent space: the model is as good, its axes mean something else.',
  setup: { data: 'demo', n_latent: '2', epochs: '40', kl_warmup: '0', holdout: '10', seed: '0' },
  kernels: ['linear', 'reparam'],
  text: [
    'The prior N(0, I) looks the same from every direction. Rotate every cell\'s code by the same angle and rotate the decoder\'s input back: the model gives every cell exactly the same probability. So nothing in the data decides which directions the axes take, and a different seed gives a rotated (and reflected, and stretched) map.',
    'Here the trained model is rotated by 45 degrees: the encoder\'s mean output is turned by R, the decoder\'s first layer by R transposed. (The encoder\'s variances are kept as they were: exact for a quarter turn, close otherwise; the true likelihood does not change at all.)',
  ],
  look: [
    'log p(x) before and after: equal within the estimate\'s noise.',
    'The map turns, but the cells keep their neighbours.',
    'The genes that change most along axis z1: different before and after. An axis means nothing by itself; directions between cell groups do.',
  ],
  build(box) {
    const line = out('identifiability-out');
    const table = el('table', null, { class: 'lesson-table', 'data-testid': 'identifiability-table' });
    const run = async () => {
      if (!S.client || !S.info) throw new Error('no model');
      if (S.d < 2) throw new Error('a rotation needs at least 2 latent dimensions');
      const r = await teach('rotation', { plane: [0, 1], angle_degrees: 45, n_cells: 100, n_samples: 30, seed: 0 });
      const before = await axisGenes();
      const made = await S.client.request('rotate', { i: 0, j: 1, angle: 45, options: readOptions(), device: device() });
      adopt(made.info, made.snapshot);
      const after = await axisGenes();
      const moved = before.genes.filter((g) => !after.genes.includes(g)).length;
      const head = el('tr');
      for (const h of ['', 'log p(x)', 'ELBO', 'top genes along z1']) head.append(el('th', h));
      const row = (/** @type {string} */ name, /** @type {number} */ lp, /** @type {number} */ elbo, /** @type {string[]} */ g) => {
        const tr = el('tr');
        tr.append(el('td', name), el('td', lp.toFixed(2)), el('td', elbo.toFixed(2)), el('td', g.join(', ')));
        return tr;
      };
      table.replaceChildren(head, row('before', r.log_px_iw_before_nats_per_cell, r.elbo_before_nats_per_cell, before.genes),
        row('after', r.log_px_iw_after_nats_per_cell, r.elbo_after_nats_per_cell, after.genes));
      record('rotation', { before: r.log_px_iw_before_nats_per_cell, after: r.log_px_iw_after_nats_per_cell, relative_change: r.log_px_relative_change,
        genes_before: before.genes, genes_after: after.genes, genes_changed: moved });
      line.textContent = `log p(x) per held-out cell changed by ${(100 * r.log_px_relative_change).toFixed(3)}%, within the estimate's noise; `
        + `${moved} of the 5 genes that change most along z1 are new.`;
    };
    box.append(el('p', 'Train, then rotate. The map is now the rotated model (it can keep training).', { class: 'small' }),
      action('Rotate the latent space by 45°', 'identifiability-run', run), table, line);
  },
};

export const STRUCTURE_LESSONS = [batch, independence, aggregate, identifiability];
