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

/// The cell's whole-sequence path (its override, if any) equals the stepwise default.
pub fn check_sequence_equals_stepwise<Fam: CellFamily>() {
    run::<Fam>("sequence == stepwise", 2.0, |case| {
        run_cell::<Fam, f64>(case)?.assert_close(&run_stepwise::<Fam, f64>(case)?, 1e-12)
    });
}

/// The production path (untraced, as the layer stack and `lstm run` call it: for engine cells the
/// chunked whole-sequence path on the AVX-512 kernels) equals the plain reference, on shapes
/// large enough that the gate blocks span several panels of the products (4H > 32) and that
/// every case takes several chunks of the chunked path (T B 4H above 2^17), on weights scaled by
/// `1/sqrt(I + H)`: f64 within 1e-12, f32 within 1e-4.
pub fn check_production_path_matches_reference<Fam: CellFamily>() {
    // T B 4H >= 60 * 12 * 192, above 2^17 for every case.
    let shapes = sized_cases::<Fam>(2.0, [12..16, 60..90, 1..40, 48..72]);
    run_on("production path == reference", shapes, 2, |case| {
        // Weights scaled as PyTorch initialises them, where rounding errors do not grow from
        // step to step (with weights in [-1, 1] and H near 70 the recurrence is chaotic, and
        // any two roundings drift apart; the small-shape checks cover that regime).
        let (i, h) = (case.x.shape()[2], case.h0.ncols());
        let k = 1.0 / ((i + h) as f64).sqrt();
        let case = Case {
            params: case.params.iter().map(|p| p * k).collect(),
            ..case.clone()
        };
        let want = run_reference::<Fam>(&case);
        let out = want.output.clone().into_dyn();
        let hn = want.state.h().to_owned().into_dyn();
        let cn = want.state.c().to_owned().into_dyn();
        let opts = SeqOptions {
            trace: false,
            ..case.opts()
        };
        let x64 = case.input::<f64>();
        let hi = Fam::build::<f64>(&case.params())
            .and_then(|c| c.unroll(x64.view(), Some(&case.state()), &opts))
            .map_err(fail)?;
        let x32 = case.input::<f32>();
        let lo = Fam::build::<f32>(&case.params())
            .and_then(|c| c.unroll(x32.view(), Some(&case.state()), &opts))
            .map_err(fail)?;
        prop_assert!(hi.trace.is_none() && lo.trace.is_none(), "untraced");
        let hi_out = time_major(hi.output, case.batch_first).into_dyn();
        close("f64 output", &hi_out, &out, 1e-12)?;
        close(
            "f64 final h",
            &hi.state.h().to_owned().into_dyn(),
            &hn,
            1e-12,
        )?;
        close(
            "f64 final c",
            &hi.state.c().to_owned().into_dyn(),
            &cn,
            1e-12,
        )?;
        let lo_out = time_major(lo.output, case.batch_first)
            .mapv(f64::from)
            .into_dyn();
        close("f32 output", &lo_out, &out, 1e-4)?;
        close(
            "f32 final h",
            &lo.state.h().mapv(f64::from).into_dyn(),
            &hn,
            1e-4,
        )?;
        close(
            "f32 final c",
            &lo.state.c().mapv(f64::from).into_dyn(),
            &cn,
            1e-4,
        )
    });
}

/// The cell equals the family's plain reference (f64).
pub fn check_matches_reference<Fam: CellFamily>() {
    run::<Fam>("cell == reference", 2.0, |case| {
        run_cell::<Fam, f64>(case)?.assert_close(&run_reference::<Fam>(case), 1e-12)
    });
}

