//! Threads change where the work runs, never the result: the batch split and the unit split of
//! `unroll_into_threads` and the parallel directions of the stack against one thread, and the
//! rules that choose between them and keep small work on one thread.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::ndarray::{Array2, Array3};
use lstm_core::{RecurrentCell, SeqOptions, Workspace};
use lstm_engine::init::SplitMix64;
use lstm_engine::threads::{self as unroll, MIN_PARALLEL_WORK, useful_threads};
use lstm_layers::{LstmStack, StackOptions};

fn max_diff<D: lstm_core::ndarray::Dimension>(
    a: &lstm_core::ndarray::Array<f32, D>,
    b: &lstm_core::ndarray::Array<f32, D>,
) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn small_work_stays_on_one_thread() {
    assert_eq!(useful_threads(2, 64, MIN_PARALLEL_WORK - 1), 1);
    assert_eq!(useful_threads(2, 64, 2 * MIN_PARALLEL_WORK), 2);
    assert_eq!(useful_threads(8, 3, 100 * MIN_PARALLEL_WORK), 3);
    assert_eq!(useful_threads(2, 1, 100 * MIN_PARALLEL_WORK), 1);
    assert_eq!(useful_threads(0, 0, 0), 1);
}

/// The batch split: groups of rows claimed run by run. 30 rows make three groups, more than two
/// threads, so claims move between threads and wait for their group's previous run. Every row
/// keeps at least two rows' company, so the result is the one-thread result bit for bit, in
/// every layout and direction, with lengths and a carried-in state.
#[test]
fn batch_split_matches_one_thread() {
    let mut rng = SplitMix64::new(7);
    let stack = LstmStack::<f32>::random(32, 64, 1, 1, &mut rng).unwrap();
    let cell = &stack.layers()[0][0];
    let (t, b) = (100, 30);
    assert!(unroll::sequence_work(cell, t, b) >= 3 * MIN_PARALLEL_WORK);
    assert!(b.div_ceil(unroll::GROUP_ROWS) > 2);
    assert_eq!(
        cell.unit_split_threads(2, b),
        0,
        "the batch split, not the unit split"
    );
    let x: Array3<f32> = rng.uniform_array((t, b, 32), 1.0);
    let xb = x.view().permuted_axes([1, 0, 2]).to_owned();
    let h0: Array2<f32> = rng.uniform_array((b, 64), 0.5);
    let c0: Array2<f32> = rng.uniform_array((b, 64), 0.5);
    let lengths: Vec<usize> = (0..b).map(|r| [t, 0, 1, t / 3, t - 7][r % 5]).collect();
    let variants = [
        SeqOptions::default(),
        SeqOptions::default().reverse(),
        SeqOptions::default().lengths(&lengths),
        SeqOptions::default()
            .lengths(&lengths)
            .reverse()
            .batch_first(),
    ];
    for opts in &variants {
        let batch_first = opts.layout == lstm_core::Layout::BatchFirst;
        let input = if batch_first { xb.view() } else { x.view() };
        let mut results: Vec<(Array3<f32>, Array2<f32>, Array2<f32>)> = Vec::new();
        for threads in [1, 2, 3] {
            // NaN where nothing is written: every position must be (zero where masked).
            let (d0, d1, _) = input.dim();
            let mut out = Array3::from_elem((d0, d1, 64), f32::NAN);
            let mut ws = Workspace::new();
            let mut state = cell.zero_state(b);
            // Twice: the second call reuses the per-thread workspaces.
            for _ in 0..2 {
                state = lstm_core::LstmState::new(h0.clone(), c0.clone()).unwrap();
                unroll::unroll_into_threads(
                    cell,
                    input,
                    &mut state,
                    out.view_mut(),
                    opts,
                    threads,
                    &mut ws,
                )
                .unwrap();
            }
            results.push((out, state.h().to_owned(), state.c().to_owned()));
        }
        let (out1, h1, c1) = &results[0];
        assert!(out1.iter().all(|v| v.is_finite()));
        assert!(max_diff(out1, &Array3::zeros(out1.dim())) > 0.01);
        for (k, (out, h, c)) in results.iter().enumerate().skip(1) {
            let what = format!("{opts:?} on {} threads", k + 1);
            assert!(
                out == out1,
                "outputs differ by {} ({what})",
                max_diff(out1, out)
            );
            assert!(h == h1 && c == c1, "final states differ ({what})");
        }
    }
}

