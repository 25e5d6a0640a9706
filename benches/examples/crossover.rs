//! Where a second thread starts to pay: one thread against two, alternating in one process
//! (medians of 101 runs of each), for a bidirectional layer and for one cell over batches of a few
//! rows. Behind `MIN_PARALLEL_WORK` and `UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS`:
//! `cargo run --release -p lstm-benches --example crossover`.

use std::time::Instant;

use lstm_concat::ConcatCell;
use lstm_core::ndarray::Array3;
use lstm_core::{RecurrentCell, SeqOptions, Workspace};
use lstm_engine::init::SplitMix64;
use lstm_engine::threads;
use lstm_layers::{LstmStack, StackOptions};

/// Median seconds of `run(1)` and of `run(2)` over 101 runs each, alternating, after 20 of
/// each to warm up.
fn one_and_two(mut run: impl FnMut(usize)) -> (f64, f64) {
    let mut secs = |threads| {
        let t0 = Instant::now();
        run(threads);
        t0.elapsed().as_secs_f64()
    };
    for _ in 0..20 {
        secs(1);
        secs(2);
    }
    let (mut one, mut two): (Vec<f64>, Vec<f64>) = (0..101).map(|_| (secs(1), secs(2))).unzip();
    one.sort_by(f64::total_cmp);
    two.sort_by(f64::total_cmp);
    (one[50], two[50])
}

fn report(what: String, work: usize, one: f64, two: f64) {
    println!(
        "{what}: {:.2}M multiply-adds, 1 thread {:.1} us, 2 threads {:.1} us, ratio {:.2}",
        work as f64 / 1e6,
        one * 1e6,
        two * 1e6,
        two / one
    );
}

fn main() {
    let mut rng = SplitMix64::new(1);
    for (i, h, t) in [(32, 64, 100), (32, 64, 200), (32, 64, 400)] {
        let stack = LstmStack::<f32>::random(i, h, 1, 2, &mut rng).expect("valid sizes");
        let x: Array3<f32> = rng.uniform_array((t, 1, i), 1.0);
        let (one, two) = one_and_two(|threads| {
            let opts = StackOptions {
                threads,
                ..StackOptions::default()
            };
            stack
                .forward(x.view(), None, None, &opts)
                .expect("valid input");
        });
        let what = format!("bidirectional I={i} H={h} T={t}, per direction");
        report(what, t * 4 * h * (i + h), one, two);
    }
    let t = 100;
    for (b, i, h) in [
        (4, 32, 64),
        (8, 32, 64),
        (2, 64, 128),
        (4, 64, 128),
        (8, 64, 128),
        (1, 128, 192),
        (2, 128, 256),
        (4, 128, 256),
        (8, 128, 256),
    ] {
        let cell = ConcatCell::<f32>::random(i, h, &mut rng).expect("valid sizes");
        let x: Array3<f32> = rng.uniform_array((t, b, i), 1.0);
        let mut out = Array3::zeros((t, b, h));
        let mut ws = Workspace::new();
        let (one, two) = one_and_two(|threads| {
            let mut state = cell.zero_state(b);
            let opts = SeqOptions::default();
            threads::unroll_into_threads(
                &cell,
                x.view(),
                &mut state,
                out.view_mut(),
                &opts,
                threads,
                &mut ws,
            )
            .expect("valid input");
        });
        report(
            format!("cell B={b} I={i} H={h} T={t}"),
            t * b * 4 * h * (i + h),
            one,
            two,
        );
    }
}
