//! The `f32` product with AVX-512: register tiles of [`MR`] rows by one panel, rows of A packed
//! per block.

use std::arch::x86_64::*;

use super::has_avx512;
use crate::sealed::GemmArgs;
use crate::{NR, portable};

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