#[test]
fn parallel_directions_match_one_thread() {
    let mut rng = SplitMix64::new(8);
    let stack = LstmStack::<f32>::random(16, 64, 2, 2, &mut rng).unwrap();
    let x: Array3<f32> = rng.uniform_array((300, 4, 16), 1.0);
    // Enough work per direction, in the first layer too, that the directions run at once.
    assert!(unroll::sequence_work(&stack.layers()[0][0], 300, 4) >= MIN_PARALLEL_WORK);
    let run = |threads| {
        let opts = StackOptions {
            threads,
            ..StackOptions::default()
        };
        stack.forward(x.view(), None, None, &opts).unwrap()
    };
    let one = run(1);
    for threads in [2, 4] {
        let many = run(threads);
        assert!(max_diff(&one.output, &many.output) < 1e-6);
        assert!(max_diff(&one.h_n, &many.h_n) < 1e-6);
        assert!(max_diff(&one.c_n, &many.c_n) < 1e-6);
    }
}

/// A unit split: `threads` threads each take a slice of every gate's units. Its result must be
/// the one-thread result bit for bit (each column sums in the same order), for both element
/// types, peepholes, a clip, both layouts and both directions.
fn unit_split_matches_one_thread<F: lstm_core::Scalar>() {
    use lstm_core::ndarray::Array1;
    use lstm_core::{Direction, Layout};
    use lstm_engine::{EngineSpec, LstmEngine, UNIT_SPLIT_MIN_WEIGHTS};
    let (i, h) = (16, 512);
    let mut rng = SplitMix64::new(9);
    let scale = 1.0 / (h as f64).sqrt();
    let wx: Array2<F> = rng.uniform_array((4 * h, i), scale);
    let wr: Array2<F> = rng.uniform_array((4 * h, h), scale);
    let bias: Array1<F> = rng.uniform_array(4 * h, scale);
    let peep: Array2<F> = rng.uniform_array((3, h), scale);
    let mut spec = EngineSpec::standard(wx.view(), wr.view());
    spec.biases = vec![bias.view()];
    spec.peephole = Some(peep.view());
    spec.gates.clip = Some(F::of(3.0));
    let cell = LstmEngine::new(spec).unwrap();
    assert!(4 * h * h * size_of::<F>() >= UNIT_SPLIT_MIN_WEIGHTS);
    assert_eq!(cell.unit_split_threads(1, 5), 0);
    assert_eq!(cell.unit_split_threads(2, 5), 2);
    assert_eq!(cell.unit_split_threads(3, 5), 2);
    assert_eq!(cell.unit_split_threads(4, 5), 4);
    // Weights past L2: whatever the batch.
    assert_eq!(cell.unit_split_threads(2, 1000), 2);
    let t = 80;
    // The third case starts from `h = 0`, where every path skips the first recurrent product;
    // the last has several chunks of steps (each slice's input projection is redone per chunk)
    // and more batch rows than the others.
    for (b, layout, direction, zero_h0) in [
        (1, Layout::TimeMajor, Direction::Forward, false),
        (5, Layout::BatchFirst, Direction::Reverse, false),
        (5, Layout::TimeMajor, Direction::Forward, true),
        (40, Layout::TimeMajor, Direction::Reverse, false),
    ] {
        let shape = match layout {
            Layout::TimeMajor => (t, b, i),
            Layout::BatchFirst => (b, t, i),
        };
        let x: Array3<F> = rng.uniform_array(shape, 1.0);
        let h0: Array2<F> = rng.uniform_array((b, h), if zero_h0 { 0.0 } else { 0.5 });
        let c0: Array2<F> = rng.uniform_array((b, h), 0.5);
        let opts = SeqOptions {
            layout,
            direction,
            ..SeqOptions::default()
        };
        assert!(unroll::sequence_work(&cell, t, b) >= 4 * MIN_PARALLEL_WORK);
        let mut ws = Workspace::new();
        let run = |threads: usize, ws: &mut Workspace<F>| {
            let mut out = Array3::zeros((shape.0, shape.1, h));
            let mut state = lstm_core::LstmState::new(h0.clone(), c0.clone()).unwrap();
            unroll::unroll_into_threads(
                &cell,
                x.view(),
                &mut state,
                out.view_mut(),
                &opts,
                threads,
                ws,
            )
            .unwrap();
            (out, state)
        };
        let (out1, s1) = run(1, &mut ws);
        assert!(out1.iter().all(|v| v.is_finite()));
        for threads in [2, 4, 2] {
            let (out, s) = run(threads, &mut ws);
            assert!(out == out1, "outputs differ on {threads} threads (B {b})");
            assert!(s.h() == s1.h() && s.c() == s1.c(), "final states differ");
        }
    }
}

