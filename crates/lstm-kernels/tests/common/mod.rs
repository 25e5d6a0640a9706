//! What the kernel tests share: a test that needs a CPU feature fails when the CPU lacks it,
//! unless the run says that it may be missing.
#![allow(dead_code)] // each test file uses part of it

/// `true` when the CPU has `level`. When it has not, the test fails, unless
/// `LSTM_ALLOW_MISSING_CPU_FEATURES=1` says the run accepts that, in which case it says so on
/// standard error and the caller skips its check.
pub fn cpu_has(level: lstm_kernels::Level, what: &str) -> bool {
    if lstm_kernels::detected_level() >= level {
        return true;
    }
    let allowed = std::env::var("LSTM_ALLOW_MISSING_CPU_FEATURES").is_ok_and(|v| v == "1");
    assert!(
        allowed,
        "{what} needs {level:?}, which this CPU lacks (detected {:?}); set \
         LSTM_ALLOW_MISSING_CPU_FEATURES=1 to skip it",
        lstm_kernels::detected_level()
    );
    eprintln!("SKIPPED {what}: this CPU lacks {level:?}");
    false
}
