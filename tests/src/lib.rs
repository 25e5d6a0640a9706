//! Shared helpers of the cross-variant tests.
