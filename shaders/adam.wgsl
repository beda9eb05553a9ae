// adam: one step of PyTorch's Adam (L2 weight decay added to the gradient, not AdamW):
//   g = grad + weight_decay * p
//   m = m + (1 - beta1) * (g - m)
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) formed on the CPU
// in f64 and rounded to f32 once (as torch and the CPU twin do). params, m, v are
// updated in place, grads is read; all n f32. CPU twin: `backend::cpu::adam::step`.
// Test: tests/gpu_kernels/adam.rs.
//
// One invocation per element. Dispatch `grid(n, 256)` workgroups
// (i = gid.x + gid.y * num_workgroups.x * 256).
//
// Nothing is written when flag[0] is 0: the step's losses were not finite
// (shaders/step_guard.wgsl decides it on the GPU, in the same command encoder).
//
// Bindings (in order): params (read_write), grads (read), m (read_write),
// v (read_write), hyper (uniform), flag (read, u32).

struct Hyper {
    // Mirrors `backend::gpu::kernels::AdamParams` (#[repr(C)]).
    n: u32,
    step_size: f32,
    bc2_sqrt: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<storage, read_write> params: array<f32>;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> hyper: Hyper;
@group(0) @binding(5) var<storage, read> flag: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= hyper.n || flag[0] == 0u) {
        return;
    }
    let p = params[i];
    let g = grads[i] + hyper.weight_decay * p;
    let mi = m[i] + hyper.one_minus_beta1 * (g - m[i]);
    let vi = hyper.beta2 * v[i] + hyper.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / hyper.bc2_sqrt + hyper.eps;
    params[i] = p - hyper.step_size * mi / denom;
}
