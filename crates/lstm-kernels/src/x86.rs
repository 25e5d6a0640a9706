//! x86-64 kernels: hand-written AVX-512 for `f32`, and the portable code compiled for AVX2+FMA.
//!
//! Every entry point re-checks the CPU feature it needs (a cached load), so none of them can run
//! an instruction the CPU lacks, whatever level it is asked for.

// The exponential's coefficients are kept as published (Cephes), digits beyond f32 included.
#![allow(clippy::excessive_precision)]

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::sealed::{GateRow, GemmArgs};
use crate::{Element, GateOptions, NR, portable};

/// What `std` detected, as bits: [`DETECTED`] once filled, then [`AVX2_FMA`] and [`AVX512F`].
/// One relaxed load per query: the gate pass of a small layer runs in well under a microsecond,
/// where `std`'s own cache, queried feature by feature, showed up in profiles.
static FEATURES: AtomicU8 = AtomicU8::new(0);
const DETECTED: u8 = 1;
const AVX2_FMA: u8 = 2;
const AVX512F: u8 = 4;

fn features() -> u8 {
    let f = FEATURES.load(Ordering::Relaxed);
    if f & DETECTED != 0 {
        return f;
    }
    let mut f = DETECTED;
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        f |= AVX2_FMA;
    }
    if is_x86_feature_detected!("avx512f") {
        f |= AVX512F;
    }
    FEATURES.store(f, Ordering::Relaxed);
    f
}

pub(crate) fn has_avx512() -> bool {
    features() & AVX512F != 0
}

pub(crate) fn has_avx2() -> bool {
    features() & AVX2_FMA != 0
}

/// The portable product compiled for AVX2+FMA (the portable code where the CPU lacks them).
pub(crate) fn gemm_avx2<T: Element>(p: GemmArgs<'_, T>) {
    if has_avx2() {
        // SAFETY: AVX2 and FMA are present (checked just above).
        unsafe { gemm_avx2_inner(p) }
    } else {
        portable::gemm(p);
    }
}

#[target_feature(enable = "avx2,fma")]
fn gemm_avx2_inner<T: Element>(p: GemmArgs<'_, T>) {
    portable::gemm(p);
}

/// Calls `f::<R>(args)` for `R = rows` (1 to [`MR`]; more is taken as `MR`).
macro_rules! by_rows {
    ($rows:expr, $f:ident($($arg:expr),*)) => {
        match $rows {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            9 => $f::<9>($($arg),*),
            10 => $f::<10>($($arg),*),
            11 => $f::<11>($($arg),*),
            _ => $f::<12>($($arg),*),
        }
    };
}

/// Rows of the register tile: 12 rows x 32 columns is 24 accumulators of the 32 registers.
const MR: usize = 12;

/// The `f32` product with AVX-512 (the portable code where the CPU lacks it).
pub(crate) fn gemm_f32_avx512(p: GemmArgs<'_, f32>) {
    if has_avx512() {
        // SAFETY: AVX-512F is present; `crate::gemm` checked every slice against the shapes,
        // which is all the pointer arithmetic below relies on.
        unsafe { gemm_512(p) }
    } else {
        portable::gemm(p);
    }
}

