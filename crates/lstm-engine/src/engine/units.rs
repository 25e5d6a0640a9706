//! A sequence on several threads that split each step's hidden units instead of the batch.
//!
//! Threads that split the batch each read all of the recurrent weights at every step. Once those
//! weights are larger than a core's L2 cache, every thread streams all of them from L3 every step,
//! however few batch rows it has. Splitting the units instead cuts each step into slices of the
//! hidden units: a slice's work is its columns of `W_x` and `W_r` and its units' gates for every
//! batch row, and it publishes its part of `h_t`. The threads meet at a barrier once per step,
//! where each gathers the whole `h_t` for the next product.
//!
//! The slices are shared out step by step. Thread `k` of `n` owns a run of them (`1/n` of the
//! units) and takes them from the front; a thread done with its own takes the others' from the
//! back. On a machine whose cores run at equal speed each thread does its own run, every step,
//! with its weights and cell state in its own cache; when one core is slowed (by another
//! program, or a hypervisor), the other takes over part of its run instead of waiting for it at
//! the barrier. That needs a batch of [`BALANCE_MIN_ROWS`] rows or more; below it a step is so
//! short that a slice taken by the other core costs more (its weights leave their cache) than
//! the wait it saves, so each thread keeps its run as one slice.
//!
//! Each slice's products are a selection of the panels of the engine's packed weights
//! ([`lstm_kernels::gemm_rows`]), so nothing is stored twice, and every column is summed in the
//! same order as on one thread: the result is identical, bit for bit. Each thread packs the rows
//! of `h` once per step (and of the inputs once per chunk of steps) for all the slices it takes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use lstm_kernels::{NR, Panels};
use ndarray::{ArrayView3, ArrayViewMut3, Axis};

use super::{CHUNK, LstmEngine, Recurrence, chunk_copy_len, for_each_chunk, reading_order};
use crate::sync::{FailOnPanic, Padded, lock, spin_until};
use crate::{Direction, LstmError, LstmState, Result, Scalar, Workspace};

/// Bytes of recurrent weights from which splitting the units pays whatever the batch: twice a
/// core's L2 cache on the machines this was measured on (2 MiB), so that a thread's share of the
/// weights is what it would otherwise stream from L3 at every step.
pub const UNIT_SPLIT_MIN_WEIGHTS: usize = 4 << 20;

/// Batch rows per thread up to which splitting the units pays even when the weights fit in L2
/// (if they reach [`UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS`]): a thread with this few rows of a batch
/// split spends its step reading all the weights for them.
pub const UNIT_SPLIT_MAX_ROWS: usize = 4;

/// Bytes of recurrent weights below which the batch split serves even a few rows per thread
/// better than the unit split: reading small weights twice costs less than the barrier. On
/// 100 steps with 2 threads, 8 rows took 0.75x the one-thread time split by the batch against
/// 1.02x split by the units for `H = 128` (256 KiB), and 0.71x against 0.62x for `H = 256`
/// (1 MiB).
pub const UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS: usize = 512 << 10;

/// Multiply-adds per thread and step below which the barrier of a unit split costs more than
/// the split saves (a step of that size takes about a microsecond).
pub const UNIT_SPLIT_MIN_STEP_WORK: usize = 1 << 16;

/// Slices of the units per thread, at most: enough that a thread that falls behind leaves
/// little of a step's time for the other to wait through (a slice, half of one on average).
const SLICES_PER_THREAD: usize = 16;

/// Batch rows from which the slices are shared out step by step; with fewer, each thread keeps
/// its own run of the units (one slice), so its weights stay in its cache.
const BALANCE_MIN_ROWS: usize = 16;

