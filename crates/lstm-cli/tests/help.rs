//! Every command explains itself (`lstm help CMD`, `lstm CMD --help`); mistakes are named with
//! the closest valid spelling; the exit codes tell usage from input.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::process::Command;

mod common;
use common::fails_with;

const COMMANDS: [&str; 10] = [
    "run", "grad", "train", "predict", "compare", "bench", "export", "inspect", "demo", "help",
];

fn stdout_of(args: &[&str]) -> String {
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

#[test]
fn every_command_has_its_help() {
    let overview = stdout_of(&["help"]);
    for cmd in COMMANDS {
        assert!(
            overview.contains(&format!("\n    {cmd} ")),
            "{cmd} in {overview}"
        );
        let a = stdout_of(&["help", cmd]);
        assert!(a.starts_with(&format!("lstm {cmd}")), "{a}");
        assert!(a.contains("Example:\n  lstm "), "{cmd}: {a}");
        if cmd != "help" {
            // --help anywhere among the arguments, and -h, print the same.
            assert_eq!(stdout_of(&[cmd, "--help"]), a);
            assert_eq!(stdout_of(&[cmd, "--threads", "2", "-h"]), a);
        }
    }
    // Options are listed with their defaults.
    let run = stdout_of(&["run", "--help"]);
    for needle in [
        "--sequence-lens LENS.npy",
        "(default 1)",
        "--node NAME",
        "(required)",
    ] {
        assert!(run.contains(needle), "{needle} in {run}");
    }
    let train = stdout_of(&["help", "train"]);
    for needle in ["--lr LR", "(default 1e-3)", "--epochs E", "(default 10)"] {
        assert!(train.contains(needle), "{needle} in {train}");
    }
}

#[test]
fn mistakes_name_the_closest_valid_spelling() {
    fails_with(
        &[2],
        &["run", "--ouput", "y.npy"],
        &["--ouput", "did you mean --output?"],
    );
    fails_with(&[2], &["rn"], &["\"rn\"", "did you mean run?"]);
    fails_with(&[2], &["help", "trian"], &["did you mean train?"]);
    fails_with(
        &[2],
        &["train", "--variant", "lstn"],
        &["\"lstn\"", "did you mean lstm?"],
    );
    fails_with(
        &[2],
        &["compare", "--task", "adding", "--variants", "peepole"],
        &["did you mean peephole?"],
    );
    fails_with(
        &[2],
        &["bench", "--workload", "batch-mdi"],
        &["did you mean batch-mid?"],
    );
    fails_with(&[2], &["run", "model.onnx"], &["positional", "model.onnx"]);
}

#[test]
fn exit_codes_tell_usage_from_input() {
    // Usage: 2.
    fails_with(&[2], &[], &["no command"]);
    fails_with(&[2], &["run", "--threads", "0"], &["--threads"]);
    fails_with(&[2], &["run", "--model"], &["--model"]);
    // Input: 1.
    fails_with(
        &[1],
        &[
            "run",
            "--model",
            "/nonexistent/m.onnx",
            "--input",
            "/nonexistent/x.npy",
            "--output",
            "/tmp/y.npy",
        ],
        &["nonexistent"],
    );
}
