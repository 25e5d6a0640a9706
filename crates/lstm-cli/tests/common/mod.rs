//! What the command-line tests share.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it; test code

use std::process::Command;

/// Runs `lstm args` and returns stderr, asserting failure with status 1 (bad input) or 2 (bad
/// usage), no panic, and one `error: ` line that contains every needle (compared without
/// regard to case).
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    fails_with(&[1, 2], args, needles)
}

/// [`fails`] with the exit status one of `codes`.
pub fn fails_with(codes: &[i32], args: &[&str], needles: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    let code = out.status.code().unwrap_or(-1);
    assert!(codes.contains(&code), "{args:?}: status {code}, {err}");
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

/// The cases of a fixture set's `cases.txt` (`name|arguments`): each case's name, its
/// directory under `root`, its scratch directory under `scratch` (created) and its arguments,
/// with `@FILE` (and `NAME=@FILE`) turned into a path in the scratch directory.
pub fn cases(
    root: &std::path::Path,
    scratch: &std::path::Path,
) -> Vec<(String, std::path::PathBuf, std::path::PathBuf, Vec<String>)> {
    let text = std::fs::read_to_string(root.join("cases.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (name, args) = line.split_once('|').unwrap();
            let (dir, out) = (root.join(name), scratch.join(name));
            std::fs::create_dir_all(&out).unwrap();
            let args = args
                .split_whitespace()
                .map(|a| match (a.strip_prefix('@'), a.split_once("=@")) {
                    (Some(file), _) => out.join(file).display().to_string(),
                    // `NAME=@FILE` (a graph output) writes to the scratch directory too.
                    (None, Some((name, file))) => format!("{name}={}", out.join(file).display()),
                    (None, None) => a.to_string(),
                })
                .collect();
            (name.to_string(), dir, out, args)
        })
        .collect()
}
