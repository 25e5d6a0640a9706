//! The gradient checks of the suite: [`crate::backward`] through the cell's
//! [`Backward`](crate::Backward) against central finite differences of the forward run in
//! `f64` (parameters, input and initial state), and `f32` gradients against `f64`.

use ndarray::{Array3, ArrayD};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{Case, CellFamily, StateOf, fail, run_on, sized_cases};
use ndarray::Dimension;

use crate::{Backward, CellState, RecurrentCell, Scalar};

/// A fixed, irregular weighting of the outputs and final state that defines the loss
/// `L = sum(Y * DY) + sum(final * DF)`.
fn weights(n: usize, phase: f64) -> impl Iterator<Item = f64> {
    (0..n).map(move |k| (1.3 * k as f64 + phase).sin())
}

/// The loss's gradients with respect to the outputs and the final state, for a case.
fn loss_grads<F: Scalar, S: CellState<F>>(out_shape: &[usize], final_: &S) -> (Array3<F>, S) {
    let n: usize = out_shape.iter().product();
    let dy = Array3::from_shape_vec(
        (out_shape[0], out_shape[1], out_shape[2]),
        weights(n, 0.7).map(F::of).collect(),
    )
    .expect("sized");
    let mut df = final_.clone();
    for k in 0..S::PARTS {
        let mut p = df.part_mut(k);
        let w: Vec<F> = weights(p.len(), 0.3 + k as f64).map(F::of).collect();
        p.iter_mut().zip(w).for_each(|(d, v)| *d = v);
    }
    (dy, df)
}

/// The loss of the forward run (the production path: no trace) for parameters `params`.
fn loss<Fam: CellFamily>(
    params: &[ArrayD<f64>],
    x: &Array3<f64>,
    s0: &StateOf<Fam, f64>,
    case: &Case,
    dy: &Array3<f64>,
    df: &StateOf<Fam, f64>,
) -> Result<f64, TestCaseError> {
    let cell = Fam::build::<f64>(params).map_err(fail)?;
    let mut opts = case.opts();
    opts.trace = false;
    let out = cell.unroll(x.view(), Some(s0), &opts).map_err(fail)?;
    let mut l: f64 = out.output.iter().zip(dy).map(|(a, b)| a * b).sum();
    for k in 0..StateOf::<Fam, f64>::PARTS {
        l += out
            .state
            .part(k)
            .iter()
            .zip(df.part(k))
            .map(|(a, b)| a * b)
            .sum::<f64>();
    }
    Ok(l)
}

/// Central difference of `f` along one coordinate.
fn central(
    eps: f64,
    mut f: impl FnMut(f64) -> Result<f64, TestCaseError>,
) -> Result<f64, TestCaseError> {
    Ok((f(eps)? - f(-eps)?) / (2.0 * eps))
}

fn agree(what: &str, analytic: f64, numeric: f64) -> Result<(), TestCaseError> {
    prop_assert!(
        (analytic - numeric).abs() <= 1e-6 * (1.0 + numeric.abs()),
        "{what}: backward gives {analytic}, finite differences {numeric}"
    );
    Ok(())
}

/// `backward` equals central finite differences of the forward run, in `f64`, for every
/// parameter, every input value and every value of the initial state; with lengths, reverse
/// runs and both layouts. The parameter gradients come from
/// [`Backward::grad_tensors`], which must list the parameters in the order and shapes of
/// [`CellFamily::param_shapes`].
pub fn check_gradients_match_finite_differences<Fam: CellFamily>() {
    let strategy = sized_cases::<Fam>(1.0, [1..3, 0..5, 1..4, 1..4]);
    run_on("gradients ~ finite differences", strategy, 4, |case| {
        let eps = 1e-6;
        let cell = Fam::build::<f64>(&case.params).map_err(fail)?;
        let x = case.input::<f64>();
        let s0: StateOf<Fam, f64> = case.state();
        let mut opts = case.opts();
        opts.trace = false;
        let out = cell.unroll(x.view(), Some(&s0), &opts).map_err(fail)?;
        let (dy, df) = loss_grads(out.output.shape(), &out.state);
        let g = crate::backward::backward(&cell, x.view(), Some(&s0), &opts, dy.view(), Some(&df))
            .map_err(fail)?;
        let tensors = cell.grad_tensors(&g.params);
        prop_assert_eq!(
            tensors.len(),
            case.params.len(),
            "one gradient per parameter"
        );
        for (k, (name, gt)) in tensors.iter().enumerate() {
            prop_assert_eq!(
                gt.shape(),
                case.params[k].shape(),
                "gradient {} shape",
                name
            );
            for (idx, &a) in gt.indexed_iter() {
                let n = central(eps, |e| {
                    let mut p = case.params.clone();
                    p[k][&idx] += e;
                    loss::<Fam>(&p, &x, &s0, case, &dy, &df)
                })?;
                agree(&format!("parameter {name}{:?}", idx.slice()), a, n)?;
            }
        }
        for (idx, &a) in g.input.indexed_iter() {
            let n = central(eps, |e| {
                let mut xp = x.clone();
                xp[idx] += e;
                loss::<Fam>(&case.params, &xp, &s0, case, &dy, &df)
            })?;
            agree(&format!("input {idx:?}"), a, n)?;
        }
        for part in 0..StateOf::<Fam, f64>::PARTS {
            for (idx, &a) in g.initial.part(part).indexed_iter() {
                let n = central(eps, |e| {
                    let mut sp = s0.clone();
                    sp.part_mut(part)[idx] += e;
                    loss::<Fam>(&case.params, &x, &sp, case, &dy, &df)
                })?;
                agree(&format!("initial state part {part} {idx:?}"), a, n)?;
            }
        }
        Ok(())
    });
}

