//! The GRU's step and sequence paths: products on the packed kernels of `lstm-kernels`, then one
//! fused gate pass per batch row (two, around the candidate's product, when the reset applies
//! before it). The input products of a sequence are made a chunk of steps at a time, right
//! before the recurrence reads them, as the LSTM engine makes them.

use lstm_core::ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, s};
use lstm_core::{Activation, Scalar, Workspace};
use lstm_engine::engine::CHUNK;
use lstm_engine::kernels::{Packed, gemm, gru_gates, gru_reset};

use crate::{GruCell, RecurrentCell};

/// A step's buffers for `B` rows: recurrent pre-activations (padded width `rp`), the
/// candidate's own product (`np`, reset before the product only), `r . h` and the candidate.
struct StepBufs<'a, F> {
    rec: &'a mut [F],
    rec_n: &'a mut [F],
    rh: &'a mut [F],
    cand: &'a mut [F],
}

impl<F: Scalar> GruCell<F> {
    /// Widths of a row of the input products (`gp`), of the recurrent ones (`rp`) and of the
    /// candidate's own product (`np`, zero when the reset applies after the product).
    fn widths(&self) -> (usize, usize, usize) {
        let p = &self.packed;
        let np = p.wr_n.as_ref().map_or(0, Packed::padded_cols);
        (p.wx.padded_cols(), p.wr.padded_cols(), np)
    }

    /// Buffer lengths of [`StepBufs`] for `batch` rows.
    fn step_lens(&self, batch: usize) -> [usize; 4] {
        let (_, rp, np) = self.widths();
        let h = self.hidden_size();
        [batch * rp, batch * np, batch * h, batch * h]
    }

    /// Whether the kernels' fused passes apply: sigmoid gates and tanh candidate.
    fn standard(&self) -> bool {
        self.f == Activation::Sigmoid && self.g == Activation::Tanh
    }

    #[inline]
    fn clip(&self, v: F) -> F {
        match self.clip {
            Some(c) => v.max(-c).min(c),
            None => v,
        }
    }

    /// One step of the rows `b` with `active(b)`: `xp` holds the input products of every row
    /// (stride `gp`), `h [B, H]` the state, updated in place for the active rows.
    fn step_batch(
        &self,
        xp: &[F],
        h: &mut [F],
        active: impl Fn(usize) -> bool,
        bufs: &mut StepBufs<'_, F>,
    ) {
        let n = self.hidden_size();
        let batch = h.len() / n;
        let (gp, rp, np) = self.widths();
        let p = &self.packed;
        gemm(batch, h, n, &p.wr, bufs.rec, rp, Some(&p.rb));
        if let Some(wn) = &p.wr_n {
            for b in (0..batch).filter(|&b| active(b)) {
                self.reset_row(
                    &xp[b * gp..][..2 * n],
                    &mut bufs.rec[b * rp..][..2 * n],
                    &h[b * n..][..n],
                    &mut bufs.rh[b * n..][..n],
                );
            }
            gemm(batch, bufs.rh, n, wn, bufs.rec_n, np, Some(&p.rb_n));
        }
        for b in (0..batch).filter(|&b| active(b)) {
            let reset_product = p.wr_n.as_ref().map(|_| &bufs.rec_n[b * np..][..n]);
            self.gates_row(
                &xp[b * gp..][..3 * n],
                &mut bufs.rec[b * rp..][..rp],
                reset_product,
                &mut h[b * n..][..n],
                &mut bufs.cand[b * n..][..n],
            );
        }
    }

    /// The reset pass of one row ([`gru_reset`]), exact where the kernels have none.
    fn reset_row(&self, x: &[F], rec: &mut [F], h: &[F], rh: &mut [F]) {
        let n = h.len();
        if self.standard() && gru_reset(n, x, rec, h, rh, self.clip) {
            return;
        }
        for j in 0..2 * n {
            rec[j] = self.f.apply(self.clip(x[j] + rec[j]));
        }
        for j in 0..n {
            rh[j] = rec[n + j] * h[j];
        }
    }

    /// The gate pass of one row ([`gru_gates`]), exact where the kernels have none.
    fn gates_row(
        &self,
        x: &[F],
        rec: &mut [F],
        reset_product: Option<&[F]>,
        h: &mut [F],
        cand: &mut [F],
    ) {
        let n = h.len();
        if self.standard() && gru_gates(n, x, rec, reset_product, h, cand, self.clip) {
            return;
        }
        if reset_product.is_none() {
            for j in 0..2 * n {
                rec[j] = self.f.apply(self.clip(x[j] + rec[j]));
            }
        }
        let one = F::one();
        for j in 0..n {
            let rec_n = match reset_product {
                Some(p) => p[j],
                None => rec[n + j] * rec[2 * n + j],
            };
            let c = self.g.apply(self.clip(x[2 * n + j] + rec_n));
            let z = rec[j];
            cand[j] = c;
            h[j] = (one - z) * c + z * h[j];
        }
    }

