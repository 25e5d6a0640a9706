//! `lstm compare`: every variant on a task, one JSON object, a plot; bad uses are errors.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::process::Command;

mod common;
use common::fails;

#[test]
fn every_variant_on_both_tasks() {
    let plot = std::env::temp_dir().join(format!("lstm-compare-{}.svg", std::process::id()));
    for task in ["adding", "copy"] {
        let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
            .args([
                "compare", "--task", task, "--epochs", "2", "--seeds", "2", "--steps", "4",
            ])
            .args(["--hidden", "8", "--format", "json", "--plot"])
            .arg(&plot)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = String::from_utf8(out.stdout).unwrap();
        let all = [
            "lstm",
            "gru",
            "peephole",
            "state-gated",
            "nig",
            "nfg",
            "nog",
            "niaf",
            "noaf",
            "cifg",
        ];
        for v in all {
            assert!(
                json.contains(&format!("\"variant\": \"{v}\"")),
                "{v} in {json}"
            );
        }
        assert_eq!(
            json.contains("\"accuracy_mean\": null"),
            task == "adding",
            "{json}"
        );
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert_eq!(svg.matches("<polyline").count(), all.len());
    }
    let _ = std::fs::remove_file(&plot);
}

#[test]
fn bad_uses_are_errors() {
    fails(&["compare"], &["--task adding or --task copy"]);
    fails(&["compare", "--task", "sorting"], &["sorting"]);
    fails(
        &["compare", "--task", "adding", "--variants", "lstm,elman"],
        &["elman"],
    );
    fails(
        &["compare", "--task", "adding", "--seeds", "0"],
        &["at least 1"],
    );
    fails(
        &["compare", "--task", "adding", "--steps", "1"],
        &["at least 2 steps"],
    );
}
