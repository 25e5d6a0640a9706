//! The one generic unroller: runs any [`RecurrentCell`] over a sequence.
//!
//! [`stepwise`] is the reference path every cell gets by default. [`drive`] is the schedule it
//! and the faster whole-sequence paths share: it maps each step to each sample's time index
//! (forward, reverse, variable lengths), holds finished samples' state, and writes the outputs
//! and the trace.

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, s};

use crate::{
    CellState, Direction, Layout, LstmError, RecurrentCell, Result, Scalar, SeqOptions, Trace,
    Workspace,
};

/// Marks a batch row that has no valid step at the current position.
pub const INACTIVE: usize = usize::MAX;

/// `(T, B)` of a 3-D input shape in the given layout (0 for missing axes).
pub fn dims(shape: &[usize], layout: Layout) -> (usize, usize) {
    let a = shape.first().copied().unwrap_or(0);
    let b = shape.get(1).copied().unwrap_or(0);
    match layout {
        Layout::TimeMajor => (a, b),
        Layout::BatchFirst => (b, a),
    }
}

/// Checks that `shape` is a 3-D sequence of `input` wide vectors in `layout`; returns `(T, B)`.
///
/// # Errors
/// [`LstmError::Shape`] saying which layout and width were expected.
pub fn check_input(shape: &[usize], input: usize, layout: Layout) -> Result<(usize, usize)> {
    if shape.len() != 3 || shape[2] != input {
        let want = match layout {
            Layout::TimeMajor => format!("[T, B, {input}] (time-major)"),
            Layout::BatchFirst => format!("[B, T, {input}] (batch-first)"),
        };
        return Err(LstmError::shape("input sequence", want, shape));
    }
    Ok(dims(shape, layout))
}

/// Validates a sequence input, the state and the lengths for `cell`; returns `(T, B)`.
///
/// # Errors
/// [`LstmError::Shape`] for a wrong input or state shape, [`LstmError::Invalid`] for lengths.
pub fn check_sequence<F: Scalar, C: RecurrentCell<F> + ?Sized>(
    cell: &C,
    shape: &[usize],
    state: &C::State,
    opts: &SeqOptions<'_>,
) -> Result<(usize, usize)> {
    let (t, b) = check_input(shape, cell.input_size(), opts.layout)?;
    state.check(b, cell.output_size(), cell.hidden_size())?;
    if let Some(lengths) = opts.lengths {
        check_lengths(lengths, b, t)?;
    }
    Ok((t, b))
}

/// Checks that there are `batch` lengths, each at most `steps`.
///
/// # Errors
/// [`LstmError::Invalid`] naming the first bad entry.
pub fn check_lengths(lengths: &[usize], batch: usize, steps: usize) -> Result<()> {
    if lengths.len() != batch {
        return Err(LstmError::invalid(
            "sequence lengths",
            format!(
                "expected one length per batch row ({batch}), got {}",
                lengths.len()
            ),
        ));
    }
    if let Some((b, &l)) = lengths.iter().enumerate().find(|&(_, &l)| l > steps) {
        return Err(LstmError::invalid(
            "sequence lengths",
            format!("length {l} of batch row {b} exceeds the sequence length {steps}"),
        ));
    }
    Ok(())
}

/// The default whole-sequence path: one [`RecurrentCell::step_unchecked`] per time step.
///
/// Shapes are trusted (see [`RecurrentCell::sequence_unchecked`]).
///
/// # Panics
/// When the shapes break that contract (the validated entry points never do).
pub fn stepwise<F: Scalar, C: RecurrentCell<F> + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    state: &mut C::State,
    output: ArrayViewMut3<'_, F>,
    opts: &SeqOptions<'_>,
    trace: Option<&mut Trace<F>>,
    ws: &mut Workspace<F>,
) {
    let (b, i) = (input.len_of(Axis(1)), input.len_of(Axis(2)));
    drive(
        input.len_of(Axis(0)),
        cell.gate_count(),
        cell.hidden_size(),
        opts,
        state,
        output,
        trace,
        ws,
        b * i,
        |times, state, z, xbuf, ws| {
            let mut x = ArrayViewMut2::from_shape((b, i), xbuf).expect("buffer sized B*I");
            for (row, &t) in times.iter().enumerate() {
                if t != INACTIVE {
                    x.row_mut(row).assign(&input.slice(s![t, row, ..]));
                }
            }
            cell.step_unchecked(x.view(), state, z, ws);
        },
    );
}

