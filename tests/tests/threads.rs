//! Threads change where the work runs, never the result: the batch split of
//! `unroll_into_threads` and the parallel directions of the stack against one thread, and the
//! rule that small work stays on one thread.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::init::SplitMix64;
use lstm_core::ndarray::{Array2, Array3};
use lstm_core::unroll::{self, MIN_PARALLEL_WORK, useful_threads};
use lstm_core::{RecurrentCell, SeqOptions, Workspace};
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

#[test]
fn batch_split_matches_one_thread() {
    let mut rng = SplitMix64::new(7);
    let stack = LstmStack::<f32>::random(32, 64, 1, 1, &mut rng).unwrap();
    let cell = &stack.layers()[0][0];
    let (t, b) = (40, 9);
    assert!(unroll::sequence_work(cell, t, b) >= 3 * MIN_PARALLEL_WORK);
    let x: Array3<f32> = rng.uniform_array((t, b, 32), 1.0);
    let opts = SeqOptions::default();
    let mut results: Vec<(Array3<f32>, Array2<f32>, Array2<f32>)> = Vec::new();
    for threads in [1, 2, 3] {
        let mut out = Array3::zeros((t, b, 64));
        let mut ws = Workspace::new();
        let mut state = cell.zero_state(b);
        // Twice: the second call reuses the per-thread workspaces.
        for _ in 0..2 {
            state = cell.zero_state(b);
            unroll::unroll_into_threads(
                cell,
                x.view(),
                &mut state,
                out.view_mut(),
                &opts,
                threads,
                &mut ws,
            )
            .unwrap();
        }
        results.push((out, state.h().to_owned(), state.c().to_owned()));
    }
    let (out1, h1, c1) = &results[0];
    assert!(
        out1.iter().all(|v| v.is_finite()) && max_diff(out1, &Array3::zeros(out1.dim())) > 0.01
    );
    for (out, h, c) in &results[1..] {
        assert!(
            max_diff(out1, out) < 1e-6,
            "outputs differ by {}",
            max_diff(out1, out)
        );
        assert!(
            max_diff(h1, h) < 1e-6 && max_diff(c1, c) < 1e-6,
            "final states differ"
        );
    }
}

#[test]
fn parallel_directions_match_one_thread() {
    let mut rng = SplitMix64::new(8);
    let stack = LstmStack::<f32>::random(16, 64, 2, 2, &mut rng).unwrap();
    let x: Array3<f32> = rng.uniform_array((50, 4, 16), 1.0);
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
