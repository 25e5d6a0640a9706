//! GFLOP/s of the packed product on the shapes of the canonical workloads:
//! `cargo run --release -p lstm-kernels --example gemm_speed`.

use std::time::Instant;

use lstm_kernels::{GateOptions, Packed, gemm, lstm_gates};

fn main() {
    for (name, m, k, n) in [
        ("stream recurrent", 1, 128, 512),
        ("seq-small recurrent", 1, 64, 256),
        ("batch-mid recurrent", 32, 256, 1024),
        ("batch-mid recurrent half", 16, 256, 1024),
        ("batch-large recurrent half", 32, 1024, 4096),
        ("batch-large rec. columns", 64, 1024, 2048),
        ("batch-mid projection", 3200, 128, 1024),
        ("batch-mid proj chunk", 128, 128, 1024),
        ("batch-mid fused step", 32, 384, 1024),
        ("batch-large proj step", 64, 512, 4096),
        ("batch-large fused step", 64, 1536, 4096),
        ("batch-large recurrent", 64, 1024, 4096),
        ("batch-large projection", 3200, 512, 4096),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b = Packed::from_fn(k, n, |r, c| ((r + c) % 5) as f32 * 0.01);
        let np = b.padded_cols();
        let mut c = vec![0.0f32; m * np];
        let reps = ((4e8 / (2.0 * (m * k * n) as f64)) as usize).clamp(1, 40_000);
        gemm(m, &a, k, &b, &mut c, np, None);
        // The best of several rounds: shared machines add noise, never speed.
        let s = (0..7)
            .map(|_| {
                let t0 = Instant::now();
                for _ in 0..reps {
                    gemm(m, &a, k, &b, &mut c, np, None);
                }
                t0.elapsed().as_secs_f64() / reps as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "{name:<26} {m:>5} x {k:>5} x {n:>5}: {:>10.2} us  {:>7.1} GFLOP/s",
            s * 1e6,
            2.0 * (m * k * n) as f64 / s / 1e9
        );
    }
    for (h, rows) in [(64, 1), (128, 1), (256, 32)] {
        let z0: Vec<f32> = (0..4 * h).map(|i| (i % 11) as f32 * 0.3 - 1.5).collect();
        let mut z = z0.clone();
        let mut cs = vec![0.1f32; h];
        let mut hs = vec![0.0f32; h];
        let reps = 100_000 / rows;
        let t0 = Instant::now();
        for _ in 0..reps {
            for _ in 0..rows {
                z.copy_from_slice(&z0);
                lstm_gates(h, &mut z, &mut cs, &mut hs, &GateOptions::default());
            }
        }
        let s = t0.elapsed().as_secs_f64() / reps as f64;
        let tiny = z
            .iter()
            .chain(&cs)
            .chain(&hs)
            .filter(|v| v.is_subnormal())
            .count();
        if tiny > 0 {
            println!("  ({tiny} subnormal values)");
        }
        println!("gate pass H = {h:>4}, {rows:>2} rows: {:>8.3} us", s * 1e6);
    }
}
