//! The engine's step backward: the vector-Jacobian product of one step of any engine cell
//! (peepholes, projection, clip, coupled forget gate, state-gated recurrence, every activation).
//!
//! It recomputes the step's pre-activations from the input and the previous state, then
//! differentiates the formulas of the [engine docs](super) in reverse order. A pre-activation
//! that the clip moved gets no gradient (the clamp's derivative is zero there). The products run
//! on the weights in their given layout, unpacked once on the first backward step and kept.

use lstm_core::ndarray::linalg::general_mat_mul;
use lstm_core::ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewMut2, Axis, Zip, s};

use lstm_core::ndarray::{ArrayView3, ArrayViewMut3};
use lstm_core::{Activation, Direction, SeqOptions, Workspace};
use lstm_kernels::Packed;

use super::{GateConfig, LstmEngine, OutputMode, Recurrence};
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

impl<F: Scalar> std::ops::AddAssign<&EngineGrad<F>> for EngineGrad<F> {
    fn add_assign(&mut self, other: &EngineGrad<F>) {
        self.w_input += &other.w_input;
        self.w_recurrent += &other.w_recurrent;
        self.bias += &other.bias;
        for (a, b) in [
            (&mut self.peephole, &other.peephole),
            (&mut self.projection, &other.projection),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                *a += b;
            }
        }
    }
}

