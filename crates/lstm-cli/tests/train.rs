//! `lstm train` and `lstm predict` end to end: a model that learns, predictions that equal the
//! training's own, the JSON summary, the loss plot, resuming, and every bad use as one error.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::PathBuf;
use std::process::Command;

use lstm_core::ndarray::{Array1, Array2, Array3};
use lstm_engine::init::SplitMix64;
use lstm_layers::npy::{self, NpyArray};

mod common;
use common::fails;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lstm-train-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `x [T, N, 2]` and the sum of feature 0 over time (and its sign as a class).
fn data(dir: &std::path::Path) -> (String, String, String) {
    let mut rng = SplitMix64::new(11);
    let (t, n) = (6, 96);
    let x: Array3<f64> = rng.uniform_array((t, n, 2), 1.0);
    let y = Array2::from_shape_fn((n, 1), |(b, _)| {
        (0..t).map(|s| x[[s, b, 0]]).sum::<f64>() * 0.5
    });
    let c: Array1<i64> = y.column(0).mapv(|v| i64::from(v > 0.0));
    let p = |f: &str| dir.join(f).display().to_string();
    npy::write(p("x.npy"), x.view().into_dyn()).unwrap();
    npy::write(p("y.npy"), y.view().into_dyn()).unwrap();
    npy::write(p("c.npy"), c.view().into_dyn()).unwrap();
    (p("x.npy"), p("y.npy"), p("c.npy"))
}

