//! [`PlainCell`], the unoptimised baseline.

use super::*;

/// A plain, unoptimised standard LSTM (split weights, loops only): the baseline of the benchmarks
/// and an independent reference.
#[derive(Clone, Debug)]
pub struct PlainCell<F> {
    /// `[4H, I]`.
    pub w: Array2<F>,
    /// `[4H, H]`.
    pub u: Array2<F>,
    /// `[4H]`.
    pub b: ndarray::Array1<F>,
}

impl<F: Scalar> RecurrentCell<F> for PlainCell<F> {
    type State = LstmState<F>;

    fn input_size(&self) -> usize {
        self.w.ncols()
    }

    fn gate_count(&self) -> usize {
        4
    }

    fn hidden_size(&self) -> usize {
        self.u.ncols()
    }

    fn step_unchecked(
        &self,
        x: ndarray::ArrayView2<'_, F>,
        state: &mut LstmState<F>,
        mut gates: ndarray::ArrayViewMut2<'_, F>,
        _ws: &mut Workspace<F>,
    ) {
        let n = self.hidden_size();
        let (mut h, mut c) = state.parts_mut();
        for b in 0..x.nrows() {
            for r in 0..4 * n {
                let mut z = self.b[r];
                for k in 0..x.ncols() {
                    z += self.w[[r, k]] * x[[b, k]];
                }
                for k in 0..n {
                    z += self.u[[r, k]] * h[[b, k]];
                }
                gates[[b, r]] = if r / n == 2 {
                    z.tanh()
                } else {
                    crate::sigmoid(z)
                };
            }
            for j in 0..n {
                let (i, f, g, o) = (
                    gates[[b, j]],
                    gates[[b, n + j]],
                    gates[[b, 2 * n + j]],
                    gates[[b, 3 * n + j]],
                );
                c[[b, j]] = f * c[[b, j]] + i * g;
                h[[b, j]] = o * c[[b, j]].tanh();
            }
        }
    }
}
