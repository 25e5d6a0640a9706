#![doc = include_str!("../README.md")]

use std::cell::Cell;
use std::fmt::Debug;
use std::ops::{Add, Mul};
use std::sync::atomic::{AtomicU8, Ordering};

mod gates;
mod packed;
mod pool;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use gates::{GateOptions, Squash, fast_activations, gru_gates, gru_reset, lstm_gates, squash};
pub use packed::{NR, Packed, Panels};
pub use pool::{WORKER_SPIN, run_threads, set_worker_spin};

/// An instruction-set level, from the plain portable code up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust, no target features: runs on any CPU.
    Portable = 0,
    /// The portable code compiled for AVX2 and FMA.
    Avx2 = 1,
    /// Hand-written AVX-512 kernels (`f32`); `f64` uses the AVX2 build of the portable code.
    Avx512 = 2,
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Avx512 as u8);

thread_local! {
    /// The calling thread's own cap (see [`with_max_level`]).
    static THREAD_MAX_LEVEL: Cell<u8> = const { Cell::new(Level::Avx512 as u8) };
}

/// Caps the level the kernels use (process-wide), for comparing the fallbacks.
/// `set_max_level(Level::Avx512)` lifts the cap. Tests should use [`with_max_level`], which
/// changes nothing another thread reads.
pub fn set_max_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Runs `f` with the kernels the calling thread uses capped at `level` (and at the process-wide
/// cap), then restores the thread's cap, even when `f` panics. Work that `f` hands to other
/// threads (the threaded paths of `lstm-engine`) is not capped.
pub fn with_max_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_MAX_LEVEL.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_MAX_LEVEL.with(|c| c.replace(level as u8)));
    f()
}

/// The widest level the running CPU supports, whatever the caps.
pub fn detected_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            return Level::Avx512;
        }
        if x86::has_avx2() {
            return Level::Avx2;
        }
    }
    Level::Portable
}

/// The level in use: [`detected_level`], capped by [`set_max_level`] and, on the calling thread,
/// by [`with_max_level`].
///
/// Detection is done by `std` once and cached, so this is cheap enough to call per product.
pub fn level() -> Level {
    let cap = MAX_LEVEL
        .load(Ordering::Relaxed)
        .min(THREAD_MAX_LEVEL.with(Cell::get));
    match detected_level() {
        Level::Avx512 if cap >= Level::Avx512 as u8 => Level::Avx512,
        Level::Avx512 | Level::Avx2 if cap >= Level::Avx2 as u8 => Level::Avx2,
        _ => Level::Portable,
    }
}

mod sealed {
    use crate::{GateOptions, Packed, Panels};

    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}

    /// Proof that the call comes from this crate's checked entry points: the kernels behind the
    /// trait methods trust their arguments, so only [`crate::gemm`] and [`crate::lstm_gates`],
    /// which check them, can build one.
    #[derive(Debug)]
    pub struct Checked(pub(crate) ());

    /// The arguments of one product, checked by [`crate::gemm`].
    #[derive(Debug)]
    pub struct GemmArgs<'a, T> {
        pub m: usize,
        pub a: &'a [T],
        pub lda: usize,
        pub b: &'a Packed<T>,
        pub c: &'a mut [T],
        pub ldc: usize,
        pub init: Option<&'a [T]>,
        pub panels: Panels,
        /// `a` holds the rows as [`crate::pack_rows`] left them at this level (`lda` is `K`).
        pub packed: bool,
    }

    /// One row of the gate pass, checked by [`crate::lstm_gates`].
    #[derive(Debug)]
    pub struct GateRow<'a, T> {
        pub hidden: usize,
        pub z: &'a mut [T],
        pub c: &'a mut [T],
        pub h: &'a mut [T],
        pub opts: &'a GateOptions<'a, T>,
    }

    /// The full GRU pass of one row, checked by [`crate::gru_gates`].
    #[derive(Debug)]
    pub struct GruGates<'a, T> {
        pub hidden: usize,
        pub x: &'a [T],
        pub rec: &'a mut [T],
        pub reset_product: Option<&'a [T]>,
        pub h: &'a mut [T],
        pub cand: &'a mut [T],
        pub clip: Option<T>,
    }

    /// The reset pass of one GRU row, checked by [`crate::gru_reset`].
    #[derive(Debug)]
    pub struct GruReset<'a, T> {
        pub hidden: usize,
        pub x: &'a [T],
        pub rec: &'a mut [T],
        pub h: &'a [T],
        pub rh: &'a mut [T],
        pub clip: Option<T>,
    }

    /// One of the two GRU passes.
    #[derive(Debug)]
    pub enum GruPass<'a, T> {
        Gates(GruGates<'a, T>),
        Reset(GruReset<'a, T>),
    }
}

