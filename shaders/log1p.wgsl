// log1p: the encoder's input transform, y = ln(1 + x), elementwise.
// CPU twin: src/backend/cpu/log1p.rs. Test: tests/gpu_kernels/log1p.rs.
//
// Bindings (in order): x (read), y (write), params (uniform).

struct Params {
    // Number of elements; mirrors `backend::gpu::kernels::Log1pParams` (#[repr(C)]).
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

// 2-D grid so that more than 65535 * 256 elements still fit in the dispatch limits.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let v = x[i];
    // ln(1 + v) computed as in Kahan's trick, accurate for small v where 1 + v rounds.
    let u = 1.0 + v;
    if (u == 1.0) {
        y[i] = v;
    } else {
        y[i] = log(u) * v / (u - 1.0);
    }
}
