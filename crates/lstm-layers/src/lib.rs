#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod convert;
mod model;
pub mod npy;
pub mod onnx;
mod readout;
mod stack;
pub mod torch;

pub use model::{Format, Model};
pub use readout::Readout;
pub use stack::{
    Dropout, EmptyFinalState, LstmStack, Stack, StackGradients, StackOptions, StackOutput,
    StackStates, Tape, lengths_from_signed,
};