/// # Safety
/// AVX-512F present; `a` holds `m` rows of `K` at stride `lda` (or, with `packed`, as
/// [`pack_rows_f32_avx512`] left them), `c` holds `m` rows of
/// `panels.width()` at stride `ldc`, `init` (if any) holds `panels.width()` values, and the
/// selection stays inside the packed panels.
#[target_feature(enable = "avx512f")]
unsafe fn gemm_512(p: GemmArgs<'_, f32>) {
    let GemmArgs {
        m,
        a,
        lda,
        b,
        c,
        ldc,
        init,
        panels: sel,
        packed,
    } = p;
    let k = b.rows();
    let panels = sel.count();
    let (ap, bp, cp) = (a.as_ptr(), b.data().as_ptr(), c.as_mut_ptr());
    let init = init.map(<[f32]>::as_ptr);
    // SAFETY (whole body): every offset stays inside the slices by the contract above: selected
    // panel `pi` spans `[p*K*NR, (p+1)*K*NR)` of the packed data for `p = sel.panel(pi)`; row
    // `r` of A spans `[r*lda, r*lda + K)`; row `r` of C spans `[r*ldc, r*ldc + sel.width())`.
    // Every other call on a thread walks the panels backwards: the panels the previous call read
    // last are still in cache, where a fixed order would have evicted each before its reuse
    // (a step's weights that just exceed L1 or L2 then hit in it for most of the next step).
    let reverse = REVERSE.with(|r| r.replace(!r.get()));
    let order = move |i: usize| if reverse { panels - 1 - i } else { i };
    unsafe {
        if m == 1 {
            for pi in (0..panels).map(order) {
                gemv_panel(
                    k,
                    ap,
                    bp.add(sel.panel(pi) * k * NR),
                    cp.add(pi * NR),
                    init.map(|i| i.add(pi * NR)),
                );
            }
            return;
        }
        let mc_max = block_rows(k);
        let block = |m0: usize, packed: *const f32| {
            let mc = (m - m0).min(mc_max);
            let blocks = mc.div_ceil(MR);
            let bounds = |blk: usize| m0 + mc * blk / blocks;
            for (step, pi) in (0..panels).map(order).enumerate() {
                // Every tile of the block passes over the whole panel (in L2 after the first
                // tile); each tile of C is written once. The first tile also pulls the next
                // panel towards L2, so the next panel's first tile does not wait on memory.
                let panel = bp.add(sel.panel(pi) * k * NR);
                let ini = init.map(|i| i.add(pi * NR));
                for blk in 0..blocks {
                    let (lo, hi) = (bounds(blk), bounds(blk + 1));
                    let next = (blk == 0 && step + 1 < panels)
                        .then(|| bp.add(sel.panel(order(step + 1)) * k * NR));
                    let t = Tile {
                        k,
                        a: packed.add((lo - m0) * k),
                        b: panel,
                        c: cp.add(lo * ldc + pi * NR),
                        ldc,
                        init: ini,
                        next,
                    };
                    by_rows!(hi - lo, tile(t));
                }
            }
        };
        if packed {
            // `pack_rows_512` left block `m0` at `m0 * k`.
            for m0 in (0..m).step_by(mc_max) {
                block(m0, ap.add(m0 * k));
            }
            return;
        }
        PACKED_A.with_borrow_mut(|buf| {
            if buf.len() < m.min(mc_max) * k {
                buf.resize(m.min(mc_max) * k, 0.0);
            }
            for m0 in (0..m).step_by(mc_max) {
                pack_block(m0, (m - m0).min(mc_max), k, ap, lda, buf.as_mut_ptr());
                block(m0, buf.as_ptr());
            }
        });
    }
}

/// Rows of A per block of the product: the block (at most 1 MiB) stays in L2 while the panels
/// stream by.
fn block_rows(k: usize) -> usize {
    ((1usize << 18) / k.max(1)).max(MR)
}

/// Packs rows `m0..m0 + mc` of A (`k` values at stride `lda` from `a`) to `dst`, tile by tile
/// (the tiles of [`gemm_512`]'s block), each tile's rows k-major so the kernel broadcasts from
/// one running pointer.
///
/// # Safety
/// AVX-512F present; `a` holds rows `m0..m0 + mc`; `dst` has room for `mc * k` values.
#[target_feature(enable = "avx512f")]
unsafe fn pack_block(m0: usize, mc: usize, k: usize, a: *const f32, lda: usize, dst: *mut f32) {
    let blocks = mc.div_ceil(MR);
    let bounds = |blk: usize| m0 + mc * blk / blocks;
    for blk in 0..blocks {
        let (lo, hi) = (bounds(blk), bounds(blk + 1));
        // SAFETY: rows `lo..hi` lie inside the block; their packed values inside `dst`.
        unsafe {
            by_rows!(
                hi - lo,
                pack(k, a.add(lo * lda), lda, dst.add((lo - m0) * k))
            )
        };
    }
}

