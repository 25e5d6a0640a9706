//! The fused LSTM engine every cell of the workspace runs on.
//!
//! [`LstmEngine`] holds the weights of one direction of one layer, transposed once at construction
//! into the layout the matrix products want, and computes a step as
//!
//! ```text
//! z = x W_x + r W_r + b          (r = h_{t-1}, or c_{t-1} for a state-gated cell)
//! i = act_f(clip(z_i + p_i . c_{t-1}))
//! f = act_f(clip(z_f + p_f . c_{t-1}))      (1 - i with input_forget)
//! g = act_g(clip(z_g))
//! c_t = f . c_{t-1} + i . g
//! o = act_f(clip(z_o + p_o . c_t))
//! h_t = o . act_h(c_t)  (standard)   or   act_h(o . c_t)  (state-gated)
//! h_t = W_hr h_t       (with a projection)
//! ```
//!
//! On a whole sequence it computes `x W_x + b` for every time step in one matrix product before
//! the recurrence, so each step is one product with `W_r` and one fused pass over the gates.

use ndarray::{
    Array1, Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, s,
};

use crate::{
    Activation, LstmError, LstmState, RecurrentCell, Result, Scalar, SeqOptions, Trace, Workspace,
    unroll::{self, INACTIVE},
};

/// The state the gates read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recurrence {
    /// The hidden state `h_{t-1}` (standard LSTM).
    #[default]
    Hidden,
    /// The cell state `c_{t-1}`; the candidate sees only the input.
    Cell,
}

/// How `h_t` is formed from the output gate and the new cell state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// `h_t = o * act_h(c_t)` (standard LSTM).
    #[default]
    GateThenSquash,
    /// `h_t = act_h(o * c_t)` (the state-gated cell).
    SquashGated,
}

/// Nonlinearities and options of the gate computation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateConfig<F> {
    /// Clamp every gate pre-activation to `[-clip, clip]` (after bias and peepholes).
    pub clip: Option<F>,
    /// Couple the forget gate to the input gate: `f = 1 - i`.
    pub input_forget: bool,
    /// Activation of the gates i, f, o (sigmoid by default).
    pub f: Activation<F>,
    /// Activation of the candidate g (tanh by default).
    pub g: Activation<F>,
    /// Activation applied to the cell state for the output (tanh by default).
    pub h: Activation<F>,
}

impl<F> Default for GateConfig<F> {
    fn default() -> Self {
        Self {
            clip: None,
            input_forget: false,
            f: Activation::Sigmoid,
            g: Activation::Tanh,
            h: Activation::Tanh,
        }
    }
}

/// Everything an [`LstmEngine`] is built from. Gate blocks are stacked i, f, g, o.
#[derive(Clone, Debug)]
pub struct EngineSpec<'a, F> {
    /// Input weights `[4H, I]`.
    pub w_input: ArrayView2<'a, F>,
    /// Recurrent weights `[4H, R]`; `R = P` for [`Recurrence::Hidden`], `R = H` for
    /// [`Recurrence::Cell`] (whose candidate rows must be zero).
    pub w_recurrent: ArrayView2<'a, F>,
    /// Biases `[4H]`, summed (absent biases are zero).
    pub biases: Vec<ArrayView1<'a, F>>,
    /// Peephole weights `[3, H]` in the order i, f, o.
    pub peephole: Option<ArrayView2<'a, F>>,
    /// Output projection `W_hr [P, H]`.
    pub projection: Option<ArrayView2<'a, F>>,
    /// Which state the gates read.
    pub recurrence: Recurrence,
    /// How `h` is formed.
    pub output_mode: OutputMode,
    /// Activations, clip, input-forget coupling.
    pub gates: GateConfig<F>,
}