/// Calling `step` once per time step equals unrolling forward.
pub fn check_step_equals_unroll<Fam: CellFamily>() {
    run::<Fam>("step == unroll", 2.0, |case| {
        let case = Case {
            lengths: None,
            reverse: false,
            batch_first: false,
            ..case.clone()
        };
        let whole = run_cell::<Fam, f64>(&case)?;
        let cell = Fam::build::<f64>(&case.params).map_err(fail)?;
        let mut state = case.state::<f64>();
        for (t, xt) in case.x.outer_iter().enumerate() {
            let gates = cell.step(xt, &mut state).map_err(fail)?;
            close(
                "step h",
                &state.h().to_owned().into_dyn(),
                &whole.output.index_axis(Axis(0), t).to_owned().into_dyn(),
                1e-12,
            )?;
            close(
                "step gates",
                &gates.into_dyn(),
                &whole
                    .trace
                    .gates
                    .index_axis(Axis(0), t)
                    .to_owned()
                    .into_dyn(),
                1e-12,
            )?;
        }
        close(
            "step final c",
            &state.c().to_owned().into_dyn(),
            &whole.state.c().to_owned().into_dyn(),
            1e-12,
        )
    });
}

/// Unrolling in two chunks with the state carried equals unrolling the whole.
pub fn check_chunked_equals_whole<Fam: CellFamily>() {
    run::<Fam>("chunked == whole", 2.0, |case| {
        let case = Case {
            lengths: None,
            reverse: false,
            ..case.clone()
        };
        let (t, _) = case.tb();
        let whole = run_cell::<Fam, f64>(&case)?;
        let cell = Fam::build::<f64>(&case.params).map_err(fail)?;
        let split = t / 2;
        let x = case.x.view();
        let first = cell
            .unroll(
                x.slice(s![..split, .., ..]),
                Some(&case.state()),
                &SeqOptions::default(),
            )
            .map_err(fail)?;
        let second = cell
            .unroll(
                x.slice(s![split.., .., ..]),
                Some(&first.state),
                &SeqOptions::default(),
            )
            .map_err(fail)?;
        let joined = ndarray::concatenate(Axis(0), &[first.output.view(), second.output.view()])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        close(
            "chunked output",
            &joined.into_dyn(),
            &whole.output.into_dyn(),
            1e-12,
        )?;
        close(
            "chunked final h",
            &second.state.h().to_owned().into_dyn(),
            &whole.state.h().to_owned().into_dyn(),
            1e-12,
        )?;
        close(
            "chunked final c",
            &second.state.c().to_owned().into_dyn(),
            &whole.state.c().to_owned().into_dyn(),
            1e-12,
        )
    });
}

/// Each batch row equals that row run alone.
pub fn check_rows_independent<Fam: CellFamily>() {
    run::<Fam>("rows independent", 2.0, |case| {
        let whole = run_cell::<Fam, f64>(case)?;
        let (_, b) = case.tb();
        for row in 0..b {
            let alone = Case {
                x: case.x.slice(s![.., row..row + 1, ..]).to_owned(),
                h0: case.h0.slice(s![row..row + 1, ..]).to_owned(),
                c0: case.c0.slice(s![row..row + 1, ..]).to_owned(),
                lengths: case.lengths.as_ref().map(|l| vec![l[row]]),
                ..case.clone()
            };
            let one = run_cell::<Fam, f64>(&alone)?;
            close(
                "row output",
                &one.output.into_dyn(),
                &whole
                    .output
                    .slice(s![.., row..row + 1, ..])
                    .to_owned()
                    .into_dyn(),
                1e-12,
            )?;
            close(
                "row final c",
                &one.state.c().to_owned().into_dyn(),
                &whole
                    .state
                    .c()
                    .slice(s![row..row + 1, ..])
                    .to_owned()
                    .into_dyn(),
                1e-12,
            )?;
        }
        Ok(())
    });
}

/// An empty sequence returns the initial state and an empty output.
pub fn check_empty_sequence<Fam: CellFamily>() {
    run::<Fam>("empty sequence", 2.0, |case| {
        let (_, b) = case.tb();
        let i = case.x.shape()[2];
        let empty = Case {
            x: Array3::zeros((0, b, i)),
            lengths: case.lengths.as_ref().map(|_| vec![0; b]),
            ..case.clone()
        };
        let out = run_cell::<Fam, f64>(&empty)?;
        prop_assert_eq!(out.output.shape(), &[0, b, case.h0.ncols()]);
        prop_assert_eq!(out.state, empty.state::<f64>());
        Ok(())
    });
}

