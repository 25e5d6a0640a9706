//! The shared test suite every cell crate runs (feature `dev`).
//!
//! A cell crate describes its cell as a [`CellFamily`] (how to build it from raw parameters and a
//! plain reference step written separately) and calls [`cell_suite!`](crate::cell_suite) once:
//!
//! ```ignore
//! lstm_core::cell_suite!(my_family::Concat);
//! ```
//!
//! Every check runs a proptest [`TestRunner`] over random dimensions (`B` 1..4, `T` 0..12,
//! `I` 1..9, `H` 1..9), weights, inputs, initial states, lengths, direction and layout; 64 cases
//! by default, `PROPTEST_CASES` overrides.

// Test support: a panic is how a check reports failure.
#![allow(clippy::missing_panics_doc)]

use ndarray::{Array2, Array3, Array4, ArrayD, ArrayView3, Axis, IxDyn, s};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

use crate::{
    CellState, LstmError, LstmState, RecurrentCell, Scalar, SeqOptions, Trace, Workspace, unroll,
};

/// One step of a plain reference for one row: the new state, part by part (`[h, c]` for an
/// LSTM, `[h]` for a GRU), and the gate activations, block by block in the cell's order.
#[derive(Clone, Debug, PartialEq)]
pub struct RefStep {
    /// The parts of the new state; part 0 is `h_t`.
    pub state: Vec<Vec<f64>>,
    /// The activations of each gate block.
    pub gates: Vec<Vec<f64>>,
}

/// A reference step of an LSTM, `(h, c)` and the four gates i, f, g, o, as LSTM families write
/// it; it converts into a [`RefStep`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LstmStep {
    /// `h_t`.
    pub h: Vec<f64>,
    /// `c_t`.
    pub c: Vec<f64>,
    /// Activations of i, f, g, o.
    pub gates: [Vec<f64>; 4],
}

impl From<LstmStep> for RefStep {
    fn from(s: LstmStep) -> Self {
        RefStep {
            state: vec![s.h, s.c],
            gates: s.gates.into(),
        }
    }
}

/// The state type of a family's cells at precision `F`.
pub type StateOf<Fam, F> = <<Fam as CellFamily>::Cell<F> as RecurrentCell<F>>::State;

/// The number of parts of a family's state.
pub fn parts_of<Fam: CellFamily>() -> usize {
    <StateOf<Fam, f64> as CellState<f64>>::PARTS
}

/// The parts of a state, each `[B, width]`, widened to `f64`.
pub fn widen_state<F: Scalar, S: CellState<F>>(s: &S) -> Vec<Array2<f64>> {
    (0..S::PARTS).map(|k| s.part(k).map(|v| v.f64())).collect()
}

/// Checks that two states agree part by part within `tol`.
///
/// # Errors
/// The first part that differs.
pub fn close_states(
    what: &str,
    a: &[Array2<f64>],
    b: &[Array2<f64>],
    tol: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len(), "{}: different state parts", what);
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        close(
            &format!("{what} (state part {k})"),
            &x.clone().into_dyn(),
            &y.clone().into_dyn(),
            tol,
        )?;
    }
    Ok(())
}

/// Rows `rows` of every part of a state.
pub fn state_rows(s: &[Array2<f64>], rows: std::ops::Range<usize>) -> Vec<Array2<f64>> {
    s.iter()
        .map(|p| p.slice(s![rows.clone(), ..]).to_owned())
        .collect()
}

/// A cell variant as the suite sees it. Its cells have `P = H`.
pub trait CellFamily {
    /// The cell type at each precision.
    type Cell<F: Scalar>: RecurrentCell<F> + crate::Backward<F>;

    /// The range of each gate block's activations, in the cell's order.
    const GATE_RANGES: &'static [(f64, f64)] = &[(0.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (0.0, 1.0)];

    /// Whether the variant guarantees `|h| <= 1`.
    const BOUNDED_H: bool = true;

    /// Shapes of the raw parameter tensors for input width `i` and hidden width `h`.
    fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>>;

    /// Builds the cell from raw parameters of [`param_shapes`](Self::param_shapes).
    ///
    /// # Errors
    /// Whatever the variant's constructor returns for bad parameters.
    fn build<F: Scalar>(params: &[ArrayD<F>]) -> crate::Result<Self::Cell<F>>;

    /// A plain, obviously correct single-row step from the parts of the state, written
    /// independently of the cell.
    fn reference_step(params: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>]) -> RefStep;
}

