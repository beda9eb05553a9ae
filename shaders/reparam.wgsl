// reparam: the reparameterisation trick, z = mean + sqrt(exp(v) + 1e-4) * eps with
// eps = rng::normal(seed, stream, step, i) for element i = row * Z + j, drawn here with
// Philox4x32-10 exactly as `src/rng.rs` documents: counter [i, step, stream, 0], key
// [seed lo, seed hi], 10 rounds; Box-Muller on words 0 and 1 with
// unit_f32(w) = ((w >> 9) + 0.5) * 2^-23, z = sqrt(-2 ln u1) * cos(2 pi u2) in f32.
// mean, v, eps, z are n = B x Z f32; eps and z are overwritten (eps is kept for the
// backward pass). CPU twin: `backend::cpu::reparam::forward` (noise: `rng::normal`).
// Test: tests/gpu_kernels/reparam.rs.
//
// One invocation per element. Dispatch `grid(n, 256)` workgroups
// (i = gid.x + gid.y * num_workgroups.x * 256).
//
// Entry `backward_main` (twin `backend::cpu::reparam::backward`), given dz, OVERWRITES
// d_mean = dz and d_v = dz * eps * exp(v) / (2 sqrt(exp(v) + 1e-4)) (the first writer of
// these gradients; kl.wgsl's `backward_main` then adds the KL term). Same grid.
//
// Entries with the KL fused (the training step's; params.z = Z, the latent width):
//   kl_main          main, and the invocation of each cell's first element also writes
//                    kl[cell] as kl.wgsl's `main` (twin: `cpu::reparam::forward` then
//                    `cpu::kl::forward`).
//   backward_kl_main backward_main plus kl.wgsl's `backward_main` term, weight[i / Z]
//                    (twin: `cpu::reparam::backward` then `cpu::kl::backward`).
//
// Bindings (in order): mean (read), v (read), eps (write; read by backward_main),
// z (write), params (uniform), dz (read), d_mean (write), d_v (write), kl (8, write),
// weight (9, read). `main` uses bindings 0-4, `backward_main` uses v, eps, params, dz,
// d_mean, d_v; `kl_main` 0-4 and kl; `backward_kl_main` mean, v, eps, params, dz,
// d_mean, d_v, weight.

struct Params {
    // Mirrors `backend::gpu::kernels::ReparamParams` (#[repr(C)]).
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    stream: u32,
    // Z, for the KL-fused entries.
    z: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> mean: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> eps: array<f32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> dz: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_v: array<f32>;
@group(0) @binding(8) var<storage, read_write> kl: array<f32>;
@group(0) @binding(9) var<storage, read> weight: array<f32>;

const VAR_EPS: f32 = 1e-4;
const TAU: f32 = 6.2831855; // f32 nearest 2 pi, as std::f32::consts::TAU
// Philox4x32-10, mul_hi and unit_f32 come from shaders/lib/philox.wgsl (prepended).


// ln x for a positive normal x, accurate to about 1 ulp (Cephes logf). WGSL's log is
// only required to be within 2^-21 absolute near 1, which is too loose to reproduce
// the CPU's noise on every device.
fn ln_accurate(x_in: f32) -> f32 {
    let parts = frexp(x_in); // x_in = fract * 2^exp, fract in [0.5, 1)
    var x = parts.fract;
    var e = f32(parts.exp);
    if (x < 0.70710677) {
        e -= 1.0;
        x = x + x - 1.0;
    } else {
        x = x - 1.0;
    }
    let z = x * x;
    var y = x * z * (3.3333331174e-1 + x * (-2.4999993993e-1 + x * (2.0000714765e-1
        + x * (-1.6668057665e-1 + x * (1.4249322787e-1 + x * (-1.2420140846e-1
        + x * (1.1676998740e-1 + x * (-1.1514610310e-1 + x * 7.0376836292e-2))))))));
    y += -2.12194440e-4 * e;
    y += -0.5 * z;
    return x + y + 0.693359375 * e;
}

// cos a for 0 <= a <= 2 pi, accurate to about 1 ulp (Cephes cosf: reduction by
// multiples of pi/2 in three parts, then the sine or cosine polynomial on [-pi/4, pi/4]).
// WGSL's cos is only required to be within 2^-11 absolute.
fn cos_accurate(a: f32) -> f32 {
    let q = floor(a * 0.63661975 + 0.5);
    let r = ((a - q * 1.5703125) - q * 4.837512969970703125e-4) - q * 7.54978995489188216e-8;
    let z = r * r;
    let c = 1.0 - 0.5 * z
        + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
    let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
    let quadrant = u32(q) & 3u;
    if (quadrant == 0u) {
        return c;
    } else if (quadrant == 1u) {
        return -s;
    } else if (quadrant == 2u) {
        return -c;
    }
    return s;
}

fn box_muller(w1: u32, w2: u32) -> f32 {
    let u1 = unit_f32(w1);
    let u2 = unit_f32(w2);
    return sqrt(-2.0 * ln_accurate(u1)) * cos_accurate(TAU * u2);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    draw(i);
}

// eps[i] and z[i].
fn draw(i: u32) {
    let block = philox4x32(
        vec4<u32>(i, params.step, params.stream, 0u),
        vec2<u32>(params.seed_lo, params.seed_hi),
    );
    let e = box_muller(block.x, block.y);
    eps[i] = e;
    z[i] = mean[i] + sqrt(exp(v[i]) + VAR_EPS) * e;
}

@compute @workgroup_size(256)
fn kl_main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    draw(i);
    if (i % params.z == 0u) {
        // This cell's KL, as kl.wgsl's main.
        let cell = i / params.z;
        var s = 0.0;
        for (var j = 0u; j < params.z; j++) {
            let k = cell * params.z + j;
            let m = mean[k];
            let var_ = exp(v[k]) + VAR_EPS;
            s += (var_ - 1.0 - log(var_)) + m * m;
        }
        kl[cell] = 0.5 * s;
    }
}

@compute @workgroup_size(256)
fn backward_main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let e = exp(v[i]);
    let g = dz[i];
    d_mean[i] = g;
    d_v[i] = g * eps[i] * e / (2.0 * sqrt(e + VAR_EPS));
}

@compute @workgroup_size(256)
fn backward_kl_main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let e = exp(v[i]);
    let g = dz[i];
    let var_ = e + VAR_EPS;
    let w = weight[i / params.z];
    // The reparameterisation's gradient, then the KL's added (the order of the two
    // dispatches this replaces).
    d_mean[i] = g + w * mean[i];
    d_v[i] = g * eps[i] * e / (2.0 * sqrt(e + VAR_EPS)) + w * 0.5 * (1.0 - 1.0 / var_) * e;
}
