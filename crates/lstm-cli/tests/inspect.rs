//! `lstm inspect` on each kind of model file: what it holds and what of it can run.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::fails_with;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn inspect(rel: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .arg("inspect")
        .arg(fixture(rel))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{n:?} not in\n{text}");
    }
}

#[test]
fn onnx_graphs_nested_and_flat() {
    has(
        &inspect("nested/lstm_in_if/model.onnx"),
        &[
            "recurrent nodes: 1",
            "switch/then_branch/inner_lstm: LSTM forward, input 3, hidden 4, layout 0, bias",
            "runs whole: no",
            "If (node \"switch\")",
            "without --node",
        ],
    );
    has(
        &inspect("nested/lstm_in_loop/model.onnx"),
        &["stream/body/body_lstm: LSTM forward"],
    );
    has(
        &inspect("nested/two_lstms_whole/model.onnx"),
        &[
            "recurrent nodes: 2",
            "first: LSTM forward, input 3",
            "second: LSTM forward, input 4",
            "runs whole: yes",
        ],
    );
    has(
        &inspect("bad/nested_computed_weights.onnx"),
        &["cannot run alone", "cw_W"],
    );
}

#[test]
fn state_dicts_of_every_layout() {
    has(
        &inspect("published/pt_zip_f16/model.pt"),
        &[
            "torch.save zip state dict, 18 tensors",
            "rnn.weight_ih_l1 [12, 6] float16",
            "\"rnn.\": LSTM, a stack",
            "2 layer(s), bidirectional, input 4, hidden 3",
        ],
    );
    has(
        &inspect("published/pt_legacy_gru/model.pt"),
        &["torch.save legacy", "\"rnn.\": GRU"],
    );
    has(
        &inspect("published/lstm_cell/model.safetensors"),
        &[
            "safetensors state dict, 6 tensors",
            "lstm_cell.weight_ih [20, 3] float32",
            "\"lstm_cell.\": LSTM, a cell",
        ],
    );
}

/// A file without a known extension is told by its bytes.
#[test]
fn the_format_is_told_by_the_bytes() {
    let odd = std::env::temp_dir().join(format!("lstm-inspect-{}.ckpt", std::process::id()));
    std::fs::copy(fixture("published/pt_legacy_f32/model.pt"), &odd).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .arg("inspect")
        .arg(&odd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    has(
        &String::from_utf8(out.stdout).unwrap(),
        &["torch.save legacy"],
    );
    let _ = std::fs::remove_file(&odd);
}

#[test]
fn bad_uses() {
    fails_with(&[2], &["inspect"], &["needs a MODEL"]);
    fails_with(
        &[1],
        &["inspect", "/nonexistent/model.txt"],
        &["/nonexistent/model.txt"],
    );
    let odd = std::env::temp_dir().join(format!("lstm-inspect-{}.weights", std::process::id()));
    std::fs::write(&odd, b"neither format").unwrap();
    fails_with(
        &[1],
        &["inspect", odd.to_str().unwrap()],
        &["cannot tell the model's format"],
    );
    let _ = std::fs::remove_file(&odd);
    fails_with(
        &[1],
        &["inspect", "/nonexistent/m.onnx"],
        &["/nonexistent/m.onnx"],
    );
    fails_with(
        &[1],
        &["inspect", fixture("bad/evil.pt").to_str().unwrap()],
        &["forbidden global"],
    );
}