use sealed::{Checked, GateRow, GemmArgs, GruPass};

/// The element types the kernels compute in: `f32` and `f64`.
pub trait Element:
    sealed::Sealed
    + Copy
    + Default
    + Debug
    + PartialEq
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Mul<Output = Self>
{
    /// The product at the given level (reachable only through [`gemm`]).
    #[doc(hidden)]
    fn gemm_at(level: Level, p: GemmArgs<'_, Self>, _: Checked);

    /// Packs rows of A for the product at the given level (reachable only through
    /// [`pack_rows`]); `dst` holds `m * k` values.
    #[doc(hidden)]
    fn pack_at(
        level: Level,
        m: usize,
        k: usize,
        a: &[Self],
        lda: usize,
        dst: &mut [Self],
        _: Checked,
    );

    /// The gate pass at the given level (reachable only through [`lstm_gates`]).
    #[doc(hidden)]
    fn gates_at(level: Level, g: GateRow<'_, Self>, _: Checked) -> bool;

    /// A GRU pass at the given level (reachable only through [`gru_gates`] and
    /// [`gru_reset`]).
    #[doc(hidden)]
    fn gru_at(level: Level, pass: GruPass<'_, Self>, _: Checked) -> bool;

    /// The vectorised sigmoid or tanh in place at the given level (reachable only through
    /// [`squash`]); `false`, touching nothing, where there is none.
    #[doc(hidden)]
    fn squash_at(level: Level, kind: Squash, v: &mut [Self], _: Checked) -> bool;
}

impl Element for f32 {
    fn gemm_at(level: Level, p: GemmArgs<'_, Self>, _: Checked) {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::gemm_f32_avx512(p),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86::gemm_avx2(p),
            _ => portable::gemm(p),
        }
    }

    fn pack_at(
        level: Level,
        m: usize,
        k: usize,
        a: &[Self],
        lda: usize,
        dst: &mut [Self],
        _: Checked,
    ) {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::pack_rows_f32_avx512(m, k, a, lda, dst),
            _ => portable::pack_rows(m, k, a, lda, dst),
        }
    }

    fn gates_at(level: Level, g: GateRow<'_, Self>, _: Checked) -> bool {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::gates_f32_avx512(g),
            _ => false,
        }
    }

    fn gru_at(level: Level, pass: GruPass<'_, Self>, _: Checked) -> bool {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::gru_f32_avx512(pass),
            _ => {
                let _ = pass;
                false
            }
        }
    }

    fn squash_at(level: Level, kind: Squash, v: &mut [Self], _: Checked) -> bool {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                x86::squash_avx512(v, kind == Squash::Sigmoid);
                true
            }
            _ => {
                let _ = (kind, v);
                false
            }
        }
    }
}

impl Element for f64 {
    fn gemm_at(level: Level, p: GemmArgs<'_, Self>, _: Checked) {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 | Level::Avx2 => x86::gemm_avx2(p),
            _ => portable::gemm(p),
        }
    }

    fn pack_at(_: Level, m: usize, k: usize, a: &[Self], lda: usize, dst: &mut [Self], _: Checked) {
        portable::pack_rows(m, k, a, lda, dst);
    }

    fn gates_at(_: Level, _: GateRow<'_, Self>, _: Checked) -> bool {
        false
    }

    fn gru_at(_: Level, _: GruPass<'_, Self>, _: Checked) -> bool {
        false
    }

    fn squash_at(_: Level, _: Squash, _: &mut [Self], _: Checked) -> bool {
        false
    }
}

/// `C = init + A B` (with `init`, a row of `B.padded_cols()` values added to every row) or
/// `C += A B` (without), for `A [m, K]` row-major with row stride `lda` and `B` packed `[K, N]`.
///
/// Each row of `C` (stride `ldc`) receives `B.padded_cols()` values: the columns past `N` are
/// scratch. Allocates nothing.
///
/// # Panics
/// When a slice is too short for the shapes or a stride is smaller than the row it strides.
pub fn gemm<T: Element>(
    m: usize,
    a: &[T],
    lda: usize,
    b: &Packed<T>,
    c: &mut [T],
    ldc: usize,
    init: Option<&[T]>,
) {
    gemm_panels(m, a, lda, b, Panels::all(b), c, ldc, init);
}

