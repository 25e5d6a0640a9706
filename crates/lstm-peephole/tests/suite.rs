//! The shared cell suite, run on both cells of this crate against plain references.

use lstm_core::dev::{
    CellFamily, LstmStep, RefStep, matrix as m, plain_sigmoid as sigmoid, vector as v,
};
use lstm_core::ndarray::ArrayD;
use lstm_core::{LstmError, Result, Scalar};
use lstm_peephole::{PeepholeCell, StateGatedCell};

fn dot(row: impl Iterator<Item = f64>, v: &[f64]) -> f64 {
    row.zip(v).map(|(a, b)| a * b).sum()
}

fn push(out: &mut LstmStep, h: f64, c: f64, gates: [f64; 4]) {
    out.h.push(h);
    out.c.push(c);
    for (k, g) in gates.into_iter().enumerate() {
        out.gates[k].push(g);
    }
}

mod state_gated {
    use super::*;

    pub struct StateGated;

    impl CellFamily for StateGated {
        type Cell<F: Scalar> = StateGatedCell<F>;

        fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>> {
            vec![vec![4 * h, i], vec![3 * h, h], vec![4 * h]]
        }

        fn build<F: Scalar>(p: &[ArrayD<F>]) -> Result<StateGatedCell<F>> {
            let [w, u, b] = p else {
                return Err(LstmError::invalid("params", "need W, U, b"));
            };
            StateGatedCell::new(m(w)?, m(u)?, v(b)?)
        }

        /// Gates from x and c_{t-1}; candidate from x alone; h = tanh(o c_t).
        fn reference_step(p: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>]) -> RefStep {
            let (_h, c) = (&state[0][..], &state[1][..]);
            let (w, u, b) = (&p[0], &p[1], &p[2]);
            let n = c.len();
            let wx = |r: usize| {
                dot(
                    w.index_axis(lstm_core::ndarray::Axis(0), r).iter().copied(),
                    x,
                )
            };
            let uc = |r: usize| {
                dot(
                    u.index_axis(lstm_core::ndarray::Axis(0), r).iter().copied(),
                    c,
                )
            };
            let mut out = LstmStep {
                h: vec![],
                c: vec![],
                gates: Default::default(),
            };
            for j in 0..n {
                let i = sigmoid(wx(j) + uc(j) + b[[j]]);
                let f = sigmoid(wx(n + j) + uc(n + j) + b[[n + j]]);
                let g = (wx(2 * n + j) + b[[2 * n + j]]).tanh();
                let o = sigmoid(wx(3 * n + j) + uc(2 * n + j) + b[[3 * n + j]]);
                let cn = f * c[j] + i * g;
                push(&mut out, (o * cn).tanh(), cn, [i, f, g, o]);
            }
            out.into()
        }
    }

    lstm_core::cell_suite!(StateGated);
}

mod peephole {
    use super::*;

    pub struct Peephole;

    impl CellFamily for Peephole {
        type Cell<F: Scalar> = PeepholeCell<F>;

        fn param_shapes(i: usize, h: usize) -> Vec<Vec<usize>> {
            vec![vec![4 * h, i], vec![4 * h, h], vec![4 * h], vec![3, h]]
        }

        fn build<F: Scalar>(p: &[ArrayD<F>]) -> Result<PeepholeCell<F>> {
            let [w, u, b, pp] = p else {
                return Err(LstmError::invalid("params", "need W, U, b, p"));
            };
            PeepholeCell::new(m(w)?, m(u)?, Some(v(b)?), m(pp)?)
        }

        /// Standard gates plus p_i c_{t-1}, p_f c_{t-1} and p_o c_t.
        fn reference_step(p: &[ArrayD<f64>], x: &[f64], state: &[Vec<f64>]) -> RefStep {
            let (h, c) = (&state[0][..], &state[1][..]);
            let (w, u, b, pp) = (&p[0], &p[1], &p[2], &p[3]);
            let n = c.len();
            let z = |r: usize| {
                dot(
                    w.index_axis(lstm_core::ndarray::Axis(0), r).iter().copied(),
                    x,
                ) + dot(
                    u.index_axis(lstm_core::ndarray::Axis(0), r).iter().copied(),
                    h,
                ) + b[[r]]
            };
            let mut out = LstmStep {
                h: vec![],
                c: vec![],
                gates: Default::default(),
            };
            for j in 0..n {
                let i = sigmoid(z(j) + pp[[0, j]] * c[j]);
                let f = sigmoid(z(n + j) + pp[[1, j]] * c[j]);
                let g = z(2 * n + j).tanh();
                let cn = f * c[j] + i * g;
                let o = sigmoid(z(3 * n + j) + pp[[2, j]] * cn);
                push(&mut out, o * cn.tanh(), cn, [i, f, g, o]);
            }
            out.into()
        }
    }

    lstm_core::cell_suite!(Peephole);
}
