//! The fused gate passes (LSTM, GRU) and the in-place activations, with AVX-512.

use std::arch::x86_64::*;

use super::has_avx512;
use super::math::{clamp512, flush512, lanes, sigmoid512, tanh512};
use crate::GateOptions;
use crate::sealed::{GateRow, GruPass};

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
        let ones = [_mm512_set1_ps(1.0); L];
        let open = row.opts.open;
        let i = if open[0] {
            ones
        } else {
            sigmoid512(clamp512(zi, row.clip))
        };
        let f = if row.opts.input_forget {
            each!(l => _mm512_sub_ps(_mm512_set1_ps(1.0), i[l]))
        } else if open[1] {
            ones
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
        let o = if open[2] {
            ones
        } else {
            sigmoid512(clamp512(zo, row.clip))
        };
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

/// The `f32` GRU gate passes with AVX-512 (see [`crate::gru_gates`] and [`crate::gru_reset`]);
/// `false` where the CPU lacks it.
pub(crate) fn gru_f32_avx512(pass: GruPass<'_, f32>) -> bool {
    if !has_avx512() {
        return false;
    }
    let p = GruPtrs::new(pass);
    // SAFETY: AVX-512F is present; `crate::gru_gates` / `crate::gru_reset` checked the slice
    // lengths, which `GruPtrs` keeps.
    unsafe {
        let mut j = 0;
        while j + 32 <= p.n {
            gru_block::<2>(&p, j, [0xffff; 2]);
            j += 32;
        }
        while j < p.n {
            gru_block::<1>(&p, j, [lanes(p.n - j)]);
            j += 16;
        }
    }
    true
}

/// A GRU pass as pointers (see [`GruPass`]), with the clip bounds broadcast.
struct GruPtrs {
    n: usize,
    x: *const f32,
    rec: *mut f32,
    /// `h_{t-1}`: read, and overwritten with `h_t` unless `rh` is set.
    h: *mut f32,
    /// The reset pass: `r . h_{t-1}` goes here, and `h` is only read.
    rh: Option<*mut f32>,
    /// The candidate's activations (the full pass).
    cand: *mut f32,
    reset_product: Option<*const f32>,
    clip: Option<f32>,
}

impl GruPtrs {
    fn new(pass: GruPass<'_, f32>) -> Self {
        let clip = |c: Option<f32>| c;
        match pass {
            GruPass::Reset(g) => Self {
                n: g.hidden,
                x: g.x.as_ptr(),
                rec: g.rec.as_mut_ptr(),
                // Only read: `rh` is set.
                h: g.h.as_ptr().cast_mut(),
                rh: Some(g.rh.as_mut_ptr()),
                cand: std::ptr::null_mut(),
                reset_product: None,
                clip: clip(g.clip),
            },
            GruPass::Gates(g) => Self {
                n: g.hidden,
                x: g.x.as_ptr(),
                rec: g.rec.as_mut_ptr(),
                h: g.h.as_mut_ptr(),
                rh: None,
                cand: g.cand.as_mut_ptr(),
                reset_product: g.reset_product.map(<[f32]>::as_ptr),
                clip: clip(g.clip),
            },
        }
    }
}

/// The GRU pass of the units `j + 16 l + i` for the lanes `i` of `m[l]`, `l < L`.
///
/// # Safety
/// AVX-512F present; `p` points into slices as [`crate::gru_gates`] / [`crate::gru_reset`]
/// check them, and every unit the masks select is below `H`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gru_block<const L: usize>(p: &GruPtrs, j: usize, m: [__mmask16; L]) {
    let n = p.n;
    let clip = p.clip.map(|k| (_mm512_set1_ps(-k), _mm512_set1_ps(k)));
    // SAFETY: unit `j + 16 l + i` is loaded and stored only where `m[l]` selects it; the
    // pointers written through come from exclusive slices (`h` only in the full pass).
    unsafe {
        let load =
            |q: *const f32, at: usize| each!(l => _mm512_maskz_loadu_ps(m[l], q.add(at + 16 * l)));
        let store = |q: *mut f32, at: usize, v: [__m512; L]| {
            for l in 0..L {
                _mm512_mask_storeu_ps(q.add(at + 16 * l), m[l], v[l]);
            }
        };
        let (z, r) = if p.reset_product.is_some() {
            (load(p.rec, j), load(p.rec, n + j))
        } else {
            let (xz, hz) = (load(p.x, j), load(p.rec, j));
            let (xr, hr) = (load(p.x, n + j), load(p.rec, n + j));
            let z = sigmoid512(clamp512(each!(l => _mm512_add_ps(xz[l], hz[l])), clip));
            let r = sigmoid512(clamp512(each!(l => _mm512_add_ps(xr[l], hr[l])), clip));
            store(p.rec, j, z);
            store(p.rec, n + j, r);
            (z, r)
        };
        let h_prev = load(p.h, j);
        if let Some(rh) = p.rh {
            store(rh, j, each!(l => _mm512_mul_ps(r[l], h_prev[l])));
            return;
        }
        let xn = load(p.x, 2 * n + j);
        let pre = match p.reset_product {
            Some(q) => {
                let rn = load(q, j);
                each!(l => _mm512_add_ps(xn[l], rn[l]))
            }
            None => {
                let hn = load(p.rec, 2 * n + j);
                each!(l => _mm512_fmadd_ps(r[l], hn[l], xn[l]))
            }
        };
        let cand = tanh512(clamp512(pre, clip));
        let keep = each!(l => _mm512_sub_ps(_mm512_set1_ps(1.0), z[l]));
        let h_new =
            flush512(each!(l => _mm512_fmadd_ps(z[l], h_prev[l], _mm512_mul_ps(keep[l], cand[l]))));
        store(p.cand, j, cand);
        store(p.h, j, h_new);
    }
}
