//! End-to-end: `lstm run` on the committed PyTorch and ONNX golden fixtures
//! (`tests/fixtures/make_interop_fixtures.py`), compared with the frameworks' outputs.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use lstm_layers::npy::{self, NpyArray};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/interop")
}

fn as_f64(a: NpyArray) -> (Vec<usize>, Vec<f64>, bool) {
    match a {
        NpyArray::F32(a) => (
            a.shape().to_vec(),
            a.iter().map(|&v| f64::from(v)).collect(),
            true,
        ),
        NpyArray::F64(a) => (a.shape().to_vec(), a.iter().copied().collect(), false),
        other => panic!("unexpected {}", other.dtype()),
    }
}

/// Relative error `max |got - want| / max(1, max |want|)`.
fn rel_error(got: &Path, want: &Path) -> (f64, bool) {
    let (gs, g, single) = as_f64(npy::read(got).unwrap());
    let (ws, w, want_single) = as_f64(npy::read(want).unwrap());
    assert_eq!(gs, ws, "{}: shape", got.display());
    assert_eq!(single, want_single, "{}: precision", got.display());
    let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    (
        g.iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / scale,
        single,
    )
}

#[test]
fn every_fixture_matches() {
    let root = fixtures();
    let cases = std::fs::read_to_string(root.join("cases.txt")).unwrap();
    let scratch = std::env::temp_dir().join(format!("lstm-interop-{}", std::process::id()));
    let mut failures = Vec::new();
    let (mut worst32, mut worst64) = (0.0f64, 0.0f64);
    let mut count = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let (name, args) = line.split_once('|').unwrap();
        let dir = root.join(name);
        let out = scratch.join(name);
        std::fs::create_dir_all(&out).unwrap();
        let args: Vec<String> = args
            .split_whitespace()
            .map(|a| match a.strip_prefix('@') {
                Some(file) => out.join(file).display().to_string(),
                None => a.to_string(),
            })
            .collect();
        let run = Command::new(env!("CARGO_BIN_EXE_lstm"))
            .current_dir(&dir)
            .arg("run")
            .args(&args)
            .output()
            .unwrap();
        if !run.status.success() {
            failures.push(format!(
                "{name}: exit {:?}: {}",
                run.status.code(),
                String::from_utf8_lossy(&run.stderr)
            ));
            continue;
        }
        for part in ["y", "hn", "cn"] {
            let (err, single) = rel_error(
                &out.join(format!("{part}.npy")),
                &dir.join(format!("expected_{part}.npy")),
            );
            let tol = if single { 1e-5 } else { 1e-11 };
            let worst = if single { &mut worst32 } else { &mut worst64 };
            *worst = worst.max(err);
            if err > tol {
                failures.push(format!("{name}/{part}: relative error {err:e} > {tol:e}"));
            }
        }
        count += 1;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    // The margin to the tolerance, for the record (`--nocapture` shows it).
    println!("largest relative error: f32 {worst32:e}, f64 {worst64:e}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 50, "only {count} cases ran");
}
