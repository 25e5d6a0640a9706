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
//! The products and the gate pass are the kernels of [`lstm_kernels`]: weights packed once at
//! construction, AVX-512 where the CPU has it, chosen at run time. Custom activations use the
//! exact scalar gate pass.

use lstm_kernels::{GateOptions, NR, Packed};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3, Axis, s};

use crate::{Activation, Direction, LstmError, LstmState, Result, Scalar, Workspace};

mod backward;
mod cell;
mod chunks;
mod product;
mod units;

pub use chunks::CHUNK;
use chunks::{chunk_copy_len, for_each_chunk, reading_order};
use product::GateWeights;

pub use backward::{EngineGrad, engine_tensors};
pub use cell::EngineCell;
pub use lstm_core::check_finite;
pub use units::{
    UNIT_SPLIT_FEW_ROWS_MIN_WEIGHTS, UNIT_SPLIT_MAX_ROWS, UNIT_SPLIT_MIN_STEP_WORK,
    UNIT_SPLIT_MIN_WEIGHTS,
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
    /// Gates held open at 1 whatever their input, in the order i, f, o: the "no input gate",
    /// "no forget gate" and "no output gate" variants of Greff et al. (2017). An open gate's
    /// weights get no gradient.
    pub open: [bool; 3],
}

impl<F> GateConfig<F> {
    /// Whether any gate is held open ([`Self::open`]).
    pub fn any_open(&self) -> bool {
        self.open.iter().any(|&o| o)
    }
}

impl<F> Default for GateConfig<F> {
    fn default() -> Self {
        Self {
            clip: None,
            input_forget: false,
            f: Activation::Sigmoid,
            g: Activation::Tanh,
            h: Activation::Tanh,
            open: [false; 3],
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

/// One direction of one LSTM layer, weights packed for the kernels. See the [module docs](self).
///
/// The weights are stored once, packed ([`Packed`]) into the panel layout the products read, so
/// every product streams them front to back.
#[derive(Clone, Debug)]
pub struct LstmEngine<F> {
    input: usize,
    hidden: usize,
    output: usize,
    /// `[I, 4H]` packed, with the bias: the blocks the gates read.
    wx: GateWeights<F>,
    /// `[R, 4H]` packed: the blocks the gates read.
    wr: GateWeights<F>,
    /// `[4H]`, summed.
    bias: Vec<F>,
    /// Width of a row of pre-activations as the products write it.
    stride: usize,
    /// `3H`: i, f, o.
    peep: Option<Vec<F>>,
    /// `[H, P]` packed.
    proj: Option<Packed<F>>,
    recurrence: Recurrence,
    output_mode: OutputMode,
    gates: GateConfig<F>,
    /// Sigmoid gates and tanh candidate and output: the vectorised gate pass applies.
    standard: bool,
    /// The weights in their given layout, made on the first backward step.
    unpacked: std::sync::OnceLock<backward::Unpacked<F>>,
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
        if rows == 0 || !rows.is_multiple_of(4) {
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
            bias.zip_mut_with(b, |a, &v| *a += v);
        }
        if let Some(p) = spec.peephole {
            crate::check_shape("peephole weights", p.shape(), &[3, hidden])?;
            check_finite("peephole weights", p.iter())?;
        }
        if let Some(p) = spec.projection {
            check_finite("projection weights", p.iter())?;
        }
        if let Some(c) = spec.gates.clip
            && (c.is_nan() || c < F::zero())
        {
            return Err(LstmError::invalid(
                "clip",
                format!("must be a non-negative number, got {c}"),
            ));
        }
        let bias = bias.to_vec();
        // The forget block is not read with `f = 1 - i`, nor the candidate's recurrent block
        // by a state-gated cell.
        let f = !spec.gates.input_forget;
        let wx = GateWeights::new(spec.w_input, [true, f, true, true], Some(&bias));
        let g_rec = spec.recurrence == Recurrence::Hidden;
        let wr = GateWeights::new(spec.w_recurrent, [true, f, g_rec, true], None);
        let stride = (4 * hidden)
            .div_ceil(NR)
            .max(wx.row_width().div_ceil(NR))
            .max(wr.row_width().div_ceil(NR))
            * NR;
        let g = &spec.gates;
        Ok(Self {
            input,
            hidden,
            output,
            wx,
            wr,
            bias,
            stride,
            peep: spec.peephole.map(|p| p.iter().copied().collect()),
            proj: spec
                .projection
                .map(|p| Packed::from_fn(hidden, output, |k, n| p[[n, k]])),
            recurrence: spec.recurrence,
            output_mode: spec.output_mode,
            standard: g.f == Activation::Sigmoid
                && g.g == Activation::Tanh
                && g.h == Activation::Tanh,
            gates: spec.gates,
            unpacked: std::sync::OnceLock::new(),
        })
    }

    /// Input weights `[4H, I]` as given (unpacked into a new array). With `f = 1 - i`
    /// ([`GateConfig::input_forget`]) the forget block reads zero: it is never used, so it is
    /// not stored.
    pub fn w_input(&self) -> Array2<F> {
        Array2::from_shape_fn((4 * self.hidden, self.input), |(n, k)| self.wx.get(k, n))
    }

    /// Recurrent weights `[4H, R]` as given (unpacked into a new array); as for
    /// [`Self::w_input`], the forget block reads zero with `f = 1 - i`.
    pub fn w_recurrent(&self) -> Array2<F> {
        Array2::from_shape_fn((4 * self.hidden, self.wr.rows()), |(n, k)| {
            self.wr.get(k, n)
        })
    }

    /// The recurrent and the input weights side by side, `[W_r | W_x]` (`[4H, R + I]`): the
    /// concatenated layout acting on `[r; x]`.
    pub fn w_concatenated(&self) -> Array2<F> {
        let r = self.wr.rows();
        Array2::from_shape_fn((4 * self.hidden, r + self.input), |(n, k)| {
            if k < r {
                self.wr.get(k, n)
            } else {
                self.wx.get(k - r, n)
            }
        })
    }

    /// The summed bias `[4H]`.
    pub fn bias(&self) -> ArrayView1<'_, F> {
        ArrayView1::from(&self.bias[..])
    }

    /// Peepholes `[3, H]` (i, f, o).
    pub fn peephole(&self) -> Option<ArrayView2<'_, F>> {
        self.peep
            .as_ref()
            .and_then(|p| ArrayView2::from_shape((3, self.hidden), p).ok())
    }

