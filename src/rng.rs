//! Counter-based random numbers shared by the CPU reference and the WGSL shaders.
//!
//! Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as
//! 1, 2, 3", SC 2011): a pure function of a 128-bit counter and a 64-bit key, so any
//! element of any draw can be computed on its own, in any order, on any device, and the
//! CPU and the GPU draw the same numbers.
//!
//! # Layout (the WGSL twin must do exactly this)
//!
//! - key = `[seed as u32, (seed >> 32) as u32]` (low word first).
//! - counter = `[index, step, stream, word3]`: `index` is the element (`row * n + col`),
//!   `step` the optimiser step (or epoch, or sample), `stream` one of the stream ids
//!   below, `word3` 0 except for rejection samplers (see [`Stream::block`]).
//! - [`unit_f32`] maps a word to `((word >> 9) as f32 + 0.5) * 2^-23`, in `[2^-24, 1 - 2^-24]`, never
//!   0 or 1 and exact in f32. (23 bits, not 24: with 24 bits the top value
//!   `(2^24 - 0.5) / 2^24` is not representable in f32 and rounds to 1.0.)
//! - [`uniform`] is `unit_f32(block[0])`.
//! - [`normal`] is Box-Muller on words 0 and 1 of the same block, in f32:
//!   `u1 = unit_f32(block[0])`, `u2 = unit_f32(block[1])`,
//!   `z = sqrt(-2 ln u1) * cos(2 pi u2)` (the sine partner is not used).
//!
//! Words 2 and 3 of a block are free for callers that need more numbers per element.