/// See [`crate::pack_rows`]: every block of [`gemm_512`] packed as it would pack it, block
/// `m0` at `m0 * k` (row-major copies where the CPU lacks AVX-512, as the portable product
/// reads them).
pub(crate) fn pack_rows_f32_avx512(m: usize, k: usize, a: &[f32], lda: usize, dst: &mut [f32]) {
    if !has_avx512() {
        return portable::pack_rows(m, k, a, lda, dst);
    }
    let mc_max = block_rows(k);
    for m0 in (0..m).step_by(mc_max) {
        // SAFETY: AVX-512F is present; `crate::pack_rows` checked `a` (m rows of `k` at
        // stride `lda`) and `dst` (`m * k` values), and block `m0` takes `(m - m0).min(mc_max)`
        // rows from `m0 * k`.
        unsafe {
            pack_block(
                m0,
                (m - m0).min(mc_max),
                k,
                a.as_ptr(),
                lda,
                dst.as_mut_ptr().add(m0 * k),
            );
        }
    }
}

/// Copies `R` rows of A (`k` values each, at stride `lda`) to `dst` k-major: row `r` of step
/// `kk` at `kk * R + r`, the order the tile kernel broadcasts them in. Four rows by four steps
/// at a time, a 4 x 4 transpose in registers: one load and one store per four values. It
/// replaced a gather per step, at 0.69-0.84x its time ([`crate::pack_rows`] alone on the
/// workloads' shapes, old and new binary alternately); packing is 0.5-2.5% of a product.
///
/// # Safety
/// AVX-512F present; `src` holds `R` rows of `k` values at stride `lda`; `dst` has room for
/// `R * k` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pack<const R: usize>(k: usize, src: *const f32, lda: usize, dst: *mut f32) {
    // SAFETY: within the ranges of the contract above: rows past `R` are neither loaded nor
    // stored (their lanes are zeros, masked off at the store); one row is its `k` values.
    unsafe {
        if R == 1 {
            return std::ptr::copy_nonoverlapping(src, dst, k);
        }
        let mut kk = 0;
        while kk + 4 <= k {
            for g in (0..R).step_by(4) {
                let rows = (R - g).min(4);
                let load = |r: usize| {
                    if r < rows {
                        _mm_loadu_ps(src.add((g + r) * lda + kk))
                    } else {
                        _mm_setzero_ps()
                    }
                };
                let (a, b, c, d) = (load(0), load(1), load(2), load(3));
                let (ab_lo, ab_hi) = (_mm_unpacklo_ps(a, b), _mm_unpackhi_ps(a, b));
                let (cd_lo, cd_hi) = (_mm_unpacklo_ps(c, d), _mm_unpackhi_ps(c, d));
                let steps = [
                    _mm_movelh_ps(ab_lo, cd_lo),
                    _mm_movehl_ps(cd_lo, ab_lo),
                    _mm_movelh_ps(ab_hi, cd_hi),
                    _mm_movehl_ps(cd_hi, ab_hi),
                ];
                for (j, v) in steps.into_iter().enumerate() {
                    let at = dst.add((kk + j) * R + g);
                    if rows == 4 {
                        _mm_storeu_ps(at, v);
                    } else {
                        let lane = |i: i32| if i < rows as i32 { -1 } else { 0 };
                        _mm_maskstore_ps(at, _mm_setr_epi32(lane(0), lane(1), lane(2), lane(3)), v);
                    }
                }
            }
            kk += 4;
        }
        for kk in kk..k {
            for r in 0..R {
                *dst.add(kk * R + r) = *src.add(r * lda + kk);
            }
        }
    }
}

