// kl: per-cell KL(q(z|x) || N(0, I)) = 0.5 * sum_j (var_j + mean_j^2 - 1 - ln var_j),
// var = exp(v) + 1e-4 (scvi-tools). mean and v are B x Z row-major, kl is B
// (overwritten). CPU twin: `backend::cpu::kl::forward` (which sums in f64; here f32).
// Test: tests/gpu_kernels/kl.rs.
//
// One invocation per cell, looping over Z (10 by default). Dispatch `grid(B, 256)`
// workgroups (cell = gid.x + gid.y * num_workgroups.x * 256).
//
// Entry `backward_main` (twin `backend::cpu::kl::backward`): the gradient of
// sum_cells weight[c] * KL[c], ACCUMULATED into d_mean and d_v (B x Z; the
// reparameterisation's backward writes them first): d_mean += w * mean,
// d_v += w * 0.5 * (1 - 1/var) * exp(v). One invocation per element; dispatch
// `grid(B * Z, 256)`.
//
// Bindings (in order): mean (read), v (read), kl (write; main), params (uniform),
// weight (read, B; backward_main), d_mean (read_write; backward_main), d_v (read_write;
// backward_main).

struct Params {
    // Mirrors `backend::gpu::kernels::RowParams` (#[repr(C)]): b = B, g = Z.
    b: u32,
    z: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> mean: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> kl: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_v: array<f32>;

const VAR_EPS: f32 = 1e-4;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let cell = gid.x + gid.y * nwg.x * 256u;
    if (cell >= params.b) {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < params.z; j++) {
        let i = cell * params.z + j;
        let m = mean[i];
        let var_ = exp(v[i]) + VAR_EPS;
        // (var - 1 - ln var) is kept together: it cancels when var is near 1.
        s += (var_ - 1.0 - log(var_)) + m * m;
    }
    kl[cell] = 0.5 * s;
}

@compute @workgroup_size(256)
fn backward_main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.b * params.z) {
        return;
    }
    let w = weight[i / params.z];
    let e = exp(v[i]);
    let var_ = e + VAR_EPS;
    d_mean[i] += w * mean[i];
    d_v[i] += w * 0.5 * (1.0 - 1.0 / var_) * e;
}