    /// Projection `[P, H]` (unpacked into a new array).
    pub fn projection(&self) -> Option<Array2<F>> {
        self.proj
            .as_ref()
            .map(|p| Array2::from_shape_fn((self.output, self.hidden), |(n, k)| p.get(k, n)))
    }

    /// Width of a row of pre-activations as the products write it: `4H` rounded up to whole
    /// panels of [`lstm_kernels::NR`] columns (or past them, when a product skips blocks and
    /// the last block's padding reaches further).
    pub fn gate_stride(&self) -> usize {
        self.stride
    }

    /// Gate configuration.
    pub fn gate_config(&self) -> &GateConfig<F> {
        &self.gates
    }

    /// How `h` is formed from the output gate and the cell state.
    pub fn output_mode(&self) -> OutputMode {
        self.output_mode
    }

    /// Which state the gates read.
    pub fn recurrence(&self) -> Recurrence {
        self.recurrence
    }

    /// Whether the state's recurrent input (`h`, or `c` for [`Recurrence::Cell`]) is all zero,
    /// as it is at the start of a sequence from the zero state. Its product with `W_r` then adds
    /// only zeros (the weights are finite), so the sequence paths skip it.
    fn recurrent_input_is_zero(&self, state: &LstmState<F>) -> bool {
        let r = match self.recurrence {
            Recurrence::Hidden => state.h(),
            Recurrence::Cell => state.c(),
        };
        r.iter().all(|v| *v == F::zero())
    }

