//! The library half of the `lstm` command: the registry of cell variants that the command
//! line and the criterion benchmarks share ([`variants`]).

pub mod variants;