thread_local! {
    /// Whether the next product on this thread walks its panels backwards.
    static REVERSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The packed rows of A for [`gemm_512`]: grown to the largest block seen, then reused, so
    /// a thread's products allocate nothing once warm.
    static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One register tile's operands: `k`, the tile's packed rows of A (row `r` of step `kk` at
/// `kk * R + r`), one panel of B (`k x NR`), `R` rows of C at stride `ldc`, the initial row (if
/// any, `NR` values), and the next panel to prefetch (if any, `k x NR`).
#[derive(Clone, Copy)]
struct Tile {
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Option<*const f32>,
    next: Option<*const f32>,
}

/// `R` rows by one panel: `R x 32` accumulators held in registers over the whole `K`.
///
/// # Safety
/// AVX-512F present; every pointer of `t` covers the ranges [`Tile`] describes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize>(t: Tile) {
    let Tile {
        k,
        a,
        b,
        c,
        ldc,
        init,
        next,
    } = t;
    // SAFETY: within the ranges of the contract above; a prefetch never faults.
    unsafe {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        match init {
            Some(i) => {
                let (x, y) = (_mm512_loadu_ps(i), _mm512_loadu_ps(i.add(16)));
                lo = [x; R];
                hi = [y; R];
            }
            None => {
                for r in 0..R {
                    lo[r] = _mm512_loadu_ps(c.add(r * ldc));
                    hi[r] = _mm512_loadu_ps(c.add(r * ldc + 16));
                }
            }
        }
        match next {
            Some(p) => k_loop::<R, true>(k, a, b, p, &mut lo, &mut hi),
            None => k_loop::<R, false>(k, a, b, b, &mut lo, &mut hi),
        }
        for r in 0..R {
            _mm512_storeu_ps(c.add(r * ldc), lo[r]);
            _mm512_storeu_ps(c.add(r * ldc + 16), hi[r]);
        }
    }
}

/// The tile's loop over K: `R x 32` accumulators gain `a[kk] b[kk]` for every `kk < k`, two
/// steps of K per pass, with running pointers; with `PREFETCH`, the panel at `next` is pulled
/// towards L2 alongside. It issues fewer instructions per step than an indexed loop, which
/// counts most when the machine is slow: 12% faster on the workloads' shapes in minutes when
/// the products ran at two thirds of their usual speed, 1.5% in quiet ones (in-process
/// alternation, the CHANGELOG's performance history).
///
/// # Safety
/// AVX-512F present; `a` holds `k * R` values, `b` (and `next`, with `PREFETCH`) `k * NR`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn k_loop<const R: usize, const PREFETCH: bool>(
    k: usize,
    a: *const f32,
    b: *const f32,
    next: *const f32,
    lo: &mut [__m512; R],
    hi: &mut [__m512; R],
) {
    /// One step of K: the two halves of the panel's row times each row's value of A.
    ///
    /// Each row's value is broadcast inside the multiply-add (`{1to16}`), which the compiler
    /// does not do for a value used twice: two instructions per row instead of three. Level
    /// with the separate broadcast when the machine is quiet, 3-5% faster end to end when it
    /// is slow (the CHANGELOG's performance history).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn step<const R: usize>(
        a: *const f32,
        b: *const f32,
        lo: &mut [__m512; R],
        hi: &mut [__m512; R],
    ) {
        // SAFETY: `b` holds `NR` values (the caller's contract).
        let (b0, b1) = unsafe { (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16))) };
        /// Row `$r` (a literal, so that its offset is a constant of the instruction).
        macro_rules! row {
            ($($r:literal)*) => {$(
                if R > $r {
                    // SAFETY: reads the one value `a[$r]`, inside the caller's `R` values;
                    // touches no flags, stack or other memory.
                    unsafe {
                        std::arch::asm!(
                            "vfmadd231ps {lo}, {b0}, dword ptr [{a} + {o}]{{1to16}}",
                            "vfmadd231ps {hi}, {b1}, dword ptr [{a} + {o}]{{1to16}}",
                            lo = inout(zmm_reg) lo[$r],
                            hi = inout(zmm_reg) hi[$r],
                            b0 = in(zmm_reg) b0,
                            b1 = in(zmm_reg) b1,
                            a = in(reg) a,
                            o = const 4 * $r,
                            options(pure, readonly, nostack, preserves_flags),
                        );
                    }
                }
            )*};
        }
        const { assert!(R <= 12) };
        row!(0 1 2 3 4 5 6 7 8 9 10 11);
    }
    // SAFETY: step `kk` reads `a[kk R..(kk + 1) R]` and `b[kk NR..(kk + 1) NR]` (and prefetches
    // the same range of `next`), `kk < k`, inside the ranges of the contract above; the
    // pointers are only formed up to one past the end.
    unsafe {
        let (mut a, mut b, mut next) = (a, b, next);
        let pairs_end = b.add((k & !1) * NR);
        while b < pairs_end {
            if PREFETCH {
                _mm_prefetch::<_MM_HINT_T1>(next.cast());
                _mm_prefetch::<_MM_HINT_T1>(next.add(16).cast());
                _mm_prefetch::<_MM_HINT_T1>(next.add(NR).cast());
                _mm_prefetch::<_MM_HINT_T1>(next.add(NR + 16).cast());
                next = next.add(2 * NR);
            }
            step::<R>(a, b, lo, hi);
            step::<R>(a.add(R), b.add(NR), lo, hi);
            a = a.add(2 * R);
            b = b.add(2 * NR);
        }
        if k % 2 == 1 {
            if PREFETCH {
                _mm_prefetch::<_MM_HINT_T1>(next.cast());
                _mm_prefetch::<_MM_HINT_T1>(next.add(16).cast());
            }
            step::<R>(a, b, lo, hi);
        }
    }
}

