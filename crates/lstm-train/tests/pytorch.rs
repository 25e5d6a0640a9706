//! A checkpoint loads into PyTorch unchanged (`docs/snippets/load_in_pytorch.py`:
//! `load_state_dict(strict=True)` on an `nn.LSTM` called `lstm` and an `nn.Linear` called
//! `head`) and predicts what Rust predicts. It runs the snippet with `LSTM_PYTHON` (default
//! `python3`) when that Python has PyTorch, and says on standard error that it skipped
//! otherwise.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::Path;
use std::process::Command;

use lstm_core::ndarray::Array2;
use lstm_engine::init::SplitMix64;
use lstm_train::{Kind, Optimizer, Schedule, Target, TrainConfig, Trainer};

#[test]
fn a_checkpoint_loads_into_pytorch() {
    let python = std::env::var("LSTM_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch = Command::new(&python)
        .args(["-c", "import torch, safetensors, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!("SKIPPED a_checkpoint_loads_into_pytorch: {python} has no torch/safetensors");
        return;
    }
    let mut rng = SplitMix64::new(5);
    let x: lstm_core::ndarray::Array3<f32> = rng.uniform_array((6, 8, 3), 1.0);
    let y: Array2<f32> = rng.uniform_array((8, 2), 1.0);
    let config = TrainConfig {
        kind: Kind::Lstm,
        input: 3,
        hidden: 5,
        layers: 1,
        bidirectional: false,
        proj_size: 0,
        outputs: 2,
        batch_size: 4,
        optimizer: Optimizer::adamw(),
        lr: 0.01,
        schedule: Schedule::Constant,
        clip_grad_norm: None,
        forget_bias: Some(1.0),
        seed: 1,
        threads: 1,
        tbptt: None,
        dropout: None,
    };
    let mut run = Trainer::new(config).unwrap();
    let lengths = vec![6; 8];
    for _ in 0..3 {
        run.epoch_on(x.view(), &lengths, &Target::Values(y.clone()))
            .unwrap();
    }
    let dir = std::env::temp_dir().join(format!("lstm-train-torch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, xp, pred) = (
        dir.join("model.safetensors"),
        dir.join("x.npy"),
        dir.join("pred.npy"),
    );
    run.save(&model).unwrap();
    lstm_layers::npy::write(&xp, x.view().into_dyn()).unwrap();
    let p = run.predict(x.view(), &lengths, false, false).unwrap();
    lstm_layers::npy::write(&pred, p.view().into_dyn()).unwrap();
    let snippet =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/snippets/load_in_pytorch.py");
    let out = Command::new(&python)
        .arg(snippet)
        .args([&model, &xp, &pred])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
