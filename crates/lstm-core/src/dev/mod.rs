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
    collection::vec,
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

use crate::{
    Layout, LstmError, LstmState, RecurrentCell, Scalar, SeqOptions, Trace, Workspace, unroll,
};

/// One step of a plain reference: new `h`, new `c`, and the gate activations i, f, g, o.
#[derive(Clone, Debug, PartialEq)]
pub struct RefStep {
    /// `h_t`.
    pub h: Vec<f64>,
    /// `c_t`.
    pub c: Vec<f64>,
    /// Activations of i, f, g, o.
    pub gates: [Vec<f64>; 4],
}

/// A cell variant as the suite sees it. Its cells have `P = H`.
pub trait CellFamily {
    /// The cell type at each precision: an LSTM, whose state is `(h, c)`.
    type Cell<F: Scalar>: RecurrentCell<F, State = LstmState<F>>;

    /// Whether the variant guarantees `|h| <= 1`.
    const BOUNDED_H: bool = true;

    /// Shapes of the raw parameter tensors for input width `i` and hidden width `h`.
    fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>>;

    /// Builds the cell from raw parameters of [`param_shapes`](Self::param_shapes).
    ///
    /// # Errors
    /// Whatever the variant's constructor returns for bad parameters.
    fn build<F: Scalar>(params: &[ArrayD<F>]) -> crate::Result<Self::Cell<F>>;

    /// A plain, obviously correct single-row step, written independently of the cell.
    fn reference_step(params: &[ArrayD<f64>], x: &[f64], h: &[f64], c: &[f64]) -> RefStep;
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

/// A random test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Raw parameters.
    pub params: Vec<ArrayD<f64>>,
    /// Input `[T, B, I]`.
    pub x: Array3<f64>,
    /// Initial `h [B, H]`.
    pub h0: Array2<f64>,
    /// Initial `c [B, H]`.
    pub c0: Array2<f64>,
    /// Per-sample lengths.
    pub lengths: Option<Vec<usize>>,
    /// Read in reverse.
    pub reverse: bool,
    /// Present the input batch-first.
    pub batch_first: bool,
}

impl Case {
    /// `(T, B)`.
    pub fn tb(&self) -> (usize, usize) {
        (self.x.shape()[0], self.x.shape()[1])
    }

    /// The options of the case, trace on.
    pub fn opts(&self) -> SeqOptions<'_> {
        SeqOptions {
            layout: if self.batch_first {
                Layout::BatchFirst
            } else {
                Layout::TimeMajor
            },
            direction: if self.reverse {
                crate::Direction::Reverse
            } else {
                crate::Direction::Forward
            },
            lengths: self.lengths.as_deref(),
            trace: true,
        }
    }

    /// The input in the case's layout, at precision `F`.
    pub fn input<F: Scalar>(&self) -> Array3<F> {
        let x = self.x.mapv(F::of);
        if self.batch_first {
            x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            x
        }
    }

    /// The initial state at precision `F`.
    pub fn state<F: Scalar>(&self) -> LstmState<F> {
        LstmState::new(self.h0.mapv(F::of), self.c0.mapv(F::of)).expect("same batch")
    }

    /// The parameters at precision `F`.
    pub fn params<F: Scalar>(&self) -> Vec<ArrayD<F>> {
        self.params.iter().map(|p| p.mapv(F::of)).collect()
    }
}

/// Random cases for family `Fam` with inputs in `[-scale, scale]`: small shapes (`B < 4`,
/// `T < 12`, `I, H < 9`).
pub fn cases<Fam: CellFamily>(scale: f64) -> impl Strategy<Value = Case> {
    sized_cases::<Fam>(scale, [1..4, 0..12, 1..9, 1..9])
}

