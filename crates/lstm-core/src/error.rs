//! The one error type shared by every crate of the workspace.

use std::fmt::Display;

/// Everything that can go wrong in the `lstm` crates.
///
/// Every variant says what was expected and what was given, so that the message alone is enough
/// to fix the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LstmError {
    /// An array has the wrong number of dimensions or the wrong extent.
    #[error("wrong shape for {what}: expected {expected}, got {got}")]
    Shape {
        /// The argument or tensor that is wrong.
        what: String,
        /// The shape that was expected, e.g. `[4, 8]` or `[B, 8]`.
        expected: String,
        /// The shape that was given.
        got: String,
    },
    /// A value is out of its allowed range or inconsistent with another one.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The argument that is wrong.
        what: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A weight holds NaN or an infinity.
    #[error("non-finite value in {what} at flat index {index}: {value}")]
    NonFinite {
        /// The weight tensor.
        what: String,
        /// Index of the first offending element in logical (row-major) order.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A valid option that this library does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A file or byte buffer that is malformed or truncated.
    #[error("malformed {source_name}: {reason}")]
    Format {
        /// The file name or format being read.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A worker thread of a threaded path panicked; the call's outputs are not to be used.
    #[error("a worker thread panicked ({during})")]
    WorkerPanicked {
        /// What the thread was doing.
        during: String,
    },
    /// An operating-system error while reading or writing a file.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of the workspace.
pub type Result<T, E = LstmError> = std::result::Result<T, E>;

/// Formats a shape as `[a, b, c]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

impl LstmError {
    /// A [`LstmError::Shape`] from a description of the expected shape and the given one.
    pub fn shape(what: impl Display, expected: impl Display, got: &[usize]) -> Self {
        LstmError::Shape {
            what: what.to_string(),
            expected: expected.to_string(),
            got: fmt_shape(got),
        }
    }

    /// A [`LstmError::Invalid`].
    pub fn invalid(what: impl Display, reason: impl Display) -> Self {
        LstmError::Invalid {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A [`LstmError::Format`].
    pub fn format(source_name: impl Display, reason: impl Display) -> Self {
        LstmError::Format {
            source_name: source_name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A [`LstmError::Unsupported`].
    pub fn unsupported(what: impl Display) -> Self {
        LstmError::Unsupported(what.to_string())
    }
}

/// Checks that `got` equals `expected` exactly.
///
/// # Errors
/// [`LstmError::Shape`] naming `what` when the shapes differ.
pub fn check_shape(what: &str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(LstmError::shape(what, fmt_shape(expected), got))
    }
}

/// Checks that every element of `a` is finite.
///
/// # Errors
/// [`LstmError::NonFinite`] naming `what` and the first bad element.
pub fn check_finite<'a, F: crate::Scalar>(
    what: &str,
    a: impl IntoIterator<Item = &'a F>,
) -> Result<()> {
    match a.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((index, v)) => Err(LstmError::NonFinite {
            what: what.into(),
            index,
            value: v.f64(),
        }),
        None => Ok(()),
    }
}
