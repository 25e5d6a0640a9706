//! The GRU's step backward: the vector-Jacobian product of one step, both reset forms, clip
//! and activations. It recomputes the step's pre-activations from the input and the previous
//! state; a pre-activation the clip moved gets no gradient.

use lstm_core::ndarray::linalg::general_mat_mul;
use lstm_core::ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewMut2, Axis, Zip, s};
use lstm_core::{Activation, Backward, Scalar, Workspace};

use crate::{GruCell, GruState, RecurrentCell};

/// The gradient of a GRU's parameters, blocks z, r, n as [`GruCell::new`] takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct GruGrad<F> {
    /// `[3H, I]`.
    pub w: Array2<F>,
    /// `[3H, H]`.
    pub r: Array2<F>,
    /// `[3H]`: the input-side bias.
    pub wb: Array1<F>,
    /// `[3H]`: the recurrent-side bias.
    pub rb: Array1<F>,
}

impl<F: Scalar> std::ops::AddAssign<&GruGrad<F>> for GruGrad<F> {
    fn add_assign(&mut self, other: &GruGrad<F>) {
        self.w += &other.w;
        self.r += &other.r;
        self.wb += &other.wb;
        self.rb += &other.rb;
    }
}

impl<F: Scalar> Backward<F> for GruCell<F> {
    type Grad = GruGrad<F>;

    fn zero_grad(&self) -> GruGrad<F> {
        let (i, h) = (self.input_size(), self.hidden_size());
        GruGrad {
            w: Array2::zeros((3 * h, i)),
            r: Array2::zeros((3 * h, h)),
            wb: Array1::zeros(3 * h),
            rb: Array1::zeros(3 * h),
        }
    }

    fn step_backward_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        prev: &GruState<F>,
        d: &mut GruState<F>,
        mut dx: ArrayViewMut2<'_, F>,
        grad: &mut GruGrad<F>,
        _ws: &mut Workspace<F>,
    ) {
        let (w, r) = self.unpacked.get_or_init(|| self.weights());
        let n = self.hidden_size();
        let (one, zero) = (F::one(), F::zero());
        let hp = prev.h();
        let blk = |a: &Array2<F>, k: usize| a.slice(s![k * n..(k + 1) * n, ..]).to_owned();
        let vblk = |a: &Array1<F>, k: usize| a.slice(s![k * n..(k + 1) * n]).to_owned();
        let (wb, rb) = (&self.wb, &self.rb);
        // Input and recurrent pre-activations, biases included, blocks z, r, n.
        let xa = x.dot(&w.t()) + wb;
        let ha = hp.dot(&blk(r, 0).t()) + &vblk(rb, 0);
        let hr = hp.dot(&blk(r, 1).t()) + &vblk(rb, 1);
        let col = |a: &Array2<F>, k: usize| a.slice(s![.., k * n..(k + 1) * n]).to_owned();
        let az = col(&xa, 0) + &ha;
        let ar = col(&xa, 1) + &hr;
        let clip = |v: F| self.clip.map_or(v, |k| v.max(-k).min(k));
        let slope = |act: &Activation<F>, v: F| match self.clip {
            Some(k) if v > k || v < -k => zero,
            _ => act.derivative(v),
        };
        let z = az.mapv(|v| self.f.apply(clip(v)));
        let rg = ar.mapv(|v| self.f.apply(clip(v)));
        let rn = blk(r, 2);
        // The candidate's recurrent term, and what it multiplies.
        let (an, lin) = if self.linear_before_reset() {
            let lin = hp.dot(&rn.t()) + &vblk(rb, 2);
            (col(&xa, 2) + &(&rg * &lin), lin)
        } else {
            let rh = &rg * &hp;
            (col(&xa, 2) + &(rh.dot(&rn.t()) + &vblk(rb, 2)), rh)
        };
        let cand = an.mapv(|v| self.g.apply(clip(v)));
        let dh_new = d.h().to_owned();
        let dn = Zip::from(&dh_new)
            .and(&z)
            .map_collect(|&d, &z| d * (one - z));
        let dz = Zip::from(&dh_new)
            .and(&hp)
            .and(&cand)
            .map_collect(|&d, &h, &c| d * (h - c));
        let mut dh = &dh_new * &z;
        let dan = Zip::from(&dn)
            .and(&an)
            .map_collect(|&d, &v| d * slope(&self.g, v));
        // The gradient of r, of the candidate's recurrent pre-activation, and what R_n
        // multiplies.
        let (dr, d_rec_n, rec_in) = if self.linear_before_reset() {
            // lin = h R_n + b_rn, scaled by r.
            let d_lin = &dan * &rg;
            let dr = &dan * &lin;
            general_mat_mul(one, &d_lin, &rn, one, &mut dh);
            (dr, d_lin, hp.to_owned())
        } else {
            // lin = r . h, multiplied by R_n.
            let d_rh = dan.dot(&rn);
            let dr = &d_rh * &hp;
            dh += &(&d_rh * &rg);
            (dr, dan.clone(), lin)
        };
        let daz = Zip::from(&dz)
            .and(&az)
            .map_collect(|&d, &v| d * slope(&self.f, v));
        let dar = Zip::from(&dr)
            .and(&ar)
            .map_collect(|&d, &v| d * slope(&self.f, v));
        let mut dxa = Array2::zeros(xa.raw_dim());
        for (k, b) in [&daz, &dar, &dan].into_iter().enumerate() {
            dxa.slice_mut(s![.., k * n..(k + 1) * n]).assign(b);
        }
        grad.wb += &dxa.sum_axis(Axis(0));
        general_mat_mul(one, &dxa.t(), &x, one, &mut grad.w);
        general_mat_mul(one, &dxa, w, zero, &mut dx);
        let hp_owned = hp.to_owned();
        for (k, (da, a)) in [(&daz, &hp_owned), (&dar, &hp_owned), (&d_rec_n, &rec_in)]
            .into_iter()
            .enumerate()
        {
            let mut rows = grad.r.slice_mut(s![k * n..(k + 1) * n, ..]);
            general_mat_mul(one, &da.t(), a, one, &mut rows);
            let mut b = grad.rb.slice_mut(s![k * n..(k + 1) * n]);
            b += &da.sum_axis(Axis(0));
        }
        general_mat_mul(one, &daz, &blk(r, 0), one, &mut dh);
        general_mat_mul(one, &dar, &blk(r, 1), one, &mut dh);
        lstm_core::CellState::part_mut(d, 0).assign(&dh);
    }

    fn grad_tensors(&self, g: &GruGrad<F>) -> Vec<(&'static str, ArrayD<F>)> {
        vec![
            ("w", g.w.clone().into_dyn()),
            ("r", g.r.clone().into_dyn()),
            ("wb", g.wb.clone().into_dyn()),
            ("rb", g.rb.clone().into_dyn()),
        ]
    }
}
