//! Twin of `shaders/onehot.wgsl`: one-hot covariate rows (the batch) added to a layer's
//! output, and their weight gradient.

/// Adds one-hot covariate rows: `y[r] += w_onehot[category[r]]` for each of the
/// `category.len()` rows; `w_onehot` is K x n_out (the weights of a one-hot batch input,
/// e.g. the rows after the genes or latents), `y` is category.len() x n_out (accumulated:
/// call after `linear::forward` or `linear::forward_sparse`). Panics if a category is >= K.
pub fn forward(category: &[u32], w_onehot: &[f32], n_out: usize, y: &mut [f32]) {
    for (r, &k) in category.iter().enumerate() {
        let k = k as usize;
        let wr = &w_onehot[k * n_out..(k + 1) * n_out];
        for (yj, &wj) in y[r * n_out..(r + 1) * n_out].iter_mut().zip(wr) {
            *yj += wj;
        }
    }
}

/// Gradient of [`forward`]: `dw_onehot[k] = sum of dy[r] over rows with category k`
/// (K x n_out, overwritten; rows of absent categories are zero).
pub fn backward(category: &[u32], dy: &[f32], n_out: usize, dw_onehot: &mut [f32]) {
    dw_onehot.fill(0.0);
    for (r, &k) in category.iter().enumerate() {
        let k = k as usize;
        let dyr = &dy[r * n_out..(r + 1) * n_out];
        for (dj, &g) in dw_onehot[k * n_out..(k + 1) * n_out].iter_mut().zip(dyr) {
            *dj += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onehot_adds_rows_and_sums_their_gradient() {
        let mut y = [1.0f32; 6];
        forward(&[1, 0, 1], &[10.0, 20.0, 30.0, 40.0], 2, &mut y);
        assert_eq!(y, [31.0, 41.0, 11.0, 21.0, 31.0, 41.0]);
        let mut dwo = [f32::NAN; 6];
        backward(&[1, 0, 1], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, &mut dwo);
        assert_eq!(dwo, [3.0, 4.0, 6.0, 8.0, 0.0, 0.0]);
    }
}
