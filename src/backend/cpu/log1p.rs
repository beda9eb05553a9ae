//! CPU twin of `shaders/log1p.wgsl`: the encoder's input transform `y = ln(1 + x)`.

/// `y[i] = ln(1 + x[i])` for every element.
pub fn log1p(x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi.ln_1p();
    }
}
