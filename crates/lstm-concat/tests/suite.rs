//! The shared cell suite, run on [`ConcatCell`] against a plain reference.

use lstm_concat::ConcatCell;
use lstm_core::dev::{
    CellFamily, LstmStep, RefStep, matrix as m, plain_sigmoid as sigmoid, vector as v,
};
use lstm_core::ndarray::ArrayD;
use lstm_core::{Result, Scalar};

struct Concat;

impl CellFamily for Concat {
    type Cell<F: Scalar> = ConcatCell<F>;

    fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>> {
        vec![vec![4 * h, h + i], vec![4 * h]]
    }

    fn build<F: Scalar>(p: &[ArrayD<F>]) -> Result<ConcatCell<F>> {
        let [w, b] = p else {
            return Err(lstm_core::LstmError::invalid("params", "need W and b"));
        };
        ConcatCell::new(m(w)?, v(b)?)
    }

    /// z = W [h; x] + b, written out as sums.
    fn reference_step(p: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>]) -> RefStep {
        let (h, c) = (&state[0][..], &state[1][..]);
        let (w, b) = (&p[0], &p[1]);
        let n = h.len();
        let hx: Vec<f64> = h.iter().chain(x).copied().collect();
        let z = |row: usize| b[[row]] + (0..hx.len()).map(|k| w[[row, k]] * hx[k]).sum::<f64>();
        let mut out = LstmStep {
            h: vec![],
            c: vec![],
            gates: Default::default(),
        };
        for j in 0..n {
            let (i, f, g, o) = (
                sigmoid(z(j)),
                sigmoid(z(n + j)),
                z(2 * n + j).tanh(),
                sigmoid(z(3 * n + j)),
            );
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

lstm_core::cell_suite!(Concat);
