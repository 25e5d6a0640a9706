//! A sequence on several threads that split each step's hidden units instead of the batch.
//!
//! Threads that split the batch each read all of the recurrent weights at every step. Once those
//! weights are larger than a core's L2 cache, every thread streams all of them from L3 every step,
//! however few batch rows it has. Splitting the units instead gives thread `k` of `n` the units
//! `k H/n .. (k+1) H/n` of each gate: it reads only its columns of `W_x` and `W_r` (a `1/n` share
//! of the weights), computes those units' gates for every batch row, and publishes its slice of
//! `h_t`. The threads meet at a barrier once per step, where each gathers the whole `h_t` for the
//! next product.
//!
//! Each thread's products are a selection of the panels of the engine's packed weights
//! ([`lstm_kernels::gemm_panels`]), so nothing is stored twice, and every column is summed in the
//! same order as on one thread: the result is identical, bit for bit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use lstm_kernels::{NR, Panels};
use ndarray::{ArrayView3, ArrayViewMut3, Axis, s};

use super::{CHUNK, LstmEngine, Recurrence, chunk_copy_len, for_each_chunk, reading_order};
use crate::{Direction, LstmError, LstmState, Result, Scalar, Workspace};

/// Bytes of recurrent weights from which splitting the units pays whatever the batch: twice a
/// core's L2 cache on the machines this was measured on (2 MiB), so that a thread's share of the
/// weights is what it would otherwise stream from L3 at every step.
pub const UNIT_SPLIT_MIN_WEIGHTS: usize = 4 << 20;

/// Batch rows per thread up to which splitting the units pays even when the weights fit in L2:
/// a thread with this few rows of a batch split spends its step reading all the weights for
/// them.
pub const UNIT_SPLIT_MAX_ROWS: usize = 4;

/// Multiply-adds per thread and step below which the barrier of a unit split costs more than
/// the split saves (a step of that size takes about a microsecond).
pub const UNIT_SPLIT_MIN_STEP_WORK: usize = 1 << 16;

impl<F: Scalar> LstmEngine<F> {
    /// How many of `threads` threads should split the units of a batch of `batch` rows: the
    /// most (at least two) that divide `H` into whole panels of units, or 0 where the batch
    /// split serves better or the unit split does not apply.
    ///
    /// It applies without a projection and with the hidden-state recurrence, and pays where
    /// each thread's step is at least [`UNIT_SPLIT_MIN_STEP_WORK`] multiply-adds and either the
    /// recurrent weights reach [`UNIT_SPLIT_MIN_WEIGHTS`] or a batch split would leave each
    /// thread at most [`UNIT_SPLIT_MAX_ROWS`] rows.
    pub fn unit_split_threads(&self, threads: usize, batch: usize) -> usize {
        let (h, p) = (self.hidden, self.output);
        if self.proj.is_some() || self.recurrence != Recurrence::Hidden {
            return 0;
        }
        let big = 4 * h * p * size_of::<F>() >= UNIT_SPLIT_MIN_WEIGHTS;
        let step_work = batch.saturating_mul(4 * h * (self.input + p));
        (2..=threads)
            .rev()
            .filter(|&n| h.is_multiple_of(n * NR) && step_work / n >= UNIT_SPLIT_MIN_STEP_WORK)
            .find(|&n| big || batch <= UNIT_SPLIT_MAX_ROWS * n)
            .unwrap_or(0)
    }