/// A raw parameter as a matrix.
///
/// # Errors
/// [`LstmError::Invalid`] when it is not 2-D.
pub fn matrix<F>(a: &ArrayD<F>) -> crate::Result<ndarray::ArrayView2<'_, F>> {
    a.view()
        .into_dimensionality()
        .map_err(|e| LstmError::invalid("parameter matrix", e))
}

/// A raw parameter as a vector.
///
/// # Errors
/// [`LstmError::Invalid`] when it is not 1-D.
pub fn vector<F>(a: &ArrayD<F>) -> crate::Result<ndarray::ArrayView1<'_, F>> {
    a.view()
        .into_dimensionality()
        .map_err(|e| LstmError::invalid("parameter vector", e))
}

/// The logistic function in its textbook form, for references.
pub fn plain_sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Runs `check` on random cases; panics with the failing case.
pub fn run<Fam: CellFamily>(
    name: &str,
    scale: f64,
    check: impl Fn(&Case) -> Result<(), TestCaseError>,
) {
    run_on(name, cases::<Fam>(scale), 1, check);
}

/// Runs `check` on cases of `strategy`, `PROPTEST_CASES` (64 by default) divided by `thin`;
/// panics with the failing case.
pub fn run_on(
    name: &str,
    strategy: impl Strategy<Value = Case>,
    thin: u32,
    check: impl Fn(&Case) -> Result<(), TestCaseError>,
) {
    let cases_n: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases: (cases_n / thin).max(1),
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |c| check(&c)) {
        panic!("{name}: {e}");
    }
}

/// Largest absolute difference (`inf` on a shape mismatch, NaN-aware).
pub fn max_diff<'a, F: Scalar>(
    a: impl IntoIterator<Item = &'a F>,
    b: impl IntoIterator<Item = &'a F>,
) -> f64 {
    a.into_iter().zip(b).fold(0.0, |m: f64, (x, y)| {
        let d = (x.f64() - y.f64()).abs();
        if d.is_nan() && !(x.is_nan() && y.is_nan()) {
            f64::INFINITY
        } else {
            m.max(d)
        }
    })
}

fn close<F: Scalar>(
    what: &str,
    a: &ArrayD<F>,
    b: &ArrayD<F>,
    tol: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: shapes differ", what);
    let d = max_diff(a.iter(), b.iter());
    prop_assert!(d <= tol, "{}: max difference {} > {}", what, d, tol);
    Ok(())
}

/// Everything a run produces, time-major, widened to `f64`.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// `[T, B, P]`.
    pub output: Array3<f64>,
    /// The parts of the final state, each `[B, width]`.
    pub state: Vec<Array2<f64>>,
    /// Trace.
    pub trace: Trace<f64>,
}

impl Outcome {
    fn new<F: Scalar, S: CellState<F>>(output: Array3<F>, state: &S, trace: Trace<F>) -> Self {
        let widen = |v: &F| v.f64();
        Outcome {
            output: output.map(widen),
            state: widen_state(state),
            trace: Trace {
                gates: trace.gates.map(widen),
                cell: trace.cell.map(widen),
            },
        }
    }

    fn parts(&self) -> Vec<(String, ArrayD<f64>)> {
        let mut v = vec![("output".to_string(), self.output.clone().into_dyn())];
        for (k, p) in self.state.iter().enumerate() {
            v.push((format!("final state part {k}"), p.clone().into_dyn()));
        }
        v.push(("trace gates".into(), self.trace.gates.clone().into_dyn()));
        v.push(("trace cell".into(), self.trace.cell.clone().into_dyn()));
        v
    }

    /// Checks two outcomes agree within `tol`.
    ///
    /// # Errors
    /// The first part that differs.
    pub fn assert_close(&self, other: &Self, tol: f64) -> Result<(), TestCaseError> {
        let (a, b) = (self.parts(), other.parts());
        prop_assert_eq!(a.len(), b.len(), "different state parts");
        for ((name, a), (_, b)) in a.iter().zip(b.iter()) {
            close(name, a, b, tol)?;
        }
        Ok(())
    }
}

fn time_major<F: Scalar>(a: Array3<F>, batch_first: bool) -> Array3<F> {
    if batch_first {
        a.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
    } else {
        a
    }
}

