// @ts-check
// cellvae page: lessons on the objective and its training: the ELBO and its gap to the
// evidence (3), posterior collapse (10).
import { S } from '../state.js';
import { lineChart } from '../plot.js';
import { evaluateNow } from '../evaluate.js';
import { SNAPSHOT_EVENT } from '../controls.js';
import { action, out, chart, record, trainRun, formValue, el } from './kit.js';

/** @typedef {import('./index.js').Lesson} Lesson */

/** Lesson 3: ELBO = reconstruction - KL, live, and its gap to the importance-weighted log p(x). @type {Lesson} */
const elbo = {
  id: 'elbo',
  title: 'Evidence and the ELBO',
  summary: 'The bound training climbs, and how far below the evidence it sits.',
  setup: { data: 'demo', n_latent: '10', epochs: '60', kl_warmup: '0', holdout: '10', seed: '0' },
  kernels: ['nb_loglik', 'kl'],
  text: [
    'A VAE cannot compute the evidence log p(x) of a cell: it would have to integrate over every latent point z. It maximises a lower bound instead, the ELBO: the expected reconstruction log-likelihood E_q[log p(x|z)] minus KL(q(z|x) || p(z)), the price of moving the posterior away from the prior.',
    'The bound is below the evidence by exactly KL(q(z|x) || p(z|x)): how far the encoder\'s Gaussian is from the true posterior. With many importance samples we can estimate log p(x) itself and so see that gap.',
    'This setup holds out every tenth cell; the numbers below are on those cells, which the model never trained on.',
  ],
  look: [
    'The training curves panel: the ELBO rises as reconstruction improves and the KL grows.',
    'The gap: it starts large (the encoder has learnt nothing) and shrinks as q(z|x) gets closer to the posterior, but never reaches zero: a diagonal Gaussian cannot match every posterior.',
  ],
  build(box) {
    /** @type {{epoch: number, elbo: number, logpx: number, gap: number}[]} */
    const points = [];
    record('measurements', points);
    const c = chart('elbo-gap-chart', 'ELBO and importance-weighted log p(x) on held-out cells');
    const line = out('elbo-gap');
    const draw = () => {
      lineChart(c, 'held-out ELBO (blue) and log p(x) (green), per measurement', [
        { name: 'ELBO', colour: '#2f6fde', values: points.map((p) => p.elbo) },
        { name: 'log p(x)', colour: '#12b76a', values: points.map((p) => p.logpx) },
      ], { empty: 'press Measure, or follow training' });
      const p = points[points.length - 1];
      line.textContent = p ? `Epoch ${p.epoch}: log p(x) ${p.logpx.toFixed(1)}, ELBO ${p.elbo.toFixed(1)} nats per cell: the gap is ${p.gap.toFixed(2)} nats.` : '';
    };
    let busy = false;
    const measure = async () => {
      if (busy) return;
      busy = true;
      try {
        const r = await evaluateNow({ samples: 100, label: 'ELBO lesson' });
        if (!r) throw new Error(S.ev.error || 'the evaluation failed');
        points.push({ epoch: S.status ? S.status.epoch : 0, elbo: r.heldout_elbo_per_cell, logpx: r.heldout_log_px_iw100_per_cell, gap: r.heldout_log_px_iw100_per_cell - r.heldout_elbo_per_cell });
        draw();
      } finally {
        busy = false;
      }
    };
    const follow = /** @type {HTMLInputElement} */ (el('input', null, { type: 'checkbox', 'data-testid': 'elbo-follow' }));
    let lastEpoch = -1;
    const onSnap = () => {
      if (!box.isConnected) { window.removeEventListener(SNAPSHOT_EVENT, onSnap); return; }
      const e = S.status ? S.status.epoch : 0;
      if (follow.checked && !busy && (e >= lastEpoch + 5 || (S.status && S.status.finished && e !== lastEpoch))) {
        lastEpoch = e;
        measure().catch(() => {});
      }
    };
    window.addEventListener(SNAPSHOT_EVENT, onSnap);
    const lab = el('label', null, { class: 'small' });
    lab.append(follow, ' measure every 5 epochs while it trains');
    box.append(
      el('p', 'Tick the box, press Train, and watch both numbers climb.', { class: 'small' }),
      lab, action('Measure now', 'elbo-measure', measure), c, line,
    );
    draw();
  },
};

/** Lesson 10: posterior collapse: beta up, KL per dimension to zero, active units down; warm-up as a remedy. @type {Lesson} */
const collapse = {
  id: 'collapse',
  title: 'Posterior collapse',
  summary: 'When the KL term wins, latent dimensions switch off.',
  setup: { data: 'demo', n_latent: '10', epochs: '40', kl_warmup: '0', holdout: '10', seed: '0' },
  kernels: ['kl', 'reparam'],
  text: [
    'The ELBO pays for every nat of information a latent dimension carries about a cell (its KL to the prior). If the price is high, or the decoder can explain the counts without z, the cheapest solution is to carry nothing: q(z|x) becomes the prior, the dimension\'s KL falls to zero and it is inactive. This is posterior collapse.',
    'beta multiplies the KL term. Raising it makes information dearer; above 1 the objective is no longer the ELBO (it is the beta-VAE\'s). KL warm-up starts training with a small KL weight and raises it over the first epochs, so the encoder learns to use z before the price is charged in full.',
  ],
  look: [
    'The KL per dimension chart (training curves): while training, raise beta in the Training panel and watch bars turn grey.',
    'The table below, for beta 1, beta 8, and beta 8 with warm-up, all from the same seed: the dimensions in use (KL above 0.1 nats per cell), the active units by the usual test (the posterior mean varies across cells by more than 0.01: a looser test, a nearly collapsed dimension can still pass it), the KL and the held-out log p(x).',
  ],
  build(box) {
    /** @type {{label: string, beta: number, warmup: number, used: number, active: number, kl: number, logpx: number}[]} */
    const runs = [];
    record('runs', runs);
    const table = el('table', null, { class: 'lesson-table', 'data-testid': 'collapse-table' });
    const draw = () => {
      const head = el('tr');
      for (const h of ['run', 'in use', 'active units', 'KL', 'log p(x)']) head.append(el('th', h));
      table.replaceChildren(head, ...runs.map((r) => {
        const tr = el('tr');
        const d = formValue('opt-n-latent');
        tr.append(el('td', r.label), el('td', `${r.used} of ${d}`), el('td', `${r.active} of ${d}`), el('td', r.kl.toFixed(2)), el('td', r.logpx.toFixed(1)));
        return tr;
      }));
    };
    const run = async (/** @type {number} */ beta, /** @type {number} */ warmup) => {
      const label = `beta ${beta}${warmup ? `, warm-up ${warmup} epochs` : ''}`;
      const r = await trainRun({ beta: String(beta), 'opt-kl-warmup': String(warmup) }, label);
      runs.push({ label, beta, warmup, used: r.kl_per_dim.filter((k) => k > 0.1).length, active: r.active_units, kl: r.kl_per_dim.reduce((a, b) => a + b, 0), logpx: r.heldout_log_px_iw100_per_cell });
      draw();
    };
    box.append(
      el('p', 'Each button trains a new model from the same seed (a few seconds) and evaluates it.', { class: 'small' }),
      action('Train with beta 1', 'collapse-beta1', () => run(1, 0)),
      action('Train with beta 8', 'collapse-beta8', () => run(8, 0)),
      action('Beta 8 with KL warm-up', 'collapse-warmup', () => run(8, 30)),
      table,
    );
    draw();
  },
};

export const TRAINING_LESSONS = [elbo, collapse];