/// `f32` gradients are within `1e-4` of the `f64` ones, relative to each tensor's largest
/// value (at least 1).
pub fn check_f32_gradients_close_to_f64<Fam: CellFamily>() {
    let strategy = sized_cases::<Fam>(1.0, [1..4, 0..8, 1..6, 1..6]);
    run_on("f32 gradients ~ f64", strategy, 2, |case| {
        fn grads<Fam: CellFamily, F: Scalar>(
            case: &Case,
        ) -> Result<Vec<(String, ArrayD<f64>)>, TestCaseError> {
            let cell = Fam::build::<F>(&case.params::<F>()).map_err(fail)?;
            let x = case.input::<F>();
            let s0: StateOf<Fam, F> = case.state();
            let mut opts = case.opts();
            opts.trace = false;
            let out = cell.unroll(x.view(), Some(&s0), &opts).map_err(fail)?;
            let (dy, df) = loss_grads(out.output.shape(), &out.state);
            let g =
                crate::backward::backward(&cell, x.view(), Some(&s0), &opts, dy.view(), Some(&df))
                    .map_err(fail)?;
            let mut all: Vec<(String, ArrayD<f64>)> = cell
                .grad_tensors(&g.params)
                .into_iter()
                .map(|(n, t)| (n.to_string(), t.mapv(|v| v.f64())))
                .collect();
            all.push(("input".into(), g.input.mapv(|v| v.f64()).into_dyn()));
            for k in 0..StateOf::<Fam, F>::PARTS {
                let p = g.initial.part(k).mapv(|v| v.f64()).into_dyn();
                all.push((format!("initial part {k}"), p));
            }
            Ok(all)
        }
        let lo = grads::<Fam, f32>(case)?;
        let hi = grads::<Fam, f64>(case)?;
        for ((name, a), (_, b)) in lo.iter().zip(&hi) {
            let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(b)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            prop_assert!(
                worst <= 1e-4 * scale,
                "{name}: f32 differs by {worst} (scale {scale})"
            );
        }
        Ok(())
    });
}

/// The two halves of a backward run ([`Backward::sequence_forward_kept`], then
/// [`Backward::sequence_backward_kept`]): the forward half's output and final state are the
/// unroller's, and the backward half gives what [`crate::backward::backward`] gives, with
/// the forward half's workspace kept across another run in between.
pub fn check_forward_kept_equals_unroll<Fam: CellFamily>() {
    use crate::{Layout, Workspace};
    let strategy = sized_cases::<Fam>(1.0, [1..4, 0..6, 1..5, 1..5]);
    run_on("forward kept ~ unroll", strategy, 8, |case| {
        let cell = Fam::build::<f64>(&case.params).map_err(fail)?;
        let x = case.input::<f64>();
        let s0: StateOf<Fam, f64> = case.state();
        let mut opts = case.opts();
        opts.trace = false;
        let out = cell.unroll(x.view(), Some(&s0), &opts).map_err(fail)?;
        let tm = |a: &Array3<f64>| match opts.layout {
            Layout::TimeMajor => a.clone(),
            Layout::BatchFirst => a.view().permuted_axes([1, 0, 2]).to_owned(),
        };
        let (xt, yt) = (tm(&x), tm(&out.output));
        let mut kept_opts = opts;
        kept_opts.layout = Layout::TimeMajor;
        let mut ws = Workspace::new();
        let mut y = Array3::zeros(yt.raw_dim());
        let mut state = s0.clone();
        cell.sequence_forward_kept(xt.view(), &kept_opts, y.view_mut(), &mut state, &mut ws);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
        for (a, b) in y.iter().zip(&yt) {
            prop_assert!(close(*a, *b), "output: kept {a}, unroll {b}");
        }
        for k in 0..StateOf::<Fam, f64>::PARTS {
            for (a, b) in state.part(k).iter().zip(out.state.part(k)) {
                prop_assert!(close(*a, *b), "final state part {k}: kept {a}, unroll {b}");
            }
        }
        // Another run on another workspace does not disturb what the first one kept.
        let _ = cell.unroll(x.view(), None, &opts).map_err(fail)?;
        let (dy, df) = loss_grads(yt.shape(), &out.state);
        let mut d = df.clone();
        let mut dx = Array3::zeros(xt.raw_dim());
        let mut grad = cell.zero_grad();
        cell.sequence_backward_kept(
            xt.view(),
            &s0,
            &kept_opts,
            dy.view(),
            &mut d,
            dx.view_mut(),
            &mut grad,
            &mut ws,
        );
        let whole = crate::backward::backward(
            &cell,
            xt.view(),
            Some(&s0),
            &kept_opts,
            dy.view(),
            Some(&df),
        )
        .map_err(fail)?;
        prop_assert_eq!(&dx, &whole.input, "input gradient");
        for ((name, a), (_, b)) in cell
            .grad_tensors(&grad)
            .iter()
            .zip(cell.grad_tensors(&whole.params).iter())
        {
            prop_assert_eq!(a, b, "gradient of {}", name);
        }
        for k in 0..StateOf::<Fam, f64>::PARTS {
            prop_assert_eq!(d.part(k), whole.initial.part(k), "initial state part {}", k);
        }
        Ok(())
    });
}
