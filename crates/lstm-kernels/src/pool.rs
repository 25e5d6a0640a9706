//! Worker threads that outlive a call, for the workspace's threaded paths.
//!
//! A thread spawned per call starts running only once the scheduler has woken an idle core, which
//! on some virtual machines takes a millisecond or more. The workers here stay awake, spinning,
//! for [`WORKER_SPIN`] after each call, so the next call that follows soon (the next batch, the
//! next layer) starts on both cores at once; then they sleep until a call needs them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// How long a worker keeps spinning for the next call after finishing one, before it sleeps,
/// unless [`set_worker_spin`] says otherwise.
pub const WORKER_SPIN: Duration = Duration::from_millis(2);

/// The spin in nanoseconds, [`WORKER_SPIN`] until set.
static SPIN_NANOS: AtomicU64 = AtomicU64::new(WORKER_SPIN.as_nanos() as u64);

/// Sets how long the workers spin for the next call before they sleep (process-wide; from the
/// workers' next call on). Zero makes them sleep at once: no CPU time is spent between calls,
/// and each call waits for the other cores to wake.
pub fn set_worker_spin(spin: Duration) {
    let nanos = u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX);
    SPIN_NANOS.store(nanos, Ordering::Relaxed);
}

/// Runs `f(0)`, `f(1)`, ..., `f(n - 1)` at once, `f(0)` on the calling thread and the others on
/// the pool's workers (or on threads spawned for the call, when another call holds the pool),
/// and returns when all have returned: `false` if any of `f(1..n)` panicked. A panic of `f(0)`
/// unwinds from here once the others are done.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let sum = AtomicUsize::new(0);
/// assert!(lstm_kernels::run_threads(3, |k| {
///     sum.fetch_add(k + 1, Ordering::Relaxed);
/// }));
/// assert_eq!(sum.into_inner(), 6);
/// ```
pub fn run_threads<F: Fn(usize) + Sync>(n: usize, f: F) -> bool {
    match n {
        0 => return true,
        1 => {
            f(0);
            return true;
        }
        _ => {}
    }
    let pool = POOL.get_or_init(Pool::new);
    // One call at a time on the workers (a panic of an earlier one leaves nothing to repair).
    let _only = match pool.busy.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return scoped(n, &f),
    };
    if !pool.grow(n - 1) {
        return scoped(n, &f);
    }
    let shared = pool.shared;
    let job: *const (dyn Fn(usize) + Sync + '_) = &f;
    // SAFETY: only the lifetime bound changes. The workers dereference the pointer only between
    // its posting below and `remaining` reaching zero, and `Finish` waits for that (and then
    // withdraws the pointer) before this frame and `f` can go away, on return and on unwind
    // alike.
    let job = Call(unsafe {
        std::mem::transmute::<
            *const (dyn Fn(usize) + Sync + '_),
            *const (dyn Fn(usize) + Sync + 'static),
        >(job)
    });
    shared.remaining.store(n - 1, Ordering::Relaxed);
    shared.panicked.store(false, Ordering::Relaxed);
    {
        let mut posted = lock(&shared.job);
        posted.generation += 1;
        posted.call = Some(job);
        posted.n = n;
        shared
            .generation
            .store(posted.generation, Ordering::Release);
    }
    shared.wake.notify_all();
    let finish = Finish(shared);
    f(0);
    drop(finish);
    !shared.panicked.load(Ordering::Acquire)
}

/// The call when the pool is taken: threads spawned for it.
fn scoped(n: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..n).map(|k| scope.spawn(move || f(k))).collect();
        f(0);
        handles.into_iter().all(|h| h.join().is_ok())
    })
}

static POOL: OnceLock<Pool> = OnceLock::new();

struct Pool {
    /// Held by the call that uses the workers.
    busy: Mutex<()>,
    /// Workers started so far.
    workers: Mutex<usize>,
    /// Lives as long as the workers, which never end.
    shared: &'static Shared,
}

impl Pool {
    fn new() -> Self {
        Self {
            busy: Mutex::new(()),
            workers: Mutex::new(0),
            shared: Box::leak(Box::default()),
        }
    }

    /// Starts workers until there are `count`; `false` when the system would not start one.
    fn grow(&self, count: usize) -> bool {
        let mut started = lock(&self.workers);
        while *started < count {
            *started += 1;
            let (shared, index) = (self.shared, *started);
            let seen = lock(&shared.job).generation;
            let spawned = std::thread::Builder::new()
                .name(format!("lstm-worker-{index}"))
                .spawn(move || worker(shared, index, seen));
            if spawned.is_err() {
                *started -= 1;
                return false;
            }
        }
        true
    }
}

/// What the caller and the workers share.
#[derive(Default)]
struct Shared {
    /// The current call's generation, read while spinning.
    generation: AtomicUsize,
    /// The current call.
    job: Mutex<Posted>,
    /// Sleeping workers wait here for the next call.
    wake: Condvar,
    /// Workers of the current call that have not returned yet.
    remaining: AtomicUsize,
    /// A worker's call panicked.
    panicked: AtomicBool,
}

/// The current call, its generation and how many take part (the caller and workers `1..n`).
#[derive(Default)]
struct Posted {
    generation: usize,
    call: Option<Call>,
    n: usize,
}

/// A posted call's function, valid from its posting until its workers are done.
#[derive(Clone, Copy)]
struct Call(*const (dyn Fn(usize) + Sync));

// SAFETY: the function is `Sync`, so calling it from another thread is sound; the pointer is
// only dereferenced while the call that posted it waits for its workers.
unsafe impl Send for Call {}

/// Worker `index` (from 1): runs its part of each call that has one, spinning between calls for
/// the time [`set_worker_spin`] set, then sleeping. A call it has no part in it only notes.
fn worker(shared: &'static Shared, index: usize, mut seen: usize) {
    loop {
        let since = Instant::now();
        let spin = Duration::from_nanos(SPIN_NANOS.load(Ordering::Relaxed));
        while shared.generation.load(Ordering::Acquire) == seen && since.elapsed() < spin {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
        let mut posted = lock(&shared.job);
        while posted.generation == seen {
            posted = shared
                .wake
                .wait(posted)
                .unwrap_or_else(PoisonError::into_inner);
        }
        seen = posted.generation;
        let (call, n) = (posted.call, posted.n);
        drop(posted);
        if let Some(Call(call)) = call.filter(|_| index < n) {
            // SAFETY: this worker takes part in the call, which waits for it (`remaining`)
            // before its function goes away.
            let call = unsafe { &*call };
            if catch_unwind(AssertUnwindSafe(|| call(index))).is_err() {
                shared.panicked.store(true, Ordering::Release);
            }
            shared.remaining.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Waits, when dropped, until every worker of the call has returned, then withdraws the call.
struct Finish<'a>(&'a Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.0.remaining.load(Ordering::Acquire) != 0 {
            if spins < 256 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        lock(&self.0.job).call = None;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