/// [`gemm`] with only the selected panels of `B` ([`Panels`]): the product's columns are the
/// selected panels in selection order, `sel.width()` of them, and `init` (if any) holds that
/// many values in the same order. The columns one thread owns of a matrix every thread shares
/// (a slice of each gate's units, say) are one product, not one per run.
///
/// # Panics
/// When the selection reaches past `B`'s panels, a slice is too short for the shapes, or a
/// stride is smaller than the row it strides.
#[allow(clippy::too_many_arguments)]
pub fn gemm_panels<T: Element>(
    m: usize,
    a: &[T],
    lda: usize,
    b: &Packed<T>,
    sel: Panels,
    c: &mut [T],
    ldc: usize,
    init: Option<&[T]>,
) {
    checked_product(
        level(),
        GemmArgs {
            m,
            a,
            lda,
            b,
            c,
            ldc,
            init,
            panels: sel,
            packed: false,
        },
    );
}

/// Checks a product's slices against its shapes, then runs it at `level` (or, with `K = 0`,
/// applies only `init`). The one place [`Checked`] is made for a product.
fn checked_product<T: Element>(level: Level, p: GemmArgs<'_, T>) {
    let GemmArgs {
        m,
        a,
        lda,
        b,
        ldc,
        init,
        panels: sel,
        ..
    } = p;
    let (k, np) = (b.rows(), sel.width());
    assert!(
        sel.end() * NR <= b.padded_cols(),
        "panel selection past the matrix"
    );
    if m == 0 || np == 0 {
        return;
    }
    assert!(lda >= k && a.len() >= (m - 1) * lda + k, "A too short");
    assert!(ldc >= np && p.c.len() >= (m - 1) * ldc + np, "C too short");
    assert!(init.is_none_or(|i| i.len() >= np), "init too short");
    if k == 0 {
        // An empty product: only `init` applies.
        if let Some(i) = init {
            for r in 0..m {
                p.c[r * ldc..r * ldc + np].copy_from_slice(&i[..np]);
            }
        }
        return;
    }
    T::gemm_at(level, p, Checked(()));
}

/// The rows of an `A [m, K]` packed once by [`pack_rows`] for several products over different
/// panels of `B` ([`gemm_rows`]): a thread that computes a step's columns in several slices
/// packs its rows once instead of once per slice.
///
/// The layout is the one the kernels of the level in use at packing time read; the products
/// run at that level.
#[derive(Clone, Copy, Debug)]
pub struct PackedRows<'a, T> {
    m: usize,
    k: usize,
    level: Level,
    data: &'a [T],
}

impl<T> PackedRows<'_, T> {
    /// `m`, the rows packed.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// `K`, the values per row.
    pub fn cols(&self) -> usize {
        self.k
    }
}

/// Packs `m` rows of `k` values of `a` (row stride `lda`) into `buf`, which needs room for
/// `m * k` values, for [`gemm_rows`]. Allocates nothing.
///
/// # Panics
/// When `a` or `buf` is too short for the shapes or `lda < k`.
pub fn pack_rows<'a, T: Element>(
    m: usize,
    k: usize,
    a: &[T],
    lda: usize,
    buf: &'a mut [T],
) -> PackedRows<'a, T> {
    let level = level();
    assert!(buf.len() >= m * k, "packing buffer too short");
    if m > 0 && k > 0 {
        assert!(lda >= k && a.len() >= (m - 1) * lda + k, "A too short");
        T::pack_at(level, m, k, a, lda, &mut buf[..m * k], Checked(()));
    }
    PackedRows {
        m,
        k,
        level,
        data: &buf[..m * k],
    }
}

/// [`gemm_panels`] with rows of `A` packed beforehand by [`pack_rows`]: the same values, bit
/// for bit, without packing `A` again.
///
/// # Panics
/// When `a`'s `K` is not `B`'s, the selection reaches past `B`'s panels, or `c` or `init` is
/// too short for the shapes.
pub fn gemm_rows<T: Element>(
    a: &PackedRows<'_, T>,
    b: &Packed<T>,
    sel: Panels,
    c: &mut [T],
    ldc: usize,
    init: Option<&[T]>,
) {
    assert_eq!(a.k, b.rows(), "packed rows of the wrong length");
    // The packed rows are `m` rows of `K` side by side (none when `K = 0`), as `pack_rows`
    // checked; `packed` tells the kernels of `a.level` they are in their own layout.
    checked_product(
        a.level,
        GemmArgs {
            m: a.m,
            a: a.data,
            lda: a.k,
            b,
            c,
            ldc,
            init,
            panels: sel,
            packed: true,
        },
    );
}
