//! The adding problem of Hochreiter and Schmidhuber (1997): each step carries a random value in
//! `[0, 1)` and a marker, two steps are marked, and the target is the sum of their values.
//! Always answering 1.0 scores a mean squared error of about 0.167; the run stops when the
//! validation error is below 0.01.
//!
//! `cargo run --release -p lstm-train --example adding_problem -- [T] [EPOCHS] [SAVE.safetensors]`

use std::time::Instant;

use lstm_core::ndarray::{Array2, Array3};
use lstm_engine::init::SplitMix64;
use lstm_train::{Kind, Optimizer, Schedule, Target, TrainConfig, Trainer};

fn data(n: usize, t: usize, rng: &mut SplitMix64) -> (Array3<f32>, Array2<f32>) {
    let mut x = Array3::zeros((t, n, 2));
    let mut y = Array2::zeros((n, 1));
    for b in 0..n {
        for s in 0..t {
            x[[s, b, 0]] = rng.uniform() as f32;
        }
        let first = (rng.next_u64() % (t as u64 / 2)) as usize;
        let second = t / 2 + (rng.next_u64() % (t as u64 - t as u64 / 2)) as usize;
        for s in [first, second] {
            x[[s, b, 1]] = 1.0;
            y[[b, 0]] += x[[s, b, 0]];
        }
    }
    (x, y)
}

fn main() -> lstm_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let t: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(50);
    let epochs: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut rng = SplitMix64::new(1997);
    let (x, y) = data(2000, t, &mut rng);
    let (xv, yv) = data(500, t, &mut rng);
    let (lens, lens_v) = (vec![t; 2000], vec![t; 500]);
    let config = TrainConfig {
        kind: Kind::Lstm,
        input: 2,
        hidden: 32,
        layers: 1,
        bidirectional: false,
        proj_size: 0,
        outputs: 1,
        batch_size: 32,
        optimizer: Optimizer::adam(),
        lr: 0.01,
        schedule: Schedule::Constant,
        clip_grad_norm: Some(1.0),
        forget_bias: Some(1.0),
        seed: 7,
        threads: 1,
        tbptt: None,
        dropout: None,
    };
    let mut run = Trainer::new(config)?;
    let (target, target_v) = (Target::Values(y), Target::Values(yv));
    let start = Instant::now();
    println!("adding problem, T = {t}: 2000 training and 500 validation sequences");
    for epoch in 1..=epochs {
        let train = run.epoch_on(x.view(), &lens, &target)?;
        let val = run.evaluate(xv.view(), &lens_v, &target_v)?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "epoch {epoch:3}: train MSE {:.4}, validation MSE {:.4}, {secs:.1} s",
            train.loss, val.loss
        );
        if val.loss < 0.01 {
            println!(
                "solved after {epoch} epochs ({} optimizer steps) in {secs:.1} s",
                epoch * 2000usize.div_ceil(32)
            );
            break;
        }
    }
    if let Some(path) = args.get(3) {
        run.save(std::path::Path::new(path))?;
        println!("saved {path}");
    }
    Ok(())
}