/// The weights in their given layout, for the backward products, and packed for the kernels
/// as the right-hand side of `dZ W` (`K = 4H`).
#[derive(Clone, Debug)]
pub(crate) struct Unpacked<F> {
    wx: Array2<F>,
    wr: Array2<F>,
    proj: Option<Array2<F>>,
    wx_t: Packed<F>,
    wr_t: Packed<F>,
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
        self.unpacked.get_or_init(|| {
            let (wx, wr) = (self.w_input(), self.w_recurrent());
            Unpacked {
                wx_t: Packed::from_fn(wx.nrows(), wx.ncols(), |k, n| wx[[k, n]]),
                wr_t: Packed::from_fn(wr.nrows(), wr.ncols(), |k, n| wr[[k, n]]),
                wx,
                wr,
                proj: self.projection(),
            }
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
        // A gate held open is 1 whatever its pre-activation: its slope is zero.
        let gate = |k: usize, z: &Array2<F>| {
            if g.open[k] {
                z.mapv(|_| one)
            } else {
                z.mapv(|v| g.f.apply(clip(v)))
            }
        };
        let gate_slope = |k: usize, v: F| if g.open[k] { zero } else { slope(&g.f, v) };
        let i = gate(0, &zi);
        let f = if g.input_forget {
            i.mapv(|v| one - v)
        } else {
            gate(1, &zf)
        };
        let cand = zg.mapv(|v| g.g.apply(clip(v)));
        let c = &f * &cp + &i * &cand;
        if let Some(p) = peep {
            zo += &(&c * &p.row(2));
        }
        let o = gate(2, &zo);
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
            .map_collect(|&d, &v| d * gate_slope(2, v));
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
                .map_collect(|&d, &v| d * gate_slope(1, v))
        };
        let dzi = Zip::from(&di)
            .and(&zi)
            .map_collect(|&d, &v| d * gate_slope(0, v));
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

impl<F: Scalar> LstmEngine<F> {
    /// Whether [`Self::sequence_backward_fused`] applies: every row steps at every position,
    /// no projection, h-driven gates and `h = o act_h(c)`. Any activations, clip, peepholes,
    /// the coupled forget gate and held-open gates are fine.
    fn fused_backward_applies(&self, steps: usize, opts: &SeqOptions<'_>) -> bool {
        opts.lengths.is_none_or(|l| l.iter().all(|&n| n == steps))
            && self.proj.is_none()
            && self.recurrence == Recurrence::Hidden
            && self.output_mode == OutputMode::GateThenSquash
    }

    /// Whether the general backward gate pass ([`GeneralGates`]) needs the pre-activations:
    /// for clip, and for activations other than sigmoid and tanh (whose derivatives it takes
    /// from their values).
    fn general_needs_pre(&self) -> bool {
        let g = &self.gates;
        let by_value = |a: &Activation<F>| matches!(a, Activation::Sigmoid | Activation::Tanh);
        !self.standard_gates()
            && (g.clip.is_some() || !by_value(&g.f) || !by_value(&g.g) || !by_value(&g.h))
    }

    /// Whether the gates are the standard ones (sigmoid gates, tanh candidate and output, no
    /// clip, coupling, open gate or peephole), whose backward gate pass reads only the
    /// activations ([`backward_gate_row`]); others keep the pre-activations too.
    fn standard_gates(&self) -> bool {
        let g = &self.gates;
        g.f == Activation::Sigmoid
            && g.g == Activation::Tanh
            && g.h == Activation::Tanh
            && g.clip.is_none()
            && !g.input_forget
            && !g.any_open()
            && self.peep.is_none()
    }

    /// See [`lstm_core::Backward::sequence_forward_kept`]: the fused path where it applies
    /// ([`Self::fused_backward_applies`]), the stepwise default otherwise.
    pub(crate) fn sequence_forward_rows(
        &self,
        x: ArrayView3<'_, F>,
        opts: &SeqOptions<'_>,
        mut output: ArrayViewMut3<'_, F>,
        state: &mut LstmState<F>,
        ws: &mut Workspace<F>,
    ) {
        if !self.fused_backward_applies(x.dim().0, opts) {
            lstm_core::backward::stepwise_forward_kept(self, x, opts, output, state, ws);
            return;
        }
        let (t, b, _) = x.dim();
        let h = self.hidden;
        if t == 0 || b == 0 {
            return;
        }
        let ([gates, cells, hs, .., pres], _, ws) = ws.split_reused(self.kept_lens(x));
        self.sequence_keeping(x, state, opts.direction, [gates, cells, hs, pres], ws);
        if output.dim().2 > 0 {
            let all = ArrayView3::from_shape((t, b, h), &*hs).expect("sized");
            output.assign(&all);
        }
    }

    /// The buffers the fused path keeps from its forward half to its backward half, and
    /// the backward half's own: gates, cells, hidden states, dZ, previous hidden states,
    /// the `dh` product, `tanh(c)` (or `act_h(c)`), the input gradient's product, and the
    /// pre-activations (kept only for gates other than the standard ones).
    fn kept_lens(&self, x: ArrayView3<'_, F>) -> [usize; 9] {
        let (t, b, _) = x.dim();
        let (h, g4) = (self.hidden, 4 * self.hidden);
        let u = self.unpacked();
        let (ldh, ldx) = (u.wr_t.padded_cols(), u.wx_t.padded_cols());
        let pres = if self.general_needs_pre() {
            t * b * g4
        } else {
            0
        };
        [
            t * b * g4,
            t * b * h,
            t * b * h,
            t * b * g4,
            t * b * h,
            b * ldh,
            b * h,
            t * b * ldx,
            pres,
        ]
    }

    /// See [`lstm_core::Backward::sequence_backward_kept`]: the fused path where it applies
    /// ([`Self::fused_backward_applies`]), the stepwise default otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sequence_backward_rows(
        &self,
        x: ArrayView3<'_, F>,
        initial: &LstmState<F>,
        opts: &SeqOptions<'_>,
        dy: ArrayView3<'_, F>,
        d: &mut LstmState<F>,
        dx: ArrayViewMut3<'_, F>,
        grad: &mut EngineGrad<F>,
        ws: &mut Workspace<F>,
    ) {
        if self.fused_backward_applies(x.dim().0, opts) {
            self.sequence_backward_fused(x, initial, opts.direction, dy, d, dx, grad, ws);
        } else {
            lstm_core::backward::stepwise_backward_kept(
                self, x, initial, opts, dy, d, dx, grad, ws,
            );
        }
    }

    /// Backpropagation through a whole sequence with the products of every step batched: the
    /// forward half ([`Self::sequence_forward_rows`]) kept its gate activations (the traced
    /// path); each step back computes its pre-activation gradients `dZ_t` in one pass and
    /// `dh_{t-1} = dZ_t W_r` on the kernels, and the weight and input gradients are three
    /// products over all steps at the end (`dW_x = dZ^T X`, `dW_r = dZ^T H_prev`,
    /// `dX = dZ W_x`).
    #[allow(clippy::too_many_arguments)]
    fn sequence_backward_fused(
        &self,
        x: ArrayView3<'_, F>,
        initial: &LstmState<F>,
        direction: Direction,
        dy: ArrayView3<'_, F>,
        d: &mut LstmState<F>,
        mut dx: ArrayViewMut3<'_, F>,
        grad: &mut EngineGrad<F>,
        ws: &mut Workspace<F>,
    ) {
        let (t, b, i) = x.dim();
        let h = self.hidden;
        if t == 0 || b == 0 {
            return;
        }
        let u = self.unpacked();
        let g4 = 4 * h;
        let (ldh, ldx) = (u.wr_t.padded_cols(), u.wx_t.padded_cols());
        let ([gates, cells, hs, dz, h_prev, dh_buf, tanh_c, dxs, pres], _, ws) =
            ws.split_reused(self.kept_lens(x));
        let standard = self.standard_gates();
        let general = GeneralGates {
            gates: &self.gates,
            peep: self.peep.as_deref(),
        };
        let (gates, cells, hs, pres) = (&*gates, &*cells, &*hs, &*pres);
        // The time of each step, in reading order.
        let time = |k: usize| match direction {
            Direction::Forward => k,
            Direction::Reverse => t - 1 - k,
        };
        let init_h = initial.h().as_standard_layout().into_owned();
        let init_c = initial.c().as_standard_layout().into_owned();
        let (init_h, init_c) = (
            init_h.as_slice().expect("standard layout"),
            init_c.as_slice().expect("standard layout"),
        );
        for k in 0..t {
            let src = match k {
                0 => init_h,
                _ => &hs[time(k - 1) * b * h..][..b * h],
            };
            h_prev[time(k) * b * h..][..b * h].copy_from_slice(src);
        }
        let (mut dh, mut dc) = (d.h().to_owned(), d.c().to_owned());
        for k in (0..t).rev() {
            let tk = time(k);
            dh += &dy.index_axis(Axis(0), tk);
            let c = &cells[tk * b * h..][..b * h];
            let c_prev = match k {
                0 => init_c,
                _ => &cells[time(k - 1) * b * h..][..b * h],
            };
            tanh_c.copy_from_slice(c);
            if self.gates.h != Activation::Tanh {
                tanh_c.iter_mut().for_each(|v| *v = self.gates.h.apply(*v));
            } else if !lstm_kernels::squash(lstm_kernels::Squash::Tanh, tanh_c) {
                tanh_c.iter_mut().for_each(|v| *v = v.tanh());
            }
            let dhs = dh.as_slice_mut().expect("standard layout");
            let dcs = dc.as_slice_mut().expect("standard layout");
            let zrows = &mut dz[tk * b * g4..][..b * g4];
            for row in 0..b {
                let gr = &gates[(tk * b + row) * g4..][..g4];
                let (gi, rest) = gr.split_at(h);
                let (gf, rest) = rest.split_at(h);
                let (gg, go) = rest.split_at(h);
                let (gi, gf, gg, go) = (&gi[..h], &gf[..h], &gg[..h], &go[..h]);
                let z = &mut zrows[row * g4..][..g4];
                let (zi, rest) = z.split_at_mut(h);
                let (zf, rest) = rest.split_at_mut(h);
                let (zg, zo) = rest.split_at_mut(h);
                let (zi, zf, zg, zo) = (&mut zi[..h], &mut zf[..h], &mut zg[..h], &mut zo[..h]);
                let at = row * h;
                let (tc, cp) = (&tanh_c[at..][..h], &c_prev[at..][..h]);
                let (dhr, dcr) = (&dhs[at..][..h], &mut dcs[at..][..h]);
                if standard {
                    backward_gate_row([gi, gf, gg, go], [tc, cp, dhr], dcr, [zi, zf, zg, zo]);
                } else {
                    let pre = if pres.is_empty() {
                        &[][..]
                    } else {
                        &pres[(tk * b + row) * g4..][..g4]
                    };
                    let c_new = &c[at..][..h];
                    general.row(
                        [gi, gf, gg, go],
                        pre,
                        [tc, cp, c_new, dhr],
                        dcr,
                        [zi, zf, zg, zo],
                        grad.peephole.as_mut(),
                    );
                }
            }
            dh_buf.fill(F::zero());
            lstm_kernels::gemm(b, zrows, g4, &u.wr_t, dh_buf, ldh, None);
            for (row, mut d) in dh.rows_mut().into_iter().enumerate() {
                for (j, v) in d.iter_mut().enumerate() {
                    *v = dh_buf[row * ldh + j];
                }
            }
        }
        d.parts_mut().0.assign(&dh);
        d.parts_mut().1.assign(&dc);
        let dz = ArrayView2::from_shape((t * b, g4), &*dz).expect("sized");
        grad.bias += &dz.sum_axis(Axis(0));
        // dW = dZ^T A on the kernels: dZ^T row-major once, A (the inputs, the previous hidden
        // states) packed as the right-hand side.
        let xs = x.as_standard_layout();
        let x2 = xs.to_shape((t * b, i)).expect("contiguous");
        let hp = ArrayView2::from_shape((t * b, h), &*h_prev).expect("sized");
        let m = t * b;
        let (ldwx, ldwr) = (i.div_ceil(lstm_kernels::NR), h.div_ceil(lstm_kernels::NR));
        let (ldwx, ldwr) = (ldwx * lstm_kernels::NR, ldwr * lstm_kernels::NR);
        let ([dzt, dw], _, _) = ws.split_reused([g4 * m, g4 * ldwx.max(ldwr)]);
        transpose(dz.as_slice().expect("standard layout"), m, g4, dzt);
        for (a, ld, target) in [
            (x2.view(), ldwx, &mut grad.w_input),
            (hp, ldwr, &mut grad.w_recurrent),
        ] {
            let packed = Packed::from_fn(m, a.ncols(), |k, n| a[[k, n]]);
            let out = &mut dw[..g4 * ld];
            out.fill(F::zero());
            lstm_kernels::gemm(g4, dzt, m, &packed, out, ld, None);
            for (n, mut row) in target.rows_mut().into_iter().enumerate() {
                for (kk, v) in row.iter_mut().enumerate() {
                    *v += out[n * ld + kk];
                }
            }
        }
        if dx.dim().2 == 0 {
            return;
        }
        dxs.fill(F::zero());
        let dzs = dz.as_slice().expect("standard layout");
        lstm_kernels::gemm(t * b, dzs, g4, &u.wx_t, dxs, ldx, None);
        for tt in 0..t {
            for row in 0..b {
                let src = &dxs[(tt * b + row) * ldx..][..i];
                dx.slice_mut(s![tt, row, ..])
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &v)| *d = v);
            }
        }
    }
}