impl<F: Scalar> LstmEngine<F> {
    /// How many of `threads` threads should split the units of a batch of `batch` rows: the
    /// most (at least two) that divide `H` into whole panels of units, or 0 where the batch
    /// split serves better or the unit split does not apply.
    ///
    /// It applies without a projection and with the hidden-state recurrence, and pays where
    /// each thread's step is at least [`UNIT_SPLIT_MIN_STEP_WORK`] multiply-adds and either the
    /// recurrent weights reach [`UNIT_SPLIT_MIN_WEIGHTS`] or a batch split would leave each
    /// thread at most [`UNIT_SPLIT_MAX_ROWS`] rows and the weights reach
    /// [`UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS`].
    pub fn unit_split_threads(&self, threads: usize, batch: usize) -> usize {
        let (h, p) = (self.hidden, self.output);
        if self.proj.is_some()
            || self.recurrence != Recurrence::Hidden
            || self.wx.whole().is_none()
            || self.wr.whole().is_none()
        {
            return 0;
        }
        let weights = 4 * h * p * size_of::<F>();
        let big = weights >= UNIT_SPLIT_MIN_WEIGHTS;
        let few_rows_pay = weights >= UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS;
        let step_work = batch.saturating_mul(4 * h * (self.input + p));
        (2..=threads)
            .rev()
            .filter(|&n| h.is_multiple_of(n * NR) && step_work / n >= UNIT_SPLIT_MIN_STEP_WORK)
            .find(|&n| big || (few_rows_pay && batch <= UNIT_SPLIT_MAX_ROWS * n))
            .unwrap_or(0)
    }