impl<'a, F: Scalar> EngineSpec<'a, F> {
    /// A standard LSTM: h-driven gates, sigmoid/tanh, no peepholes, no projection.
    pub fn standard(w_input: ArrayView2<'a, F>, w_recurrent: ArrayView2<'a, F>) -> Self {
        Self {
            w_input,
            w_recurrent,
            biases: Vec::new(),
            peephole: None,
            projection: None,
            recurrence: Recurrence::Hidden,
            output_mode: OutputMode::GateThenSquash,
            gates: GateConfig::default(),
        }
    }
}

/// Checks that every element of `a` is finite.
///
/// # Errors
/// [`LstmError::NonFinite`] naming `what` and the first bad element.
pub fn check_finite<'a, F: Scalar>(what: &str, a: impl IntoIterator<Item = &'a F>) -> Result<()> {
    match a.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((index, v)) => Err(LstmError::NonFinite {
            what: what.into(),
            index,
            value: v.f64(),
        }),
        None => Ok(()),
    }
}

/// One direction of one LSTM layer, weights packed for the kernels. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct LstmEngine<F> {
    input: usize,
    hidden: usize,
    output: usize,
    /// `[I, 4H]`.
    wx: Array2<F>,
    /// `[R, 4H]`.
    wr: Array2<F>,
    /// `[4H]`.
    bias: Array1<F>,
    /// `[3, H]`, i, f, o.
    peep: Option<Array2<F>>,
    /// `[H, P]`.
    proj: Option<Array2<F>>,
    recurrence: Recurrence,
    output_mode: OutputMode,
    gates: GateConfig<F>,
}

impl<F: Scalar> LstmEngine<F> {
    /// Validates the spec and packs the weights.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the parts disagree on `H`, `I` or `P`; [`LstmError::NonFinite`]
    /// for a NaN or infinite weight; [`LstmError::Invalid`] for a zero size, a negative or NaN
    /// clip, or a state-gated cell with candidate recurrent weights.
    pub fn new(spec: EngineSpec<'_, F>) -> Result<Self> {
        let rows = spec.w_input.nrows();
        if rows == 0 || rows % 4 != 0 {
            return Err(LstmError::shape(
                "input weights",
                "[4H, I] with H >= 1",
                spec.w_input.shape(),
            ));
        }
        let hidden = rows / 4;
        let input = spec.w_input.ncols();
        if input == 0 {
            return Err(LstmError::invalid("input size", "must be at least 1"));
        }
        let output = match spec.projection {
            Some(p) => {
                if p.ncols() != hidden || p.nrows() == 0 {
                    return Err(LstmError::shape(
                        "projection weights",
                        format!("[P, {hidden}] with P >= 1"),
                        p.shape(),
                    ));
                }
                p.nrows()
            }
            None => hidden,
        };
        let r = match spec.recurrence {
            Recurrence::Hidden => output,
            Recurrence::Cell => hidden,
        };
        crate::check_shape(
            "recurrent weights",
            spec.w_recurrent.shape(),
            &[4 * hidden, r],
        )?;
        if spec.recurrence == Recurrence::Cell
            && spec
                .w_recurrent
                .slice(s![2 * hidden..3 * hidden, ..])
                .iter()
                .any(|v| !v.is_zero())
        {
            return Err(LstmError::invalid(
                "recurrent weights",
                "a state-gated cell's candidate block must be zero",
            ));
        }
        check_finite("input weights", spec.w_input.iter())?;
        check_finite("recurrent weights", spec.w_recurrent.iter())?;
        let mut bias = Array1::<F>::zeros(4 * hidden);
        for (k, b) in spec.biases.iter().enumerate() {
            crate::check_shape("bias", b.shape(), &[4 * hidden])?;
            check_finite(&format!("bias {k}"), b.iter())?;
            bias.zip_mut_with(b, |a, &v| *a = *a + v);
        }
        if let Some(p) = spec.peephole {
            crate::check_shape("peephole weights", p.shape(), &[3, hidden])?;
            check_finite("peephole weights", p.iter())?;
        }
        if let Some(p) = spec.projection {
            check_finite("projection weights", p.iter())?;
        }
        if let Some(c) = spec.gates.clip {
            if c.is_nan() || c < F::zero() {
                return Err(LstmError::invalid(
                    "clip",
                    format!("must be a non-negative number, got {c}"),
                ));
            }
        }
        Ok(Self {
            input,
            hidden,
            output,
            wx: spec.w_input.t().as_standard_layout().into_owned(),
            wr: spec.w_recurrent.t().as_standard_layout().into_owned(),
            bias,
            peep: spec.peephole.map(|p| p.to_owned()),
            proj: spec
                .projection
                .map(|p| p.t().as_standard_layout().into_owned()),
            recurrence: spec.recurrence,
            output_mode: spec.output_mode,
            gates: spec.gates,
        })
    }

