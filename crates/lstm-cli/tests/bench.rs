//! `lstm bench` finds its variants through the registration: every name the help lists runs.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::process::Command;

fn lstm(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_registered_variant_is_listed_and_runs() {
    let (ok, help) = lstm(&["help", "bench"]);
    assert!(ok);
    for name in [
        "concat",
        "split",
        "peephole",
        "state-gated",
        "gru",
        "layers",
    ] {
        assert!(
            help.contains(&format!("    {name} ")),
            "{name} not in the help"
        );
        let (ok, out) = lstm(&[
            "bench",
            "--workload",
            "stream",
            "--variant",
            name,
            "--format",
            "json",
        ]);
        assert!(ok, "{name}");
        assert!(out.contains(&format!("\"variant\": \"{name}\"")), "{out}");
        assert!(out.contains("\"unit\": \"ns/step\""), "{out}");
    }
}
