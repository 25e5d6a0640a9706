//! The train-mid workload of `../shared/PERF.md` (B 32, T 50, I 64, H 128, loss = sum of the
//! outputs): one forward and backward pass of the split cell through
//! `lstm_core::backward::backward_params_in` (no input gradient, as in PyTorch's script)
//! with a kept workspace, median of 21 runs after 3 of
//! warm-up, on one thread.
//!
//! `cargo run --release -p lstm-benches --example train_mid`

use std::time::Instant;

use lstm_core::ndarray::Array3;
use lstm_core::{SeqOptions, Variant};
use lstm_engine::init::SplitMix64;
use lstm_split::SplitCell;

fn main() -> lstm_core::Result<()> {
    let (b, t, i, h) = (32, 50, 64, 128);
    let cell = <SplitCell<f32> as Variant<f32>>::seeded(i, h, 7)?;
    let x: Array3<f32> = SplitMix64::new(1).uniform_array((t, b, i), 1.0);
    let dy = Array3::<f32>::ones((t, b, h));
    let opts = SeqOptions::default();
    let mut times = Vec::new();
    let mut ws = lstm_core::Workspace::new();
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    for k in 0..runs {
        let t0 = Instant::now();
        let g = lstm_core::backward::backward_params_in(
            &cell,
            x.view(),
            None,
            &opts,
            dy.view(),
            None,
            &mut ws,
        )?;
        std::hint::black_box(&g);
        if k >= 3 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "train-mid forward + backward (split cell, 1 thread): {:.2} ms",
        times[times.len() / 2]
    );
    Ok(())
}
