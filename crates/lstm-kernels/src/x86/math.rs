//! The vector functions of the gate passes, generic over `L` vectors at a time.

// The exponential's coefficients are kept as published (Cephes), digits beyond f32 included.
#![allow(clippy::excessive_precision)]

use std::arch::x86_64::*;

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
pub(super) fn exp_neg512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
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
pub(super) fn recip512<const L: usize>(d: [__m512; L]) -> [__m512; L] {
    let y = each!(l => _mm512_rcp14_ps(d[l]));
    let e = each!(l => _mm512_fnmadd_ps(d[l], y[l], _mm512_set1_ps(1.0)));
    each!(l => _mm512_fmadd_ps(y[l], e[l], y[l]))
}

/// `1 / (1 + e^-x)`, with `x` clamped to `[-87, 87.33]` first: below, the result is that of
/// -87 (1.6e-38, still normal); above, it is 1 either way. NaN in, NaN out.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn sigmoid512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
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
pub(super) fn tanh512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
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
pub(super) fn flush512<const L: usize>(x: [__m512; L]) -> [__m512; L] {
    // "Not less than", true for NaN: the lanes to keep.
    each!(l => _mm512_maskz_mov_ps(
        _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(_mm512_abs_ps(x[l]), _mm512_set1_ps(f32::MIN_POSITIVE)),
        x[l],
    ))
}

/// The clamp to `[lo, hi]`, NaN-preserving.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn clamp512<const L: usize>(
    x: [__m512; L],
    bounds: Option<(__m512, __m512)>,
) -> [__m512; L] {
    match bounds {
        Some((lo, hi)) => each!(l => _mm512_min_ps(hi, _mm512_max_ps(lo, x[l]))),
        None => x,
    }
}

/// The mask of the first `min(left, 16)` lanes.
pub(super) fn lanes(left: usize) -> __mmask16 {
    if left >= 16 {
        0xffff
    } else {
        ((1u32 << left) - 1) as u16
    }
}
