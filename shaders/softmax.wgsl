// softmax: the decoder's gene proportions, rho[r] = exp(l[r] - max) / sum exp(l[r] - max)
// per row. logits and rho are B x G row-major f32; rho is overwritten.
// CPU twin: `backend::cpu::softmax::forward`. Test: tests/gpu_kernels/softmax.rs.
//
// One workgroup of 256 per row (rows beyond 65535 fold over y: row = wg.x + wg.y *
// num_workgroups.x); each invocation loops over the row with stride 256 (G may be in
// the thousands), and the max and the sum are tree reductions in workgroup memory.
// Dispatch `grid(B, 1)` workgroups.
//
// Bindings (in order): logits (read), rho (write), params (uniform).

struct Params {
    // Mirrors `backend::gpu::kernels::RowParams` (#[repr(C)]).
    b: u32,
    g: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> rho: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

const WG: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform control flow: every invocation of a workgroup shares `row`.
    let row = wg.x + wg.y * nwg.x;
    if (row >= params.b) {
        return;
    }
    let base = row * params.g;
    // -FLT_MAX by its bits: Chrome rejects the rounded decimal literal as out of range.
    var m = bitcast<f32>(0xff7fffffu);
    for (var j = lid; j < params.g; j += WG) {
        m = max(m, logits[base + j]);
    }
    partial[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var j = lid; j < params.g; j += WG) {
        let e = exp(logits[base + j] - row_max);
        rho[base + j] = e;
        sum += e;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / partial[0];
    for (var j = lid; j < params.g; j += WG) {
        rho[base + j] *= inv;
    }
}
