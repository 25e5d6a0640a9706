//! A small, dependency-free, reproducible random source for benchmark and test weights.
//!
//! SplitMix64 for the bits and the Box-Muller transform for normal values. Not for cryptography,
//! not the generator of any framework: use it where any fixed pseudo-random numbers will do.

use ndarray::{Array, Dimension, IntoDimension};

use crate::Scalar;

/// SplitMix64 with a normal sampler.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
    spare: Option<f64>,
}

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// An array of the given shape, uniform in `[-scale, scale)` (PyTorch's LSTM initialisation
    /// uses `scale = 1 / sqrt(H)`).
    pub fn uniform_array<F: Scalar, Sh: IntoDimension>(
        &mut self,
        shape: Sh,
        scale: f64,
    ) -> Array<F, Sh::Dim>
    where
        Sh::Dim: Dimension,
    {
        Array::from_shape_simple_fn(shape, || F::of(self.range(-scale, scale)))
    }
}