    /// Adds `r W_r` to the pre-activations of the state's `B` rows (row `b` at
    /// `z[b * ldz..][..4H]`, each row writable to [`Self::gate_stride`]) and runs the fused gate
    /// pass, updating `state` and leaving the activations in `z`. With `zero_input` (the caller
    /// knows `r` is all zero, see [`Self::recurrent_input_is_zero`]) the product is skipped.
    fn update(
        &self,
        z: &mut [F],
        ldz: usize,
        state: &mut LstmState<F>,
        zero_input: bool,
        ws: &mut Workspace<F>,
    ) {
        self.update_keeping(z, ldz, state, zero_input, None, ws);
    }

    /// [`Self::update`], copying each row's pre-activations (`4H` values, before the gate
    /// pass and its peepholes) to `pre_out[row * 4H..]` when given.
    fn update_keeping(
        &self,
        z: &mut [F],
        ldz: usize,
        state: &mut LstmState<F>,
        zero_input: bool,
        pre_out: Option<&mut [F]>,
        ws: &mut Workspace<F>,
    ) {
        let (b, h) = (state.batch(), self.hidden);
        let (mut hv, mut cv) = state.parts_mut();
        let hs = hv.as_slice_mut().expect("state is standard layout");
        let cs = cv.as_slice_mut().expect("state is standard layout");
        match self.recurrence {
            _ if zero_input => {}
            Recurrence::Hidden => self.wr.apply(b, hs, self.output, z, ldz, false),
            Recurrence::Cell => self.wr.apply(b, cs, h, z, ldz, false),
        }
        if let Some(pre) = pre_out {
            for row in 0..b {
                pre[row * 4 * h..][..4 * h].copy_from_slice(&z[row * ldz..][..4 * h]);
            }
        }
        let proj_w = self.proj.as_ref().map_or(0, Packed::padded_cols);
        let ([full, projected], _, _) =
            ws.split_reused([if self.proj.is_some() { b * h } else { 0 }, b * proj_w]);
        let opts = self.gate_options(self.peep.as_deref());
        for row in 0..b {
            let zr = &mut z[row * ldz..row * ldz + 4 * h];
            let cr = &mut cs[row * h..(row + 1) * h];
            let hr = match self.proj {
                Some(_) => &mut full[row * h..(row + 1) * h],
                None => &mut hs[row * h..(row + 1) * h],
            };
            self.gate_row(&opts, zr, cr, hr);
        }
        if let Some(proj) = &self.proj {
            let p = self.output;
            projected.fill(F::zero());
            lstm_kernels::gemm(b, full, h, proj, projected, proj_w, None);
            for row in 0..b {
                hs[row * p..(row + 1) * p].copy_from_slice(&projected[row * proj_w..][..p]);
            }
        }
    }

