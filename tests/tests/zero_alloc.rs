//! Once running, stepping and unrolling allocate nothing, for small and large batches: a
//! counting global allocator proves it. The fallback kernels agree with the vectorised ones.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lstm_core::ndarray::{Array2, Array3};
use lstm_core::{LstmState, RecurrentCell, SeqOptions, Workspace};
use lstm_engine::init::SplitMix64;
use lstm_peephole::{PeepholeCell, StateGatedCell};
use lstm_split::SplitCell;

struct Counting;

thread_local! {
    /// Allocations made by this thread (tests run on several threads at once).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator, only counting.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Allocations made by `reps` unrolls of `x` after one warm-up, with one workspace throughout.
fn unroll_allocations(
    cell: &dyn RecurrentCell<f32, State = LstmState<f32>>,
    x: &Array3<f32>,
    opts: &SeqOptions<'_>,
    batch: usize,
    output: usize,
    reps: usize,
) -> usize {
    let mut out = Array3::<f32>::zeros((x.shape()[0], x.shape()[1], output));
    let mut state = cell.zero_state(batch);
    let mut ws = Workspace::new();
    cell.unroll_into(x.view(), &mut state, out.view_mut(), opts, None, &mut ws)
        .unwrap();
    count(|| {
        for _ in 0..reps {
            cell.unroll_into(x.view(), &mut state, out.view_mut(), opts, None, &mut ws)
                .unwrap();
        }
    })
}

fn cells() -> Vec<Box<dyn RecurrentCell<f32, State = LstmState<f32>>>> {
    let mut rng = SplitMix64::new(3);
    vec![
        Box::new(SplitCell::random(16, 32, &mut rng).unwrap()),
        Box::new(PeepholeCell::random(16, 32, &mut rng).unwrap()),
        Box::new(StateGatedCell::random(16, 32, &mut rng).unwrap()),
    ]
}

#[test]
fn streaming_steps_allocate_nothing() {
    let mut rng = SplitMix64::new(4);
    for cell in cells() {
        let x: Array2<f32> = rng.uniform_array((1, 16), 1.0);
        let mut gates = Array2::zeros((1, 128));
        let mut state = cell.zero_state(1);
        let mut ws = Workspace::new();
        cell.step_into(x.view(), &mut state, gates.view_mut(), &mut ws)
            .unwrap();
        let n = count(|| {
            for _ in 0..200 {
                cell.step_into(x.view(), &mut state, gates.view_mut(), &mut ws)
                    .unwrap();
            }
        });
        assert_eq!(n, 0, "{n} allocations in 200 steps");
    }
}

#[test]
fn repeated_unrolls_allocate_nothing() {
    let mut rng = SplitMix64::new(5);
    for cell in cells() {
        for batch_first in [false, true] {
            let x: Array3<f32> = rng.uniform_array((4, 20, 16), 1.0);
            let lengths = [20, 3, 0, 11];
            let mut opts = SeqOptions::default().lengths(&lengths).reverse();
            let mut x = x;
            if !batch_first {
                x = x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
            } else {
                opts = opts.batch_first();
            }
            let n = unroll_allocations(cell.as_ref(), &x, &opts, 4, 32, 5);
            assert_eq!(
                n, 0,
                "{n} allocations in 5 unrolls (batch_first {batch_first})"
            );
        }
    }
}

#[test]
fn large_batch_unrolls_allocate_nothing() {
    let mut rng = SplitMix64::new(8);
    let cell = SplitCell::<f32>::random(48, 64, &mut rng).unwrap();
    let x: Array3<f32> = rng.uniform_array((30, 40, 48), 1.0);
    let n = unroll_allocations(&cell, &x, &SeqOptions::default(), 40, 64, 3);
    assert_eq!(n, 0, "{n} allocations in 3 unrolls of a 40-row batch");
}

/// Every kernel level computes the same `f32` cell, with peepholes and a batch that needs
/// several tiles, as the hand-written AVX-512 kernels.
#[test]
fn every_kernel_level_agrees_in_f32() {
    use lstm_engine::kernels::{Level, with_max_level};
    let mut rng = SplitMix64::new(9);
    let cell = PeepholeCell::<f32>::random(21, 37, &mut rng).unwrap();
    let x: Array3<f32> = rng.uniform_array((9, 27, 21), 2.0);
    let run = |level| {
        with_max_level(level, || {
            cell.unroll(x.view(), None, &SeqOptions::default())
        })
        .unwrap()
        .output
    };
    let fast = run(Level::Avx512);
    for level in [Level::Avx2, Level::Portable] {
        let other = run(level);
        let diff = fast
            .iter()
            .zip(other.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 2e-6, "{level:?}: {diff}");
    }
}

/// The portable kernels give the same numbers as the vectorised ones.
#[test]
fn portable_fallback_agrees() {
    let mut rng = SplitMix64::new(6);
    let cell = SplitCell::<f64>::random(7, 9, &mut rng).unwrap();
    let x: Array3<f64> = rng.uniform_array((6, 3, 7), 1.0);
    let fast = cell.unroll(x.view(), None, &SeqOptions::default()).unwrap();
    let slow = lstm_engine::kernels::with_max_level(lstm_engine::kernels::Level::Portable, || {
        cell.unroll(x.view(), None, &SeqOptions::default())
    })
    .unwrap();
    let diff = fast
        .output
        .iter()
        .zip(slow.output.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-12, "{diff}");
}
