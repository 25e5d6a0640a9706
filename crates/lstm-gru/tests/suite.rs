//! The shared suite on the GRU, both ways of applying the reset gate, against a plain
//! reference written from the equations.

use lstm_core::dev::{CellFamily, RefStep, matrix as m, plain_sigmoid as sigmoid, vector as v};
use lstm_core::ndarray::ArrayD;
use lstm_core::{LstmError, Result, Scalar};
use lstm_gru::GruCell;

/// `GruCell` with `W [3H, I]`, `R [3H, H]`, `b_w`, `b_r [3H]` (blocks z, r, n).
fn build<F: Scalar>(p: &[ArrayD<F>], linear_before_reset: bool) -> Result<GruCell<F>> {
    let [w, r, bw, br] = p else {
        return Err(LstmError::invalid(
            "parameters",
            format!("expected 4, got {}", p.len()),
        ));
    };
    GruCell::new(
        m(w)?.to_owned(),
        m(r)?.to_owned(),
        Some(v(bw)?.to_owned()),
        Some(v(br)?.to_owned()),
        linear_before_reset,
    )
}

/// The GRU equations for one row, as sums.
fn step(p: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>], linear_before_reset: bool) -> RefStep {
    let (w, r, bw, br) = (&p[0], &p[1], &p[2], &p[3]);
    let h = &state[0];
    let n = h.len();
    let wx = |row: usize| bw[[row]] + (0..x.len()).map(|k| w[[row, k]] * x[k]).sum::<f64>();
    let rv = |row: usize, v: &[f64]| br[[row]] + (0..n).map(|k| r[[row, k]] * v[k]).sum::<f64>();
    let z: Vec<f64> = (0..n).map(|j| sigmoid(wx(j) + rv(j, h))).collect();
    let reset: Vec<f64> = (0..n).map(|j| sigmoid(wx(n + j) + rv(n + j, h))).collect();
    let rh: Vec<f64> = (0..n).map(|j| reset[j] * h[j]).collect();
    let cand: Vec<f64> = (0..n)
        .map(|j| {
            let rec = if linear_before_reset {
                reset[j] * rv(2 * n + j, h)
            } else {
                rv(2 * n + j, &rh)
            };
            (wx(2 * n + j) + rec).tanh()
        })
        .collect();
    let new: Vec<f64> = (0..n)
        .map(|j| (1.0 - z[j]) * cand[j] + z[j] * h[j])
        .collect();
    RefStep {
        state: vec![new],
        gates: vec![z, reset, cand],
    }
}

macro_rules! family {
    ($name:ident, $mod:ident, $lbr:expr) => {
        mod $mod {
            use super::*;

            /// The GRU as the suite sees it.
            pub struct $name;

            impl CellFamily for $name {
                type Cell<F: Scalar> = GruCell<F>;
                const GATE_RANGES: &'static [(f64, f64)] = &[(0.0, 1.0), (0.0, 1.0), (-1.0, 1.0)];

                fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>> {
                    vec![vec![3 * h, i], vec![3 * h, h], vec![3 * h], vec![3 * h]]
                }

                fn build<F: Scalar>(p: &[ArrayD<F>]) -> Result<GruCell<F>> {
                    build(p, $lbr)
                }

                fn reference_step(p: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>]) -> RefStep {
                    step(p, x, state, $lbr)
                }
            }

            lstm_core::cell_suite!($name);
        }
    };
}

family!(TorchGru, reset_after, true);
family!(OnnxDefaultGru, reset_before, false);
