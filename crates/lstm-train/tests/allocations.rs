//! What a training step allocates once warm: counted by a counting allocator around the
//! system one, on the standard cell's fused path.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lstm_core::ndarray::{Array2, Array3};
use lstm_engine::init::SplitMix64;
use lstm_train::{Kind, Optimizer, Schedule, Target, TrainConfig, Trainer};

struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the counters are
// atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: as `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn config() -> TrainConfig<f32> {
    TrainConfig {
        kind: Kind::Lstm,
        input: 8,
        hidden: 32,
        layers: 2,
        bidirectional: false,
        proj_size: 0,
        outputs: 1,
        batch_size: 16,
        optimizer: Optimizer::adam(),
        lr: 1e-3,
        schedule: Schedule::Constant,
        clip_grad_norm: Some(1.0),
        forget_bias: None,
        seed: 1,
        threads: 1,
        tbptt: None,
        dropout: None,
    }
}

/// Allocator calls and bytes of one warm step on `x [T, 16, 8]`.
fn per_step(t: usize) -> (usize, usize) {
    let mut rng = SplitMix64::new(2);
    let x: Array3<f32> = rng.uniform_array((t, 16, 8), 1.0);
    let target = Target::Values(Array2::zeros((16, 1)));
    let lengths = vec![t; 16];
    let mut run = Trainer::new(config()).unwrap();
    for _ in 0..3 {
        run.step(x.view(), &lengths, &target).unwrap();
    }
    let (c0, b0) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    run.step(x.view(), &lengths, &target).unwrap();
    (
        CALLS.load(Ordering::Relaxed) - c0,
        BYTES.load(Ordering::Relaxed) - b0,
    )
}

#[test]
fn a_warm_step_allocates_nothing_per_time_step() {
    let (short, long) = (per_step(10), per_step(40));
    eprintln!("allocations per step: T 10: {short:?}, T 40: {long:?}");
    assert_eq!(
        short.0, long.0,
        "allocator calls grow with T: {short:?} -> {long:?}"
    );
}
