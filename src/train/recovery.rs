//! Divergence detection and the snapshots a run rolls back to: the part of the
//! [`Schedule`](super::Schedule) that keeps a run going at a learning rate too high for it.
//!
//! How it decides, step by step (the same on every backend, from the losses a step
//! reports, so the CPU and the GPU recover alike):
//!
//! - **Divergence** ([`LossWatch::judge`]): a step whose losses are not finite, or whose
//!   unweighted loss (reconstruction + KL per cell, so that the KL warm-up cannot hide an
//!   exploding encoder) is more than [`EXPLODE_FACTOR`] times the median of the last
//!   [`WINDOW`] finite steps. A step above [`SUSPICIOUS_FACTOR`] times that median is
//!   *suspicious*: it is trained on, but no snapshot is taken until the next snapshot
//!   point after it.
//! - **Snapshots** ([`Ring`]): the state read back at the end of every epoch and every
//!   `snapshot_every` steps, only when the steps since the last one looked healthy and
//!   the state itself is finite with no value above [`HUGE`]. The run's starting state
//!   and the [`RING`] newest snapshots are kept.
//! - **Recovery**: back to the newest snapshot, learning rate times [`LR_FACTOR`]. If
//!   the run diverges again before a newer snapshot is taken, that snapshot is dropped
//!   and the run steps back to the one before, with Adam's first moments (the momentum
//!   that may point into the divergence) set to zero; the second moments, the
//!   per-parameter step scales of healthy training, are kept. Non-finite moments are
//!   zeroed in any case. The starting state is never dropped: repeated divergence from
//!   it only lowers the rate further, until [`MAX_RECOVERIES`] or a rate below
//!   [`MIN_LR`], where the run stops with an error that says what to try.
//!
//! Snapshots only read the state: a run that never diverges computes exactly what it
//! computed without them.

use crate::model::TrainState;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Finite steps whose unweighted losses form the recent history.
pub const WINDOW: usize = 32;
/// A loss above this many times the recent median is a divergence.
pub const EXPLODE_FACTOR: f64 = 20.0;
/// A loss above this many times the recent median holds back the next snapshot.
pub const SUSPICIOUS_FACTOR: f64 = 4.0;
/// Snapshots kept besides the run's starting state.
pub const RING: usize = 4;
/// The learning rate is multiplied by this at each recovery.
pub const LR_FACTOR: f32 = 0.5;
/// Recoveries after which the run gives up.
pub const MAX_RECOVERIES: usize = 40;
/// A learning rate below this after a recovery ends the run with an error.
pub const MIN_LR: f32 = 1e-9;
/// A state with a parameter, statistic or moment above this magnitude is not kept as
/// a snapshot (overflow in `exp` is near).
pub const HUGE: f32 = 1e6;

/// What one recovery did, reported to the user (CLI stderr, `metrics.json`
/// `recoveries`, the page's status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The step at which the divergence was seen (0-based).
    pub step: u32,
    /// Why: non-finite values, or a loss far above its recent median.
    pub reason: String,
    /// The learning rate after lowering it.
    pub new_lr: f32,
    /// The step the run went back to (the snapshot restored).
    pub resumed_at_step: u32,
    /// Whether Adam's first moments were reset (a rollback past a snapshot that had
    /// failed already, or moments that were not finite).
    pub moments_reset: bool,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {}: {}; went back to step {}{} and lowered the learning rate to {}",
            self.step,
            self.reason,
            self.resumed_at_step,
            if self.moments_reset {
                " (Adam's momentum reset)"
            } else {
                ""
            },
            self.new_lr
        )
    }
}

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Within the recent history.
    Healthy,
    /// Higher than usual: trained on, but the next snapshot is held back.
    Suspicious,
    /// A divergence: the loss and the median of the recent history.
    Exploded(f64, f64),
    /// Non-finite losses or gradients.
    NonFinite,
}

/// The recent history of finite step losses and whether anything suspicious happened
/// since the last snapshot point (kept in a run record, so a resumed run judges its
/// steps as the uninterrupted run would).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossWatch {
    recent: VecDeque<f64>,
    /// A suspicious step since the last snapshot point.
    pub suspicious: bool,
}

impl LossWatch {
    /// Judges a step from its losses (`finite`: the backend found every gradient
    /// finite). Records nothing.
    pub fn judge(&self, finite: bool, loss: f32, reconstruction: f32, kl: f32) -> Verdict {
        let value = f64::from(reconstruction) + f64::from(kl);
        if !finite || !loss.is_finite() || !value.is_finite() {
            return Verdict::NonFinite;
        }
        if self.recent.is_empty() {
            return Verdict::Healthy;
        }
        let median = self.median();
        // Losses are negative log-likelihoods (positive); the margin keeps a near-zero
        // median (an almost empty minibatch) from making every step a divergence.
        let scale = median.abs().max(1.0);
        if value > median + EXPLODE_FACTOR * scale {
            Verdict::Exploded(value, median)
        } else if value > median + SUSPICIOUS_FACTOR * scale {
            Verdict::Suspicious
        } else {
            Verdict::Healthy
        }
    }