fn lstm(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn number(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
    json[at..]
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn train_then_predict() {
    let dir = scratch("learn");
    let (x, y, c) = data(&dir);
    let model = dir.join("m.safetensors").display().to_string();
    let plot = dir.join("loss.svg").display().to_string();
    let base = [
        "train",
        "--input",
        &x,
        "--target",
        &y,
        "--output",
        &model,
        "--hidden",
        "8",
        "--lr",
        "0.02",
        "--batch-size",
        "16",
        "--validation-split",
        "0.25",
        "--seed",
        "4",
    ];
    let mut args = base.to_vec();
    args.extend(["--epochs", "40", "--format", "json", "--loss-plot", &plot]);
    let json = lstm(&args);
    let (first, last) = {
        let at = json.find("\"epochs\"").unwrap();
        (
            number(&json[at..], "train_loss"),
            number(&json, "train_loss"),
        )
    };
    assert!(last < 0.1 * first, "loss {first} -> {last}: {json}");
    assert!(number(&json, "validation_loss") < 0.1 * first, "{json}");
    assert!(
        std::fs::read_to_string(&plot)
            .unwrap()
            .contains("<polyline")
    );
    assert!(dir.join("m.optimizer.safetensors").exists());
    let pred = dir.join("p.npy").display().to_string();
    lstm(&[
        "predict", "--model", &model, "--input", &x, "--output", &pred,
    ]);
    let NpyArray::F64(p) = npy::read(&pred).unwrap() else {
        panic!("f64 predictions")
    };
    assert_eq!(p.shape(), &[96, 1]);
    let NpyArray::F64(want) = npy::read(&y).unwrap() else {
        panic!()
    };
    let mse = p
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / 96.0;
    assert!(mse < 0.1 * first, "prediction MSE {mse}");
    // Resuming continues the run.
    let mut more = base.to_vec();
    more.extend(["--epochs", "2", "--resume", &model, "--format", "json"]);
    let json2 = lstm(&more);
    assert!(number(&json2, "train_loss") < 0.2 * first, "{json2}");
    // Classification: probabilities per class.
    let cm = dir.join("c.safetensors").display().to_string();
    let json = lstm(&[
        "train",
        "--input",
        &x,
        "--target",
        &c,
        "--task",
        "classification",
        "--output",
        &cm,
        "--hidden",
        "8",
        "--lr",
        "0.02",
        "--epochs",
        "30",
        "--batch-size",
        "16",
        "--format",
        "json",
    ]);
    assert!(number(&json, "train_accuracy") > 0.85, "{json}");
    let cp = dir.join("cp.npy").display().to_string();
    lstm(&["predict", "--model", &cm, "--input", &x, "--output", &cp]);
    let NpyArray::F64(p) = npy::read(&cp).unwrap() else {
        panic!()
    };
    assert_eq!(p.shape(), &[96, 2]);
    for row in p.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_uses_are_errors() {
    let dir = scratch("errors");
    let (x, y, c) = data(&dir);
    let model = dir.join("m.safetensors").display().to_string();
    let t = |extra: &[&str], needles: &[&str]| {
        let mut a = vec!["train", "--input", &x, "--target", &y, "--output", &model];
        a.extend(extra);
        fails(&a, needles);
    };
    fails(
        &["train", "--input", &x, "--output", &model],
        &["needs --target"],
    );
    t(&["--tbptt", "3"], &["truncated", "every step"]);
    t(&["--tbptt", "0"], &["tbptt", "at least one step"]);
    t(&["--variant", "elman"], &["--variant", "state-gated"]);
    t(&["--task", "ranking"], &["regression or classification"]);
    t(&["--validation-split", "1.0"], &["fraction"]);
    t(&["--optimizer", "lion"], &["sgd, adam or adamw"]);
    t(&["--lr", "fast"], &["--lr needs a number"]);
    t(&["--per-step"], &["[T, B, O]"]);
    t(&["--proj-size", "40", "--hidden", "8"], &["proj_size"]);
    let mut a = vec!["train", "--input", &x, "--target", &c, "--output", &model];
    a.extend(["--task", "regression"]);
    fails(&a, &["float32 or float64"]);
    let mut a = vec!["train", "--input", &x, "--target", &y, "--output", &model];
    a.extend(["--task", "classification"]);
    fails(&a, &["int32 or int64"]);
    let neg = dir.join("neg.npy").display().to_string();
    npy::write(&neg, Array1::<i64>::from_elem(96, -1).view().into_dyn()).unwrap();
    let mut a = vec!["train", "--input", &x, "--target", &neg, "--output", &model];
    a.extend(["--task", "classification"]);
    fails(&a, &["negative"]);
    assert!(
        !std::path::Path::new(&model).exists(),
        "no model after an error"
    );
    fails(
        &[
            "predict",
            "--model",
            &model,
            "--input",
            &x,
            "--output",
            "/tmp/x.npy",
        ],
        &["m.safetensors"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--schedule` reaches the optimizer: with `step:1:0` the rate is zero from the second epoch
/// on, so the model stops changing and the second and third epochs' losses agree; without
/// it they do not. A bad schedule is a usage error.
#[test]
fn the_schedule_sets_the_rate_of_each_epoch() {
    let dir = scratch("schedule");
    let (x, y, _) = data(&dir);
    let model = dir.join("m.safetensors").display().to_string();
    let epochs = |extra: &[&str]| -> Vec<f64> {
        let mut a = vec!["train", "--input", &x, "--target", &y, "--output", &model];
        a.extend(["--epochs", "3", "--lr", "0.05", "--format", "json"]);
        a.extend(extra);
        let out = lstm(&a);
        let curve = &out[out.find("\"epochs\"").unwrap()..];
        curve
            .split("\"train_loss\": ")
            .skip(1)
            .map(|s| s.split([',', '}']).next().unwrap().trim().parse().unwrap())
            .collect()
    };
    let frozen = epochs(&["--schedule", "step:1:0"]);
    assert_eq!(frozen.len(), 3);
    assert!(
        (frozen[1] - frozen[2]).abs() <= 1e-9 * frozen[1].abs(),
        "{frozen:?}"
    );
    let constant = epochs(&[]);
    assert!((constant[1] - constant[2]).abs() > 1e-6, "{constant:?}");
    let cosine = epochs(&["--schedule", "cosine:3:0.01", "--forget-bias", "1"]);
    assert!(cosine.iter().all(|v| v.is_finite()));
    for bad in [
        "cosine",
        "step:0",
        "step:2:x",
        "linear:3",
        "constant:1",
        "step:1:2:3",
    ] {
        let a = [
            "train",
            "--input",
            &x,
            "--target",
            &y,
            "--output",
            &model,
            "--schedule",
            bad,
        ];
        fails(&a, &["--schedule", bad]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