#[test]
fn unit_split_matches_one_thread_f32() {
    unit_split_matches_one_thread::<f32>();
}

#[test]
fn unit_split_matches_one_thread_f64() {
    unit_split_matches_one_thread::<f64>();
}

#[test]
fn unit_split_is_chosen_where_it_pays_and_applies() {
    use lstm_engine::{
        EngineSpec, LstmEngine, UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS, UNIT_SPLIT_MAX_ROWS,
        UNIT_SPLIT_MIN_STEP_WORK,
    };
    let mut rng = SplitMix64::new(10);
    // batch-mid's 1 MiB of weights fit in L2: the batch split serves a batch of 32, but with
    // at most `UNIT_SPLIT_MAX_ROWS` rows per thread the units are split.
    let mid = LstmStack::<f32>::random(128, 256, 1, 1, &mut rng).unwrap();
    let mid = &mid.layers()[0][0];
    assert_eq!(mid.unit_split_threads(2, 32), 0);
    assert_eq!(mid.unit_split_threads(2, 2 * UNIT_SPLIT_MAX_ROWS + 1), 0);
    assert_eq!(mid.unit_split_threads(2, 2 * UNIT_SPLIT_MAX_ROWS), 2);
    assert_eq!(mid.unit_split_threads(2, 1), 2);
    // 256 KiB of weights: reading them on both threads costs less than the barrier, so even a
    // few rows per thread are split by the batch, though each thread's step is large enough.
    let light = LstmStack::<f32>::random(64, 128, 1, 1, &mut rng).unwrap();
    const { assert!(4 * 128 * 128 * 4 < UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS) };
    const { assert!(8 * 4 * 128 * (64 + 128) / 2 >= UNIT_SPLIT_MIN_STEP_WORK) };
    assert_eq!(light.layers()[0][0].unit_split_threads(2, 8), 0);
    // A step too small to pay for the barrier (seq-small's shape).
    let small = LstmStack::<f32>::random(32, 64, 1, 1, &mut rng).unwrap();
    const { assert!(4 * 64 * (32 + 64) / 2 < UNIT_SPLIT_MIN_STEP_WORK) };
    assert_eq!(small.layers()[0][0].unit_split_threads(2, 1), 0);
    // Units that do not divide into whole panels per thread.
    let odd = LstmStack::<f32>::random(8, 1000, 1, 1, &mut rng).unwrap();
    assert_eq!(odd.layers()[0][0].unit_split_threads(2, 1), 0);
    // A projection: every unit's `h` feeds the projection, so the units cannot be split.
    let (h, p) = (512, 256);
    let wx: Array2<f32> = rng.uniform_array((4 * h, 64), 0.1);
    let wr: Array2<f32> = rng.uniform_array((4 * h, p), 0.1);
    let proj: Array2<f32> = rng.uniform_array((p, h), 0.1);
    let mut spec = EngineSpec::standard(wx.view(), wr.view());
    spec.projection = Some(proj.view());
    assert_eq!(LstmEngine::new(spec).unwrap().unit_split_threads(2, 1), 0);
}

