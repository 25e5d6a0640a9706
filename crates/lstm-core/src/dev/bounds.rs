//! Checks of what values and errors a cell may give: empty sequences, value ranges, extreme
//! and non-finite inputs, f32 against f64, and every kind of bad argument.

use super::*;

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
        prop_assert_eq!(out.output.shape(), &[0, b, case.hidden()]);
        prop_assert_eq!(&out.state, &empty.state0);
        Ok(())
    });
}

/// Each gate block lies in its range ([`CellFamily::GATE_RANGES`]), `|h| <= 1` (when the family
/// says so), and the state's last part (an LSTM's `c`) grows by at most 1 a step.
pub fn check_ranges<Fam: CellFamily>() {
    run::<Fam>("value ranges", 5.0, |case| {
        let case = Case {
            lengths: None,
            reverse: false,
            ..case.clone()
        };
        let out = run_cell::<Fam, f64>(&case)?;
        let g = &out.trace.gates;
        for (gate, &(lo, hi)) in Fam::GATE_RANGES.iter().enumerate() {
            prop_assert!(
                g.index_axis(Axis(2), gate)
                    .iter()
                    .all(|&v| (lo..=hi).contains(&v)),
                "gate block {} out of [{}, {}]",
                gate,
                lo,
                hi
            );
        }
        if Fam::BOUNDED_H {
            prop_assert!(out.output.iter().all(|&v| v.abs() <= 1.0), "|h| > 1");
        }
        let (t, _) = case.tb();
        for k in 0..t {
            let prev = if k == 0 {
                case.state0[case.state0.len() - 1].view()
            } else {
                out.trace.cell.index_axis(Axis(0), k - 1)
            };
            let now = out.trace.cell.index_axis(Axis(0), k);
            prop_assert!(
                now.iter()
                    .zip(prev.iter())
                    .all(|(&c, &p)| c.abs() <= p.abs() + 1.0 + 1e-12),
                "the state's last part grew by more than 1 in a step"
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
        lo.assert_close(&hi, 1e-4)
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
        let bad_state = StateOf::<Fam, f64>::zeros(b + 1, h, h);
        prop_assert!(
            matches!(
                cell.unroll(x, Some(&bad_state), &opts),
                Err(LstmError::Shape { .. })
            ),
            "expected a Shape error"
        );
        let narrow = StateOf::<Fam, f64>::zeros(b, h + 1, h);
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
        let mut gates = Array2::<f64>::zeros((b, cell.gate_count() * h + 1));
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