/// The backward gate pass of one row for any gate options of the fused path (activations,
/// clip, peepholes, the coupled forget gate, held-open gates): the arithmetic of the
/// stepwise [`LstmEngine::step_backward_rows`], from the kept activations and
/// pre-activations.
struct GeneralGates<'a, F> {
    gates: &'a GateConfig<F>,
    peep: Option<&'a [F]>,
}

impl<F: Scalar> GeneralGates<'_, F> {
    /// Writes `dz` (the four blocks) from the gate activations, the pre-activations `pre`
    /// (`4H`, before peepholes), `act_h(c_t)`, `c_{t-1}`, `c_t` and `dh_t`, turns `dc` into
    /// the gradient with respect to `c_{t-1}`, and adds the peepholes' gradient to `dp`
    /// (`[3, H]`).
    fn row(
        &self,
        [gi, gf, gg, go]: [&[F]; 4],
        pre: &[F],
        [ac, cp, c, dh]: [&[F]; 4],
        dc: &mut [F],
        [zi, zf, zg, zo]: [&mut [F]; 4],
        mut dp: Option<&mut Array2<F>>,
    ) {
        let g = self.gates;
        let n = dc.len();
        let (zero, one) = (F::zero(), F::one());
        // The derivative of `act(clip(v))` at the pre-activation `v` whose activation is `a`:
        // from `a` for sigmoid and tanh, from `v` otherwise (then `pre` is kept); zero where
        // the clip moved `v`.
        let slope = |act: &Activation<F>, v: &dyn Fn() -> F, a: F| {
            if let Some(k) = g.clip {
                let v = v();
                if v > k || v < -k {
                    return zero;
                }
            }
            match act {
                Activation::Sigmoid => a * (one - a),
                Activation::Tanh => one - a * a,
                other => other.derivative(v()),
            }
        };
        for j in 0..n {
            let (pi, pf, po) = match self.peep {
                Some(p) => (p[j], p[n + j], p[2 * n + j]),
                None => (zero, zero, zero),
            };
            let gate_slope = |k: usize, peep: F, state: F, a: F| {
                if g.open[k] {
                    return zero;
                }
                let block = [0, 1, 3][k];
                slope(&g.f, &|| pre[block * n + j] + peep * state, a)
            };
            let h_slope = match g.h {
                Activation::Sigmoid => ac[j] * (one - ac[j]),
                Activation::Tanh => one - ac[j] * ac[j],
                other => other.derivative(c[j]),
            };
            let d_o = dh[j] * ac[j];
            let mut dct = dc[j] + dh[j] * go[j] * h_slope;
            let dzo = d_o * gate_slope(2, po, c[j], go[j]);
            dct += dzo * po;
            let mut di = dct * gg[j];
            let dg = dct * gi[j];
            let df = dct * cp[j];
            let dzf = if g.input_forget {
                di -= df;
                zero
            } else {
                df * gate_slope(1, pf, cp[j], gf[j])
            };
            let dzi = di * gate_slope(0, pi, cp[j], gi[j]);
            let dzg = dg * slope(&g.g, &|| pre[2 * n + j], gg[j]);
            dc[j] = dct * gf[j] + dzi * pi + dzf * pf;
            if let Some(dp) = dp.as_deref_mut() {
                dp[[0, j]] += dzi * cp[j];
                dp[[1, j]] += dzf * cp[j];
                dp[[2, j]] += dzo * c[j];
            }
            zi[j] = dzi;
            zf[j] = dzf;
            zg[j] = dzg;
            zo[j] = dzo;
        }
    }
}

