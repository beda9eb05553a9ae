//! `cargo bench`: the CPU kernels that dominate a training step, at the sizes of a
//! minibatch of scvi-tools' defaults (128 cells, 128 hidden units) on wide data (4,000
//! genes): the decoder's matrix product, the NB likelihood with its gradients, and the
//! encoder's sparse first layer at droplet (8%) and plate (55%) density. Figures, not
//! pass/fail; `cellvae bench` measures whole epochs and steps.

use cellvae::backend::cpu::{linear, nb_loglik};
use cellvae::data::synthetic;
use cellvae::model::Minibatch;

const B: usize = 128;
const H: usize = 128;
const G: usize = 4000;

fn main() {
    divan::main();
}

fn values(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * scale)
        .collect()
}

/// The decoder's product: B x H times H x G.
#[divan::bench]
fn decoder_matmul(bencher: divan::Bencher) {
    let (x, w, bias) = (values(B * H, 1.0), values(H * G, 0.1), values(G, 0.1));
    let mut y = vec![0.0f32; B * G];
    bencher
        .counter(divan::counter::ItemsCount::new(2 * B * H * G))
        .bench_local(|| linear::forward(&x, &w, &bias, B, H, G, &mut y));
}

/// The NB log-likelihood of B cells x G genes with its logit and dispersion gradients.
#[divan::bench(args = [0.0, 0.78])]
fn nb_likelihood(bencher: divan::Bencher, density: f64) {
    let m = synthetic::matrix(B, G, density, 3);
    let rows: Vec<usize> = (0..B).collect();
    let mb = Minibatch::gather(&m, &[], &rows);
    let rho = vec![1.0 / G as f32; B * G];
    let (lt, theta_rows, w) = (values(G, 1.0), vec![0u32; B], vec![-1.0 / B as f32; B]);
    let (mut ll, mut dl, mut dt) = (vec![0.0; B], vec![0.0; B * G], vec![0.0; G]);
    bencher
        .counter(divan::counter::ItemsCount::new(B * G))
        .bench_local(|| {
            nb_loglik::forward_backward(
                &mb.counts,
                &mb.library,
                &rho,
                &lt,
                &theta_rows,
                &w,
                B,
                G,
                &mut ll,
                &mut dl,
                &mut dt,
            )
        });
}

/// The encoder's first layer read as sparse rows (forward).
#[divan::bench(args = [0.0, 0.78])]
fn first_layer_sparse(bencher: divan::Bencher, density: f64) {
    let m = synthetic::matrix(B, G, density, 3);
    let rows: Vec<usize> = (0..B).collect();
    let mb = Minibatch::gather(&m, &[], &rows);
    let (w, bias) = (values(G * H, 0.1), values(H, 0.1));
    let mut y = vec![0.0f32; B * H];
    bencher
        .counter(divan::counter::ItemsCount::new(2 * mb.values.len() * H))
        .bench_local(|| {
            linear::forward_sparse(
                &mb.indptr,
                &mb.indices,
                &mb.log1p_values,
                &rows,
                |v| v,
                &w,
                &bias,
                G,
                H,
                &mut y,
            )
        });
}