    /// The whole sequence on `n` threads ([`Self::unit_split_threads`]) that split the units;
    /// `input [T, B, I]` and `output [T, B, H]` time-major, every row stepping at every
    /// position.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] when a worker thread panicked.
    pub(crate) fn sequence_units(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        output: ArrayViewMut3<'_, F>,
        direction: Direction,
        n: usize,
        ws: &mut Workspace<F>,
    ) -> Result<()> {
        let (b, h) = (state.batch(), self.hidden);
        let u = h / n;
        // Thread `k`'s slice of `h` (double-buffered: step `t` reads buffer `t % 2` of every
        // thread and writes buffer `(t + 1) % 2` of its own) and of `c`, each `[B, u]`.
        let slices = |m: ndarray::ArrayView2<'_, F>, k: usize| -> Vec<F> {
            m.slice(s![.., k * u..(k + 1) * u])
                .iter()
                .copied()
                .collect()
        };
        let shared = Shared {
            h: (0..n)
                .map(|k| {
                    [
                        RwLock::new(slices(state.h(), k)),
                        RwLock::new(vec![F::zero(); b * u]),
                    ]
                })
                .collect(),
            c: (0..n).map(|k| Mutex::new(slices(state.c(), k))).collect(),
            barrier: SpinBarrier::new(n),
            zero_start: self.recurrent_input_is_zero(state),
        };
        let mut outs = Vec::with_capacity(n);
        let mut rest = output;
        for _ in 1..n {
            let (head, tail) = rest.split_at(Axis(2), u);
            outs.push(head);
            rest = tail;
        }
        outs.push(rest);
        let joined: Vec<bool> = std::thread::scope(|scope| {
            let shared = &shared;
            let mut work = outs.into_iter().zip(ws.per_thread(n)).enumerate();
            let first = work.next();
            let handles: Vec<_> = work
                .map(|(k, (out, ws))| {
                    scope.spawn(move || self.units_thread(k, n, input, out, direction, shared, ws))
                })
                .collect();
            if let Some((k, (out, ws))) = first {
                self.units_thread(k, n, input, out, direction, shared, ws);
            }
            handles.into_iter().map(|t| t.join().is_ok()).collect()
        });
        if joined.iter().any(|ok| !ok) || shared.barrier.poisoned.load(Ordering::Acquire) {
            return Err(LstmError::invalid("worker thread", "panicked"));
        }
        let last = input.len_of(Axis(0)) % 2;
        let (mut hv, mut cv) = state.parts_mut();
        for k in 0..n {
            let hk = shared.h[k][last]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let ck = shared.c[k].lock().unwrap_or_else(PoisonError::into_inner);
            for row in 0..b {
                let cols = s![row, k * u..(k + 1) * u];
                for (d, &v) in hv.slice_mut(cols).iter_mut().zip(&hk[row * u..]) {
                    *d = v;
                }
                for (d, &v) in cv.slice_mut(cols).iter_mut().zip(&ck[row * u..]) {
                    *d = v;
                }
            }
        }
        Ok(())
    }

    /// Thread `k` of `n` of [`Self::sequence_units`]: the input projection of its columns a
    /// chunk of steps at a time, then per step its columns of the recurrent product, its units'
    /// gates and its slice of `h_t`.
    #[allow(clippy::too_many_arguments)]
    fn units_thread(
        &self,
        k: usize,
        n: usize,
        input: ArrayView3<'_, F>,
        mut out: ArrayViewMut3<'_, F>,
        direction: Direction,
        shared: &Shared<F>,
        ws: &mut Workspace<F>,
    ) {
        let _leave = Leave(&shared.barrier);
        let (t, b, i) = input.dim();
        let (h, u) = (self.hidden, self.hidden / n);
        let w = 4 * u;
        // Run `g` of the selection is gate `g`'s columns `g H + k u ..`: all four gates of this
        // thread's units, side by side in `z` like a cell of `u` units.
        let sel = Panels {
            first: k * u / NR,
            len: u / NR,
            runs: 4,
            stride: h / NR,
        };
        let chunk = (CHUNK / (b * w).max(1)).clamp(1, t.max(1));
        let peep_len = if self.peep.is_some() { 3 * u } else { 0 };
        let copy_len = chunk_copy_len(input, chunk);
        let ([pre, xbuf, hfull, bias, peep], _, _) =
            ws.split_reused([chunk * b * w, copy_len, b * h, w, peep_len]);
        for g in 0..4 {
            bias[g * u..(g + 1) * u].copy_from_slice(&self.bias[g * h + k * u..][..u]);
        }
        if let Some(p) = &self.peep {
            for g in 0..3 {
                peep[g * u..(g + 1) * u].copy_from_slice(&p[g * h + k * u..][..u]);
            }
        }
        let opts = self.gate_options(self.peep.as_ref().map(|_| &*peep));
        let mut c = shared.c[k].lock().unwrap_or_else(PoisonError::into_inner);
        let mut step = 0;
        for_each_chunk(input, chunk, direction, xbuf, |xs, steps| {
            let rows = steps.len() * b;
            lstm_kernels::gemm_panels(rows, xs, i, &self.wx, sel, pre, w, Some(bias));
            for tt in reading_order(direction, steps.clone()) {
                let cur = step % 2;
                for (q, slot) in shared.h.iter().enumerate() {
                    let hq = slot[cur].read().unwrap_or_else(PoisonError::into_inner);
                    for row in 0..b {
                        hfull[row * h + q * u..][..u].copy_from_slice(&hq[row * u..][..u]);
                    }
                }
                let z = &mut pre[(tt - steps.start) * b * w..][..b * w];
                if step > 0 || !shared.zero_start {
                    lstm_kernels::gemm_panels(b, hfull, h, &self.wr, sel, z, w, None);
                }
                let mut next = shared.h[k][1 - cur]
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                for row in 0..b {
                    self.gate_row(
                        &opts,
                        &mut z[row * w..][..w],
                        &mut c[row * u..][..u],
                        &mut next[row * u..][..u],
                    );
                }
                crate::write_rows(out.index_axis_mut(Axis(0), tt), &next);
                drop(next);
                step += 1;
                if !shared.barrier.wait() {
                    return false;
                }
            }
            true
        });
    }
}

/// What the threads of [`LstmEngine::sequence_units`] share.
struct Shared<F> {
    /// Per thread, its slice of `h` in two buffers.
    h: Vec<[RwLock<Vec<F>>; 2]>,
    /// Per thread, its slice of `c` (locked by its thread for the whole run).
    c: Vec<Mutex<Vec<F>>>,
    barrier: SpinBarrier,
    /// Whether the initial `h` is all zero (the first step then skips the recurrent product).
    zero_start: bool,
}

/// A barrier for threads that meet every few hundred microseconds: waiting threads spin (then
/// yield), so the last to arrive releases the others without a system call. A thread that
/// panics poisons it, and every wait returns `false` from then on.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Waits for every thread; `false` when the barrier is poisoned.
    fn wait(&self) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
        } else {
            let mut spins = 0u32;
            while self.generation.load(Ordering::Acquire) == generation {
                if self.poisoned.load(Ordering::Acquire) {
                    return false;
                }
                if spins < SPINS {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        !self.poisoned.load(Ordering::Acquire)
    }
}

/// Spins of a waiting thread before it starts yielding its core: about ten microseconds, so a
/// thread that shares its core with another (more threads than cores) lets it run soon.
const SPINS: u32 = 256;

/// Poisons the barrier when its thread unwinds, so the others stop waiting for it.
struct Leave<'a>(&'a SpinBarrier);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}
