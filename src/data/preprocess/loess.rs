//! One-predictor loess (local quadratic regression), as the netlib `dloess` code by
//! Cleveland, Grosse and Shyu computes it with R's and scikit-misc's defaults:
//! `family = "gaussian"`, `degree = 2`, `surface = "interpolate"`, `cell = 0.2`.
//!
//! The fit is built the way `lowesb` / `lowese` build it, restricted to one dimension:
//!
//! 1. a k-d tree over the sorted x (`ehg126`, `ehg124`, `ehg129`): the bounding interval,
//!    widened by 0.5% on each side, is split at the median (ties go to the upper child)
//!    until a cell holds at most `floor(n * span * cell)` points;
//! 2. at every vertex of the tree a local fit (`ehg127`): the `floor(n * span)` nearest
//!    points, tricube weights on the distance scaled by the largest of those distances,
//!    weighted least squares on `1, (x - v), (x - v)^2` with equilibrated columns, solved
//!    through QR and the singular value decomposition of R (pseudoinverse below
//!    `100 * eps * sigma_max`); the vertex keeps the fitted value and slope;
//! 3. fitted values by cubic Hermite interpolation between the two vertices of the leaf
//!    cell that holds each x (`ehg128`).
//!
//! Where the Fortran only warns (a rank-deficient local fit, "pseudoinverse used") this
//! code does what R does: it uses the pseudoinverse and counts the occurrence. Where the
//! Fortran stops (`ehg182` errors 104, 120, 121) this code returns a [`LoessError`].

/// Why a loess fit cannot be computed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LoessError {
    /// Fewer neighbours (`floor(n * span)`) than the 3 coefficients of a quadratic need
    /// (loess error 104: "span too small").
    TooFewPoints {
        /// Number of points.
        n: usize,
        /// Neighbours per local fit.
        n_neighbours: usize,
    },
    /// All nearest neighbours of a vertex share its x, so the neighbourhood has zero width
    /// (loess error 120).
    ZeroWidth {
        /// Where (the vertex's x).
        at: f64,
        /// How many points share the most common x value.
        largest_tie: usize,
    },
    /// Every neighbour lies on the boundary of the neighbourhood (loess error 121).
    AllOnBoundary {
        /// Where (the vertex's x).
        at: f64,
        /// How many points share the most common x value.
        largest_tie: usize,
    },
    /// x or y holds NaN or an infinity.
    NotFinite,
}

/// The fitted values of a loess fit, in the order of the input points.
#[derive(Debug, Clone)]
pub(crate) struct LoessFit {
    /// Fitted value at each input x.
    pub fitted: Vec<f64>,
    /// Number of vertex fits that needed the pseudoinverse (R warns "pseudoinverse used";
    /// scikit-misc raises an exception there).
    pub n_pseudoinverse: usize,
}

/// `cell` of R's `loess.control`, the default of R and scikit-misc.
const CELL: f64 = 0.2;

/// Fits loess of degree 2 with the given span and returns the fitted values at `x`
/// (`surface = "interpolate"`).
pub(crate) fn loess_fit(x: &[f64], y: &[f64], span: f64) -> Result<LoessFit, LoessError> {
    let n = x.len();
    if x.len() != y.len() || x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(LoessError::NotFinite);
    }
    // loess_workspace(): nf = min(n, floor(n * span + 1e-5)); ehg139: k > nf - 1 is error 104.
    let n_neighbours = ((n as f64 * span + 1e-5).floor() as usize).min(n);
    if n_neighbours < 4 {
        return Err(LoessError::TooFewPoints { n, n_neighbours });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();

    let tree = KdTree1::build(&xs, span);
    let mut values = Vec::with_capacity(tree.vertices.len());
    let mut n_pseudoinverse = 0;
    for &v in &tree.vertices {
        let fit = local_fit(&xs, &ys, v, n_neighbours)?;
        n_pseudoinverse += usize::from(fit.pseudoinverse);
        values.push((fit.value, fit.slope));
    }
    let fitted = x.iter().map(|&z| tree.interpolate(&values, z)).collect();
    Ok(LoessFit {
        fitted,
        n_pseudoinverse,
    })
}