/// One row by one panel: four interleaved partial sums per half-panel (eight chains of
/// fused multiply-adds in flight), reading the panel front to back.
///
/// # Safety
/// AVX-512F present; `x` has `k` values, `b` one panel of `k x NR`, `y` and `init` `NR` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gemv_panel(
    k: usize,
    x: *const f32,
    b: *const f32,
    y: *mut f32,
    init: Option<*const f32>,
) {
    // SAFETY: within the ranges of the contract above.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 8];
        let mut kk = 0;
        while kk + 4 <= k {
            for u in 0..4 {
                let xv = _mm512_set1_ps(*x.add(kk + u));
                let row = b.add((kk + u) * NR);
                acc[2 * u] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row), acc[2 * u]);
                acc[2 * u + 1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16)), acc[2 * u + 1]);
            }
            kk += 4;
        }
        while kk < k {
            let xv = _mm512_set1_ps(*x.add(kk));
            let row = b.add(kk * NR);
            acc[0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row), acc[0]);
            acc[1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16)), acc[1]);
            kk += 1;
        }
        let base = init.unwrap_or(y);
        let lo = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[4], acc[6]));
        let hi = _mm512_add_ps(_mm512_add_ps(acc[1], acc[3]), _mm512_add_ps(acc[5], acc[7]));
        _mm512_storeu_ps(y, _mm512_add_ps(_mm512_loadu_ps(base), lo));
        _mm512_storeu_ps(y.add(16), _mm512_add_ps(_mm512_loadu_ps(base.add(16)), hi));
    }
}

/// `[f(0), f(1), .., f(L-1)]` for the lanes-generic helpers below, written as a loop over an
/// array so that the `L` independent vectors' instructions interleave: the gate pass is a long
/// chain of dependent operations, and interleaved chains keep both vector ports busy where one
/// chain would leave them waiting on latency.
macro_rules! each {
    ($l:ident => $e:expr) => {{
        let mut out = [_mm512_setzero_ps(); L];
        for $l in 0..L {
            out[$l] = $e;
        }
        out
    }};
}

/// `e^-x` for `x` in `[-87, 87.33]` (the caller clamps): Cody-Waite reduction to `r` in
/// `[-ln2/2, ln2/2]` (the negation folded into it), a degree-6 polynomial (the Cephes `expf`
/// coefficients), and `scalef` for the power of two. The range keeps the result normal and
/// finite: subnormal values make Intel cores take a microcode assist on every instruction that
/// touches them (about ten times slower), and nothing downstream can tell 1e-38 from less.
#[target_feature(enable = "avx512f")]
#[inline]
fn exp_neg512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
    let n = each!(l => _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x[l], _mm512_set1_ps(-std::f32::consts::LOG2_E)),
    ));
    // r = -x - n ln2, with ln2 in two parts.
    let r = each!(l => _mm512_fnmsub_ps(n[l], _mm512_set1_ps(0.693_359_4), x[l]));
    let r = each!(l => _mm512_fnmadd_ps(n[l], _mm512_set1_ps(-2.121_944_4e-4), r[l]));
    let mut p = [_mm512_set1_ps(1.987_569_1e-4); L];
    for coef in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5.000_000_1e-1,
    ] {
        p = each!(l => _mm512_fmadd_ps(p[l], r[l], _mm512_set1_ps(coef)));
    }
    let p = each!(l => _mm512_fmadd_ps(p[l], _mm512_mul_ps(r[l], r[l]), r[l]));
    each!(l => _mm512_scalef_ps(_mm512_add_ps(p[l], _mm512_set1_ps(1.0)), n[l]))
}

