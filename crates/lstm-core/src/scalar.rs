//! The element types the cells compute in.

use std::fmt::{Debug, Display};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::Float;

/// A floating-point element type: `f32` or `f64`.
///
/// Every cell, the unroller and the layer stack are generic over it.
pub trait Scalar:
    LinalgScalar
    + Float
    + ScalarOperand
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
    + lstm_kernels::Element
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn of(v: f64) -> Self;

    /// Converts to `f64` exactly.
    fn f64(self) -> f64;
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        f64::from(self)
    }
}

impl Scalar for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
}
