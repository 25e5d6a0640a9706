//! Every way the engine's work is shared between threads: the batch split of
//! [`unroll_into_threads`] (any cell), the unit split of the engine cells
//! ([`crate::engine`], `units`), and the two directions of a layer ([`both`]), all on the
//! workers of [`lstm_kernels::run_threads`], which stay awake between calls.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use lstm_core::backward::{Gradients, backward_in, backward_params_in};
use lstm_core::ndarray::{ArrayView3, ArrayViewMut3, Axis, s};
use lstm_core::unroll::{check_sequence, dims};
use lstm_core::{
    Backward, CellState, Direction, Layout, LstmError, RecurrentCell, Result, Scalar, SeqOptions,
    Workspace,
};

use crate::sync::{FailOnPanic, Padded, lock, spin_until};

pub use lstm_kernels::{run_threads, set_worker_spin};

/// Multiply-adds of work below which a second thread costs more than it saves. A call after a
/// pause has to wake the other core: 30-100 us on the machine this was first measured on,
/// 0.5-1.5 ms (median of spawn to start, p10 57 us, p90 1.5 ms) on a second machine of the same
/// kind whose idle virtual cores are slow to wake. There, with threads spawned per call, 9.8
/// million multiply-adds per thread took 1.2-4x the one-thread time on two threads, 19.7
/// million 0.95-1.17x, 39 million 0.75-0.89x (`crossover` example, 2026-12-02). The workers of
/// [`lstm_kernels::run_threads`] stay awake between calls that follow each other, but not
/// across pauses.
pub const MIN_PARALLEL_WORK: usize = 20_000_000;

/// The threads worth using for `rows` independent rows of work of `work` multiply-adds in all:
/// at most `threads` and `rows`, and only as many as get [`MIN_PARALLEL_WORK`] each (at least
/// one).
pub fn useful_threads(threads: usize, rows: usize, work: usize) -> usize {
    threads.min(rows).min(work / MIN_PARALLEL_WORK).max(1)
}

/// The multiply-adds of the matrix products of running `cell` over `steps x batch` rows.
pub fn sequence_work<F: Scalar, C: RecurrentCell<F> + ?Sized>(
    cell: &C,
    steps: usize,
    batch: usize,
) -> usize {
    steps.saturating_mul(batch).saturating_mul(cell.step_work())
}

/// [`RecurrentCell::unroll_into`] on `threads` threads. It uses only the threads that pay
/// ([`useful_threads`]); with one it is a plain call. No trace is recorded.
///
/// Where every row steps at every position and the cell has a path that shares each step's
/// work ([`RecurrentCell::sequence_split_unchecked`]; the engine cells split the hidden units
/// when the weights outgrow L2 or the batch is small), that path runs. Otherwise the batch is
/// cut into groups of contiguous rows and the sequence into runs of steps, and the threads take
/// (group, run) claims as they go, so a core that runs slow for a while does less of the work
/// (see `batch_split` in the source). Both give the one-thread result bit for bit, whatever
/// the thread count: the unit split sums every column in the one-thread order, and the batch
/// split uses at most one thread per two rows, so that no group is a single row (which would
/// take the matrix-vector kernel, whose order of summation differs).
///
/// # Errors
/// As [`RecurrentCell::unroll_into`]; [`LstmError::WorkerPanicked`] when a worker thread panicked.
pub fn unroll_into_threads<F: Scalar, C: RecurrentCell<F> + Sync + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    state: &mut C::State,
    mut output: ArrayViewMut3<'_, F>,
    opts: &SeqOptions<'_>,
    threads: usize,
    ws: &mut Workspace<F>,
) -> Result<()> {
    let (steps, b) = check_sequence(cell, input.shape(), state, opts)?;
    let opts = SeqOptions {
        trace: false,
        ..*opts
    };
    let work = sequence_work(cell, steps, b);
    crate::check_shape("output", output.shape(), &{
        let mut s = input.shape().to_vec();
        s[2] = cell.output_size();
        s
    })?;
    let unmasked = opts.lengths.is_none_or(|l| l.iter().all(|&l| l == steps));
    let shared = useful_threads(threads, usize::MAX, work);
    if unmasked && shared > 1 {
        let (x, out) = match opts.layout {
            Layout::TimeMajor => (input, output.view_mut()),
            Layout::BatchFirst => (
                input.permuted_axes([1, 0, 2]),
                output.view_mut().permuted_axes([1, 0, 2]),
            ),
        };
        if let Some(done) = cell.sequence_split_unchecked(x, state, out, opts.direction, shared, ws)
        {
            return done;
        }
    }
    // At most one thread per two rows, so that every group of the batch split has two rows or
    // more: a group of one row would take the matrix-vector kernel, which sums in another
    // order, and the result would depend on the thread count.
    let threads = useful_threads(threads, b / 2, work);
    if threads == 1 {
        return cell.unroll_into(input, state, output, &opts, None, ws);
    }
    batch_split(cell, input, state, output, &opts, threads, ws)
}