/// `1 / d` for `d` in `[1, 2^126]`: the 14-bit hardware estimate and one Newton step, a few
/// times cheaper than a division and within an ulp or two of it.
#[target_feature(enable = "avx512f")]
#[inline]
fn recip512<const L: usize>(d: [__m512; L]) -> [__m512; L] {
    let y = each!(l => _mm512_rcp14_ps(d[l]));
    let e = each!(l => _mm512_fnmadd_ps(d[l], y[l], _mm512_set1_ps(1.0)));
    each!(l => _mm512_fmadd_ps(y[l], e[l], y[l]))
}

/// `1 / (1 + e^-x)`, with `x` clamped to `[-87, 87.33]` first: below, the result is that of
/// -87 (1.6e-38, still normal); above, it is 1 either way. NaN in, NaN out.
#[target_feature(enable = "avx512f")]
#[inline]
fn sigmoid512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
    // `max`/`min` return their second operand when either is NaN: `x` goes second.
    let x = each!(l => _mm512_max_ps(_mm512_set1_ps(-87.0), x[l]));
    let x = each!(l => _mm512_min_ps(_mm512_set1_ps(87.33), x[l]));
    let e = exp_neg512(x);
    recip512(each!(l => _mm512_add_ps(_mm512_set1_ps(1.0), e[l])))
}

/// `tanh x` as `x P(x^2) / Q(x^2)` for |x| <= 9 (tanh 9 is 1 - 3e-8), `±1` beyond: a rational
/// near-minimax fit of degrees 13/6 (`scripts/fit_tanh.py`, 5.3e-8 in exact arithmetic, 3.5e-7
/// once rounded to `f32`), whose two polynomials run side by side. About half the instructions
/// and half the dependency chain of the exponential form, which the gate pass calls twice.
#[target_feature(enable = "avx512f")]
#[inline]
fn tanh512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
    // `min`/`max` return their second operand when either is NaN: `|x|` goes second.
    let a = each!(l => _mm512_min_ps(_mm512_set1_ps(9.0), _mm512_abs_ps(x[l])));
    // x * x would be subnormal below 1e-19 (see `exp_neg512`); there P/Q is 1 either way.
    let z = each!(l => {
        let az = _mm512_max_ps(_mm512_set1_ps(1e-18), a[l]);
        _mm512_mul_ps(az, az)
    });
    let mut p = [_mm512_set1_ps(P_TANH[6]); L];
    let mut q = [_mm512_set1_ps(Q_TANH[3]); L];
    for (k, &coef) in P_TANH[..6].iter().enumerate().rev() {
        p = each!(l => _mm512_fmadd_ps(p[l], z[l], _mm512_set1_ps(coef)));
        if k < 3 {
            q = each!(l => _mm512_fmadd_ps(q[l], z[l], _mm512_set1_ps(Q_TANH[k])));
        }
    }
    let rq = recip512(q);
    each!(l => {
        let r = _mm512_min_ps(_mm512_set1_ps(1.0), _mm512_mul_ps(_mm512_mul_ps(a[l], p[l]), rq[l]));
        let sign = _mm512_and_si512(_mm512_castps_si512(x[l]), _mm512_set1_epi32(i32::MIN));
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sign))
    })
}

/// The numerator of [`tanh512`], lowest degree first, in `x^2`.
const P_TANH: [f32; 7] = [
    1.0,
    0.131_250_66,
    0.003_149_965_5,
    1.164_041e-5,
    -2.222_900_6e-8,
    6.259_666e-11,
    -1.104_708_7e-13,
];
/// The denominator of [`tanh512`], lowest degree first, in `x^2`.
const Q_TANH: [f32; 4] = [1.0, 0.464_584, 0.024_677_979, 0.000_261_342];