/// Fits loess of degree 2 with `surface = "direct"`: a local fit at every x, no tree.
#[cfg(test)]
pub(crate) fn loess_fit_direct(x: &[f64], y: &[f64], span: f64) -> Result<Vec<f64>, LoessError> {
    let n = x.len();
    let n_neighbours = ((n as f64 * span + 1e-5).floor() as usize).min(n);
    if n_neighbours < 4 {
        return Err(LoessError::TooFewPoints { n, n_neighbours });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    x.iter()
        .map(|&z| local_fit(&xs, &ys, z, n_neighbours).map(|f| f.value))
        .collect()
}

/// The k-d tree of `lowesb` in one dimension: sorted vertices (every split point and the
/// two ends of the widened bounding interval). Its leaf cells are the intervals between
/// consecutive vertices.
struct KdTree1 {
    vertices: Vec<f64>,
}

impl KdTree1 {
    /// `ehg126` + `ehg124` for d = 1 on sorted `xs`.
    fn build(xs: &[f64], span: f64) -> KdTree1 {
        let n = xs.len();
        let (lo, hi) = (xs[0], xs[n - 1]);
        // ehg126: expand the box a little.
        let margin = 0.005 * f64::max(hi - lo, 1e-10 * f64::max(lo.abs(), hi.abs()) + 1e-30);
        let (lo, hi) = (lo - margin, hi + margin);
        // lowesb: fc = ifloor(n * (span * cell)); fd = 0 (lowesd sets v(3) = 0).
        let fc = (n as f64 * (span * CELL)).floor() as usize;
        let nvmax = n.max(200); // loess_workspace(): nvmax = max(200, n); ncmax = nvmax
        let ncmax = nvmax;
        // Cells in the order ehg124 creates them (breadth first); 1-based l, u into xs.
        struct Cell {
            l: usize,
            u: usize,
            v_lo: f64,
            v_hi: f64,
        }
        let mut cells = vec![Cell {
            l: 1,
            u: n,
            v_lo: lo,
            v_hi: hi,
        }];
        let mut vertices = vec![lo, hi];
        let s = |i: usize| xs[i - 1];
        let mut p = 0;
        while p < cells.len() {
            let (l, u, v_lo, v_hi) = (cells[p].l, cells[p].u, cells[p].v_lo, cells[p].v_hi);
            p += 1;
            let diam = (v_hi - v_lo).abs();
            let nc = cells.len();
            let nv = vertices.len();
            let mut leaf = (u + 1 - l) <= fc
                || diam <= 0.0
                || ncmax < nc + 2
                || (nvmax as f64) < nv as f64 + 1.0;
            let mut m = (l + u) / 2;
            if !leaf {
                // All ties go with the upper son: look for the nearest position m + offset
                // (offsets 0, 1, -1, 2, -2, ...) where the sorted values change.
                let mut offset: isize = 0;
                loop {
                    let j = m as isize + offset;
                    if j >= u as isize || j < l as isize {
                        break;
                    }
                    let j = j as usize;
                    if s(j) == s(j + 1) {
                        offset = -offset;
                        if offset >= 0 {
                            offset += 1;
                        }
                    } else {
                        m = j;
                        break;
                    }
                }
                leaf = v_lo == s(m) || v_hi == s(m);
            }
            if !leaf {
                let split = s(m);
                vertices.push(split);
                cells.push(Cell {
                    l,
                    u: m,
                    v_lo,
                    v_hi: split,
                });
                cells.push(Cell {
                    l: m + 1,
                    u,
                    v_lo: split,
                    v_hi,
                });
            }
        }
        vertices.sort_by(f64::total_cmp);
        KdTree1 { vertices }
    }

    /// `ehg128` for d = 1: cubic Hermite interpolation in the leaf cell holding `z`
    /// (a point on a split goes to the lower cell, as `z <= xi` does in the descent).
    fn interpolate(&self, values: &[(f64, f64)], z: f64) -> f64 {
        let v = &self.vertices;
        // First vertex >= z is the upper end of the cell.
        let upper = v.partition_point(|&w| w < z).clamp(1, v.len() - 1);
        let lower = upper - 1;
        let (v0, v1) = (v[lower], v[upper]);
        let (g0, d0) = values[lower];
        let (g1, d1) = values[upper];
        let h = (z - v0) / (v1 - v0);
        let phi0 = (1.0 - h) * (1.0 - h) * (1.0 + 2.0 * h);
        let phi1 = h * h * (3.0 - 2.0 * h);
        let psi0 = h * (1.0 - h) * (1.0 - h);
        let psi1 = h * h * (h - 1.0);
        phi0 * g0 + phi1 * g1 + (psi0 * d0 + psi1 * d1) * (v1 - v0)
    }
}

/// Value and slope of one local quadratic fit.
struct LocalFit {
    value: f64,
    slope: f64,
    pseudoinverse: bool,
}

/// `ehg127` for d = 1, degree 2, unit prior weights: the local fit at `q` from the
/// `nf` nearest of the sorted `xs`.
fn local_fit(xs: &[f64], ys: &[f64], q: f64, nf: usize) -> Result<LocalFit, LoessError> {
    let n = xs.len();
    // The nf nearest points form a window of the sorted data around q.
    let mut right = xs.partition_point(|&w| w < q);
    let mut left = right; // window is [left, right)
    while right - left < nf {
        let take_left = if left == 0 {
            false
        } else if right == n {
            true
        } else {
            (q - xs[left - 1]).powi(2) <= (xs[right] - q).powi(2)
        };
        if take_left {
            left -= 1;
        } else {
            right += 1;
        }
    }
    let dist = |i: usize| (xs[i] - q) * (xs[i] - q);
    // rho = the nf-th smallest squared distance (times max(1, span) = 1).
    let rho = (left..right).map(dist).fold(0.0, f64::max);
    if rho <= 0.0 {
        let largest_tie = largest_tie(xs);
        return Err(LoessError::ZeroWidth { at: q, largest_tie });
    }
    // Rows of the weighted design matrix [w, w*(x-q), w*(x-q)^2] and w*y; tricube weights.
    let mut rows: Vec<[f64; 4]> = Vec::with_capacity(nf);
    for i in left..right {
        let r = (dist(i) / rho).sqrt();
        let w = ((1.0 - r * r * r).powi(3)).sqrt();
        let t = xs[i] - q;
        rows.push([w, w * t, w * t * t, w * ys[i]]);
    }
    if rows.iter().all(|r| r[0] == 0.0) {
        return Err(LoessError::AllOnBoundary {
            at: q,
            largest_tie: largest_tie(xs),
        });
    }
    // Equilibrate the columns.
    let mut colnorm = [1.0f64; 3];
    for (j, c) in colnorm.iter_mut().enumerate() {
        let scale = rows.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt();
        if scale > 0.0 {
            for r in rows.iter_mut() {
                r[j] /= scale;
            }
            *c = scale;
        }
    }
    let (r_mat, qty) = householder_r(&mut rows);
    let (u, sigma, v) = svd3(r_mat);
    let sigma_max = sigma.iter().cloned().fold(0.0, f64::max);
    let tol = sigma_max * (100.0 * f64::EPSILON);
    let mut gamma = [0.0f64; 3];
    let mut pseudoinverse = false;
    for j in 0..3 {
        if tol < sigma[j] {
            gamma[j] = (0..3).map(|i| u[i][j] * qty[i]).sum::<f64>() / sigma[j];
        } else {
            pseudoinverse = true;
        }
    }
    let coef = |row: usize| (0..3).map(|j| v[row][j] * gamma[j]).sum::<f64>() / colnorm[row];
    Ok(LocalFit {
        value: coef(0),
        slope: coef(1),
        pseudoinverse,
    })
}

/// The largest number of equal values in sorted `xs`.
fn largest_tie(xs: &[f64]) -> usize {
    xs.chunk_by(|a, b| a == b)
        .map(<[f64]>::len)
        .max()
        .unwrap_or(0)
}

/// Householder QR of the m x 3 matrix in columns 0..3 of `rows`, applied to column 3 as
/// well: returns R (upper triangular, 3 x 3) and the first 3 entries of Q^T y.
fn householder_r(rows: &mut [[f64; 4]]) -> ([[f64; 3]; 3], [f64; 3]) {
    let m = rows.len();
    for k in 0..3.min(m) {
        let norm = (k..m).map(|i| rows[i][k] * rows[i][k]).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if rows[k][k] > 0.0 { -norm } else { norm };
        // v = x - alpha e1, stored in place of column k (rows k..m).
        rows[k][k] -= alpha;
        let vnorm2: f64 = (k..m).map(|i| rows[i][k] * rows[i][k]).sum();
        if vnorm2 > 0.0 {
            for j in k + 1..4 {
                let dot: f64 = (k..m).map(|i| rows[i][k] * rows[i][j]).sum();
                let f = 2.0 * dot / vnorm2;
                for row in rows.iter_mut().skip(k) {
                    row[j] -= f * row[k];
                }
            }
        }
        rows[k][k] = alpha;
        for row in rows.iter_mut().skip(k + 1) {
            row[k] = 0.0;
        }
    }
    let mut r = [[0.0; 3]; 3];
    let mut qty = [0.0; 3];
    for i in 0..3.min(m) {
        for j in i..3 {
            r[i][j] = rows[i][j];
        }
        qty[i] = rows[i][3];
    }
    (r, qty)
}

/// Singular value decomposition of a 3 x 3 matrix by one-sided Jacobi rotations:
/// returns (U, sigma, V) with `a = U diag(sigma) V^T` (columns of U for zero singular
/// values are left zero).
fn svd3(a: [[f64; 3]; 3]) -> ([[f64; 3]; 3], [f64; 3], [[f64; 3]; 3]) {
    let mut w = a; // columns get orthogonalised: w = a V
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..2 {
            for q in p + 1..3 {
                let alpha: f64 = (0..3).map(|i| w[i][p] * w[i][p]).sum();
                let beta: f64 = (0..3).map(|i| w[i][q] * w[i][q]).sum();
                let gamma: f64 = (0..3).map(|i| w[i][p] * w[i][q]).sum();
                if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for row in w.iter_mut().chain(v.iter_mut()) {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sigma = [0.0; 3];
    let mut u = [[0.0; 3]; 3];
    for j in 0..3 {
        sigma[j] = (0..3).map(|i| w[i][j] * w[i][j]).sum::<f64>().sqrt();
        if sigma[j] > 0.0 {
            for i in 0..3 {
                u[i][j] = w[i][j] / sigma[j];
            }
        }
    }
    (u, sigma, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_a_quadratic_exactly() {
        let x: Vec<f64> = (0..100).map(|i| i as f64 * 0.1).collect();
        let y: Vec<f64> = x.iter().map(|&t| 1.0 - 2.0 * t + 0.5 * t * t).collect();
        let fit = loess_fit(&x, &y, 0.3).unwrap();
        for (f, t) in fit.fitted.iter().zip(&y) {
            assert!((f - t).abs() < 1e-9, "{f} vs {t}");
        }
        assert_eq!(fit.n_pseudoinverse, 0);
        let direct = loess_fit_direct(&x, &y, 0.3).unwrap();
        for (f, t) in direct.iter().zip(&y) {
            assert!((f - t).abs() < 1e-9);
        }
    }

    #[test]
    fn interpolate_is_close_to_direct_on_a_smooth_curve() {
        let x: Vec<f64> = (0..500)
            .map(|i| (i as f64 * 0.37).sin() * 3.0 + i as f64 * 0.01)
            .collect();
        let y: Vec<f64> = x.iter().map(|&t| (t * 1.3).cos() + 0.1 * t).collect();
        let fit = loess_fit(&x, &y, 0.3).unwrap();
        let direct = loess_fit_direct(&x, &y, 0.3).unwrap();
        let worst = fit
            .fitted
            .iter()
            .zip(&direct)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.05, "{worst}");
    }

    #[test]
    fn errors_name_the_problem() {
        let x = vec![1.0, 2.0, 3.0];
        assert!(matches!(
            loess_fit(&x, &x, 0.3),
            Err(LoessError::TooFewPoints { .. })
        ));
        let mut x = vec![0.5; 60];
        x.extend((0..20).map(|i| i as f64));
        let y = x.clone();
        assert!(matches!(
            loess_fit(&x, &y, 0.3),
            Err(LoessError::ZeroWidth {
                largest_tie: 60,
                ..
            })
        ));
    }
}
