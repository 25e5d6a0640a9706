//! Checks that different paths give the same numbers: the cell's own paths, the stepwise
//! default, the plain reference, layouts, directions, lengths, chunks and rows.

use super::*;

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
        let (i, h) = (case.x.shape()[2], case.hidden());
        let k = 1.0 / ((i + h) as f64).sqrt();
        let case = Case {
            params: case.params.iter().map(|p| p * k).collect(),
            ..case.clone()
        };
        let want = run_reference::<Fam>(&case);
        let out = want.output.clone().into_dyn();
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
        close_states(
            "f64 final state",
            &widen_state(&hi.state),
            &want.state,
            1e-12,
        )?;
        let lo_out = time_major(lo.output, case.batch_first)
            .mapv(f64::from)
            .into_dyn();
        close("f32 output", &lo_out, &out, 1e-4)?;
        close_states(
            "f32 final state",
            &widen_state(&lo.state),
            &want.state,
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
        let mut state: StateOf<Fam, f64> = case.state();
        for (t, xt) in case.x.outer_iter().enumerate() {
            let gates = cell.step(xt, &mut state).map_err(fail)?;
            close(
                "step h",
                &state.part(0).to_owned().into_dyn(),
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
        close_states(
            "step final state",
            &widen_state(&state),
            &whole.state,
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
        close_states(
            "chunked final state",
            &widen_state(&second.state),
            &whole.state,
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
            let alone = case.row(row);
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
            close_states(
                "row final state",
                &one.state,
                &state_rows(&whole.state, row..row + 1),
                1e-12,
            )?;
        }
        Ok(())
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
        close_states("reverse final state", &rev.state, &fwd.state, 1e-12)
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
            let alone = case.row(row);
            let cut = Case {
                x: alone.x.slice(s![..len, .., ..]).to_owned(),
                lengths: None,
                ..alone
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
            close_states(
                "truncated final state",
                &one.state,
                &state_rows(&out.state, row..row + 1),
                1e-12,
            )?;
        }
        Ok(())
    });
}