/// Rows per group of the batch split, at most: one register tile of the products. A group of 11
/// rows ran as fast per row as a block of 16 or 32 (batch-mid's shape, 2026-12-02); groups of 8
/// and fewer ran 3-9% slower per row, which is why a batch of 24 rows on two threads stays in
/// two groups rather than three.
pub const GROUP_ROWS: usize = 12;

/// Claims (one group of rows over one run of steps) the batch split cuts a sequence into, per
/// thread: enough that a thread slowed down for a while hands work to the others, and that the
/// threads finish within a small fraction of the whole of each other.
pub const CLAIMS_PER_THREAD: usize = 32;

/// Multiply-adds a claim of the batch split holds at the least, so that the cost of a call
/// (some microseconds) stays small beside its arithmetic.
pub const MIN_CLAIM_WORK: usize = 1 << 20;

/// The batch split of [`unroll_into_threads`]: the rows in groups of at most [`GROUP_ROWS`] (at
/// least one group per thread), the steps in runs, and each thread taking the next claim
/// (group, run) as it finishes the last, in reading order. A group's run
/// waits for the same group's previous run; every other claim is free, so a thread that runs
/// slow for a while (two cores of a shared machine rarely run at the same speed) takes fewer
/// claims instead of holding the others up at the end.
fn batch_split<F: Scalar, C: RecurrentCell<F> + Sync + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    state: &mut C::State,
    output: ArrayViewMut3<'_, F>,
    opts: &SeqOptions<'_>,
    threads: usize,
    ws: &mut Workspace<F>,
) -> Result<()> {
    let (t, b) = dims(input.shape(), opts.layout);
    let (time, batch) = match opts.layout {
        Layout::TimeMajor => (Axis(0), Axis(1)),
        Layout::BatchFirst => (Axis(1), Axis(0)),
    };
    let groups = b.div_ceil(GROUP_ROWS).max(threads);
    let runs = (CLAIMS_PER_THREAD * threads)
        .div_ceil(groups)
        .min(sequence_work(cell, t, b) / (groups * MIN_CLAIM_WORK))
        .clamp(1, t.max(1));
    let rows: Vec<usize> = (0..=groups).map(|k| k * b / groups).collect();
    // Run `j` in reading order is piece `piece(j)` of the steps in time order, which covers
    // steps `k t / runs .. (k + 1) t / runs` for piece `k`.
    let piece = |j: usize| match opts.direction {
        Direction::Forward => j,
        Direction::Reverse => runs - 1 - j,
    };
    let span = |j: usize| piece(j) * t / runs..(piece(j) + 1) * t / runs;
    // Every claim's part of the output (claim `j * groups + g`), taken by the thread that runs it.
    let mut by_piece = Vec::with_capacity(runs * groups);
    let mut rest = output;
    for k in 1..=runs {
        let (mut run, tail) = rest.split_at(time, k * t / runs - (k - 1) * t / runs);
        rest = tail;
        for g in 1..=groups {
            let (head, tail) = run.split_at(batch, rows[g] - rows[g - 1]);
            by_piece.push(Some(head));
            run = tail;
        }
    }
    let parts: Vec<_> = (0..runs * groups)
        .map(|claim| Mutex::new(by_piece[piece(claim / groups) * groups + claim % groups].take()))
        .collect();
    let states: Vec<_> = (0..groups)
        .map(|g| Mutex::new(state.rows(rows[g]..rows[g + 1])))
        .collect();
    let shared = Claims {
        next: Padded(AtomicUsize::new(0)),
        done: (0..groups).map(|_| Padded(AtomicUsize::new(0))).collect(),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let worker = |ws: &mut Workspace<F>| {
        let _fail = FailOnPanic(&shared.failed);
        let mut lengths = Vec::new();
        loop {
            let claim = shared.next.fetch_add(1, Ordering::Relaxed);
            if claim >= runs * groups || !shared.wait(claim / groups, claim % groups) {
                return;
            }
            let (j, g) = (claim / groups, claim % groups);
            let (r, st) = (rows[g]..rows[g + 1], span(j));
            let x = input.slice_axis(time, st.clone().into());
            let x = x.slice_axis(batch, r.clone().into());
            let o = SeqOptions {
                lengths: opts.lengths.map(|l| {
                    lengths.clear();
                    lengths.extend(l[r].iter().map(|&l| l.clamp(st.start, st.end) - st.start));
                    &lengths[..]
                }),
                ..*opts
            };
            let Some(out) = lock(&parts[claim]).take() else {
                continue; // never: each claim is taken once
            };
            let done = cell.unroll_into(x, &mut *lock(&states[g]), out, &o, None, ws);
            if let Err(e) = done {
                *lock(&shared.error) = Some(e);
                shared.failed.store(true, Ordering::Release);
                return;
            }
            shared.done[g].store(j + 1, Ordering::Release);
        }
    };
    // Each thread keeps its own workspace in `ws` across calls.
    let wss: Vec<_> = ws.per_thread(threads).iter_mut().map(Mutex::new).collect();
    let joined = lstm_kernels::run_threads(threads, |k| worker(&mut lock(&wss[k])));
    if let Some(e) = lock(&shared.error).take() {
        return Err(e);
    }
    if !joined || shared.failed.load(Ordering::Acquire) {
        return Err(LstmError::WorkerPanicked {
            during: "the batch split".into(),
        });
    }
    for (g, part) in states.into_iter().enumerate() {
        let part = part.into_inner().unwrap_or_else(PoisonError::into_inner);
        state.assign_rows(rows[g], &part);
    }
    Ok(())
}

/// What the threads of the batch split share.
struct Claims {
    /// The next claim to take.
    next: Padded<AtomicUsize>,
    /// Per group, the runs finished.
    done: Vec<Padded<AtomicUsize>>,
    /// A claim failed or a thread panicked: the others stop.
    failed: AtomicBool,
    /// The first error a claim returned.
    error: Mutex<Option<LstmError>>,
}

impl Claims {
    /// Waits until group `g` has finished run `j - 1`; `false` when a claim failed meanwhile.
    fn wait(&self, j: usize, g: usize) -> bool {
        spin_until(&self.failed, || self.done[g].load(Ordering::Acquire) >= j)
    }
}

/// Runs `job(0, a)` and `job(1, b)` for `[a, b] = inputs` at once, on two workers (the two
/// directions of a bidirectional layer); returns their results in order. A job that panics
/// gives [`LstmError::Invalid`] instead of its result.
pub fn both<A: Send, R: Send>(
    inputs: [A; 2],
    job: impl Fn(usize, A) -> Result<R> + Sync,
) -> [Result<R>; 2] {
    let [a, b] = inputs;
    let jobs = [Mutex::new(Some(a)), Mutex::new(Some(b))];
    let done: [Mutex<Option<Result<R>>>; 2] = [Mutex::new(None), Mutex::new(None)];
    run_threads(2, |k| {
        if let Some(input) = lock(&jobs[k]).take() {
            let result = job(k, input);
            *lock(&done[k]) = Some(result);
        }
    });
    done.map(|slot| {
        slot.into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(|| {
                Err(LstmError::WorkerPanicked {
                    during: "one direction of a layer".into(),
                })
            })
    })
}

/// [`lstm_core::backward::backward_in`] (or, without `want_input`,
/// [`lstm_core::backward::backward_params_in`]) on up to two threads: the batch cut in two
/// halves, each differentiated on its own worker with its own workspace, and the parameters'
/// gradients summed. It splits only when each half gets at least two rows and enough work to
/// pay for a second thread ([`useful_threads`]); otherwise, and for arguments that do not fit
/// (whose error the one-thread call reports), it is the one-thread call on `ws[0]`.
///
/// The gradients with respect to the input and the initial state equal the one-thread ones bit
/// for bit (each row's arithmetic is the same). The parameters' gradients are the same sums
/// over the batch in another order, so they may differ from the one-thread ones in the last
/// bits (a relative difference of the order of the precision's epsilon times the batch).
///
/// # Errors
/// As [`lstm_core::backward::backward`]; [`LstmError::WorkerPanicked`] when a worker panicked.
#[allow(clippy::too_many_arguments)]
pub fn backward_in_threads<F: Scalar, C: Backward<F> + Sync + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    initial: Option<&C::State>,
    opts: &SeqOptions<'_>,
    d_output: ArrayView3<'_, F>,
    d_final: Option<&C::State>,
    want_input: bool,
    threads: usize,
    ws: &mut [Workspace<F>; 2],
) -> Result<Gradients<F, C::State, C::Grad>> {
    let run = if want_input {
        backward_in::<F, C>
    } else {
        backward_params_in::<F, C>
    };
    let (t, b) = dims(input.shape(), opts.layout);
    let fits = opts.lengths.is_none_or(|l| l.len() == b)
        && dims(d_output.shape(), opts.layout) == (t, b)
        && initial.is_none_or(|s| s.batch() == b)
        && d_final.is_none_or(|s| s.batch() == b);
    let work = sequence_work(cell, t, b).saturating_mul(3);
    if !fits || b < 4 || useful_threads(threads, 2, work) < 2 {
        return run(cell, input, initial, opts, d_output, d_final, &mut ws[0]);
    }
    let axis = match opts.layout {
        Layout::TimeMajor => Axis(1),
        Layout::BatchFirst => Axis(0),
    };
    let (p, h) = (cell.output_size(), cell.hidden_size());
    let rows_of = |s: &C::State, r: &std::ops::Range<usize>| {
        let mut out = C::State::zeros(r.len(), p, h);
        for part in 0..C::State::PARTS {
            out.part_mut(part)
                .assign(&s.part(part).slice_axis(Axis(0), r.clone().into()));
        }
        out
    };
    let [w0, w1] = ws;
    let half = b / 2;
    let [g0, g1] = both([(0..half, w0), (half..b, w1)], |_, (r, ws)| {
        let sub = SeqOptions {
            lengths: opts.lengths.map(|l| &l[r.clone()]),
            ..*opts
        };
        let init = initial.map(|s| rows_of(s, &r));
        let fin = d_final.map(|s| rows_of(s, &r));
        run(
            cell,
            input.slice_axis(axis, r.clone().into()),
            init.as_ref(),
            &sub,
            d_output.slice_axis(axis, r.clone().into()),
            fin.as_ref(),
            ws,
        )
    });
    let (mut g0, g1) = (g0?, g1?);
    g0.params += &g1.params;
    let input_grad = if want_input {
        lstm_core::ndarray::concatenate(axis, &[g0.input.view(), g1.input.view()])
            .map_err(|e| LstmError::invalid("input gradient", e))?
    } else {
        g0.input
    };
    let mut initial_grad = C::State::zeros(b, p, h);
    for part in 0..C::State::PARTS {
        let mut dst = initial_grad.part_mut(part);
        dst.slice_mut(lstm_core::ndarray::s![..half, ..])
            .assign(&g0.initial.part(part));
        dst.slice_mut(lstm_core::ndarray::s![half.., ..])
            .assign(&g1.initial.part(part));
    }
    Ok(Gradients {
        input: input_grad,
        initial: initial_grad,
        params: g0.params,
    })
}

