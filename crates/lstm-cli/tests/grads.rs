//! End-to-end: `lstm grad` on the committed PyTorch autograd fixtures
//! (`tests/fixtures/make_grad_fixtures.py`): every parameter's, the input's and the initial
//! states' gradients under the state dict's names, equal to PyTorch's.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::{Dtype, SafeTensors};

fn fixtures() -> PathBuf {
    fixtures_in("grads")
}

fn fixtures_in(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(dir)
}

/// Every tensor of a safetensors file: its shape, values as f64, and whether it is f32.
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f64>, bool)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            let (values, single) = match t.dtype() {
                Dtype::F32 => (
                    t.data()
                        .chunks_exact(4)
                        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    true,
                ),
                Dtype::F64 => (
                    t.data()
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                    false,
                ),
                other => panic!("{name}: unexpected {other:?}"),
            };
            (name, (t.shape().to_vec(), values, single))
        })
        .collect()
}

#[test]
fn every_gradient_matches_pytorch_autograd() {
    check_cases("grads", 20);
}

/// ONNX graphs (`tests/fixtures/make_onnx_grad_fixtures.py`): PyTorch exports, whose
/// gradients flow through the exporter's tensor operators, and single nodes with what only
/// the operator has (peepholes, clip, input_forget, activations, layout 1), against a float64
/// reference of the operator checked against ONNX Runtime.
#[test]
fn onnx_gradients_match_the_references() {
    check_cases("onnx_grads", 13);
}

/// Runs every case of `tests/fixtures/DIR/cases.txt` and compares each gradient.
fn check_cases(dir: &str, at_least: usize) {
    let root = fixtures_in(dir);
    let scratch = std::env::temp_dir().join(format!("lstm-{dir}-{}", std::process::id()));
    let (mut failures, mut count) = (Vec::new(), 0);
    let (mut worst32, mut worst64) = (0.0f64, 0.0f64);
    for (name, dir, out, args) in common::cases(&root, &scratch) {
        let run = Command::new(env!("CARGO_BIN_EXE_lstm"))
            .current_dir(&dir)
            .arg("grad")
            .args(&args)
            .output()
            .unwrap();
        if !run.status.success() {
            failures.push(format!("{name}: {}", String::from_utf8_lossy(&run.stderr)));
            continue;
        }
        let got = tensors(&out.join("grads.safetensors"));
        let want = tensors(&dir.join("expected.safetensors"));
        let names = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<Vec<_>>();
        if names(&got) != names(&want) {
            failures.push(format!(
                "{name}: tensors {:?}, expected {:?}",
                names(&got),
                names(&want)
            ));
            continue;
        }
        for (tensor, (ws, w, single)) in &want {
            let (gs, g, got_single) = &got[tensor];
            assert_eq!(
                (gs, got_single),
                (ws, single),
                "{name}/{tensor}: shape and precision"
            );
            let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let err = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
                / scale;
            let (tol, worst) = if *single {
                (2e-5, &mut worst32)
            } else {
                (1e-11, &mut worst64)
            };
            *worst = worst.max(err);
            if err > tol {
                failures.push(format!("{name}/{tensor}: relative error {err:e} > {tol:e}"));
            }
        }
        count += 1;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{dir}: largest relative error: f32 {worst32:e}, f64 {worst64:e}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= at_least, "only {count} cases ran");
}

mod common;
use common::fails;