/// Random cases with `B`, `T`, `I` and `H` drawn from `dims`.
pub fn sized_cases<Fam: CellFamily>(
    scale: f64,
    dims: [std::ops::Range<usize>; 4],
) -> impl Strategy<Value = Case> {
    let [b, t, i, h] = dims;
    (b, t, i, h)
        .prop_flat_map(move |(b, t, i, h)| {
            let shapes = Fam::param_shapes(i, h);
            let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
            (
                Just((b, t, i, h, shapes)),
                vec(-1.0..1.0f64, n),
                vec(-scale..scale, t * b * i),
                vec(-1.0..1.0f64, 2 * b * h),
                proptest::option::of(vec(0..=t, b)),
                any::<(bool, bool)>(),
                // Which halves of the initial state are zero (the sequence paths skip the
                // first recurrent product when the recurrent input starts at zero).
                any::<(bool, bool)>(),
            )
        })
        .prop_map(
            |((b, t, i, h, shapes), flat, x, mut st, lengths, (reverse, batch_first), zero)| {
                if zero.0 {
                    st[..b * h].fill(0.0);
                }
                if zero.1 {
                    st[b * h..].fill(0.0);
                }
                let mut at = 0;
                let params = shapes
                    .iter()
                    .map(|s| {
                        let n: usize = s.iter().product();
                        at += n;
                        ArrayD::from_shape_vec(IxDyn(s), flat[at - n..at].to_vec()).expect("sized")
                    })
                    .collect();
                Case {
                    params,
                    x: Array3::from_shape_vec((t, b, i), x).expect("sized"),
                    h0: Array2::from_shape_vec((b, h), st[..b * h].to_vec()).expect("sized"),
                    c0: Array2::from_shape_vec((b, h), st[b * h..].to_vec()).expect("sized"),
                    lengths,
                    reverse,
                    batch_first,
                }
            },
        )
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

/// Everything a run produces, time-major.
#[derive(Clone, Debug)]
pub struct Outcome<F> {
    /// `[T, B, P]`.
    pub output: Array3<F>,
    /// Final state.
    pub state: LstmState<F>,
    /// Trace.
    pub trace: Trace<F>,
}

impl<F: Scalar> Outcome<F> {
    fn parts(&self) -> [(&'static str, ArrayD<F>); 5] {
        [
            ("output", self.output.clone().into_dyn()),
            ("final h", self.state.h().to_owned().into_dyn()),
            ("final c", self.state.c().to_owned().into_dyn()),
            ("trace gates", self.trace.gates.clone().into_dyn()),
            ("trace cell", self.trace.cell.clone().into_dyn()),
        ]
    }

    /// Checks two outcomes agree within `tol`.
    ///
    /// # Errors
    /// The first part that differs.
    pub fn assert_close(&self, other: &Self, tol: f64) -> Result<(), TestCaseError> {
        for ((name, a), (_, b)) in self.parts().iter().zip(other.parts().iter()) {
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
pub fn run_cell<Fam: CellFamily, F: Scalar>(case: &Case) -> Result<Outcome<F>, TestCaseError> {
    let cell = Fam::build::<F>(&case.params()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let x = case.input::<F>();
    let out = cell
        .unroll(x.view(), Some(&case.state()), &case.opts())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(Outcome {
        output: time_major(out.output, case.batch_first),
        state: out.state,
        trace: out.trace.ok_or_else(|| TestCaseError::fail("no trace"))?,
    })
}

/// The default stepwise path on the case.
///
/// # Errors
/// Fails the case when the cell cannot be built.
pub fn run_stepwise<Fam: CellFamily, F: Scalar>(case: &Case) -> Result<Outcome<F>, TestCaseError> {
    let cell = Fam::build::<F>(&case.params()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (t, b) = case.tb();
    let h = cell.hidden_size();
    let x = case.x.mapv(F::of);
    let mut state = case.state::<F>();
    let mut output = Array3::zeros((t, b, cell.output_size()));
    let mut trace = Trace::zeros(t, b, 4, h);
    unroll::stepwise(
        &cell,
        x.view(),
        &mut state,
        output.view_mut(),
        &case.opts(),
        Some(&mut trace),
        &mut Workspace::new(),
    );
    Ok(Outcome {
        output,
        state,
        trace,
    })
}

/// The family's plain reference on the case, row by row.
pub fn run_reference<Fam: CellFamily>(case: &Case) -> Outcome<f64> {
    let (t, b) = case.tb();
    let h = case.h0.ncols();
    let mut output = Array3::zeros((t, b, h));
    let mut gates = Array4::zeros((t, b, 4, h));
    let mut cells = Array3::zeros((t, b, h));
    let mut hn = case.h0.clone();
    let mut cn = case.c0.clone();
    for row in 0..b {
        let len = case.lengths.as_ref().map_or(t, |l| l[row]);
        let mut hv = case.h0.row(row).to_vec();
        let mut cv = case.c0.row(row).to_vec();
        for k in 0..len {
            let tt = if case.reverse { len - 1 - k } else { k };
            let x = case.x.slice(s![tt, row, ..]).to_vec();
            let r = Fam::reference_step(&case.params, &x, &hv, &cv);
            for j in 0..h {
                output[[tt, row, j]] = r.h[j];
                cells[[tt, row, j]] = r.c[j];
                for g in 0..4 {
                    gates[[tt, row, g, j]] = r.gates[g][j];
                }
            }
            hv = r.h;
            cv = r.c;
        }
        hn.row_mut(row).assign(&ndarray::Array1::from(hv));
        cn.row_mut(row).assign(&ndarray::Array1::from(cv));
    }
    Outcome {
        output,
        state: LstmState::new(hn, cn).expect("same batch"),
        trace: Trace { gates, cell: cells },
    }
}

fn fail(e: LstmError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

mod bounds;
mod paths;
mod plain;

pub use bounds::*;
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