/// Whether the kept halves of a backward run ([`forward_kept_in_threads`],
/// [`backward_kept_in_threads`]) of `cell` over `steps x batch` rows split the batch in two on
/// `threads` threads: when each half gets at least two rows and the forward and backward work
/// pays for a second thread ([`useful_threads`]).
pub fn kept_split<F: Scalar, C: RecurrentCell<F> + ?Sized>(
    cell: &C,
    steps: usize,
    batch: usize,
    threads: usize,
) -> bool {
    let work = sequence_work(cell, steps, batch).saturating_mul(3);
    batch >= 4 && useful_threads(threads, 2, work) >= 2
}

/// [`Backward::sequence_forward_kept`] (time-major, shapes trusted) with the batch cut in two
/// halves when `split` ([`kept_split`]), each on its own worker with its own workspace
/// (`ws[0]`, `ws[1]`); otherwise one call on `ws[0]`. [`backward_kept_in_threads`] with the
/// same `split` and workspaces is its backward half. Each row's arithmetic is the one-thread
/// call's, so the output and state are the same bit for bit.
///
/// # Errors
/// [`LstmError::WorkerPanicked`] when a worker panicked.
pub fn forward_kept_in_threads<F: Scalar, C: Backward<F> + Sync + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    opts: &SeqOptions<'_>,
    mut output: ArrayViewMut3<'_, F>,
    state: &mut C::State,
    split: bool,
    ws: &mut [Workspace<F>; 2],
) -> Result<()> {
    let b = input.dim().1;
    if !split {
        cell.sequence_forward_kept(input, opts, output, state, &mut ws[0]);
        return Ok(());
    }
    let half = b / 2;
    let (o0, o1) = output.multi_slice_mut((s![.., ..half, ..], s![.., half.., ..]));
    let [w0, w1] = ws;
    let halves = [
        (0..half, o0, w0, state.rows(0..half)),
        (half..b, o1, w1, state.rows(half..b)),
    ];
    let [s0, s1] = both(halves, |_, (r, out, ws, mut st)| {
        let sub = SeqOptions {
            lengths: opts.lengths.map(|l| &l[r.clone()]),
            ..*opts
        };
        cell.sequence_forward_kept(input.slice_axis(Axis(1), r.into()), &sub, out, &mut st, ws);
        Ok(st)
    });
    state.assign_rows(0, &s0?);
    state.assign_rows(half, &s1?);
    Ok(())
}

