// lib/counts.wgsl: what the likelihood kernels (nb_loglik, zinb_loglik, poisson_loglik)
// share, prepended to each (WGSL has no includes): their Params and per-cell Cell
// structs, the per-cell workgroup reduction, and the count-distribution helpers.
// Twins: `backend::cpu::count_rows` (nb_elem and the NB/ZINB/Poisson rows, in f32 like
// these; the finite sums for counts up to 16 come from per-step tables there, in the
// same order), `backend::cpu::counts` (the loop over cells) and `backend::cpu::special`
// (lgamma_f32, digamma_f32; the CPU takes counts above 16 in f64).

// Mirrors `backend::gpu::kernels::NbParams`.
struct Params {
    b: u32,
    g: u32,
    k: u32,
    _pad0: u32,
}

// One cell's scalars, packed so that the kernels stay within 8 storage buffers; mirrors
// `backend::gpu::kernels::NbCell`.
struct Cell {
    library: f32,
    weight: f32,
    theta_row: u32,
    _pad0: u32,
}

const WG: u32 = 256u;
var<workgroup> sum_lp: array<f32, 256>;
var<workgroup> sum_a: array<f32, 256>;

// (sum of lp, sum of a) over the 256 invocations of the workgroup (one cell), returned
// to every invocation. Call from uniform control flow.
fn workgroup_sums(lid: u32, lp: f32, a: f32) -> vec2<f32> {
    sum_lp[lid] = lp;
    sum_a[lid] = a;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            sum_lp[lid] += sum_lp[lid + s];
            sum_a[lid] += sum_a[lid + s];
        }
        workgroupBarrier();
    }
    return vec2<f32>(sum_lp[0], sum_a[0]);
}

const LN_SQRT_2PI: f32 = 0.9189385;
const MIN_NORMAL: f32 = 1.17549435e-38;

// ln k! for k = 0..=16.
const LN_FACT = array<f32, 17>(
    0.0, 0.0, 0.6931472, 1.7917595, 3.1780539, 4.7874918, 6.5792512, 8.5251614,
    10.6046029, 12.8018275, 15.1044126, 17.5023078, 19.9872145, 22.5521639, 25.1912212,
    27.8992714, 30.6718601,
);


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

// ln(1 + e^y) without overflow.
fn softplus_f32(y: f32) -> f32 {
    return max(y, 0.0) + log1p_f32(exp(-abs(y)));
}

// 1 / (1 + e^-y), stable on both sides.
fn sigmoid_f32(y: f32) -> f32 {
    if (y >= 0.0) {
        return 1.0 / (1.0 + exp(-y));
    }
    let e = exp(y);
    return e / (1.0 + e);
}

// ZINB (scvi-tools' log_zinb_positive) from the NB terms and the dropout logit p:
// (log p, d log p / d ln mu, t d log p / d t, d log p / d p).
fn zinb_elem(xv: f32, ln_t: f32, mu: f32, p: f32) -> vec4<f32> {
    let nb = nb_elem(xv, ln_t, mu);
    if (xv > 0.0) {
        return vec4<f32>(nb.x - softplus_f32(-p) - p, nb.y, nb.z, -sigmoid_f32(p));
    }
    let s = -p + nb.x;
    let ss = sigmoid_f32(s);
    return vec4<f32>(softplus_f32(s) - softplus_f32(-p), nb.y * ss, nb.z * ss, sigmoid_f32(-p) - ss);
}

// ln(x!) for a count x >= 0 (table up to 16, else lgamma(x + 1)).
fn ln_factorial(xv: f32) -> f32 {
    if (xv <= 16.0 && xv == floor(xv)) {
        return LN_FACT[u32(xv)];
    }
    return lgamma_f32(xv + 1.0);
}

// (log p, d log p / d ln mu) of a Poisson count with mean mu.
fn poisson_elem(xv: f32, mu_in: f32) -> vec2<f32> {
    let mu = max(mu_in, MIN_NORMAL);
    var lp = -mu;
    if (xv > 0.0) {
        lp += xv * log(mu) - ln_factorial(xv);
    }
    return vec2<f32>(lp, xv - mu);
}
