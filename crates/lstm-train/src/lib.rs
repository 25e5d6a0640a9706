#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod optim;
mod schedule;

pub use optim::{Optimizer, OptimizerState, clip_grad_norm};
pub use schedule::{Schedule, Scheduler};
