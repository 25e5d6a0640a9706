//! `lstm run` on whole ONNX graphs: what it refuses (with the names a user needs to fix the
//! call), what `--node` runs alone, and inputs and outputs chosen by name.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lstm_core::ndarray::{ArrayD, Axis};
use lstm_layers::npy::{self, NpyArray};

mod common;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn graph(case: &str, file: &str) -> String {
    fixtures()
        .join("graphs")
        .join(case)
        .join(file)
        .display()
        .to_string()
}

fn bad(file: &str) -> String {
    fixtures().join("bad").join(file).display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lstm-cli-graph-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lstm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm"))
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

/// `common::fails` for `lstm run args`.
fn fails(args: &[&str], needles: &[&str]) -> String {
    common::fails(&[&["run"], args].concat(), needles)
}

fn floats(path: &Path) -> ArrayD<f32> {
    match npy::read(path).unwrap() {
        NpyArray::F32(a) => a,
        other => panic!("{}: {}", path.display(), other.dtype()),
    }
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_graph_with_an_operator_it_does_not_execute_is_refused_by_name() {
    let out = scratch("refused").join("y.npy");
    let out = out.to_str().unwrap();
    let x = bad("x.npy");
    fails(
        &[
            "--model",
            &bad("mul_before_lstm.onnx"),
            "--input",
            &x,
            "--output",
            out,
        ],
        &["does not execute", "Mul (node \"/Mul\")", "--node NAME"],
    );
    fails(
        &[
            "--model",
            &bad("linear_head.onnx"),
            "--input",
            &x,
            "--output",
            out,
        ],
        &["MatMul (node \"/head/MatMul\")", "Add (node \"/head/Add\")"],
    );
    assert!(!Path::new(out).exists(), "nothing is written");
}

/// `--node` runs the LSTM alone on its own convention: given the doubled input the Mul would
/// have made, it computes what the whole graph computes, in the node's `[T, D, B, H]`.
#[test]
fn node_runs_one_recurrent_node_alone_and_says_so() {
    let dir = scratch("node");
    let x = floats(&fixtures().join("bad/x.npy"));
    let doubled = dir.join("x2.npy");
    npy::write(&doubled, x.mapv(|v| 2.0 * v).view()).unwrap();
    let y = dir.join("y.npy");
    let out = lstm(&[
        "--model",
        &bad("mul_before_lstm.onnx"),
        "--input",
        doubled.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
        "--node",
        "/rnn/LSTM",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("LSTM node \"/rnn/LSTM\" alone"), "{err}");
    let got = floats(&y);
    assert_eq!(got.shape(), &[4, 1, 2, 3], "the node's own Y");
    let want = floats(&fixtures().join("bad/mul_before_lstm_expected_y.npy"));
    let diff = max_diff(&got.index_axis(Axis(1), 0).to_owned(), &want);
    assert!(diff < 1e-5, "{diff}");
}

/// The TorchScript exporter computes a zero initial state from the input's shape: alone, the
/// node takes it as absent (zeros, as ONNX defines it), says so, and gives the graph's result
/// on the node's own layout.
#[test]
fn node_alone_takes_computed_states_as_absent() {
    let dir = scratch("node-absent");
    let case = "ts_lstm_batch_first";
    let x = floats(Path::new(&graph(case, "x.npy"))); // [B, T, I]; the node reads [T, B, I]
    let xt = dir.join("xt.npy");
    npy::write(
        &xt,
        x.view()
            .permuted_axes(vec![1, 0, 2])
            .as_standard_layout()
            .view(),
    )
    .unwrap();
    let y = dir.join("y.npy");
    let out = lstm(&[
        "--model",
        &graph(case, "model.onnx"),
        "--input",
        xt.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
        "--node",
        "/rnn/LSTM",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("initial_h (which the graph computes as \"/rnn/Expand_output_0\") is absent: zeros; --initial-h sets it"), "{err}");
    assert!(err.contains("initial_c"), "{err}");
    let got = floats(&y); // [T, 1, B, H]
    let want = floats(Path::new(&graph(case, "expected_y.npy"))); // [B, T, H]
    let got = got
        .index_axis(Axis(1), 0)
        .permuted_axes(vec![1, 0, 2])
        .to_owned();
    assert!(max_diff(&got, &want) < 1e-5);
}

#[test]
fn node_errors_name_what_is_needed() {
    let out = scratch("node-errors").join("y.npy");
    let out = out.to_str().unwrap();
    let x = bad("x.npy");
    fails(
        &[
            "--model",
            &bad("mul_before_lstm.onnx"),
            "--input",
            &x,
            "--output",
            out,
            "--node",
            "nope",
        ],
        &["\"nope\"", "LSTM \"/rnn/LSTM\""],
    );
    let model = graph("ts_lstm_batch_first", "model.onnx");
    let x = graph("ts_lstm_batch_first", "x.npy");
    fails(
        &[
            "--model",
            &model,
            "--input",
            &x,
            "--output",
            out,
            "--node",
            "/rnn/LSTM",
            "--graph-output",
            "y=y.npy",
        ],
        &["--graph-output", "--node"],
    );
}

#[test]
fn every_graph_input_is_given_or_named() {
    let out = scratch("inputs").join("y.npy");
    let out = out.to_str().unwrap();
    let case = "ts_lstm_layers2_state";
    let (model, x, h0) = (
        graph(case, "model.onnx"),
        graph(case, "x.npy"),
        graph(case, "h0.npy"),
    );
    fails(
        &["--model", &model, "--input", &x, "--output", out],
        &["graph input \"h0\"", "not given", "--initial-h"],
    );
    fails(
        &[
            "--model",
            &model,
            "--input",
            &x,
            "--initial-h",
            &h0,
            "--output",
            out,
        ],
        &["graph input \"c0\"", "--initial-c"],
    );
    // A flag for an input the graph does not have.
    let plain = graph("ts_lstm_batch_first", "model.onnx");
    let plain_x = graph("ts_lstm_batch_first", "x.npy");
    fails(
        &[
            "--model",
            &plain,
            "--input",
            &plain_x,
            "--initial-h",
            &h0,
            "--output",
            out,
        ],
        &[
            "--initial-h",
            "no input that feeds",
            "\"x\" [3, 7, 3] float32",
            "--graph-input",
        ],
    );
    fails(
        &[
            "--model",
            &plain,
            "--input",
            &plain_x,
            "--graph-input",
            &format!("h0={h0}"),
            "--output",
            out,
        ],
        &["graph input \"h0\"", "no such input"],
    );
    fails(
        &[
            "--model",
            &plain,
            "--input",
            &plain_x,
            "--graph-input",
            "h0",
            "--output",
            out,
        ],
        &["--graph-input", "NAME=FILE.npy"],
    );
    // The declared shape and precision.
    fails(
        &["--model", &plain, "--input", &x, "--output", out],
        &["graph input \"x\"", "[3, 7, 3]", "got [6, 2, 3]"],
    );
    let wide = scratch("inputs").join("x64.npy");
    npy::write(&wide, floats(Path::new(&plain_x)).mapv(f64::from).view()).unwrap();
    fails(
        &[
            "--model",
            &plain,
            "--input",
            wide.to_str().unwrap(),
            "--output",
            out,
        ],
        &["graph input \"x\"", "float32", "got float64"],
    );
    fails(
        &[
            "--model",
            &plain,
            "--input",
            &plain_x,
            "--output",
            out,
            "--batch-first",
        ],
        &["--batch-first", "layout"],
    );
}

#[test]
fn outputs_are_found_by_role_or_named() {
    let dir = scratch("outputs");
    let out = dir.join("y.npy");
    let out = out.to_str().unwrap();
    let case = "ts_gru_bidir_state";
    let (model, x, h0) = (
        graph(case, "model.onnx"),
        graph(case, "x.npy"),
        graph(case, "h0.npy"),
    );
    fails(
        &[
            "--model",
            &model,
            "--input",
            &x,
            "--initial-h",
            &h0,
            "--output",
            out,
            "--final-c",
            out,
        ],
        &["--final-c", "Y_c", "\"y\"", "\"hn\"", "--graph-output"],
    );
    fails(
        &[
            "--model",
            &model,
            "--input",
            &x,
            "--initial-h",
            &h0,
            "--graph-output",
            &format!("zz={out}"),
        ],
        &["no output named \"zz\"", "\"y\"", "\"hn\""],
    );
    // Everything by name: no --input, no --output.
    let (y, hn) = (dir.join("named_y.npy"), dir.join("named_hn.npy"));
    let run = lstm(&[
        "--model",
        &model,
        "--graph-input",
        &format!("x={x}"),
        "--graph-input",
        &format!("h0={h0}"),
        "--graph-output",
        &format!("y={}", y.display()),
        "--graph-output",
        &format!("hn={}", hn.display()),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (got, want) in [(&y, "expected_y.npy"), (&hn, "expected_hn.npy")] {
        let diff = max_diff(&floats(got), &floats(Path::new(&graph(case, want))));
        assert!(diff < 1e-5, "{want}: {diff}");
    }
}

/// An nn.GRU state dict has no cell state to take or give.
#[test]
fn a_gru_state_dict_refuses_cell_states() {
    let out = scratch("gru").join("y.npy");
    let out = out.to_str().unwrap();
    let (model, x) = (
        graph("pt_gru_plain", "model.safetensors"),
        graph("pt_gru_plain", "x.npy"),
    );
    fails(
        &[
            "--model",
            &model,
            "--input",
            &x,
            "--output",
            out,
            "--final-c",
            out,
        ],
        &["nn.GRU", "--final-c"],
    );
}