/// Philox multiplier for counter word 0.
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Philox multiplier for counter word 2.
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 between rounds (golden ratio).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 between rounds (sqrt(3) - 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// Stream id: dropout masks in the encoder.
pub const DROPOUT_ENCODER: u32 = 1;
/// Stream id: the reparameterisation noise `eps ~ N(0, I)`.
pub const REPARAM: u32 = 2;
/// Stream id: the order of cells in minibatches ([`shuffle`]).
pub const MINIBATCH_ORDER: u32 = 3;
/// Stream id: parameter initialisation.
pub const INIT: u32 = 4;
/// Stream id: sampling from the model (prior samples, posterior predictive counts).
pub const SAMPLE: u32 = 5;

/// Philox4x32 with 10 rounds: the block of four 32-bit words for `counter` and `key`.
#[inline(always)]
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let p0 = u64::from(PHILOX_M0) * u64::from(c[0]);
        let p1 = u64::from(PHILOX_M1) * u64::from(c[2]);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// The Philox key for a 64-bit seed: low word first.
#[inline(always)]
pub fn key_from_seed(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// A 32-bit word to a float strictly inside (0, 1): `((word >> 9) + 0.5) * 2^-23`.
#[inline(always)]
pub fn unit_f32(word: u32) -> f32 {
    ((word >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// Box-Muller: a standard normal from two words (`u1` from `w1`, angle from `w2`), in f32.
pub fn box_muller(w1: u32, w2: u32) -> f32 {
    let u1 = unit_f32(w1);
    let u2 = unit_f32(w2);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// One seeded stream of random numbers: a Philox key and a stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The Philox key (from the seed, see [`key_from_seed`]).
    pub key: [u32; 2],
    /// The stream id (counter word 2), e.g. [`REPARAM`].
    pub stream: u32,
}

impl Stream {
    /// The stream `stream` of generator `seed`.
    #[inline(always)]
    pub fn new(seed: u64, stream: u32) -> Self {
        Stream {
            key: key_from_seed(seed),
            stream,
        }
    }

    /// The raw block for counter `[index, step, stream, word3]`. Rejection samplers use
    /// `word3` as the attempt number; everything else uses `word3 = 0`.
    #[inline(always)]
    pub fn block(&self, step: u32, index: u32, word3: u32) -> [u32; 4] {
        philox4x32([index, step, self.stream, word3], self.key)
    }

    /// A uniform in (0, 1): [`unit_f32`] of word 0 of block `(step, index, 0)`.
    #[inline(always)]
    pub fn uniform(&self, step: u32, index: u32) -> f32 {
        unit_f32(self.block(step, index, 0)[0])
    }

    /// A standard normal: [`box_muller`] of words 0 and 1 of block `(step, index, 0)`.
    pub fn normal(&self, step: u32, index: u32) -> f32 {
        let w = self.block(step, index, 0);
        box_muller(w[0], w[1])
    }
}

/// A uniform in (0, 1) for element `index` at `step` of `stream` (see the module docs).
pub fn uniform(seed: u64, stream: u32, step: u32, index: u32) -> f32 {
    Stream::new(seed, stream).uniform(step, index)
}

/// A standard normal for element `index` at `step` of `stream` (see the module docs).
pub fn normal(seed: u64, stream: u32, step: u32, index: u32) -> f32 {
    Stream::new(seed, stream).normal(step, index)
}

/// Fills `order` with a random permutation of `0..order.len()` for `epoch`: Fisher-Yates
/// from the end, where position `i` (for `i` = n-1 down to 1) swaps with
/// `j = (r * (i + 1)) >> 64`, `r = (block[1] << 32) | block[0]` of block
/// `(step = epoch, index = i, 0)` of stream [`MINIBATCH_ORDER`] (bias below 2^-32).
pub fn shuffle_into(seed: u64, epoch: u32, order: &mut [u32]) {
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    let s = Stream::new(seed, MINIBATCH_ORDER);
    for i in (1..order.len()).rev() {
        let w = s.block(epoch, i as u32, 0);
        let r = (u64::from(w[1]) << 32) | u64::from(w[0]);
        let j = ((u128::from(r) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}

/// A random permutation of `0..n` for `epoch` (the minibatch order); see [`shuffle_into`].
pub fn shuffle(seed: u64, epoch: u32, n: usize) -> Vec<u32> {
    let mut order = vec![0u32; n];
    shuffle_into(seed, epoch, &mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answers() {
        // Random123 kat_vectors, philox4x32 10 rounds.
        assert_eq!(
            philox4x32([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn unit_is_strictly_inside() {
        assert!(unit_f32(0) > 0.0);
        assert!(unit_f32(u32::MAX) < 1.0);
        assert_eq!(unit_f32(0), 2f32.powi(-24));
        assert_eq!(unit_f32(u32::MAX), 1.0 - 2f32.powi(-24));
    }

    #[test]
    fn uniform_and_normal_moments() {
        let n = 100_000u32;
        let (mut su, mut sn, mut sn2, mut lag) = (0f64, 0f64, 0f64, 0f64);
        let mut prev = 0f64;
        for i in 0..n {
            let u = f64::from(uniform(42, DROPOUT_ENCODER, 7, i));
            assert!(u > 0.0 && u < 1.0);
            su += u;
            let z = f64::from(normal(42, REPARAM, 7, i));
            sn += z;
            sn2 += z * z;
            lag += z * prev;
            prev = z;
        }
        let nf = f64::from(n);
        assert!((su / nf - 0.5).abs() < 0.005, "uniform mean {}", su / nf);
        let mean = sn / nf;
        assert!(mean.abs() < 0.01, "normal mean {mean}");
        let var = sn2 / nf - mean * mean;
        assert!((var - 1.0).abs() < 0.02, "normal variance {var}");
        assert!((lag / nf).abs() < 0.01, "lag-1 correlation {}", lag / nf);
    }

    #[test]
    fn streams_steps_and_seeds_differ() {
        let a = uniform(1, REPARAM, 0, 5);
        assert_ne!(a, uniform(1, DROPOUT_ENCODER, 0, 5));
        assert_ne!(a, uniform(1, REPARAM, 1, 5));
        assert_ne!(a, uniform(2, REPARAM, 0, 5));
        assert_ne!(a, uniform(1 | (1 << 32), REPARAM, 0, 5));
        assert_eq!(a, Stream::new(1, REPARAM).uniform(0, 5));
    }

    #[test]
    fn shuffle_is_a_permutation_and_changes_per_epoch() {
        let a = shuffle(9, 0, 1000);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().enumerate().all(|(i, &v)| v == i as u32));
        assert_ne!(a, shuffle(9, 1, 1000));
        assert_eq!(a, shuffle(9, 0, 1000));
        assert!(shuffle(9, 0, 0).is_empty());
        assert_eq!(shuffle(9, 0, 1), vec![0]);
        // Each of 3 items lands first about a third of the time.
        let mut first = [0u32; 3];
        for e in 0..3000 {
            first[shuffle(5, e, 3)[0] as usize] += 1;
        }
        assert!(first.iter().all(|&c| (900..1100).contains(&c)), "{first:?}");
    }
}
