//! `run_threads`: every index runs once and at the same time as the others, a panic on a worker
//! is reported and leaves the workers usable, a panic on the caller unwinds after the others
//! are done, and calls from several threads or from inside a call all complete.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

use lstm_kernels::{WORKER_SPIN, run_threads, set_worker_spin};

/// Each index once; the three meet at a barrier, which only threads running at once can pass.
#[test]
fn every_index_runs_once_and_at_once() {
    for _ in 0..50 {
        let counts: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        let meet = Barrier::new(3);
        assert!(run_threads(3, |k| {
            meet.wait();
            counts[k].fetch_add(1, Ordering::Relaxed);
        }));
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }
    let ran = AtomicUsize::new(0);
    assert!(run_threads(1, |k| {
        ran.fetch_add(k + 1, Ordering::Relaxed);
    }));
    assert!(run_threads(0, |_| {
        ran.fetch_add(10, Ordering::Relaxed);
    }));
    assert_eq!(ran.into_inner(), 1, "one call for n = 1, none for n = 0");
}

#[test]
fn a_worker_panic_is_reported_and_the_workers_stay_usable() {
    assert!(!run_threads(2, |k| assert_eq!(k, 0, "worker {k} fails")));
    let sum = AtomicUsize::new(0);
    assert!(run_threads(2, |k| {
        sum.fetch_add(k + 1, Ordering::Relaxed);
    }));
    assert_eq!(sum.into_inner(), 3);
}

#[test]
fn a_caller_panic_unwinds_after_the_workers_are_done() {
    let done = AtomicUsize::new(0);
    let caught = std::panic::catch_unwind(|| {
        run_threads(2, |k| {
            if k == 0 {
                panic!("the caller fails");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            done.fetch_add(1, Ordering::Relaxed);
        })
    });
    assert!(caught.is_err());
    assert_eq!(
        done.load(Ordering::Relaxed),
        1,
        "the worker finished before the unwind"
    );
    assert!(run_threads(2, |_| {}));
}

#[test]
fn nested_and_concurrent_calls_complete() {
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..20 {
                    assert!(run_threads(2, |_| {
                        assert!(run_threads(2, |_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        }));
                    }));
                }
            });
        }
    });
    assert_eq!(total.into_inner(), 3 * 20 * 2 * 2);
}

/// Without the spin the workers sleep between calls, and calls still complete.
#[test]
fn workers_that_sleep_at_once_still_run_every_call() {
    set_worker_spin(std::time::Duration::ZERO);
    let sum = AtomicUsize::new(0);
    for _ in 0..20 {
        assert!(run_threads(3, |k| {
            sum.fetch_add(k, Ordering::Relaxed);
        }));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(sum.into_inner(), 20 * 3);
    set_worker_spin(WORKER_SPIN);
}