    /// Records a step that was trained on.
    pub fn push(&mut self, verdict: Verdict, reconstruction: f32, kl: f32) {
        if verdict == Verdict::Suspicious {
            self.suspicious = true;
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent
            .push_back(f64::from(reconstruction) + f64::from(kl));
    }

    /// Whether the history is one a run could have: at most [`WINDOW`] finite losses.
    pub fn is_plausible(&self) -> bool {
        self.recent.len() <= WINDOW && self.recent.iter().all(|v| v.is_finite())
    }

    fn median(&self) -> f64 {
        let mut v: Vec<f64> = self.recent.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    }
}

/// Whether a state may be kept as a snapshot: every parameter, batch-norm statistic
/// and Adam moment finite and below [`HUGE`] in magnitude.
pub fn state_is_sound(state: &TrainState) -> bool {
    let ok = |v: &[f32]| crate::backend::cpu::finite::all_below(v, HUGE);
    ok(&state.params.values) && ok(&state.params.buffers) && ok(&state.adam_m) && ok(&state.adam_v)
}

/// Zeroes Adam's first moments (and the second ones too where any is not finite).
pub fn reset_moments(state: &mut TrainState) {
    state.adam_m.iter_mut().for_each(|m| *m = 0.0);
    if !state.adam_v.iter().all(|v| v.is_finite()) {
        state.adam_v.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// A state read back from the backend, where in its epoch it was taken, and the loss
/// history then.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The state (its `steps` and `epochs` say where).
    pub state: TrainState,
    /// Cells of the epoch already trained on.
    pub position: usize,
    /// Sums of the epoch so far: reconstruction, KL, cells.
    pub sums: (f64, f64, usize),
    /// The loss history when it was taken.
    pub watch: LossWatch,
    /// Restored since it was taken, with no newer snapshot since.
    pub restored: bool,
}

/// The run's starting state and up to [`RING`] newer snapshots, oldest first.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<ResumePoint>,
}

impl Ring {
    /// A ring holding only the starting point.
    pub fn new(start: ResumePoint) -> Ring {
        Ring {
            points: vec![start],
        }
    }

    /// The newest point (what a restore or a switch of backend loads).
    pub fn newest(&self) -> &ResumePoint {
        // The starting point is never removed, so the ring is never empty.
        &self.points[self.points.len() - 1]
    }

    /// Adds a snapshot; when full, removes the oldest one after the starting point and
    /// returns it (its state's buffers serve the next snapshot).
    pub fn push(&mut self, point: ResumePoint) -> Option<ResumePoint> {
        self.points.push(point);
        (self.points.len() > RING + 1).then(|| self.points.remove(1))
    }

    /// Replaces every point with `point` (a run continued from another state).
    pub fn reset(&mut self, point: ResumePoint) {
        self.points = vec![point];
    }

    /// The point to roll back to after a divergence: the newest, unless it was
    /// restored already and failed again, in which case it is dropped for the one
    /// before (the starting point is never dropped) and Adam's first moments of the
    /// one returned are reset. Returns the point and whether the moments were reset.
    pub fn roll_back(&mut self) -> (&ResumePoint, bool) {
        let mut reset = false;
        if self.newest().restored && self.points.len() > 1 {
            self.points.pop();
            reset = true;
        }
        let last = self.points.len() - 1;
        let p = &mut self.points[last];
        if reset || !p.state.adam_m.iter().all(|m| m.is_finite()) {
            reset_moments(&mut p.state);
            reset = true;
        }
        p.restored = true;
        (&self.points[last], reset)
    }

    /// Points held (the starting one included).
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Never true: the starting point is always held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_far_above_the_recent_median_is_a_divergence() {
        let mut w = LossWatch::default();
        assert_eq!(w.judge(true, 1e9, 1e9, 0.0), Verdict::Healthy, "no history");
        for v in [1000.0, 1100.0, 950.0] {
            let verdict = w.judge(true, v, v, 1.0);
            assert_eq!(verdict, Verdict::Healthy);
            w.push(verdict, v, 1.0);
        }
        assert_eq!(w.judge(true, 1500.0, 1500.0, 0.0), Verdict::Healthy);
        assert_eq!(w.judge(true, 6000.0, 6000.0, 0.0), Verdict::Suspicious);
        // The KL counts even when the warm-up weight hides it from the loss.
        assert!(matches!(
            w.judge(true, 1000.0, 1000.0, 225_910.0),
            Verdict::Exploded(..)
        ));
        assert_eq!(w.judge(false, 1.0, 1.0, 1.0), Verdict::NonFinite);
        assert_eq!(w.judge(true, f32::NAN, 1.0, 1.0), Verdict::NonFinite);
        assert_eq!(w.judge(true, 1.0, f32::INFINITY, 1.0), Verdict::NonFinite);
        assert!(!w.suspicious);
        w.push(Verdict::Suspicious, 6000.0, 0.0);
        assert!(w.suspicious);
    }

    #[test]
    fn a_near_zero_history_is_not_a_hair_trigger() {
        let mut w = LossWatch::default();
        for _ in 0..4 {
            w.push(Verdict::Healthy, 0.0, 0.0);
        }
        assert_eq!(w.judge(true, 3.0, 3.0, 0.0), Verdict::Healthy);
        assert!(matches!(
            w.judge(true, 30.0, 30.0, 0.0),
            Verdict::Exploded(..)
        ));
    }
}