    /// Input weights `[4H, I]` as given.
    pub fn w_input(&self) -> ArrayView2<'_, F> {
        self.wx.t()
    }

    /// Recurrent weights `[4H, R]` as given.
    pub fn w_recurrent(&self) -> ArrayView2<'_, F> {
        self.wr.t()
    }

    /// The summed bias `[4H]`.
    pub fn bias(&self) -> ArrayView1<'_, F> {
        self.bias.view()
    }

    /// Peepholes `[3, H]` (i, f, o).
    pub fn peephole(&self) -> Option<ArrayView2<'_, F>> {
        self.peep.as_ref().map(|p| p.view())
    }

    /// Projection `[P, H]`.
    pub fn projection(&self) -> Option<ArrayView2<'_, F>> {
        self.proj.as_ref().map(|p| p.t())
    }

    /// Gate configuration.
    pub fn gate_config(&self) -> &GateConfig<F> {
        &self.gates
    }

    /// Which state the gates read.
    pub fn recurrence(&self) -> Recurrence {
        self.recurrence
    }

    /// Adds `r W_r` to the pre-activations `z` and applies the fused gate pass, updating `state`.
    fn recur_and_update(
        &self,
        mut z: ArrayViewMut2<'_, F>,
        state: &mut LstmState<F>,
        ws: &mut Workspace<F>,
    ) {
        let (b, h) = (state.batch(), self.hidden);
        {
            let rec = match self.recurrence {
                Recurrence::Hidden => state.h(),
                Recurrence::Cell => state.c(),
            };
            add_product(rec, &self.wr, z.view_mut());
        }
        let proj_len = if self.proj.is_some() { b * h } else { 0 };
        let ([full], _, _) = ws.split([proj_len], 0);
        let (mut hv, mut cv) = state.parts_mut();
        for row in 0..b {
            let zr = z
                .row_mut(row)
                .into_slice()
                .expect("gates are standard layout");
            let cr = cv
                .row_mut(row)
                .into_slice()
                .expect("state is standard layout");
            let hr = match self.proj {
                Some(_) => &mut full[row * h..(row + 1) * h],
                None => hv
                    .row_mut(row)
                    .into_slice()
                    .expect("state is standard layout"),
            };
            self.fused_row(zr, cr, hr);
        }
        if let Some(proj) = &self.proj {
            let full = ArrayView2::from_shape((b, h), &*full).expect("buffer sized B*H");
            hv.fill(F::zero());
            add_product(full, proj, hv.view_mut());
        }
    }

    /// The fused gate pass of one batch row: `z [4H]` pre-activations in, activations out;
    /// `c [H]` updated in place; `h [H]` written.
    #[inline]
    fn fused_row(&self, z: &mut [F], c: &mut [F], h: &mut [F]) {
        let n = self.hidden;
        let g = &self.gates;
        let clip = |v: F| match g.clip {
            Some(k) => v.max(-k).min(k),
            None => v,
        };
        let (zi, rest) = z.split_at_mut(n);
        let (zf, rest) = rest.split_at_mut(n);
        let (zg, zo) = rest.split_at_mut(n);
        for j in 0..n {
            let c_prev = c[j];
            let (pi, pf, po) = match &self.peep {
                Some(p) => (p[[0, j]], p[[1, j]], p[[2, j]]),
                None => (F::zero(), F::zero(), F::zero()),
            };
            let i = g.f.apply(clip(zi[j] + pi * c_prev));
            let f = if g.input_forget {
                F::one() - i
            } else {
                g.f.apply(clip(zf[j] + pf * c_prev))
            };
            let cand = g.g.apply(clip(zg[j]));
            let c_new = f * c_prev + i * cand;
            let o = g.f.apply(clip(zo[j] + po * c_new));
            h[j] = match self.output_mode {
                OutputMode::GateThenSquash => o * g.h.apply(c_new),
                OutputMode::SquashGated => g.h.apply(o * c_new),
            };
            c[j] = c_new;
            zi[j] = i;
            zf[j] = f;
            zg[j] = cand;
            zo[j] = o;
        }
    }
}