/// One row's pre-activation gradients of the standard cell (sigmoid gates, tanh candidate and
/// output), from its gate activations `i, f, g, o`, `tanh(c_t)`, `c_{t-1}` and `dh_t`: writes
/// `dz` for the four blocks and turns `dc` (the gradient with respect to `c_t`, before the
/// output's share) into the one with respect to `c_{t-1}`. In lanes of 16, so that the
/// compiler vectorises it.
#[inline]
fn backward_gate_row<F: Scalar>(
    [gi, gf, gg, go]: [&[F]; 4],
    [tc, cp, dh]: [&[F]; 3],
    dc: &mut [F],
    [zi, zf, zg, zo]: [&mut [F]; 4],
) {
    const L: usize = 16;
    let one = F::one();
    let n = dc.len();
    let full = n / L * L;
    for j0 in (0..full).step_by(L) {
        let (gi, gf, gg, go): (&[F; L], &[F; L], &[F; L], &[F; L]) = (
            gi[j0..j0 + L].try_into().expect("a lane"),
            gf[j0..j0 + L].try_into().expect("a lane"),
            gg[j0..j0 + L].try_into().expect("a lane"),
            go[j0..j0 + L].try_into().expect("a lane"),
        );
        let (tc, cp, dh): (&[F; L], &[F; L], &[F; L]) = (
            tc[j0..j0 + L].try_into().expect("a lane"),
            cp[j0..j0 + L].try_into().expect("a lane"),
            dh[j0..j0 + L].try_into().expect("a lane"),
        );
        let dcl: &mut [F; L] = (&mut dc[j0..j0 + L]).try_into().expect("a lane");
        let zil: &mut [F; L] = (&mut zi[j0..j0 + L]).try_into().expect("a lane");
        let zfl: &mut [F; L] = (&mut zf[j0..j0 + L]).try_into().expect("a lane");
        let zgl: &mut [F; L] = (&mut zg[j0..j0 + L]).try_into().expect("a lane");
        let zol: &mut [F; L] = (&mut zo[j0..j0 + L]).try_into().expect("a lane");
        for j in 0..L {
            let (ig, fg, g, og, t, dhv) = (gi[j], gf[j], gg[j], go[j], tc[j], dh[j]);
            let dct = dcl[j] + dhv * og * (one - t * t);
            zil[j] = dct * g * ig * (one - ig);
            zfl[j] = dct * cp[j] * fg * (one - fg);
            zgl[j] = dct * ig * (one - g * g);
            zol[j] = dhv * t * og * (one - og);
            dcl[j] = dct * fg;
        }
    }
    for j in full..n {
        let (ig, fg, g, og, t, dhv) = (gi[j], gf[j], gg[j], go[j], tc[j], dh[j]);
        let dct = dc[j] + dhv * og * (one - t * t);
        zi[j] = dct * g * ig * (one - ig);
        zf[j] = dct * cp[j] * fg * (one - fg);
        zg[j] = dct * ig * (one - g * g);
        zo[j] = dhv * t * og * (one - og);
        dc[j] = dct * fg;
    }
}

/// `dst [cols, rows] = src [rows, cols]^T`, both row-major: 8 x 8 tiles through registers
/// (whole rows read, whole rows written), the edges one element at a time.
fn transpose<F: Copy + Default>(src: &[F], rows: usize, cols: usize, dst: &mut [F]) {
    const B: usize = 8;
    let (rb, cb) = (rows / B * B, cols / B * B);
    for r0 in (0..rb).step_by(B) {
        for c0 in (0..cb).step_by(B) {
            let mut tile = [[F::default(); B]; B];
            for (i, row) in tile.iter_mut().enumerate() {
                row.copy_from_slice(&src[(r0 + i) * cols + c0..][..B]);
            }
            for j in 0..B {
                let out: &mut [F; B] = (&mut dst[(c0 + j) * rows + r0..][..B])
                    .try_into()
                    .expect("eight elements");
                for (i, o) in out.iter_mut().enumerate() {
                    *o = tile[i][j];
                }
            }
        }
    }
    for r in 0..rows {
        let from = if r < rb { cb } else { 0 };
        for c in from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}
