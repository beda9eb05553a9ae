// relu_dropout: ReLU fused with inverted dropout (the encoder's hidden layer), in place,
// and its backward, in place on the upstream gradient. CPU twins:
// `backend::cpu::relu_dropout::relu_dropout_inplace` and `relu_dropout_backward_inplace`.
// Test: tests/gpu_kernels/relu_dropout.rs.
//
//   main:          v = relu(v) * keep / (1 - p_drop), keep = rng::uniform(seed, stream,
//                  step, i) >= p_drop (Philox4x32-10 as `src/rng.rs` documents; no draw
//                  when p_drop <= 0, then v = relu(v))
//   backward_main: d = y > 0 ? d * scale : 0 (y is the forward's output)
//
// `scale` = 1 / (1 - p_drop) (0 when p_drop >= 1) is computed on the CPU in f32, as the
// twin does, so kept values agree exactly. One invocation per element of the n = B x H
// values; dispatch `grid(n, 256)` workgroups (i = gid.x + gid.y * num_workgroups.x * 256).
// The Philox functions are a copy of those in reparam.wgsl (WGSL has no includes; both
// are tested against `rng`).
//
// Bindings (in order): v (read_write; main), y (read; backward_main), d (read_write;
// backward_main), params (uniform).

struct Params {
    // Mirrors `backend::gpu::kernels::DropoutParams` (#[repr(C)]).
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    stream: u32,
    p_drop: f32,
    scale: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read_write> v: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> d: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// Philox4x32-10, mul_hi and unit_f32 come from shaders/lib/philox.wgsl (prepended).


@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let e = v[i];
    if (params.p_drop <= 0.0) {
        v[i] = max(e, 0.0);
        return;
    }
    var out = 0.0;
    if (e > 0.0) {
        let block = philox4x32(
            vec4<u32>(i, params.step, params.stream, 0u),
            vec2<u32>(params.seed_lo, params.seed_hi),
        );
        if (unit_f32(block.x) >= params.p_drop) {
            out = e * params.scale;
        }
    }
    v[i] = out;
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
    if (y[i] > 0.0) {
        d[i] = d[i] * params.scale;
    } else {
        d[i] = 0.0;
    }
}
