#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod head;
mod optim;
mod schedule;
pub mod tasks;
pub mod trainer;

pub use head::{Head, Target};
pub use optim::{Optimizer, OptimizerState, clip_grad_norm};
pub use schedule::{Schedule, Scheduler};
pub use trainer::{EpochStats, Kind, TrainConfig, Trainer};
