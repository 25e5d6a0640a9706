//! Synthetic tasks that need memory, for comparing cells: the adding problem and the copy task.

use lstm_core::ndarray::{Array2, Array3};
use lstm_core::{LstmError, Result, Scalar};
use lstm_engine::init::SplitMix64;

use crate::Target;

/// A task's data: inputs `[T, N, I]` (time-major) and targets.
#[derive(Clone, Debug)]
pub struct TaskData<F> {
    /// `[T, N, I]`.
    pub x: Array3<F>,
    /// The targets.
    pub target: Target<F>,
}

/// The adding problem (Hochreiter and Schmidhuber, 1997): each of `steps` steps carries a value
/// in `[0, 1)` and a marker; one step in each half is marked, and the target is the sum of the
/// two marked values (`[N, 1]`, read at the last step). Always answering 1 scores a mean
/// squared error of about 0.167.
///
/// # Errors
/// [`LstmError::Invalid`] for fewer than 2 steps.
pub fn adding<F: Scalar>(n: usize, steps: usize, seed: u64) -> Result<TaskData<F>> {
    if steps < 2 {
        return Err(LstmError::invalid(
            "adding problem",
            "needs at least 2 steps",
        ));
    }
    let mut rng = SplitMix64::new(seed);
    let mut x = Array3::zeros((steps, n, 2));
    let mut y = Array2::zeros((n, 1));
    let half = steps / 2;
    for b in 0..n {
        for t in 0..steps {
            x[[t, b, 0]] = F::of(rng.uniform());
        }
        let first = (rng.next_u64() % half as u64) as usize;
        let second = half + (rng.next_u64() % (steps - half) as u64) as usize;
        for t in [first, second] {
            x[[t, b, 1]] = F::one();
            y[[b, 0]] += x[[t, b, 0]];
        }
    }
    Ok(TaskData {
        x,
        target: Target::Values(y),
    })
}

/// The copy task: `length` symbols out of `symbols` (one-hot), then `delay` blank steps and a
/// delimiter, then the symbols again as per-step class targets. Inputs have `symbols + 2`
/// channels (the symbols, blank, delimiter); targets are class ids with 0 for "blank" and
/// `1 + s` for symbol `s`; `T = 2 length + delay + 1`. Guessing uniformly among the symbols
/// in the recall steps scores a cross-entropy of `ln(symbols)` there.
///
/// # Errors
/// [`LstmError::Invalid`] for no symbols or a zero length.
pub fn copy<F: Scalar>(
    n: usize,
    symbols: usize,
    length: usize,
    delay: usize,
    seed: u64,
) -> Result<TaskData<F>> {
    if symbols == 0 || length == 0 {
        return Err(LstmError::invalid(
            "copy task",
            "needs symbols and a length",
        ));
    }
    let mut rng = SplitMix64::new(seed);
    let steps = 2 * length + delay + 1;
    let (blank, delim) = (symbols, symbols + 1);
    let mut x = Array3::zeros((steps, n, symbols + 2));
    let mut y = Array2::zeros((steps, n));
    for b in 0..n {
        for t in 0..steps {
            x[[t, b, blank]] = F::one();
        }
        for k in 0..length {
            let s = (rng.next_u64() % symbols as u64) as usize;
            x[[k, b, blank]] = F::zero();
            x[[k, b, s]] = F::one();
            y[[length + delay + 1 + k, b]] = 1 + s;
        }
        x[[length + delay, b, blank]] = F::zero();
        x[[length + delay, b, delim]] = F::one();
    }
    Ok(TaskData {
        x,
        target: Target::StepClasses(y),
    })
}
