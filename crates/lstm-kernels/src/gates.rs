//! The fused gate passes (LSTM, GRU) and the vectorised activations, checked before they
//! reach the kernels.

use crate::sealed::{Checked, GateRow, GruGates, GruPass, GruReset};
#[cfg(target_arch = "x86_64")]
use crate::x86;
use crate::{Element, Level, level};

/// Which function [`squash`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Squash {
    /// The logistic sigmoid.
    Sigmoid,
    /// The hyperbolic tangent.
    Tanh,
}

/// Applies the gate pass's fast sigmoid or tanh (the same functions, the same error as
/// [`lstm_gates`]) to every value of `v`, in place, for cells with their own gate pass (the
/// GRU). Returns `false`, touching nothing, where no vectorised version runs (`f64`, or no
/// AVX-512): the caller applies the exact function then.
pub fn squash<T: Element>(kind: Squash, v: &mut [T]) -> bool {
    T::squash_at(level(), kind, v, Checked(()))
}

/// Options of the gate pass ([`lstm_gates`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct GateOptions<'a, T> {
    /// Peephole weights, `3H` values: the blocks for i, f and o.
    pub peephole: Option<&'a [T]>,
    /// Clamp every pre-activation to `[-clip, clip]` (after the peepholes).
    pub clip: Option<T>,
    /// `f = 1 - i`.
    pub input_forget: bool,
    /// `h = tanh(o * c)` instead of `o * tanh(c)`.
    pub squash_gated: bool,
    /// Gates held at 1 whatever their input, in the order i, f, o.
    pub open: [bool; 3],
}

/// The fused gate pass of one batch row, if a vectorised version exists for this element type
/// and CPU (`f32` with AVX-512); returns `false`, touching nothing, otherwise.
///
/// `z` holds the pre-activations `[i | f | g | o]` (`4H`, bias and products included) and
/// receives the gate activations; `c [H]` is updated in place; `h [H]` is written. Sigmoid gates
/// and tanh candidate and output, in the order of the ONNX `LSTM` operator:
/// `i = s(z_i + p_i c)`, `f = s(z_f + p_f c)` (or `1 - i`), `g = tanh(z_g)`, `c' = f c + i g`,
/// `o = s(z_o + p_o c')`, `h = o tanh(c')` (or `tanh(o c')`); a gate held open
/// ([`GateOptions::open`]) is 1.
///
/// # Panics
/// When a slice is shorter than the hidden size says.
pub fn lstm_gates<T: Element>(
    hidden: usize,
    z: &mut [T],
    c: &mut [T],
    h: &mut [T],
    opts: &GateOptions<'_, T>,
) -> bool {
    assert!(z.len() >= 4 * hidden && c.len() >= hidden && h.len() >= hidden);
    assert!(opts.peephole.is_none_or(|p| p.len() >= 3 * hidden));
    T::gates_at(
        level(),
        GateRow {
            hidden,
            z,
            c,
            h,
            opts,
        },
        Checked(()),
    )
}

/// The fused GRU gate pass of one batch row, if a vectorised version exists for this element
/// type and CPU (`f32` with AVX-512); returns `false`, touching nothing, otherwise.
///
/// `x [3H]` holds the input pre-activations `[z | r | n]` (input bias included) and `h [H]` the
/// state `h_{t-1}`, overwritten with `h_t`; `cand [H]` receives the candidate `n`. Sigmoid
/// gates and tanh candidate, in the order of the ONNX `GRU` operator:
///
/// - without `reset_product`, `rec [3H]` holds the recurrent pre-activations `h W_r + b_r` and
///   `n = tanh(x_n + r . rec_n)` (`linear_before_reset`, PyTorch's form); `rec`'s first `2H`
///   values receive the activations z and r;
/// - with `reset_product [H]` (the product `(r . h) W_n + b_n` of the other form, made after
///   [`gru_reset`]), `rec [2H]` already holds z and r and `n = tanh(x_n + reset_product)`.
///
/// Then `h_t = (1 - z) . n + z . h_{t-1}`. Every pre-activation is clamped to
/// `[-clip, clip]` first when `clip` is set.
///
/// # Panics
/// When a slice is shorter than the hidden size says.
pub fn gru_gates<T: Element>(
    hidden: usize,
    x: &[T],
    rec: &mut [T],
    reset_product: Option<&[T]>,
    h: &mut [T],
    cand: &mut [T],
    clip: Option<T>,
) -> bool {
    let rec_len = if reset_product.is_some() { 2 } else { 3 } * hidden;
    assert!(x.len() >= 3 * hidden && rec.len() >= rec_len);
    assert!(h.len() >= hidden && cand.len() >= hidden);
    assert!(reset_product.is_none_or(|p| p.len() >= hidden));
    T::gru_at(
        level(),
        GruPass::Gates(GruGates {
            hidden,
            x,
            rec,
            reset_product,
            h,
            cand,
            clip,
        }),
        Checked(()),
    )
}

/// The first GRU pass of one batch row for the form whose reset gate applies before the
/// candidate's recurrent product (ONNX's default, `linear_before_reset = 0`), if a vectorised
/// version exists (`f32` with AVX-512); returns `false`, touching nothing, otherwise.
///
/// `x [3H]` and `rec [2H]` hold the input and recurrent pre-activations of z and r; `rec`
/// receives their activations (clamped to `[-clip, clip]` first when `clip` is set) and
/// `rh [H]` the product `r . h` the candidate's recurrent product reads. Then
/// [`gru_gates`] with `reset_product`.
///
/// # Panics
/// When a slice is shorter than the hidden size says.
pub fn gru_reset<T: Element>(
    hidden: usize,
    x: &[T],
    rec: &mut [T],
    h: &[T],
    rh: &mut [T],
    clip: Option<T>,
) -> bool {
    assert!(x.len() >= 2 * hidden && rec.len() >= 2 * hidden);
    assert!(h.len() >= hidden && rh.len() >= hidden);
    T::gru_at(
        level(),
        GruPass::Reset(GruReset {
            hidden,
            x,
            rec,
            h,
            rh,
            clip,
        }),
        Checked(()),
    )
}

/// The fast sigmoid and tanh of the vectorised gate pass, applied to a slice, for measuring
/// their error. Returns `false`, touching nothing, where no vectorised version runs.
pub fn fast_activations(x: &[f32], sigmoid: &mut [f32], tanh: &mut [f32]) -> bool {
    let n = x.len().min(sigmoid.len()).min(tanh.len());
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        x86::activations_avx512(&x[..n], &mut sigmoid[..n], &mut tanh[..n]);
        return true;
    }
    let _ = n;
    false
}
