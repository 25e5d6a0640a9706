//! What the command-line tests share.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it; test code

use std::process::Command;

/// Runs `lstm args` and returns stderr, asserting failure with status 1, no panic, and one
/// `error: ` line that contains every needle (compared without regard to case).
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{args:?}: {err:?}"
    );
    for n in needles {
        assert!(
            err.to_lowercase().contains(&n.to_lowercase()),
            "{args:?}: {err:?} lacks {n:?}"
        );
    }
    err
}
