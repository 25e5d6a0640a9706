//! `lstm demo` prints the seeds' numbers and a trace for every variant.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

#[test]
fn demo_prints_the_seed_numbers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lstm"))
        .arg("demo")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "h = [0.04826596, 0.0696416]",
        "c = [0.09676093, 0.14079951]",
        "h = [-0.24236866, -0.47552629, -0.61342184, 0.2937933]",
        "c = [-2.00175213, -0.54923161, -1.26657864, 0.33225723]",
        "ConcatCell",
        "SplitCell",
        "StateGatedCell",
        "PeepholeCell",
        "cake",
    ] {
        assert!(text.contains(needle), "demo output lacks {needle:?}");
    }
}
