//! End-to-end: `lstm run` on the committed PyTorch and ONNX golden fixtures, compared with the
//! frameworks' outputs: single operators and PyTorch state dicts
//! (`tests/fixtures/make_interop_fixtures.py`) and whole graphs exported by `torch.onnx.export`
//! (`tests/fixtures/make_graph_fixtures.py`).
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use lstm_layers::npy::{self, NpyArray};

mod common;

fn fixtures(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(set)
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

/// Runs every case of `set/cases.txt` and compares each `expected_NAME.npy` of its directory with
/// the `NAME.npy` it wrote; returns the number of cases.
fn run_cases(set: &str) -> usize {
    run_cases_with(set, 2)
}

/// [`run_cases`] with at least `min_parts` expected outputs per case.
fn run_cases_with(set: &str, min_parts: usize) -> usize {
    let root = fixtures(set);
    let scratch = std::env::temp_dir().join(format!("lstm-{set}-{}", std::process::id()));
    let mut failures = Vec::new();
    let (mut worst32, mut worst64) = (0.0f64, 0.0f64);
    let mut count = 0;
    for (name, dir, out, args) in common::cases(&root, &scratch) {
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
        let mut parts = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let Some(part) = file.strip_prefix("expected_") else {
                continue;
            };
            parts += 1;
            let (err, single) = rel_error(&out.join(part), &dir.join(&file));
            let tol = if single { 1e-5 } else { 1e-11 };
            let worst = if single { &mut worst32 } else { &mut worst64 };
            *worst = worst.max(err);
            if err > tol {
                failures.push(format!("{name}/{part}: relative error {err:e} > {tol:e}"));
            }
        }
        assert!(parts >= min_parts, "{name}: only {parts} expected outputs");
        count += 1;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    // The margin to the tolerance, for the record (`--nocapture` shows it).
    println!("{set}: largest relative error: f32 {worst32:e}, f64 {worst64:e}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

#[test]
fn every_operator_and_state_dict_fixture_matches() {
    let count = run_cases("interop");
    assert!(count >= 50, "only {count} cases ran");
}

/// `torch.onnx.export` of nn.LSTM and nn.GRU in every layout, both exporters, and GRU operator
/// options PyTorch never exports, each equal to ONNX Runtime on the same inputs (a float64
/// export, which ONNX Runtime does not run, to PyTorch in float64).
#[test]
fn every_exported_graph_matches_onnx_runtime() {
    let count = run_cases("graphs");
    assert!(count >= 24, "only {count} cases ran");
}

/// Models as they are published (`tests/fixtures/make_published_fixtures.py`): nn.LSTMCell and
/// nn.GRUCell state dicts stepped over a sequence by PyTorch, and `torch.save` files in the
/// zip and the legacy layout, in float32, float64, float16 and bfloat16.
#[test]
fn every_published_layout_matches_pytorch() {
    let count = run_cases("published");
    assert!(count >= 11, "only {count} cases ran");
}

/// ONNX models beyond one flat graph (`tests/fixtures/make_nested_fixtures.py`): an LSTM inside
/// an If branch and a Loop body (by path, and with no --node when the file holds one), two
/// LSTM nodes each alone and the graph whole, and weights in an external data file; each
/// against ONNX Runtime.
#[test]
fn every_nested_graph_matches_onnx_runtime() {
    let count = run_cases_with("nested", 1);
    assert!(count >= 8, "only {count} cases ran");
}