    /// One step of every row: `gates [B, 3H]` gets z, r, n.
    pub(crate) fn step_rows(
        &self,
        x: ArrayView2<'_, F>,
        h: &mut [F],
        mut gates: ArrayViewMut2<'_, F>,
        ws: &mut Workspace<F>,
    ) {
        let (batch, input) = x.dim();
        let n = self.hidden_size();
        let (gp, rp, _) = self.widths();
        let contiguous = x.to_slice();
        let xlen = if contiguous.is_some() {
            0
        } else {
            batch * input
        };
        let [l0, l1, l2, l3] = self.step_lens(batch);
        let ([xp, xbuf, rec, rec_n, rh, cand], _, _) =
            ws.split_reused([batch * gp, xlen, l0, l1, l2, l3]);
        let xs: &[F] = match contiguous {
            Some(xs) => xs,
            None => {
                lstm_core::copy_rows(x, xbuf);
                xbuf
            }
        };
        let p = &self.packed;
        gemm(batch, xs, input, &p.wx, xp, gp, Some(&p.wb));
        let mut bufs = StepBufs {
            rec,
            rec_n,
            rh,
            cand,
        };
        self.step_batch(xp, h, |_| true, &mut bufs);
        for b in 0..batch {
            let mut row = gates.row_mut(b);
            for j in 0..2 * n {
                row[j] = bufs.rec[b * rp + j];
            }
            for j in 0..n {
                row[2 * n + j] = bufs.cand[b * n + j];
            }
        }
    }

    /// The whole-sequence path, shapes and lengths trusted: `x [T, B, I]`, `output [T, B, H]`
    /// (zero on entry) time-major, `h [B, H]` the state. The input products are made a chunk of
    /// steps at a time (at most [`CHUNK`] values), from the input in place when every row reads
    /// the same time at every step and the input is contiguous, gathered otherwise.
    pub(crate) fn sequence(
        &self,
        x: ArrayView3<'_, F>,
        h: &mut [F],
        mut output: ArrayViewMut3<'_, F>,
        lengths: Option<&[usize]>,
        reverse: bool,
        ws: &mut Workspace<F>,
    ) {
        let (t_len, batch, input) = x.dim();
        let n = self.hidden_size();
        if t_len == 0 || batch == 0 {
            return;
        }
        let len_of = |b: usize| lengths.map_or(t_len, |l| l[b]);
        let steps = (0..batch).map(len_of).max().unwrap_or(0);
        // The time row `b` reads at step `k`, if it still steps.
        let time = |b: usize, k: usize| {
            let len = len_of(b);
            (k < len).then(|| if reverse { len - 1 - k } else { k })
        };
        let uniform = (0..batch).all(|b| len_of(b) == t_len);
        let in_place = if uniform { x.to_slice() } else { None };
        let (gp, ..) = self.widths();
        let chunk = (CHUNK / (batch * gp).max(1)).clamp(1, steps.max(1));
        let xlen = if in_place.is_some() {
            0
        } else {
            chunk * batch * input
        };
        let [l0, l1, l2, l3] = self.step_lens(batch);
        let ([pre, xbuf, rec, rec_n, rh, cand], _, _) =
            ws.split_reused([chunk * batch * gp, xlen, l0, l1, l2, l3]);
        let mut bufs = StepBufs {
            rec,
            rec_n,
            rh,
            cand,
        };
        let p = &self.packed;
        let mut k0 = 0;
        while k0 < steps {
            let len = chunk.min(steps - k0);
            // The chunk's inputs, and where step `k`'s rows start in them.
            let (xs, first): (&[F], usize) = match in_place {
                Some(all) => {
                    let lo = if reverse { t_len - k0 - len } else { k0 };
                    (&all[lo * batch * input..(lo + len) * batch * input], lo)
                }
                None => {
                    for k in k0..k0 + len {
                        for b in 0..batch {
                            let dst = &mut xbuf[((k - k0) * batch + b) * input..][..input];
                            match time(b, k) {
                                Some(t) => dst
                                    .iter_mut()
                                    .zip(x.slice(s![t, b, ..]))
                                    .for_each(|(d, &v)| *d = v),
                                None => dst.fill(F::zero()),
                            }
                        }
                    }
                    (&xbuf[..len * batch * input], 0)
                }
            };
            gemm(len * batch, xs, input, &p.wx, pre, gp, Some(&p.wb));
            for k in k0..k0 + len {
                let block = match in_place {
                    Some(_) if reverse => t_len - 1 - k - first,
                    Some(_) => k - first,
                    None => k - k0,
                };
                let xp = &pre[block * batch * gp..][..batch * gp];
                self.step_batch(xp, h, |b| k < len_of(b), &mut bufs);
                for b in 0..batch {
                    if let Some(t) = time(b, k) {
                        let row = &h[b * n..][..n];
                        output
                            .index_axis_mut(Axis(0), t)
                            .row_mut(b)
                            .iter_mut()
                            .zip(row)
                            .for_each(|(d, &v)| *d = v);
                    }
                }
            }
            k0 += len;
        }
    }
}