/// Gates lie in `[0, 1]`, the candidate in `[-1, 1]`, `|h| <= 1` (when the family says so),
/// `|c_t| <= |c_{t-1}| + 1`.
pub fn check_ranges<Fam: CellFamily>() {
    run::<Fam>("value ranges", 5.0, |case| {
        let case = Case {
            lengths: None,
            reverse: false,
            ..case.clone()
        };
        let out = run_cell::<Fam, f64>(&case)?;
        let g = &out.trace.gates;
        for gate in [0, 1, 3] {
            prop_assert!(
                g.index_axis(Axis(2), gate)
                    .iter()
                    .all(|&v| (0.0..=1.0).contains(&v)),
                "gate {} out of [0, 1]",
                gate
            );
        }
        prop_assert!(
            g.index_axis(Axis(2), 2).iter().all(|&v| v.abs() <= 1.0),
            "candidate out of [-1, 1]"
        );
        if Fam::BOUNDED_H {
            prop_assert!(out.output.iter().all(|&v| v.abs() <= 1.0), "|h| > 1");
        }
        let (t, _) = case.tb();
        for k in 0..t {
            let prev = if k == 0 {
                case.c0.view()
            } else {
                out.trace.cell.index_axis(Axis(0), k - 1)
            };
            let now = out.trace.cell.index_axis(Axis(0), k);
            prop_assert!(
                now.iter()
                    .zip(prev.iter())
                    .all(|(&c, &p)| c.abs() <= p.abs() + 1.0 + 1e-12),
                "|c_t| > |c_(t-1)| + 1"
            );
        }
        Ok(())
    });
}

/// Inputs of +-100 give finite outputs.
pub fn check_finite_at_extremes<Fam: CellFamily>() {
    run::<Fam>("finite at +-100", 1.0, |case| {
        let x = case.x.mapv(|v| if v >= 0.0 { 100.0 } else { -100.0 });
        let case = Case { x, ..case.clone() };
        for out in [
            run_cell::<Fam, f64>(&case)?.output.into_dyn(),
            run_cell::<Fam, f32>(&case)?
                .output
                .mapv(f64::from)
                .into_dyn(),
        ] {
            prop_assert!(out.iter().all(|v| v.is_finite()), "non-finite output");
        }
        Ok(())
    });
}

/// `f32` is within `1e-4` of `f64`.
pub fn check_f32_close_to_f64<Fam: CellFamily>() {
    run::<Fam>("f32 ~ f64", 2.0, |case| {
        let lo = run_cell::<Fam, f32>(case)?;
        let hi = run_cell::<Fam, f64>(case)?;
        let lo = Outcome {
            output: lo.output.mapv(f64::from),
            state: LstmState::new(lo.state.h().mapv(f64::from), lo.state.c().mapv(f64::from))
                .map_err(fail)?,
            trace: Trace {
                gates: lo.trace.gates.mapv(f64::from),
                cell: lo.trace.cell.mapv(f64::from),
            },
        };
        lo.assert_close(&hi, 1e-4)
    });
}

/// Batch-first input gives the same numbers as time-major input.
pub fn check_layouts_agree<Fam: CellFamily>() {
    run::<Fam>("batch-first == time-major", 2.0, |case| {
        let a = run_cell::<Fam, f64>(&Case {
            batch_first: false,
            ..case.clone()
        })?;
        let b = run_cell::<Fam, f64>(&Case {
            batch_first: true,
            ..case.clone()
        })?;
        a.assert_close(&b, 1e-12)
    });
}

