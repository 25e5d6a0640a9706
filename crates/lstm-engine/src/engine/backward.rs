//! The engine's step backward: the vector-Jacobian product of one step of any engine cell
//! (peepholes, projection, clip, coupled forget gate, state-gated recurrence, every activation).
//!
//! It recomputes the step's pre-activations from the input and the previous state, then
//! differentiates the formulas of the [engine docs](super) in reverse order. A pre-activation
//! that the clip moved gets no gradient (the clamp's derivative is zero there). The products run
//! on the weights in their given layout, unpacked once on the first backward step and kept.

use lstm_core::ndarray::linalg::general_mat_mul;
use lstm_core::ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewMut2, Axis, Zip, s};

use super::{LstmEngine, OutputMode, Recurrence};
use crate::{LstmState, Scalar};

/// The gradient of an engine's parameters, in the engine's layout (blocks i, f, g, o).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineGrad<F> {
    /// `[4H, I]`.
    pub w_input: Array2<F>,
    /// `[4H, R]`.
    pub w_recurrent: Array2<F>,
    /// `[4H]`: the gradient of the summed bias, and so of each bias that is summed into it.
    pub bias: Array1<F>,
    /// `[3, H]` (i, f, o), when the engine has peepholes.
    pub peephole: Option<Array2<F>>,
    /// `[P, H]`, when the engine projects its output.
    pub projection: Option<Array2<F>>,
}

/// The weights in their given layout, for the backward products.
#[derive(Clone, Debug)]
pub(crate) struct Unpacked<F> {
    wx: Array2<F>,
    wr: Array2<F>,
    proj: Option<Array2<F>>,
}

impl<F: Scalar> LstmEngine<F> {
    /// A zero gradient for this engine's parameters.
    pub fn zero_grad(&self) -> EngineGrad<F> {
        let (h, p) = (self.hidden, self.output);
        EngineGrad {
            w_input: Array2::zeros((4 * h, self.input)),
            w_recurrent: Array2::zeros((4 * h, self.wr.rows())),
            bias: Array1::zeros(4 * h),
            peephole: self.peep.as_ref().map(|_| Array2::zeros((3, h))),
            projection: self.proj.as_ref().map(|_| Array2::zeros((p, h))),
        }
    }

    fn unpacked(&self) -> &Unpacked<F> {
        self.unpacked.get_or_init(|| Unpacked {
            wx: self.w_input(),
            wr: self.w_recurrent(),
            proj: self.projection(),
        })
    }