/// The cell's own `unroll` (its whole-sequence path) on the case.
///
/// # Errors
/// Fails the case when the cell rejects it.
pub fn run_cell<Fam: CellFamily, F: Scalar>(case: &Case) -> Result<Outcome, TestCaseError> {
    let cell = Fam::build::<F>(&case.params()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let x = case.input::<F>();
    let out = cell
        .unroll(x.view(), Some(&case.state()), &case.opts())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let trace = out.trace.ok_or_else(|| TestCaseError::fail("no trace"))?;
    Ok(Outcome::new(
        time_major(out.output, case.batch_first),
        &out.state,
        trace,
    ))
}

/// The default stepwise path on the case.
///
/// # Errors
/// Fails the case when the cell cannot be built.
pub fn run_stepwise<Fam: CellFamily, F: Scalar>(case: &Case) -> Result<Outcome, TestCaseError> {
    let cell = Fam::build::<F>(&case.params()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (t, b) = case.tb();
    let h = cell.hidden_size();
    let x = case.x.mapv(F::of);
    let mut state: StateOf<Fam, F> = case.state();
    let mut output = Array3::zeros((t, b, cell.output_size()));
    let mut trace = Trace::zeros(t, b, cell.gate_count(), h);
    unroll::stepwise(
        &cell,
        x.view(),
        &mut state,
        output.view_mut(),
        &case.opts(),
        Some(&mut trace),
        &mut Workspace::new(),
    );
    Ok(Outcome::new(output, &state, trace))
}

/// The family's plain reference on the case, row by row.
pub fn run_reference<Fam: CellFamily>(case: &Case) -> Outcome {
    let (t, b) = case.tb();
    let h = case.hidden();
    let g = Fam::GATE_RANGES.len();
    let mut output = Array3::zeros((t, b, h));
    let mut gates = Array4::zeros((t, b, g, h));
    let mut cells = Array3::zeros((t, b, h));
    let mut finals = case.state0.clone();
    for row in 0..b {
        let len = case.lengths.as_ref().map_or(t, |l| l[row]);
        let mut st: Vec<Vec<f64>> = case.state0.iter().map(|p| p.row(row).to_vec()).collect();
        for k in 0..len {
            let tt = if case.reverse { len - 1 - k } else { k };
            let x = case.x.slice(s![tt, row, ..]).to_vec();
            let r = Fam::reference_step(&case.params, &x, &st);
            let last = r.state.len() - 1;
            for j in 0..h {
                output[[tt, row, j]] = r.state[0][j];
                cells[[tt, row, j]] = r.state[last][j];
                for (gi, block) in r.gates.iter().enumerate() {
                    gates[[tt, row, gi, j]] = block[j];
                }
            }
            st = r.state;
        }
        for (part, v) in finals.iter_mut().zip(st) {
            part.row_mut(row).assign(&ndarray::Array1::from(v));
        }
    }
    Outcome {
        output,
        state: finals,
        trace: Trace { gates, cell: cells },
    }
}

fn fail(e: LstmError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

mod bounds;
mod case;
mod grads;
mod paths;
mod plain;

pub use bounds::*;
pub use case::*;
pub use grads::*;
pub use paths::*;
pub use plain::PlainCell;

/// The input as a time-major view, for tests that build their own.
pub fn time_major_view(x: &Array3<f64>) -> ArrayView3<'_, f64> {
    x.view()
}

/// Generates one `#[test]` per shared check for a [`CellFamily`].
#[macro_export]
macro_rules! cell_suite {
    ($family:ty) => {
        $crate::cell_suite!(@tests $family;
            sequence_equals_stepwise => check_sequence_equals_stepwise,
            matches_reference => check_matches_reference,
            production_path_matches_reference => check_production_path_matches_reference,
            step_equals_unroll => check_step_equals_unroll,
            chunked_equals_whole => check_chunked_equals_whole,
            rows_independent => check_rows_independent,
            empty_sequence => check_empty_sequence,
            ranges => check_ranges,
            finite_at_extremes => check_finite_at_extremes,
            f32_close_to_f64 => check_f32_close_to_f64,
            layouts_agree => check_layouts_agree,
            reverse_is_flipped_forward => check_reverse_is_flipped_forward,
            lengths_truncate => check_lengths_truncate,
            errors => check_errors,
            non_finite_inputs => check_non_finite_inputs,
            gradients_match_finite_differences => check_gradients_match_finite_differences,
            f32_gradients_close_to_f64 => check_f32_gradients_close_to_f64,
            forward_kept_equals_unroll => check_forward_kept_equals_unroll,
        );
    };
    (@tests $family:ty; $($name:ident => $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::dev::$check::<$family>();
            }
        )*
    };
}
