// nb_loglik: the negative binomial log-likelihood per cell with normalising constants,
// fused with its gradients (twin: `backend::cpu::likelihood::nb_forward_backward`, which
// works in f64; this kernel works in f32). Test: tests/gpu_kernels.rs.
//
//   mu = library[r] * rho[r, g] (floored at the smallest normal f32), t = exp(log_theta)
//   log p = lgamma(x + t) - lgamma(t) - lgamma(x + 1) + t ln(t / (t + mu)) + x ln(mu / (t + mu))
//   loglik[r]      = sum_g log p                                   (B)
//   a              = w[r] t (x - mu) / (t + mu)                    (weighted d log p / d ln mu)
//   d_logits[r, g] = a[r, g] - rho[r, g] sum_g' a[r, g']           (B x G)
//   th[r, g]       = w[r] t d log p / d t                          (B x G scratch)
//   d_log_theta[k, g] = sum of th[r, g] over the cells r with theta_row[r] = k   (K x G)
//
// Integer counts up to 16 use exact finite sums (sum_j ln(t + j), sum_j 1/(t + j) and a
// ln k! table) as the CPU does; other counts use lgamma and digamma by upward shift to
// z >= 8 and a three-term Stirling series (twins `special::lgamma_f32`, `digamma_f32`).
// ln(t / (t + mu)) is -log1p(mu / t), so it does not cancel when mu << t.
//
// Two entry points:
//   main       one workgroup of 256 per cell, looping over G; dispatch grid(B, 1).
//   theta_main one invocation per (k, g), looping over the B cells; dispatch
//              grid(K * G, 256). Run after `main` (it reads th).
//
// Bindings (in order): x (read, B x G counts), rho (read, B x G), log_theta (read,
// K x G), cells (read, B structs of (library, weight, theta_row, pad)), loglik (write,
// B), d_logits (write, B x G), th (read_write scratch, B x G), d_log_theta (write,
// K x G), params (uniform). Per-cell values are packed in `cells` so that `main` stays
// within WebGPU's 8 storage buffers per stage. `Cell` mirrors
// `backend::gpu::kernels::NbCell`, `Params` mirrors `backend::gpu::kernels::NbParams`.

struct Params {
    b: u32,
    g: u32,
    k: u32,
    _pad0: u32,
}

struct Cell {
    library: f32,
    weight: f32,
    theta_row: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rho: array<f32>;
@group(0) @binding(2) var<storage, read> log_theta: array<f32>;
@group(0) @binding(3) var<storage, read> cells: array<Cell>;
@group(0) @binding(4) var<storage, read_write> loglik: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> th: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_log_theta: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

const WG: u32 = 256u;
const LN_SQRT_2PI: f32 = 0.9189385;
const MIN_NORMAL: f32 = 1.17549435e-38;

// ln k! for k = 0..=16.
const LN_FACT = array<f32, 17>(
    0.0, 0.0, 0.6931472, 1.7917595, 3.1780539, 4.7874918, 6.5792512, 8.5251614,
    10.6046029, 12.8018275, 15.1044126, 17.5023078, 19.9872145, 22.5521639, 25.1912212,
    27.8992714, 30.6718601,
);

var<workgroup> sum_lp: array<f32, 256>;
var<workgroup> sum_a: array<f32, 256>;

// ln Gamma(x), x > 0 (twin of `special::lgamma_f32`).
fn lgamma_f32(x: f32) -> f32 {
    var z = x;
    var prod = 1.0;
    while (z < 8.0) {
        prod *= z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    let series = r * (1.0 / 12.0 + r2 * (-1.0 / 360.0 + r2 * (1.0 / 1260.0)));
    return (z - 0.5) * log(z) - z + LN_SQRT_2PI + series - log(prod);
}

// psi(x), x > 0 (twin of `special::digamma_f32`).
fn digamma_f32(x: f32) -> f32 {
    var z = x;
    var acc = 0.0;
    while (z < 8.0) {
        acc -= 1.0 / z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    let series = r2 * (1.0 / 12.0 + r2 * (-1.0 / 120.0 + r2 * (1.0 / 252.0)));
    return acc + log(z) - 0.5 * r - series;
}

// ln(1 + v) accurate for small v (as shaders/log1p.wgsl).
fn log1p_f32(v: f32) -> f32 {
    let u = 1.0 + v;
    if (u == 1.0) {
        return v;
    }
    return log(u) * v / (u - 1.0);
}

// (log p, d log p / d ln mu, t d log p / d t) for one count.
fn nb_elem(xv: f32, ln_t: f32, mu_in: f32) -> vec3<f32> {
    let mu = max(mu_in, MIN_NORMAL);
    let t = exp(ln_t);
    let r = log1p_f32(mu / t); // ln((t + mu) / t)
    let ln_tm = ln_t + r;
    var lp = -t * r;
    var psi = 0.0;
    if (xv > 0.0) {
        var lg = 0.0;
        var lf = 0.0;
        if (xv <= 16.0 && xv == floor(xv)) {
            let n = u32(xv);
            for (var j = 0u; j < n; j++) {
                let tj = t + f32(j);
                lg += log(tj);
                psi += 1.0 / tj;
            }
            lf = LN_FACT[n];
        } else {
            lg = lgamma_f32(xv + t) - lgamma_f32(t);
            psi = digamma_f32(xv + t) - digamma_f32(t);
            lf = lgamma_f32(xv + 1.0);
        }
        lp += xv * (log(mu) - ln_tm) + lg - lf;
    }
    let tm = t + mu;
    return vec3<f32>(lp, t * (xv - mu) / tm, t * (psi + (mu - xv) / tm - r));
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= params.b) {
        return;
    }
    let cell = cells[row];
    let base = row * params.g;
    let theta_base = cell.theta_row * params.g;
    var lp_acc = 0.0;
    var a_acc = 0.0;
    for (var j = lid; j < params.g; j += WG) {
        let i = base + j;
        let e = nb_elem(x[i], log_theta[theta_base + j], cell.library * rho[i]);
        lp_acc += e.x;
        let a = cell.weight * e.y;
        a_acc += a;
        d_logits[i] = a;
        th[i] = cell.weight * e.z;
    }
    sum_lp[lid] = lp_acc;
    sum_a[lid] = a_acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            sum_lp[lid] += sum_lp[lid + s];
            sum_a[lid] += sum_a[lid + s];
        }
        workgroupBarrier();
    }
    let total_a = sum_a[0];
    for (var j = lid; j < params.g; j += WG) {
        let i = base + j;
        d_logits[i] -= rho[i] * total_a;
    }
    if (lid == 0u) {
        loglik[row] = sum_lp[0];
    }
}

@compute @workgroup_size(256)
fn theta_main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.k * params.g) {
        return;
    }
    let k = i / params.g;
    let j = i % params.g;
    var acc = 0.0;
    for (var r = 0u; r < params.b; r++) {
        if (cells[r].theta_row == k) {
            acc += th[r * params.g + j];
        }
    }
    d_log_theta[i] = acc;
}
