//! x86-64 kernels: hand-written AVX-512 for `f32`, and the portable code compiled for AVX2+FMA.
//!
//! Every entry point re-checks the CPU feature it needs (a cached load), so none of them can run
//! an instruction the CPU lacks, whatever level it is asked for.

//!
//! - `gemm`: the `f32` product with AVX-512 (register tiles, packing of A);
//! - `math`: the vector exponential, sigmoid, tanh and helpers the gate passes share;
//! - `gates`: the fused LSTM and GRU gate passes and the in-place activations.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::sealed::GemmArgs;
use crate::{Element, portable};

#[macro_use]
mod math;
mod gates;
mod gemm;

pub(crate) use gates::{activations_avx512, gates_f32_avx512, gru_f32_avx512, squash_avx512};
pub(crate) use gemm::{gemm_f32_avx512, pack_rows_f32_avx512};

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