/// Subnormal lanes to zero (a change below 1.2e-38), so that a state decaying towards zero
/// never sits in the range where every instruction that reads it takes a microcode assist.
/// Zero stays zero (`-0` becomes `+0`); NaN stays NaN.
#[target_feature(enable = "avx512f")]
#[inline]
fn flush512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
    // "Not less than", true for NaN: the lanes to keep.
    each!(l => _mm512_maskz_mov_ps(
        _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(_mm512_abs_ps(x[l]), _mm512_set1_ps(f32::MIN_POSITIVE)),
        x[l],
    ))
}

/// The clamp to `[lo, hi]`, NaN-preserving.
#[target_feature(enable = "avx512f")]
#[inline]
fn clamp512<const L: usize>(x: [__m512; L], bounds: Option<(__m512, __m512)>) -> [__m512; L] {
    match bounds {
        Some((lo, hi)) => each!(l => _mm512_min_ps(hi, _mm512_max_ps(lo, x[l]))),
        None => x,
    }
}

/// The mask of the first `min(left, 16)` lanes.
fn lanes(left: usize) -> __mmask16 {
    if left >= 16 {
        0xffff
    } else {
        ((1u32 << left) - 1) as u16
    }
}

/// The `f32` gate pass with AVX-512; `false` where the CPU lacks it.
pub(crate) fn gates_f32_avx512(g: GateRow<'_, f32>) -> bool {
    if !has_avx512() {
        return false;
    }
    // SAFETY: AVX-512F is present; `crate::lstm_gates` checked the slice lengths.
    unsafe { gates_512(g) };
    true
}

/// # Safety
/// AVX-512F present; `z` has `4H` values, `c` and `h` `H`, the peepholes (if any) `3H`.
#[target_feature(enable = "avx512f")]
unsafe fn gates_512(g: GateRow<'_, f32>) {
    let GateRow {
        hidden: n,
        z,
        c,
        h,
        opts,
    } = g;
    let row = RowPtrs {
        n,
        z: z.as_mut_ptr(),
        c: c.as_mut_ptr(),
        h: h.as_mut_ptr(),
        clip: opts.clip.map(|k| (_mm512_set1_ps(-k), _mm512_set1_ps(k))),
        opts,
    };
    let mut j = 0;
    // SAFETY: each block touches units `j..j + 16 L` only where its masks have them below `H`.
    // Four vectors at a time, so that their long dependency chains interleave (23% faster
    // than one at a time; eight spill registers), then two, then one, masked, for the rest.
    unsafe {
        while j + 64 <= n {
            gate_block::<4>(&row, j, [0xffff; 4]);
            j += 64;
        }
        if j + 32 <= n {
            gate_block::<2>(&row, j, [0xffff; 2]);
            j += 32;
        }
        while j < n {
            gate_block::<1>(&row, j, [lanes(n - j)]);
            j += 16;
        }
    }
}

/// One row of the gate pass as pointers (see [`GateRow`]), with the clip bounds broadcast.
struct RowPtrs<'a> {
    n: usize,
    z: *mut f32,
    c: *mut f32,
    h: *mut f32,
    clip: Option<(__m512, __m512)>,
    opts: &'a GateOptions<'a, f32>,
}

