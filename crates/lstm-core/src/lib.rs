#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod cell;
pub mod engine;
mod error;
pub mod gates;
pub mod init;
mod readout;
mod scalar;
mod state;
mod sync;
pub mod unroll;
pub mod workload;
mod workspace;

#[cfg(feature = "dev")]
pub mod dev;

pub use cell::{Direction, Layout, RecurrentCell, SeqOptions, Trace, Unrolled};
pub use engine::{
    EngineCell, EngineSpec, GateConfig, LstmEngine, OutputMode, Recurrence,
    UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS, UNIT_SPLIT_MAX_ROWS, UNIT_SPLIT_MIN_STEP_WORK,
    UNIT_SPLIT_MIN_WEIGHTS,
};
pub use error::{LstmError, Result, check_shape, fmt_shape};
pub use gates::{Activation, Gate, cell_update, sigmoid, tanh};
pub use readout::Readout;
pub use scalar::Scalar;
pub use state::LstmState;
pub use workspace::Workspace;
pub(crate) use workspace::{copy_rows, write_rows};

pub use lstm_kernels as kernels;
pub use ndarray;
