#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod engine;
pub mod init;
mod sync;
pub mod threads;
pub mod workload;

pub use engine::{
    EngineCell, EngineGrad, EngineSpec, GateConfig, LstmEngine, OutputMode, Recurrence,
    UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS, UNIT_SPLIT_MAX_ROWS, UNIT_SPLIT_MIN_STEP_WORK,
    UNIT_SPLIT_MIN_WEIGHTS,
};
pub use lstm_core;
pub use lstm_kernels as kernels;

// The contract's items under the paths the engine's modules use.
use lstm_core::{
    Activation, Direction, LstmError, LstmState, RecurrentCell, Result, Scalar, SeqOptions, Trace,
    Workspace, check_shape, copy_rows, unroll, write_rows,
};