/// Reverse on full-length input equals forward on the time-reversed input, flipped back.
pub fn check_reverse_is_flipped_forward<Fam: CellFamily>() {
    run::<Fam>("reverse == flipped forward", 2.0, |case| {
        let case = Case {
            lengths: None,
            ..case.clone()
        };
        let rev = run_cell::<Fam, f64>(&Case {
            reverse: true,
            ..case.clone()
        })?;
        let flipped = Case {
            reverse: false,
            x: case.x.slice(s![..;-1, .., ..]).to_owned(),
            ..case.clone()
        };
        let fwd = run_cell::<Fam, f64>(&flipped)?;
        close(
            "reverse output",
            &rev.output.into_dyn(),
            &fwd.output.slice(s![..;-1, .., ..]).to_owned().into_dyn(),
            1e-12,
        )?;
        close(
            "reverse final c",
            &rev.state.c().to_owned().into_dyn(),
            &fwd.state.c().to_owned().into_dyn(),
            1e-12,
        )
    });
}

/// With lengths, outputs past each length are zero and the final state is that of the sample
/// truncated to its length.
pub fn check_lengths_truncate<Fam: CellFamily>() {
    run::<Fam>("lengths", 2.0, |case| {
        let (t, b) = case.tb();
        let lengths: Vec<usize> = case
            .lengths
            .clone()
            .unwrap_or_else(|| (0..b).map(|r| (r * 3) % (t + 1)).collect());
        let case = Case {
            lengths: Some(lengths.clone()),
            ..case.clone()
        };
        let out = run_cell::<Fam, f64>(&case)?;
        for (row, &len) in lengths.iter().enumerate() {
            prop_assert!(
                out.output
                    .slice(s![len.., row, ..])
                    .iter()
                    .all(|&v| v == 0.0),
                "output past length is not zero"
            );
            let cut = Case {
                x: case.x.slice(s![..len, row..row + 1, ..]).to_owned(),
                h0: case.h0.slice(s![row..row + 1, ..]).to_owned(),
                c0: case.c0.slice(s![row..row + 1, ..]).to_owned(),
                lengths: None,
                ..case.clone()
            };
            let one = run_cell::<Fam, f64>(&cut)?;
            close(
                "truncated output",
                &one.output.into_dyn(),
                &out.output
                    .slice(s![..len, row..row + 1, ..])
                    .to_owned()
                    .into_dyn(),
                1e-12,
            )?;
            close(
                "truncated final h",
                &one.state.h().to_owned().into_dyn(),
                &out.state
                    .h()
                    .slice(s![row..row + 1, ..])
                    .to_owned()
                    .into_dyn(),
                1e-12,
            )?;
        }
        Ok(())
    });
}