/// The shared schedule of a sequence run.
///
/// For each step it fills `times[b]` with the time index sample `b` reads (or [`INACTIVE`]) and
/// calls `step(times, state, gates [B, G*H], scratch, ws)` for `G = gates` blocks of `hidden`,
/// which must write the gate activations and update the state of every row (rows that are
/// inactive are restored afterwards). `scratch` has `scratch_len` elements for the caller's own
/// use. Then it writes each active row's `h` (part 0 of the state) to `output[t, b]` and, when
/// tracing, the gates and the state's last part to the trace.
///
/// # Panics
/// When `output`, `trace` or `opts.lengths` do not fit `steps` and the state's batch (the
/// validated entry points never pass such arguments).
#[allow(clippy::too_many_arguments)]
pub fn drive<F: Scalar, S: CellState<F>>(
    steps: usize,
    gates: usize,
    hidden: usize,
    opts: &SeqOptions<'_>,
    state: &mut S,
    mut output: ArrayViewMut3<'_, F>,
    mut trace: Option<&mut Trace<F>>,
    ws: &mut Workspace<F>,
    scratch_len: usize,
    mut step: impl FnMut(&[usize], &mut S, ArrayViewMut2<'_, F>, &mut [F], &mut Workspace<F>),
) {
    let batch = state.batch();
    let h = hidden;
    let last = S::PARTS - 1;
    let width: usize = (0..S::PARTS).map(|k| state.part(k).ncols()).sum();
    let needs_mask = opts.lengths.is_some_and(|l| l.iter().any(|&l| l < steps));
    let save = if needs_mask { batch * width } else { 0 };
    let ([zbuf, saved, scratch], times, ws) =
        ws.split([batch * gates * h, save, scratch_len], batch);
    let len_of = |b: usize| opts.lengths.map_or(steps, |l| l[b]);
    let max_len = (0..batch).map(len_of).max().unwrap_or(0);
    for k in 0..max_len {
        let mut any_inactive = false;
        for (b, slot) in times.iter_mut().enumerate() {
            let len = len_of(b);
            *slot = if k >= len {
                any_inactive = true;
                INACTIVE
            } else {
                match opts.direction {
                    Direction::Forward => k,
                    Direction::Reverse => len - 1 - k,
                }
            };
        }
        if any_inactive {
            let mut at = 0;
            for part in 0..S::PARTS {
                let p = state.part(part);
                let n = p.len();
                crate::copy_rows(p, &mut saved[at..at + n]);
                at += n;
            }
        }
        let z =
            ArrayViewMut2::from_shape((batch, gates * h), &mut *zbuf).expect("buffer sized B*G*H");
        step(times, state, z, scratch, ws);
        if any_inactive {
            let mut at = 0;
            for part in 0..S::PARTS {
                let mut p = state.part_mut(part);
                let w = p.ncols();
                for (b, &t) in times.iter().enumerate() {
                    if t == INACTIVE {
                        p.row_mut(b)
                            .as_slice_mut()
                            .expect("standard layout")
                            .copy_from_slice(&saved[at + b * w..at + (b + 1) * w]);
                    }
                }
                at += batch * w;
            }
        }
        let z = ArrayView2::from_shape((batch, gates * h), &*zbuf).expect("buffer sized B*G*H");
        let hv = state.part(0);
        for (b, &t) in times.iter().enumerate() {
            if t == INACTIVE {
                continue;
            }
            output.slice_mut(s![t, b, ..]).assign(&hv.row(b));
            if let Some(tr) = trace.as_deref_mut() {
                let mut g = tr.gates.slice_mut(s![t, b, .., ..]);
                for (gate, mut dst) in g.outer_iter_mut().enumerate() {
                    dst.assign(&z.slice(s![b, gate * h..(gate + 1) * h]));
                }
                tr.cell
                    .slice_mut(s![t, b, ..])
                    .assign(&state.part(last).row(b));
            }
        }
    }
}