    /// The whole sequence on `n` threads ([`Self::unit_split_threads`]) that split the units;
    /// `input [T, B, I]` and `output [T, B, H]` time-major, every row stepping at every
    /// position.
    ///
    /// # Errors
    /// [`LstmError::WorkerPanicked`] when a worker thread panicked.
    pub(crate) fn sequence_units(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        output: ArrayViewMut3<'_, F>,
        direction: Direction,
        n: usize,
        ws: &mut Workspace<F>,
    ) -> Result<()> {
        let (t, b, h) = (input.len_of(Axis(0)), state.batch(), self.hidden);
        // The most slices, up to `SLICES_PER_THREAD` per thread, that cut `H` into whole panels
        // and share out evenly (`n` always does: `unit_split_threads` checked it).
        let panels = h / NR;
        let per_thread = if b >= BALANCE_MIN_ROWS {
            SLICES_PER_THREAD
        } else {
            1
        };
        let count = (n..=panels.min(per_thread * n))
            .rev()
            .find(|&s| panels.is_multiple_of(s) && s.is_multiple_of(n))
            .unwrap_or(n);
        let u = h / count;
        // A chunk's pre-activations: about `CHUNK` values for each thread's share of the units.
        let chunk = (CHUNK * n / (b * 4 * h).max(1)).clamp(1, t.max(1));
        let part = |m: ndarray::ArrayView2<'_, F>, s: usize| -> Vec<F> {
            m.rows()
                .into_iter()
                .flat_map(|row| row.into_iter().skip(s * u).take(u).copied())
                .collect()
        };
        let slices = (0..count)
            .map(|s| {
                let gates = |g: usize| s * u + g * h..(s + 1) * u + g * h;
                Padded(Mutex::new(Slice {
                    c: part(state.c(), s),
                    pre: vec![F::zero(); chunk * b * 4 * u],
                    bias: (0..4)
                        .flat_map(|g| self.bias[gates(g)].iter().copied())
                        .collect(),
                    peep: match &self.peep {
                        Some(p) => (0..3).flat_map(|g| p[gates(g)].iter().copied()).collect(),
                        None => Vec::new(),
                    },
                    chunk: usize::MAX,
                }))
            })
            .collect();
        let shared = Shared {
            slices,
            h: (0..count)
                .map(|s| {
                    Padded([
                        RwLock::new(part(state.h(), s)),
                        RwLock::new(vec![F::zero(); b * u]),
                    ])
                })
                .collect(),
            claims: [0, 1].map(|_| (0..n).map(|_| Padded(AtomicU64::new(0))).collect()),
            barrier: SpinBarrier::new(n),
            zero_start: self.recurrent_input_is_zero(state),
            chunk,
            units: u,
            steal: count > n,
        };
        for (k, word) in shared.claims[0].iter().enumerate() {
            word.store(shared.home(k, n), Ordering::Relaxed);
        }
        // Thread `k` writes the output rows `k B/n .. (k+1) B/n`.
        let mut outs = Vec::with_capacity(n);
        let mut rest = output;
        for k in 1..n {
            let (head, tail) = rest.split_at(Axis(1), k * b / n - (k - 1) * b / n);
            outs.push(head);
            rest = tail;
        }
        outs.push(rest);
        // Each thread keeps its own workspace in `ws` across calls.
        let parts: Vec<_> = outs.into_iter().map(|o| Mutex::new(Some(o))).collect();
        let wss: Vec<_> = ws.per_thread(n).iter_mut().map(Mutex::new).collect();
        let joined = lstm_kernels::run_threads(n, |k| {
            if let Some(out) = lock(&parts[k]).take() {
                self.units_thread(k, n, input, out, direction, &shared, &mut lock(&wss[k]));
            }
        });
        if !joined || shared.barrier.poisoned.load(Ordering::Acquire) {
            return Err(LstmError::WorkerPanicked {
                during: "the unit split".into(),
            });
        }
        let (mut hv, mut cv) = state.parts_mut();
        for s in 0..count {
            let hs = shared.h[s][t % 2]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let slice = lock(&shared.slices[s]);
            for row in 0..b {
                let units = s * u..(s + 1) * u;
                for (d, &v) in hv
                    .row_mut(row)
                    .slice_mut(ndarray::s![units.clone()])
                    .iter_mut()
                    .zip(&hs[row * u..])
                {
                    *d = v;
                }
                for (d, &v) in cv
                    .row_mut(row)
                    .slice_mut(ndarray::s![units])
                    .iter_mut()
                    .zip(&slice.c[row * u..])
                {
                    *d = v;
                }
            }
        }
        Ok(())
    }

    /// Thread `k` of `n` of [`Self::sequence_units`]: per step, the whole `h_{t-1}` gathered
    /// and packed, then slices taken until none is left (for each, its columns of the input
    /// projection at its first step of a chunk, its columns of the recurrent product, its
    /// units' gates and its part of `h_t`), then the barrier; it writes its rows of the output.
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
        let _fail = FailOnPanic(&shared.barrier.poisoned);
        // `unit_split_threads` split only engines whose blocks are packed side by side.
        let (Some((wx, _)), Some((wr, _))) = (self.wx.whole(), self.wr.whole()) else {
            unreachable!("the unit split runs only on engines that keep every block")
        };
        let (_, b, i) = input.dim();
        let (h, chunk) = (self.hidden, shared.chunk);
        let (u, w) = (shared.units, 4 * shared.units);
        let rows = k * b / n..(k + 1) * b / n;
        let copy_len = chunk_copy_len(input, chunk);
        let ([xbuf, xpack, hfull, hpack], _, _) =
            ws.split_reused([copy_len, chunk * b * i, b * h, b * h]);
        let mut step = 0;
        let mut chunks = 0;
        let mut last = None;
        for_each_chunk(input, chunk, direction, xbuf, |xs, steps| {
            let x = lstm_kernels::pack_rows(steps.len() * b, i, xs, i, xpack);
            for tt in reading_order(direction, steps.clone()) {
                let cur = step % 2;
                // Nobody takes from the other parity's claims until after the barrier.
                shared.claims[1 - cur][k].store(shared.home(k, n), Ordering::Release);
                shared.gather(cur, hfull);
                if let Some(prev) = last {
                    crate::write_rows(
                        out.index_axis_mut(Axis(0), prev),
                        &hfull[rows.start * h..rows.end * h],
                    );
                }
                let hp = (step > 0 || !shared.zero_start)
                    .then(|| lstm_kernels::pack_rows(b, h, hfull, h, hpack));
                while let Some(s) = shared.claim(k, cur) {
                    let mut slice = lock(&shared.slices[s]);
                    let Slice {
                        c,
                        pre,
                        bias,
                        peep,
                        chunk: done,
                    } = &mut *slice;
                    // Slice `s` is run `g` of the selection for gate `g`: all four gates of its
                    // units, side by side in `z` like a cell of `u` units.
                    let sel = Panels {
                        first: s * u / NR,
                        len: u / NR,
                        runs: 4,
                        stride: h / NR,
                    };
                    if *done != chunks {
                        lstm_kernels::gemm_rows(&x, wx, sel, pre, w, Some(bias));
                        *done = chunks;
                    }
                    let z = &mut pre[(tt - steps.start) * b * w..][..b * w];
                    if let Some(hp) = &hp {
                        lstm_kernels::gemm_rows(hp, wr, sel, z, w, None);
                    }
                    let opts = self.gate_options(self.peep.as_ref().map(|_| &**peep));
                    let mut next = shared.h[s][1 - cur]
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
                }
                last = Some(tt);
                step += 1;
                if !shared.barrier.wait() {
                    return false;
                }
            }
            chunks += 1;
            true
        });
        if let Some(prev) = last.filter(|_| !shared.barrier.poisoned.load(Ordering::Acquire)) {
            shared.gather(step % 2, hfull);
            crate::write_rows(
                out.index_axis_mut(Axis(0), prev),
                &hfull[rows.start * h..rows.end * h],
            );
        }
    }
}