/// Every entry point rejects bad shapes and bad parameters with an error, never a panic.
pub fn check_errors<Fam: CellFamily>() {
    run::<Fam>("errors", 2.0, |case| {
        let (t, b) = case.tb();
        let cell = Fam::build::<f64>(&case.params).map_err(fail)?;
        let (i, h) = (cell.input_size(), cell.hidden_size());
        let opts = SeqOptions::default();
        let bad_x = Array3::<f64>::zeros((t, b, i + 1));
        prop_assert!(
            matches!(
                cell.unroll(bad_x.view(), None, &opts),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        let x = case.x.view();
        let bad_state = LstmState::<f64>::zeros(b + 1, h, h);
        prop_assert!(
            matches!(
                cell.unroll(x, Some(&bad_state), &opts),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        let narrow = LstmState::<f64>::zeros(b, h + 1, h);
        prop_assert!(
            matches!(
                cell.unroll(x, Some(&narrow), &opts),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        let too_long = vec![t + 1; b];
        prop_assert!(
            matches!(
                cell.unroll(x, None, &opts.lengths(&too_long)),
                Err(LstmError::Invalid { .. })
            ),
            "expected a Invalid error"
        );
        let too_few = vec![0; b + 1];
        prop_assert!(
            matches!(
                cell.unroll(x, None, &opts.lengths(&too_few)),
                Err(LstmError::Invalid { .. })
            ),
            "expected a Invalid error"
        );
        let mut st = cell.zero_state(b);
        let bad_step = Array2::<f64>::zeros((b, i + 2));
        prop_assert!(
            matches!(
                cell.step(bad_step.view(), &mut st),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        let mut gates = Array2::<f64>::zeros((b, 4 * h + 1));
        let x0 = Array2::<f64>::zeros((b, i));
        prop_assert!(
            matches!(
                cell.step_into(x0.view(), &mut st, gates.view_mut(), &mut Workspace::new()),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        let mut out = Array3::<f64>::zeros((t + 1, b, h));
        prop_assert!(
            matches!(
                cell.unroll_into(
                    x,
                    &mut st,
                    out.view_mut(),
                    &opts,
                    None,
                    &mut Workspace::new()
                ),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        // A NaN weight and a parameter of the wrong shape are rejected at construction.
        for k in 0..case.params.len() {
            let mut p = case.params.clone();
            if let Some(v) = p[k].iter_mut().next() {
                *v = f64::NAN;
                prop_assert!(
                    matches!(Fam::build::<f64>(&p), Err(LstmError::NonFinite { .. })),
                    "NaN in parameter {} accepted",
                    k
                );
            }
            let mut p = case.params.clone();
            let mut shape = p[k].shape().to_vec();
            shape[0] += 1;
            p[k] = ArrayD::zeros(IxDyn(&shape));
            prop_assert!(
                Fam::build::<f64>(&p).is_err(),
                "parameter {} of shape {:?} accepted",
                k,
                shape
            );
        }
        prop_assert!(
            Fam::build::<f64>(&case.params[..case.params.len() - 1]).is_err(),
            "missing parameter accepted"
        );
        Ok(())
    });
}

/// Non-finite inputs propagate without a panic.
pub fn check_non_finite_inputs<Fam: CellFamily>() {
    run::<Fam>("non-finite inputs", 2.0, |case| {
        let mut x = case.x.clone();
        if let Some(v) = x.iter_mut().next() {
            *v = f64::NAN;
        }
        let cell = Fam::build::<f64>(&case.params).map_err(fail)?;
        let out = cell
            .unroll(x.view(), None, &SeqOptions::default())
            .map_err(fail)?;
        if !x.is_empty() {
            prop_assert!(
                out.output.index_axis(Axis(0), 0).iter().any(|v| v.is_nan()),
                "NaN input vanished"
            );
        }
        Ok(())
    });
}

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

/// A plain, unoptimised standard LSTM (split weights, loops only): the baseline of the benchmarks
/// and an independent reference.
#[derive(Clone, Debug)]
pub struct PlainCell<F> {
    /// `[4H, I]`.
    pub w: Array2<F>,
    /// `[4H, H]`.
    pub u: Array2<F>,
    /// `[4H]`.
    pub b: ndarray::Array1<F>,
}

impl<F: Scalar> RecurrentCell<F> for PlainCell<F> {
    type State = LstmState<F>;

    fn input_size(&self) -> usize {
        self.w.ncols()
    }

    fn gate_count(&self) -> usize {
        4
    }

    fn hidden_size(&self) -> usize {
        self.u.ncols()
    }

    fn step_unchecked(
        &self,
        x: ndarray::ArrayView2<'_, F>,
        state: &mut LstmState<F>,
        mut gates: ndarray::ArrayViewMut2<'_, F>,
        _ws: &mut Workspace<F>,
    ) {
        let n = self.hidden_size();
        let (mut h, mut c) = state.parts_mut();
        for b in 0..x.nrows() {
            for r in 0..4 * n {
                let mut z = self.b[r];
                for k in 0..x.ncols() {
                    z = z + self.w[[r, k]] * x[[b, k]];
                }
                for k in 0..n {
                    z = z + self.u[[r, k]] * h[[b, k]];
                }
                gates[[b, r]] = if r / n == 2 {
                    z.tanh()
                } else {
                    crate::sigmoid(z)
                };
            }
            for j in 0..n {
                let (i, f, g, o) = (
                    gates[[b, j]],
                    gates[[b, n + j]],
                    gates[[b, 2 * n + j]],
                    gates[[b, 3 * n + j]],
                );
                c[[b, j]] = f * c[[b, j]] + i * g;
                h[[b, j]] = o * c[[b, j]].tanh();
            }
        }
    }
}