/// The gate pass of the units `j + 16 l + i` for the lanes `i` of `m[l]`, `l < L`.
///
/// # Safety
/// AVX-512F present; `row` points into slices as [`gates_512`] has them, and every unit its
/// masks select is below `H`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gate_block<const L: usize>(row: &RowPtrs<'_>, j: usize, m: [__mmask16; L]) {
    let RowPtrs { n, z, c, h, .. } = *row;
    // SAFETY: unit `j + 16 l + i` is loaded and stored only where `m[l]` selects it.
    unsafe {
        let load =
            |p: *const f32, at: usize| each!(l => _mm512_maskz_loadu_ps(m[l], p.add(at + 16 * l)));
        let c_prev = load(c, j);
        let mut zi = load(z, j);
        let mut zf = load(z, n + j);
        let zg = load(z, 2 * n + j);
        let mut zo = load(z, 3 * n + j);
        if let Some(p) = row.opts.peephole.map(<[f32]>::as_ptr) {
            let (pi, pf) = (load(p, j), load(p, n + j));
            zi = each!(l => _mm512_fmadd_ps(pi[l], c_prev[l], zi[l]));
            zf = each!(l => _mm512_fmadd_ps(pf[l], c_prev[l], zf[l]));
        }
        let i = sigmoid512(clamp512(zi, row.clip));
        let f = if row.opts.input_forget {
            each!(l => _mm512_sub_ps(_mm512_set1_ps(1.0), i[l]))
        } else {
            sigmoid512(clamp512(zf, row.clip))
        };
        let cand = tanh512(clamp512(zg, row.clip));
        let c_new =
            flush512(each!(l => _mm512_fmadd_ps(f[l], c_prev[l], _mm512_mul_ps(i[l], cand[l]))));
        if let Some(p) = row.opts.peephole.map(<[f32]>::as_ptr) {
            let po = load(p, 2 * n + j);
            zo = each!(l => _mm512_fmadd_ps(po[l], c_new[l], zo[l]));
        }
        let o = sigmoid512(clamp512(zo, row.clip));
        let hv = flush512(if row.opts.squash_gated {
            tanh512(each!(l => _mm512_mul_ps(o[l], c_new[l])))
        } else {
            let t = tanh512(c_new);
            each!(l => _mm512_mul_ps(o[l], t[l]))
        });
        for l in 0..L {
            let (at, m) = (j + 16 * l, m[l]);
            _mm512_mask_storeu_ps(c.add(at), m, c_new[l]);
            _mm512_mask_storeu_ps(h.add(at), m, hv[l]);
            _mm512_mask_storeu_ps(z.add(at), m, i[l]);
            _mm512_mask_storeu_ps(z.add(n + at), m, f[l]);
            _mm512_mask_storeu_ps(z.add(2 * n + at), m, cand[l]);
            _mm512_mask_storeu_ps(z.add(3 * n + at), m, o[l]);
        }
    }
}

/// The gate pass's sigmoid and tanh over slices of equal length (callers check AVX-512).
pub(crate) fn activations_avx512(x: &[f32], s: &mut [f32], t: &mut [f32]) {
    if has_avx512() {
        // SAFETY: AVX-512F is present; the three slices have the same length (the caller cuts
        // them to the shortest).
        unsafe { activations_512(x, s, t) }
    }
}

/// # Safety
/// AVX-512F present; `s` and `t` at least as long as `x`.
#[target_feature(enable = "avx512f")]
unsafe fn activations_512(x: &[f32], s: &mut [f32], t: &mut [f32]) {
    let n = x.len().min(s.len()).min(t.len());
    let mut j = 0;
    // SAFETY: masked to the first `n` lanes of each slice.
    unsafe {
        while j < n {
            let m = lanes(n - j);
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(j));
            _mm512_mask_storeu_ps(s.as_mut_ptr().add(j), m, sigmoid512([v])[0]);
            _mm512_mask_storeu_ps(t.as_mut_ptr().add(j), m, tanh512([v])[0]);
            j += 16;
        }
    }
}

/// The gate pass's sigmoid (`sigmoid`) or tanh of every value of `v`, in place (callers check
/// AVX-512).
pub(crate) fn squash_avx512(v: &mut [f32], sigmoid: bool) {
    if has_avx512() {
        // SAFETY: AVX-512F is present.
        unsafe { squash_512(v, sigmoid) }
    }
}

/// # Safety
/// AVX-512F present.
#[target_feature(enable = "avx512f")]
unsafe fn squash_512(v: &mut [f32], sigmoid: bool) {
    let n = v.len();
    let mut j = 0;
    // SAFETY: every load and store is masked to the lanes of `j..n`, inside `v`.
    unsafe {
        while j < n {
            let m = lanes(n - j);
            let p = v.as_mut_ptr().add(j);
            let x = _mm512_maskz_loadu_ps(m, p);
            let y = if sigmoid {
                sigmoid512([x])[0]
            } else {
                tanh512([x])[0]
            };
            _mm512_mask_storeu_ps(p, m, y);
            j += 16;
        }
    }
}