    /// See [`lstm_core::Backward::step_backward_unchecked`].
    pub(crate) fn step_backward_rows(
        &self,
        x: ArrayView2<'_, F>,
        prev: &LstmState<F>,
        d: &mut LstmState<F>,
        mut dx: ArrayViewMut2<'_, F>,
        grad: &mut EngineGrad<F>,
    ) {
        let u = self.unpacked();
        let h = self.hidden;
        let g = &self.gates;
        let (one, zero) = (F::one(), F::zero());
        let (hp, cp) = (prev.h(), prev.c());
        let r = match self.recurrence {
            Recurrence::Hidden => hp,
            Recurrence::Cell => cp,
        };
        // Pre-activations, peepholes on c_{t-1} included.
        let mut z = x.dot(&u.wx.t()) + r.dot(&u.wr.t());
        z += &self.bias();
        let peep = self.peephole();
        let block = |z: &Array2<F>, k: usize| z.slice(s![.., k * h..(k + 1) * h]).to_owned();
        let (mut zi, mut zf, zg, mut zo) = (block(&z, 0), block(&z, 1), block(&z, 2), block(&z, 3));
        if let Some(p) = peep {
            zi += &(&cp * &p.row(0));
            zf += &(&cp * &p.row(1));
        }
        let clip = |v: F| g.clip.map_or(v, |k| v.max(-k).min(k));
        // The derivative of `act(clip(v))`: zero where the clip moved `v`.
        let slope = |act: &lstm_core::Activation<F>, v: F| match g.clip {
            Some(k) if v > k || v < -k => zero,
            _ => act.derivative(v),
        };
        let i = zi.mapv(|v| g.f.apply(clip(v)));
        let f = if g.input_forget {
            i.mapv(|v| one - v)
        } else {
            zf.mapv(|v| g.f.apply(clip(v)))
        };
        let cand = zg.mapv(|v| g.g.apply(clip(v)));
        let c = &f * &cp + &i * &cand;
        if let Some(p) = peep {
            zo += &(&c * &p.row(2));
        }
        let o = zo.mapv(|v| g.f.apply(clip(v)));
        let (mut dh_full, mut dc) = (Array2::zeros((x.nrows(), h)), d.c().to_owned());
        let h_full = match self.output_mode {
            OutputMode::GateThenSquash => &o * &c.mapv(|v| g.h.apply(v)),
            OutputMode::SquashGated => (&o * &c).mapv(|v| g.h.apply(v)),
        };
        match (&u.proj, &mut grad.projection) {
            (Some(w), Some(dw)) => {
                general_mat_mul(one, &d.h().t(), &h_full, one, dw);
                general_mat_mul(one, &d.h(), w, zero, &mut dh_full);
            }
            _ => dh_full.assign(&d.h()),
        }
        let mut d_o = Array2::zeros(o.raw_dim());
        match self.output_mode {
            OutputMode::GateThenSquash => Zip::from(&mut d_o)
                .and(&mut dc)
                .and(&dh_full)
                .and(&o)
                .and(&c)
                .for_each(|d_o, dc, &dh, &o, &c| {
                    *d_o = dh * g.h.apply(c);
                    *dc += dh * o * g.h.derivative(c);
                }),
            OutputMode::SquashGated => Zip::from(&mut d_o)
                .and(&mut dc)
                .and(&dh_full)
                .and(&o)
                .and(&c)
                .for_each(|d_o, dc, &dh, &o, &c| {
                    let du = dh * g.h.derivative(o * c);
                    *d_o = du * c;
                    *dc += du * o;
                }),
        }
        let dzo = Zip::from(&d_o)
            .and(&zo)
            .map_collect(|&d, &v| d * slope(&g.f, v));
        if let (Some(p), Some(dp)) = (peep, &mut grad.peephole) {
            dc += &(&dzo * &p.row(2));
            let mut row = dp.row_mut(2);
            row += &(&dzo * &c).sum_axis(Axis(0));
        }
        let mut di = &dc * &cand;
        let dg = &dc * &i;
        let df = &dc * &cp;
        let mut dcp = &dc * &f;
        let dzf = if g.input_forget {
            di -= &df;
            Array2::zeros(df.raw_dim())
        } else {
            Zip::from(&df)
                .and(&zf)
                .map_collect(|&d, &v| d * slope(&g.f, v))
        };
        let dzi = Zip::from(&di)
            .and(&zi)
            .map_collect(|&d, &v| d * slope(&g.f, v));
        let dzg = Zip::from(&dg)
            .and(&zg)
            .map_collect(|&d, &v| d * slope(&g.g, v));
        if let (Some(p), Some(dp)) = (peep, &mut grad.peephole) {
            dcp += &(&dzi * &p.row(0));
            dcp += &(&dzf * &p.row(1));
            let mut row = dp.row_mut(0);
            row += &(&dzi * &cp).sum_axis(Axis(0));
            let mut row = dp.row_mut(1);
            row += &(&dzf * &cp).sum_axis(Axis(0));
        }
        let mut dz = Array2::zeros(z.raw_dim());
        for (k, blk) in [&dzi, &dzf, &dzg, &dzo].into_iter().enumerate() {
            dz.slice_mut(s![.., k * h..(k + 1) * h]).assign(blk);
        }
        grad.bias += &dz.sum_axis(Axis(0));
        general_mat_mul(one, &dz.t(), &x, one, &mut grad.w_input);
        if self.recurrence == Recurrence::Cell {
            // The candidate reads no recurrent input: its block is not a parameter.
            let mut rec = dz.clone();
            rec.slice_mut(s![.., 2 * h..3 * h]).fill(zero);
            general_mat_mul(one, &rec.t(), &r, one, &mut grad.w_recurrent);
        } else {
            general_mat_mul(one, &dz.t(), &r, one, &mut grad.w_recurrent);
        }
        general_mat_mul(one, &dz, &u.wx, zero, &mut dx);
        let dr = dz.dot(&u.wr);
        let (mut dhv, mut dcv) = d.parts_mut();
        match self.recurrence {
            Recurrence::Hidden => {
                dhv.assign(&dr);
                dcv.assign(&dcp);
            }
            Recurrence::Cell => {
                dhv.fill(zero);
                dcv.assign(&(dcp + dr));
            }
        }
    }
}

/// The engine's gradient under the engine's own names: `w_input`, `w_recurrent`, `bias`, then
/// `peephole` and `projection` when the engine has them.
pub fn engine_tensors<F: Scalar>(g: &EngineGrad<F>) -> Vec<(&'static str, ArrayD<F>)> {
    let mut out = vec![
        ("w_input", g.w_input.clone().into_dyn()),
        ("w_recurrent", g.w_recurrent.clone().into_dyn()),
        ("bias", g.bias.clone().into_dyn()),
    ];
    if let Some(p) = &g.peephole {
        out.push(("peephole", p.clone().into_dyn()));
    }
    if let Some(p) = &g.projection {
        out.push(("projection", p.clone().into_dyn()));
    }
    out
}