/// Rows at or below which products use [`add_product`]'s row kernel instead of the blocked
/// matrix product (which packs, and allocates, on every call).
pub const SMALL_ROWS: usize = 8;

/// `z += a w` for `a [M, K]` (any strides), `w [K, N]` and `z [M, N]` in standard layout.
///
/// Small `M` (at most [`SMALL_ROWS`]) runs a row kernel that streams `w` once per row with
/// contiguous, vectorisable inner loops and allocates nothing; larger products go to ndarray's
/// blocked matrix product.
pub fn add_product<F: Scalar>(a: ArrayView2<'_, F>, w: &Array2<F>, mut z: ArrayViewMut2<'_, F>) {
    let n = w.ncols();
    match (w.as_slice(), a.nrows() <= SMALL_ROWS) {
        (Some(ws), true) if z.is_standard_layout() => {
            for (arow, zrow) in a.rows().into_iter().zip(z.rows_mut()) {
                let zr = zrow.into_slice().unwrap_or_default();
                row_kernel(arow, ws, n, zr);
            }
        }
        _ => ndarray::linalg::general_mat_mul(F::one(), &a, w, F::one(), &mut z),
    }
}

/// `z += a W` for one row `a [K]` and `W [K, N]` stored row-major in `w`.
#[inline(always)]
fn row_kernel_portable<F: Scalar>(a: ndarray::ArrayView1<'_, F>, w: &[F], n: usize, z: &mut [F]) {
    for (k, &av) in a.iter().enumerate() {
        let wr = &w[k * n..(k + 1) * n];
        for (zz, &wv) in z.iter_mut().zip(wr) {
            *zz = *zz + av * wv;
        }
    }
}

static PORTABLE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Forces (or stops forcing) the portable kernels even where the CPU has wider instructions,
/// for testing the fallback path and for comparing. Process-wide.
pub fn force_portable_kernels(on: bool) {
    PORTABLE_ONLY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The same loop compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_kernel_avx2<F: Scalar>(a: ndarray::ArrayView1<'_, F>, w: &[F], n: usize, z: &mut [F]) {
    row_kernel_portable(a, w, n, z);
}

/// Picks the widest instruction set the running CPU has (detected once, cached by `std`).
fn row_kernel<F: Scalar>(a: ndarray::ArrayView1<'_, F>, w: &[F], n: usize, z: &mut [F]) {
    #[cfg(target_arch = "x86_64")]
    if !PORTABLE_ONLY.load(std::sync::atomic::Ordering::Relaxed)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            row_kernel_avx2(a, w, n, z)
        };
        return;
    }
    row_kernel_portable(a, w, n, z);
}

/// The hoisted input projection of `T * B` rows: small batches stay on the row kernel (so a
/// whole small-batch run allocates nothing), large ones use one blocked product.
fn add_product_rows<F: Scalar>(
    a: ArrayView2<'_, F>,
    w: &Array2<F>,
    mut z: ArrayViewMut2<'_, F>,
    batch: usize,
) {
    if batch <= SMALL_ROWS {
        let step = SMALL_ROWS.max(1);
        let m = a.nrows();
        let mut start = 0;
        while start < m {
            let end = (start + step).min(m);
            add_product(
                a.slice(s![start..end, ..]),
                w,
                z.slice_mut(s![start..end, ..]),
            );
            start = end;
        }
    } else {
        ndarray::linalg::general_mat_mul(F::one(), &a, w, F::one(), &mut z);
    }
}