/// [`Backward::sequence_backward_kept`] after [`forward_kept_in_threads`] with the same
/// `split` and workspaces: the halves of the batch on two workers, the second half's
/// parameter gradient added to `grad` after the first's. The input and initial-state
/// gradients equal the one-thread ones bit for bit; the parameters' are the same sums in
/// another order (see [`backward_in_threads`]).
///
/// # Errors
/// [`LstmError::WorkerPanicked`] when a worker panicked.
#[allow(clippy::too_many_arguments)]
pub fn backward_kept_in_threads<F: Scalar, C: Backward<F> + Sync + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    initial: &C::State,
    opts: &SeqOptions<'_>,
    d_output: ArrayView3<'_, F>,
    d: &mut C::State,
    mut d_input: ArrayViewMut3<'_, F>,
    grad: &mut C::Grad,
    split: bool,
    ws: &mut [Workspace<F>; 2],
) -> Result<()> {
    let b = input.dim().1;
    if !split {
        cell.sequence_backward_kept(input, initial, opts, d_output, d, d_input, grad, &mut ws[0]);
        return Ok(());
    }
    let half = b / 2;
    let (dx0, dx1) = d_input.multi_slice_mut((s![.., ..half, ..], s![.., half.., ..]));
    let [w0, w1] = ws;
    let mut second = cell.zero_grad();
    let halves = [
        (0..half, dx0, w0, d.rows(0..half), &mut *grad),
        (half..b, dx1, w1, d.rows(half..b), &mut second),
    ];
    let [d0, d1] = both(halves, |_, (r, dx, ws, mut dr, g)| {
        let sub = SeqOptions {
            lengths: opts.lengths.map(|l| &l[r.clone()]),
            ..*opts
        };
        let x = input.slice_axis(Axis(1), r.clone().into());
        let dy = d_output.slice_axis(Axis(1), r.clone().into());
        let init = initial.rows(r);
        cell.sequence_backward_kept(x, &init, &sub, dy, &mut dr, dx, g, ws);
        Ok(dr)
    });
    d.assign_rows(0, &d0?);
    d.assign_rows(half, &d1?);
    *grad += &second;
    Ok(())
}