/// What the threads of [`LstmEngine::sequence_units`] share.
struct Shared<F> {
    /// The slices' state, each locked by the thread that took it for the step.
    slices: Vec<Padded<Mutex<Slice<F>>>>,
    /// Per slice, its part of `h` (`[B, u]`) in two buffers: step `t` reads buffer `t % 2` of
    /// every slice and writes buffer `(t + 1) % 2`.
    h: Vec<Padded<[RwLock<Vec<F>>; 2]>>,
    /// Per step parity, per thread, the slices of its run not yet taken ([`Claims`]).
    claims: [Vec<Padded<AtomicU64>>; 2],
    barrier: SpinBarrier,
    /// Whether the initial `h` is all zero (the first step then skips the recurrent product).
    zero_start: bool,
    /// Steps per chunk of the input projection.
    chunk: usize,
    /// Units per slice.
    units: usize,
    /// Whether a thread done with its own run takes from the others'.
    steal: bool,
}

/// One slice of `u` units.
struct Slice<F> {
    /// Its part of `c`, `[B, u]`.
    c: Vec<F>,
    /// Its pre-activations for the current chunk, `[chunk * B, 4u]`, gates side by side.
    pre: Vec<F>,
    /// Its bias, `4u`, and peephole weights, `3u` (or none).
    bias: Vec<F>,
    peep: Vec<F>,
    /// The chunk whose input projection `pre` holds.
    chunk: usize,
}

impl<F: Scalar> Shared<F> {
    /// Copies buffer `parity` of every slice's `h` into `hfull [B, H]`.
    fn gather(&self, parity: usize, hfull: &mut [F]) {
        let (u, h) = (self.units, self.units * self.h.len());
        for (s, bufs) in self.h.iter().enumerate() {
            let part = bufs[parity].read().unwrap_or_else(PoisonError::into_inner);
            for (dst, src) in hfull.chunks_exact_mut(h).zip(part.chunks_exact(u)) {
                dst[s * u..(s + 1) * u].copy_from_slice(src);
            }
        }
    }

    /// Thread `k`'s own run of slices, of `n` threads.
    fn home(&self, k: usize, n: usize) -> u64 {
        let count = self.slices.len();
        Claims::range(k * count / n..(k + 1) * count / n)
    }

    /// A slice for thread `k` at the step of parity `parity`: the next of its own run, else the
    /// last left of another's; `None` when every slice of the step is taken.
    fn claim(&self, k: usize, parity: usize) -> Option<usize> {
        let words = &self.claims[parity];
        let n = if self.steal { words.len() } else { 1 };
        (0..n).find_map(|j| Claims::take(&words[(k + j) % words.len()], j > 0))
    }
}

/// A run of slices not yet taken, `lo..hi`, as one atomic word: `lo` in the low half, `hi` in
/// the high half. The owner takes from the front, the others from the back.
struct Claims;

impl Claims {
    fn range(r: std::ops::Range<usize>) -> u64 {
        r.start as u64 | (r.end as u64) << 32
    }

    fn take(word: &AtomicU64, back: bool) -> Option<usize> {
        let mut cur = word.load(Ordering::Acquire);
        loop {
            let (lo, hi) = (cur & 0xffff_ffff, cur >> 32);
            if lo >= hi {
                return None;
            }
            let (next, got) = if back {
                (lo | (hi - 1) << 32, hi - 1)
            } else {
                (cur + 1, lo)
            };
            match word.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(got as usize),
                Err(seen) => cur = seen,
            }
        }
    }
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
            return !self.poisoned.load(Ordering::Acquire);
        }
        spin_until(&self.poisoned, || {
            self.generation.load(Ordering::Acquire) != generation
        })
    }
}
