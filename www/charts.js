// @ts-check
// cellvae page: the training curves, drawn from the state only: ELBO, reconstruction and
// KL per epoch (the engine's history), KL per latent dimension (sent with the latent
// means) and the KL weight schedule with the current epoch.
import { lineChart, barChart, scheduleChart } from './plot.js';
import { S } from './state.js';
import { canvas } from './dom.js';

export const CHART_IDS = ['elbo-chart', 'loss-chart', 'kl-dims-chart', 'kl-schedule-chart'];

export function drawCharts() {
  const hist = S.info ? S.history : [];
  lineChart(canvas('elbo-chart'), 'ELBO per epoch (higher is better)', [
    { name: 'ELBO', colour: '#2f6fde', values: hist.map((r) => r.elbo) },
  ]);
  lineChart(canvas('loss-chart'), 'Reconstruction error and KL per epoch (per cell)', [
    { name: 'reconstruction', colour: '#f79009', values: hist.map((r) => r.reconstruction) },
    { name: 'KL', colour: '#7a5af8', values: hist.map((r) => r.kl) },
  ], { independent: true });
  barChart(canvas('kl-dims-chart'), 'KL per latent dimension (nats per cell; grey: < 0.1, unused)', S.info ? S.klDims : []);
  const s = S.info ? S.status : null;
  scheduleChart(canvas('kl-schedule-chart'), s
    ? { epochs: s.epochs, warmup: s.kl_warmup_epochs, beta: s.beta, epoch: s.epoch }
    : { epochs: 0, warmup: 0, beta: 1, epoch: 0 });
  S.chartsAt = performance.now();
}
