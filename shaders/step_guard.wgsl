// step_guard: whether a training step's per-cell losses are all finite, decided on the
// GPU so that Adam can be recorded in the same command encoder as the forward and
// backward passes and skip itself when they are not (no CPU round trip inside a step).
// Twin: `backend::cpu::step_guard::finite_flag`. Test: tests/gpu_kernels/step_guard.rs.
//
//   flag[0] = 1 if every loglik[r] and kl[r] (r < B) is finite, else 0
//
// Finiteness is tested on the bits (exponent all ones = infinity or NaN): WGSL has no
// isnan, and compilers may fold `x != x` away. One workgroup of 256 loops over B;
// dispatch (1, 1, 1).
//
// Bindings (in order): loglik (read, B), kl (read, B), flag (read_write, u32),
// params (uniform).

struct Params {
    b: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> loglik: array<f32>;
@group(0) @binding(1) var<storage, read> kl: array<f32>;
@group(0) @binding(2) var<storage, read_write> flag: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> bad: array<u32, 256>;

fn not_finite(v: f32) -> u32 {
    return select(0u, 1u, (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var acc = 0u;
    for (var r = lid; r < params.b; r += 256u) {
        acc |= not_finite(loglik[r]) | not_finite(kl[r]);
    }
    bad[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            bad[lid] |= bad[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        flag[0] = 1u - bad[0];
    }
}
