#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod backward;
mod cell;
mod error;
pub mod gates;
mod scalar;
mod state;
pub mod unroll;
mod variant;
mod workspace;

#[cfg(feature = "dev")]
pub mod dev;

pub use backward::{Backward, Gradients};
pub use cell::{Direction, Layout, RecurrentCell, SeqOptions, Trace, Unrolled};
pub use error::{LstmError, Result, check_finite, check_shape, fmt_shape};
pub use gates::{Activation, Gate, sigmoid};
pub use scalar::Scalar;
pub use state::{CellState, LstmState};
pub use variant::Variant;
pub use workspace::Workspace;
pub use workspace::{copy_rows, write_rows};

pub use ndarray;
