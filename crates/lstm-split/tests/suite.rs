//! The shared cell suite, run on [`SplitCell`] (both biases) against a plain reference.

use lstm_core::dev::{
    CellFamily, LstmStep, RefStep, matrix as m, plain_sigmoid as sigmoid, vector as v,
};
use lstm_core::ndarray::ArrayD;
use lstm_core::{LstmError, Result, Scalar};
use lstm_split::SplitCell;

struct Split;

impl CellFamily for Split {
    type Cell<F: Scalar> = SplitCell<F>;

    fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>> {
        vec![vec![4 * h, i], vec![4 * h, h], vec![4 * h], vec![4 * h]]
    }

    fn build<F: Scalar>(p: &[ArrayD<F>]) -> Result<SplitCell<F>> {
        let [w, u, bw, bu] = p else {
            return Err(LstmError::invalid("params", "need W, U, b_w, b_u"));
        };
        SplitCell::new(m(w)?, m(u)?, Some(v(bw)?), Some(v(bu)?))
    }

    /// Each gate separately: W_k x + b_wk + U_k h + b_uk.
    fn reference_step(p: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>]) -> RefStep {
        let (h, c) = (&state[0][..], &state[1][..]);
        let (w, u, bw, bu) = (&p[0], &p[1], &p[2], &p[3]);
        let n = h.len();
        let pre = |gate: usize, j: usize| {
            let r = gate * n + j;
            let wx: f64 = x.iter().enumerate().map(|(k, xv)| w[[r, k]] * xv).sum();
            let uh: f64 = h.iter().enumerate().map(|(k, hv)| u[[r, k]] * hv).sum();
            wx + bw[[r]] + uh + bu[[r]]
        };
        let mut out = LstmStep {
            h: vec![],
            c: vec![],
            gates: Default::default(),
        };
        for j in 0..n {
            let i = sigmoid(pre(0, j));
            let f = sigmoid(pre(1, j));
            let g = pre(2, j).tanh();
            let o = sigmoid(pre(3, j));
            let cn = f * c[j] + i * g;
            out.c.push(cn);
            out.h.push(o * cn.tanh());
            for (k, v) in [i, f, g, o].into_iter().enumerate() {
                out.gates[k].push(v);
            }
        }
        out.into()
    }
}

lstm_core::cell_suite!(Split);