    /// The whole-sequence path when every row steps at every position (no trace): the input
    /// projection is computed a chunk of steps at a time, right before the recurrence reads it,
    /// so the pre-activations (at most [`CHUNK`] values) stay in cache with the weights, and the
    /// recurrence adds to them in place.
    fn sequence_chunked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        mut output: ArrayViewMut3<'_, F>,
        direction: Direction,
        ws: &mut Workspace<F>,
    ) {
        let (t, b, i) = input.dim();
        let per_step = b * self.gate_stride();
        let chunk = (CHUNK / per_step.max(1)).clamp(1, t.max(1));
        let ([pre, xbuf], _, ws) =
            ws.split_reused([chunk * per_step, chunk_copy_len(input, chunk)]);
        let mut zero_input = self.recurrent_input_is_zero(state);
        for_each_chunk(input, chunk, direction, xbuf, |xs, steps| {
            self.wx
                .apply(steps.len() * b, xs, i, pre, self.gate_stride(), true);
            for tt in reading_order(direction, steps.clone()) {
                self.update(
                    &mut pre[(tt - steps.start) * per_step..],
                    self.gate_stride(),
                    state,
                    std::mem::take(&mut zero_input),
                    ws,
                );
                crate::write_rows(
                    output.index_axis_mut(Axis(0), tt),
                    state.h().as_slice().expect("state is standard layout"),
                );
            }
            true
        });
    }

    /// The chunked whole-sequence path of [`Self::sequence_chunked`] for training: every row
    /// steps at every position, and after each step its gate activations (`[B, 4H]`, blocks
    /// i, f, g, o), its cell state and its hidden state (`[B, H]` each, no projection) are
    /// copied to `gates`, `cells` and `hs` at the step's time index, and, when `pres` is not
    /// empty, its pre-activations (before the gate pass and its peepholes) to `pres`.
    pub(crate) fn sequence_keeping(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        direction: Direction,
        [gates, cells, hs, pres]: [&mut [F]; 4],
        ws: &mut Workspace<F>,
    ) {
        let (t, b, i) = input.dim();
        let (h, g4, gp) = (self.hidden, 4 * self.hidden, self.gate_stride());
        let per_step = b * gp;
        let chunk = (CHUNK / per_step.max(1)).clamp(1, t.max(1));
        let ([pre, xbuf], _, ws) =
            ws.split_reused([chunk * per_step, chunk_copy_len(input, chunk)]);
        let mut zero_input = self.recurrent_input_is_zero(state);
        for_each_chunk(input, chunk, direction, xbuf, |xs, steps| {
            self.wx.apply(steps.len() * b, xs, i, pre, gp, true);
            for tt in reading_order(direction, steps.clone()) {
                let z = &mut pre[(tt - steps.start) * per_step..];
                let keep = (!pres.is_empty()).then(|| &mut pres[tt * b * g4..][..b * g4]);
                self.update_keeping(z, gp, state, std::mem::take(&mut zero_input), keep, ws);
                for row in 0..b {
                    gates[(tt * b + row) * g4..][..g4].copy_from_slice(&z[row * gp..][..g4]);
                }
                let (hv, cv) = (state.h(), state.c());
                cells[tt * b * h..][..b * h]
                    .copy_from_slice(cv.as_slice().expect("state is standard layout"));
                hs[tt * b * h..][..b * h]
                    .copy_from_slice(hv.as_slice().expect("state is standard layout"));
            }
            true
        });
    }

    /// The options of the vectorised gate pass, with the given peephole weights.
    fn gate_options<'p>(&self, peephole: Option<&'p [F]>) -> GateOptions<'p, F> {
        GateOptions {
            peephole,
            clip: self.gates.clip,
            input_forget: self.gates.input_forget,
            squash_gated: self.output_mode == OutputMode::SquashGated,
            open: self.gates.open,
        }
    }

    /// The fused gate pass of one batch row of `n` units: `z [4n]` pre-activations in,
    /// activations out; `c [n]` updated in place; `h [n]` written; `opts.peephole` (if any)
    /// holds the `3n` peephole weights of these units. Vectorised where it can be.
    #[inline]
    fn gate_row(&self, opts: &GateOptions<'_, F>, z: &mut [F], c: &mut [F], h: &mut [F]) {
        if !(self.standard && lstm_kernels::lstm_gates(c.len(), z, c, h, opts)) {
            self.fused_row(opts.peephole, z, c, h);
        }
    }

    /// The exact scalar gate pass of [`Self::gate_row`].
    #[inline]
    fn fused_row(&self, peep: Option<&[F]>, z: &mut [F], c: &mut [F], h: &mut [F]) {
        let n = c.len();
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
            let (pi, pf, po) = match peep {
                Some(p) => (p[j], p[n + j], p[2 * n + j]),
                None => (F::zero(), F::zero(), F::zero()),
            };
            let gate = |k: usize, v: F| {
                if g.open[k] {
                    F::one()
                } else {
                    g.f.apply(clip(v))
                }
            };
            let i = gate(0, zi[j] + pi * c_prev);
            let f = if g.input_forget {
                F::one() - i
            } else {
                gate(1, zf[j] + pf * c_prev)
            };
            let cand = g.g.apply(clip(zg[j]));
            let c_new = f * c_prev + i * cand;
            let o = gate(2, zo[j] + po * c_new);
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