/// Every bad use of `lstm grad` is one clear error line, exit 1, no panic, no output file.
#[test]
fn bad_uses_are_errors() {
    let dir = fixtures();
    let case = |c: &str, f: &str| dir.join(c).join(f).display().to_string();
    let scratch = std::env::temp_dir().join(format!("lstm-grad-errors-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let out = scratch.join("g.safetensors").display().to_string();
    let (model, x, dy) = (
        case("lstm_init", "model.safetensors"),
        case("lstm_init", "x.npy"),
        case("lstm_init", "dy.npy"),
    );
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "grad",
            "--model",
            &model,
            "--input",
            &x,
            "--grad-output",
            &dy,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&a, needles);
    };
    run(base(&[]), &["needs --output"]);
    run(
        vec!["grad".into(), "--input".into(), x.clone()],
        &["needs --model"],
    );
    run(base(&["--output", &out, "--frobnicate"]), &["frobnicate"]);
    // The output gradient must have the output's shape.
    let wrong = case("lstm_plain", "dy.npy");
    let mut args = base(&["--output", &out]);
    args[6] = wrong;
    run(args, &["output gradient"]);
    // A final-state gradient of the wrong shape.
    run(base(&["--output", &out, "--grad-h", &dy]), &["final"]);
    // An ONNX model.
    let onnx = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/bad/mul_before_lstm.onnx")
        .display()
        .to_string();
    let mut args = base(&["--output", &out]);
    args[2] = onnx;
    run(args.clone(), &["Mul", "does not execute"]);
    // The options of a whole graph, and of a state dict.
    let graph = |c: &str, f: &str| {
        fixtures_in("onnx_grads")
            .join(c)
            .join(f)
            .display()
            .to_string()
    };
    let gru = |extra: &[&str]| -> Vec<String> {
        let c = "ts_gru_batch_first_layers2_state";
        let mut v: Vec<String> = ["grad", "--model", &graph(c, "model.onnx"), "--input"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend([
            graph(c, "x.npy"),
            "--grad-output".into(),
            graph(c, "dy.npy"),
        ]);
        v.extend(["--output".into(), out.clone()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    run(gru(&["--batch-first"]), &["--batch-first", "layout"]);
    run(gru(&["--prefix", "rnn."]), &["--prefix", "safetensors"]);
    let dhn = graph("ts_gru_batch_first_layers2_state", "dhn.npy");
    let h0 = graph("ts_gru_batch_first_layers2_state", "h0.npy");
    run(
        gru(&["--initial-h", &h0, "--grad-c", &dhn]),
        &["--grad-c", "Y_c"],
    );
    run(
        gru(&["--initial-h", &h0, "--grad-h", &dy]),
        &["gradient of", "shape"],
    );
    run(gru(&[]), &["graph input", "--initial-h"]);
    run(
        base(&["--output", &out, "--graph-input", &format!("h0={dy}")]),
        &["--graph-input", ".onnx"],
    );
    let mut args = base(&["--output", &out]);
    args[2] = x.clone();
    run(args, &["cannot tell the model's format"]);
    // A GRU has no cell state.
    let gru = case("gru_init_layers2", "model.safetensors");
    let mut args = vec!["grad".to_string(), "--model".into(), gru];
    args.extend(
        [
            "--input",
            &case("gru_init_layers2", "x.npy"),
            "--grad-output",
            &case("gru_init_layers2", "dy.npy"),
            "--output",
            &out,
            "--grad-c",
            &case("gru_init_layers2", "dhn.npy"),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    run(args, &["nn.GRU", "cell state"]);
    assert!(!Path::new(&out).exists(), "no output after an error");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Runs `lstm grad` on `model` with the input of `case` and an all-ones output gradient;
/// returns the gradients written.
fn grad_of(
    model: &Path,
    case: &Path,
    extra: &[&str],
) -> BTreeMap<String, (Vec<usize>, Vec<f64>, bool)> {
    let dir = std::env::temp_dir().join(format!(
        "lstm-grad-pub-{}-{}",
        std::process::id(),
        case.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let y = case.join("expected_y.npy");
    let dy = dir.join("dy.npy");
    let ones = match lstm_layers::npy::read(&y).unwrap() {
        lstm_layers::npy::NpyArray::F32(a) => a.mapv(|_| 1.0f32),
        _ => panic!("float32 expected"),
    };
    lstm_layers::npy::write(&dy, ones.view()).unwrap();
    let out = dir.join("g.safetensors");
    let run = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .args(["grad", "--model"])
        .arg(model)
        .arg("--input")
        .arg(case.join("x.npy"))
        .arg("--grad-output")
        .arg(&dy)
        .arg("--output")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let t = tensors(&out);
    let _ = std::fs::remove_dir_all(&dir);
    t
}

/// A cell's gradients come out under the cell's own names, equal to those of the same
/// weights as a one-layer nn.LSTM; a `torch.save` file's under its names.
#[test]
fn cells_and_torch_save_files_have_their_gradients_named_as_their_tensors() {
    let case = fixtures_in("published").join("lstm_cell");
    let cell = grad_of(&case.join("model.safetensors"), &case, &[]);
    let names: Vec<&str> = cell.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "input",
            "lstm_cell.bias_hh",
            "lstm_cell.bias_ih",
            "lstm_cell.weight_hh",
            "lstm_cell.weight_ih"
        ]
    );
    // The same tensors renamed as layer 0 of an nn.LSTM.
    let bytes = std::fs::read(case.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let dir = std::env::temp_dir().join(format!("lstm-grad-l0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n.starts_with("lstm_cell."))
        .map(|(n, t)| (format!("lstm.{}_l0", &n["lstm_cell.".len()..]), t))
        .collect();
    let stack = dir.join("stack.safetensors");
    safetensors::serialize_to_file(renamed, None, &stack).unwrap();
    let as_stack = grad_of(&stack, &case, &[]);
    for (k, v) in &cell {
        let other = match k.strip_prefix("lstm_cell.") {
            Some(base) => format!("lstm.{base}_l0"),
            None => k.clone(),
        };
        assert_eq!(Some(v), as_stack.get(&other), "{k}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let case = fixtures_in("published").join("pt_zip_f32");
    let pt = grad_of(&case.join("model.pt"), &case, &["--prefix", "rnn."]);
    assert!(
        pt.contains_key("rnn.weight_hh_l1_reverse"),
        "{:?}",
        pt.keys()
    );
    assert!(!pt.keys().any(|k| k.starts_with("out.")), "{:?}", pt.keys());
}