/// A cell whose computation is an [`LstmEngine`]; every such cell is a [`RecurrentCell`] with
/// the engine's fast whole-sequence path.
pub trait EngineCell {
    /// The element type.
    type Elem: Scalar;

    /// The engine.
    fn engine(&self) -> &LstmEngine<Self::Elem>;
}

impl<F: Scalar> EngineCell for LstmEngine<F> {
    type Elem = F;

    fn engine(&self) -> &LstmEngine<F> {
        self
    }
}

impl<F: Scalar, C: EngineCell<Elem = F>> RecurrentCell<F> for C {
    fn input_size(&self) -> usize {
        self.engine().input
    }

    fn hidden_size(&self) -> usize {
        self.engine().hidden
    }

    fn output_size(&self) -> usize {
        self.engine().output
    }

    fn step_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        state: &mut LstmState<F>,
        mut gates: ArrayViewMut2<'_, F>,
        ws: &mut Workspace<F>,
    ) {
        let e = self.engine();
        gates.assign(&e.bias);
        add_product(x, &e.wx, gates.view_mut());
        e.recur_and_update(gates, state, ws);
    }

    fn sequence_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        output: ArrayViewMut3<'_, F>,
        opts: &SeqOptions<'_>,
        trace: Option<&mut Trace<F>>,
        ws: &mut Workspace<F>,
    ) {
        let e = self.engine();
        let (t, b, _) = input.dim();
        let g4 = 4 * e.hidden;
        // Input projection of every step at once: `pre[t, b] = x[t, b] W_x + bias`.
        let ([pre], _, ws) = ws.split([t * b * g4], 0);
        let batch_major = input.view().permuted_axes([1, 0, 2]).is_standard_layout();
        if batch_major {
            // Batch-first memory: one product over [B*T, I], stored as [B, T, 4H].
            let x = input.permuted_axes([1, 0, 2]);
            let x = x
                .into_shape_with_order((b * t, e.input))
                .expect("standard layout");
            let mut p = ArrayViewMut2::from_shape((b * t, g4), &mut *pre).expect("sized");
            p.assign(&e.bias);
            add_product_rows(x.view(), &e.wx, p.view_mut(), b);
        } else {
            let mut p = ArrayViewMut3::from_shape((t, b, g4), &mut *pre).expect("sized");
            p.assign(&e.bias);
            if let Ok(x) = input.view().into_shape_with_order((t * b, e.input)) {
                let mut p = p
                    .into_shape_with_order((t * b, g4))
                    .expect("standard layout");
                add_product_rows(x, &e.wx, p.view_mut(), b);
            } else {
                for (xt, mut pt) in input.outer_iter().zip(p.outer_iter_mut()) {
                    add_product(xt, &e.wx, pt.view_mut());
                }
            }
        }
        let pre = &*pre;
        let row_of = |tt: usize, bb: usize| {
            if batch_major {
                bb * t + tt
            } else {
                tt * b + bb
            }
        };
        unroll::drive(
            t,
            e.hidden,
            opts,
            state,
            output,
            trace,
            ws,
            0,
            |times, state, mut z, _, ws| {
                for (bb, &tt) in times.iter().enumerate() {
                    let dst = z.row_mut(bb).into_slice().expect("standard layout");
                    if tt == INACTIVE {
                        dst.fill(F::zero());
                    } else {
                        let r = row_of(tt, bb);
                        dst.copy_from_slice(&pre[r * g4..(r + 1) * g4]);
                    }
                }
                e.recur_and_update(z, state, ws);
            },
        );
    }
}