thread_local! {
    /// Set on the thread that calls `unroll_into_threads` in the failing-worker test.
    static CALLER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Any thread count gives the one-thread result bit for bit on the engine itself, for batches
/// that cannot be cut into groups of two rows for every thread (2, 3, 5) and for many threads
/// on a large batch, with lengths (so that the batch split, not the unit split, runs) in both
/// directions.
#[test]
fn the_thread_count_never_changes_the_result() {
    let mut rng = SplitMix64::new(23);
    let stack = LstmStack::<f32>::random(32, 64, 1, 1, &mut rng).unwrap();
    let cell = &stack.layers()[0][0];
    let t = 900;
    for b in [2, 3, 5, 64] {
        // Enough work for every thread asked for, so only the rows limit them.
        assert!(unroll::sequence_work(cell, t, b) >= 2 * MIN_PARALLEL_WORK * (b / 2).min(40));
        let x: Array3<f32> = rng.uniform_array((t, b, 32), 1.0);
        let lengths: Vec<usize> = (0..b).map(|r| t - (r * 37) % 200).collect();
        for opts in [
            SeqOptions::default().lengths(&lengths),
            SeqOptions::default().lengths(&lengths).reverse(),
        ] {
            let run = |threads: usize| {
                let mut out = Array3::from_elem((t, b, 64), f32::NAN);
                let mut state = cell.zero_state(b);
                unroll::unroll_into_threads(
                    cell,
                    x.view(),
                    &mut state,
                    out.view_mut(),
                    &opts,
                    threads,
                    &mut Workspace::new(),
                )
                .unwrap();
                (out, state)
            };
            let (out1, state1) = run(1);
            for threads in [2, 3, 4, 8, 40] {
                let (out, state) = run(threads);
                assert!(
                    out == out1 && state.h() == state1.h() && state.c() == state1.c(),
                    "B = {b}, {threads} threads: largest difference {}",
                    max_diff(&out, &out1)
                );
            }
        }
    }
}

/// A cell whose arithmetic is cheap but whose size makes the batch split worth its threads:
/// every unit decays its cell state towards the input and mixes it into `h`. With `fail`, it
/// panics on every thread but the caller's (on the batch split's workers).
struct Decay {
    n: usize,
    fail: bool,
}

impl RecurrentCell<f64> for Decay {
    type State = lstm_core::LstmState<f64>;
    fn gate_count(&self) -> usize {
        4
    }
    fn input_size(&self) -> usize {
        self.n
    }
    fn hidden_size(&self) -> usize {
        self.n
    }
    fn step_unchecked(
        &self,
        x: lstm_core::ndarray::ArrayView2<'_, f64>,
        state: &mut lstm_core::LstmState<f64>,
        mut gates: lstm_core::ndarray::ArrayViewMut2<'_, f64>,
        _ws: &mut Workspace<f64>,
    ) {
        assert!(
            !self.fail || CALLER.with(std::cell::Cell::get),
            "a worker fails"
        );
        let (mut h, mut c) = state.parts_mut();
        for ((row, j), &v) in x.indexed_iter() {
            c[[row, j]] = 0.9 * c[[row, j]] + v;
            h[[row, j]] = 0.5 * c[[row, j]].tanh() + 0.25 * h[[row, j]];
        }
        gates.fill(0.0);
    }
}

/// A worker that panics makes the call return an error, without leaving the calling thread
/// waiting for the claims it held.
#[test]
fn a_failing_worker_is_an_error_not_a_hang() {
    let cell = Decay { n: 64, fail: true };
    CALLER.with(|c| c.set(true));
    let (t, b) = (1000, 30);
    assert!(useful_threads(2, b, unroll::sequence_work(&cell, t, b)) == 2);
    let x = Array3::<f64>::zeros((t, b, 64));
    let mut out = Array3::zeros((t, b, 64));
    let mut state = cell.zero_state(b);
    let err = unroll::unroll_into_threads(
        &cell,
        x.view(),
        &mut state,
        out.view_mut(),
        &SeqOptions::default(),
        2,
        &mut Workspace::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, lstm_core::LstmError::WorkerPanicked { .. }),
        "{err}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever the shape, the lengths, the direction and the layout, the claims of the batch
    /// split (groups and runs with remainders, runs waiting for their group) give the
    /// one-thread result exactly.
    #[test]
    fn batch_split_claims_match_one_thread(
        t in 1..60usize,
        b in 2..40usize,
        reverse in proptest::bool::ANY,
        batch_first in proptest::bool::ANY,
        masked in proptest::bool::ANY,
        seed in 0..1000u64,
    ) {
        let cell = Decay { n: 256, fail: false };
        let mut rng = SplitMix64::new(seed);
        let x: Array3<f64> = rng.uniform_array((t, b, 256), 1.0);
        let x = if batch_first { x.permuted_axes([1, 0, 2]).to_owned() } else { x };
        let lengths: Vec<usize> = (0..b).map(|r| (r * 7 + seed as usize) % (t + 1)).collect();
        let mut opts = SeqOptions::default();
        if reverse {
            opts = opts.reverse();
        }
        if batch_first {
            opts = opts.batch_first();
        }
        if masked {
            opts = opts.lengths(&lengths);
        }
        let h0: Array2<f64> = rng.uniform_array((b, 256), 0.5);
        let run = |threads: usize| {
            let mut out = Array3::from_elem(x.dim(), f64::NAN);
            let mut state = lstm_core::LstmState::new(h0.clone(), h0.clone()).unwrap();
            unroll::unroll_into_threads(&cell, x.view(), &mut state, out.view_mut(), &opts, threads, &mut Workspace::new())
                .unwrap();
            (out, state)
        };
        let (out1, state1) = run(1);
        for threads in [2, 3] {
            let (out, state) = run(threads);
            proptest::prop_assert!(out == out1, "outputs differ on {} threads", threads);
            proptest::prop_assert!(state.h() == state1.h() && state.c() == state1.c());
        }
    }
}
