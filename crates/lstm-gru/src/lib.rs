#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub use lstm_core::{
    self, CellState, Direction, Layout, RecurrentCell, SeqOptions, Trace, Unrolled,
};

use lstm_core::ndarray::{
    Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis,
    s,
};
use lstm_core::{
    Activation, LstmError, Result, Scalar, Workspace, check_finite, check_shape, unroll,
};
use lstm_engine::kernels::Packed;

/// The state a GRU carries between steps: its hidden state `h [B, H]` alone.
#[derive(Clone, Debug, PartialEq)]
pub struct GruState<F> {
    h: Array2<F>,
}

impl<F: Scalar> GruState<F> {
    /// A state from `h [B, H]`.
    pub fn new(h: Array2<F>) -> Self {
        Self {
            h: h.as_standard_layout().into_owned(),
        }
    }

    /// The hidden state `h [B, H]`.
    pub fn h(&self) -> ArrayView2<'_, F> {
        self.h.view()
    }

    /// Takes the state apart.
    pub fn into_h(self) -> Array2<F> {
        self.h
    }
}

impl<F: Scalar> CellState<F> for GruState<F> {
    const PARTS: usize = 1;

    fn zeros(batch: usize, output: usize, _hidden: usize) -> Self {
        Self {
            h: Array2::zeros((batch, output)),
        }
    }

    fn part(&self, _k: usize) -> ArrayView2<'_, F> {
        self.h.view()
    }

    fn part_mut(&mut self, _k: usize) -> ArrayViewMut2<'_, F> {
        self.h.view_mut()
    }

    fn check(&self, batch: usize, output: usize, _hidden: usize) -> Result<()> {
        check_shape("initial state h", self.h.shape(), &[batch, output])
    }
}

/// One direction of a GRU layer: weights, biases and the gate functions.
#[derive(Clone, Debug)]
pub struct GruCell<F> {
    /// `[3H]`: the input-side bias.
    wb: Array1<F>,
    /// `[3H]`: the recurrent-side bias.
    rb: Array1<F>,
    /// The sequence path's weights, packed for the kernels of `lstm-kernels`: the input weights
    /// `[I, 3H]`, the recurrent ones `[H, 3H]` (reset after the product) or `[H, 2H]` for z and
    /// r with `[H, H]` for n apart (reset before), and the biases padded to the packed widths.
    packed: PackedGru<F>,
    linear_before_reset: bool,
    /// The gate function (sigmoid by default).
    pub f: Activation<F>,
    /// The candidate function (tanh by default).
    pub g: Activation<F>,
    /// Clamp every pre-activation to `[-clip, clip]`.
    pub clip: Option<F>,
    /// `W` and `R` in their given layout, made on the first backward step.
    unpacked: std::sync::OnceLock<(Array2<F>, Array2<F>)>,
}

#[derive(Clone, Debug)]
struct PackedGru<F> {
    wx: Packed<F>,
    wr: Packed<F>,
    wr_n: Option<Packed<F>>,
    wb: Vec<F>,
    rb: Vec<F>,
    rb_n: Vec<F>,
}

impl<F: Scalar> PackedGru<F> {
    fn new(w: &Array2<F>, r: &Array2<F>, wb: &Array1<F>, rb: &Array1<F>, lbr: bool) -> Self {
        let (h3, input) = w.dim();
        let h = h3 / 3;
        let recurrent = if lbr { h3 } else { 2 * h };
        let wx = Packed::from_fn(input, h3, |k, n| w[[n, k]]);
        let wr = Packed::from_fn(h, recurrent, |k, n| r[[n, k]]);
        let wr_n = (!lbr).then(|| Packed::from_fn(h, h, |k, n| r[[2 * h + n, k]]));
        let pad = |v: &[F], width: usize| {
            let mut out = vec![F::zero(); width];
            out[..v.len()].copy_from_slice(v);
            out
        };
        let rb_all = rb.to_vec();
        Self {
            wb: pad(&wb.to_vec(), wx.padded_cols()),
            rb: pad(&rb_all[..recurrent], wr.padded_cols()),
            rb_n: wr_n
                .as_ref()
                .map_or_else(Vec::new, |p| pad(&rb_all[2 * h..], p.padded_cols())),
            wx,
            wr,
            wr_n,
        }
    }
}

/// The result of [`GruCell::forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct GruOutput<F> {
    /// `[T, B, H]`: the hidden state at every step (zero past a sample's length).
    pub output: Array3<F>,
    /// `[B, H]`: the hidden state after each sample's last valid step (the initial state for a
    /// length of 0).
    pub h_n: Array2<F>,
}

impl<F: Scalar> GruCell<F> {
    /// A cell from `w [3H, I]`, `r [3H, H]` and the optional biases `wb`, `rb [3H]`, blocks in
    /// the order z, r, n (ONNX's). `linear_before_reset` applies the reset gate after the
    /// recurrent product of the candidate (PyTorch's definition).
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the shapes do not fit, [`LstmError::NonFinite`] for NaN or an
    /// infinity in a weight.
    pub fn new(
        w: Array2<F>,
        r: Array2<F>,
        wb: Option<Array1<F>>,
        rb: Option<Array1<F>>,
        linear_before_reset: bool,
    ) -> Result<Self> {
        let rows = w.nrows();
        if rows == 0 || !rows.is_multiple_of(3) {
            return Err(LstmError::shape("GRU W", "[3*H, I] with H > 0", w.shape()));
        }
        let h = rows / 3;
        check_shape("GRU R", r.shape(), &[3 * h, h])?;
        let zeros = || Array1::zeros(3 * h);
        let (wb, rb) = (wb.unwrap_or_else(zeros), rb.unwrap_or_else(zeros));
        check_shape("GRU input bias", wb.shape(), &[3 * h])?;
        check_shape("GRU recurrent bias", rb.shape(), &[3 * h])?;
        check_finite("GRU W", w.iter())?;
        check_finite("GRU R", r.iter())?;
        check_finite("GRU input bias", wb.iter())?;
        check_finite("GRU recurrent bias", rb.iter())?;
        let packed = PackedGru::new(&w, &r, &wb, &rb, linear_before_reset);
        Ok(Self {
            packed,
            wb,
            rb,
            linear_before_reset,
            f: Activation::Sigmoid,
            g: Activation::Tanh,
            clip: None,
            unpacked: std::sync::OnceLock::new(),
        })
    }

    /// A cell from PyTorch's `weight_ih [3H, I]`, `weight_hh [3H, H]`, `bias_ih`, `bias_hh`,
    /// blocks in PyTorch's order r, z, n (`nn.GRU` always resets after the product).
    ///
    /// # Errors
    /// As [`GruCell::new`].
    pub fn from_torch(
        weight_ih: ArrayView2<'_, F>,
        weight_hh: ArrayView2<'_, F>,
        bias_ih: Option<Array1<F>>,
        bias_hh: Option<Array1<F>>,
    ) -> Result<Self> {
        let rows = weight_ih.nrows();
        if rows == 0 || !rows.is_multiple_of(3) {
            return Err(LstmError::shape(
                "GRU weight_ih",
                "[3*H, I] with H > 0",
                weight_ih.shape(),
            ));
        }
        let h = rows / 3;
        let order = [h..2 * h, 0..h, 2 * h..3 * h]; // z, r, n from r, z, n
        let rows_of = |a: ArrayView2<'_, F>| -> Result<Array2<F>> {
            if a.nrows() != 3 * h {
                return Err(LstmError::shape("GRU weight_hh", "[3*H, H]", a.shape()));
            }
            let parts: Vec<_> = order.iter().map(|k| a.slice(s![k.clone(), ..])).collect();
            lstm_core::ndarray::concatenate(Axis(0), &parts)
                .map_err(|e| LstmError::invalid("GRU weights", e))
        };
        let vec_of = |b: Array1<F>| -> Result<Array1<F>> {
            check_shape("GRU bias", b.shape(), &[3 * h])?;
            Ok(order
                .iter()
                .flat_map(|k| b.slice(s![k.clone()]).to_vec())
                .collect())
        };
        Self::new(
            rows_of(weight_ih)?,
            rows_of(weight_hh)?,
            bias_ih.map(vec_of).transpose()?,
            bias_hh.map(vec_of).transpose()?,
            true,
        )
    }

    /// A cell with random weights and biases, uniform in `[-1/sqrt(H), 1/sqrt(H)]` as
    /// `nn.GRU` initialises them, resetting after the product as `nn.GRU` does.
    ///
    /// # Errors
    /// An [`LstmError`] when `hidden` is zero.
    pub fn random(
        input: usize,
        hidden: usize,
        rng: &mut lstm_engine::init::SplitMix64,
    ) -> Result<Self> {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        Self::new(
            rng.uniform_array((3 * hidden, input), k),
            rng.uniform_array((3 * hidden, hidden), k),
            Some(rng.uniform_array(3 * hidden, k)),
            Some(rng.uniform_array(3 * hidden, k)),
            true,
        )
    }

    /// The weights `W [3H, I]` and `R [3H, H]` (blocks z, r, n), unpacked into new arrays.
    pub fn weights(&self) -> (Array2<F>, Array2<F>) {
        let p = &self.packed;
        let h = p.wr.rows();
        let w = Array2::from_shape_fn((3 * h, p.wx.rows()), |(n, k)| p.wx.get(k, n));
        let r = Array2::from_shape_fn((3 * h, h), |(n, k)| match &p.wr_n {
            Some(wn) if n >= 2 * h => wn.get(k, n - 2 * h),
            _ => p.wr.get(k, n),
        });
        (w, r)
    }

    /// The input-side and recurrent-side biases `[3H]` (blocks z, r, n).
    pub fn biases(&self) -> (ArrayView1<'_, F>, ArrayView1<'_, F>) {
        (self.wb.view(), self.rb.view())
    }

    /// Whether the reset gate is applied after the candidate's recurrent product.
    pub fn linear_before_reset(&self) -> bool {
        self.linear_before_reset
    }

    /// Runs a time-major sequence `x [T, B, I]` from `h0 [B, H]` (zeros if `None`), forward or
    /// (`reverse`) from each sample's last valid step back to its first: the contract's
    /// [`unroll`](RecurrentCell::unroll) with those options.
    ///
    /// # Errors
    /// [`LstmError::Shape`] for a wrong shape, [`LstmError::Invalid`] for a length above `T` or
    /// a length count that is not `B`.
    pub fn forward(
        &self,
        x: ArrayView3<'_, F>,
        h0: Option<ArrayView2<'_, F>>,
        lengths: Option<&[usize]>,
        reverse: bool,
    ) -> Result<GruOutput<F>> {
        let initial = h0.map(|a| GruState::new(a.to_owned()));
        let mut opts = SeqOptions::default();
        if let Some(l) = lengths {
            opts = opts.lengths(l);
        }
        if reverse {
            opts = opts.reverse();
        }
        let out = self.unroll(x, initial.as_ref(), &opts)?;
        Ok(GruOutput {
            output: out.output,
            h_n: out.state.into_h(),
        })
    }
}

/// A GRU is a [`RecurrentCell`] whose state is `h` and whose three gate blocks are z, r, n.
/// Untraced sequences take the whole-sequence path (every step's input product at once);
/// traced ones step.
impl<F: Scalar> RecurrentCell<F> for GruCell<F> {
    type State = GruState<F>;

    fn input_size(&self) -> usize {
        self.packed.wx.rows()
    }

    fn hidden_size(&self) -> usize {
        self.packed.wr.rows()
    }

    fn gate_count(&self) -> usize {
        3
    }

    fn step_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        state: &mut GruState<F>,
        gates: ArrayViewMut2<'_, F>,
        ws: &mut Workspace<F>,
    ) {
        let h = state.h.as_slice_mut().expect("state is standard layout");
        self.step_rows(x, h, gates, ws);
    }

    fn sequence_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut GruState<F>,
        output: ArrayViewMut3<'_, F>,
        opts: &SeqOptions<'_>,
        trace: Option<&mut Trace<F>>,
        ws: &mut Workspace<F>,
    ) {
        if trace.is_some() {
            return unroll::stepwise(self, input, state, output, opts, trace, ws);
        }
        let reverse = opts.direction == Direction::Reverse;
        let h = state.h.as_slice_mut().expect("state is standard layout");
        self.sequence(input, h, output, opts.lengths, reverse, ws);
    }
}

impl<F: Scalar> lstm_core::Variant<F> for GruCell<F> {
    const NAME: &'static str = "gru";
    const ABOUT: &'static str =
        "the gated recurrent unit of nn.GRU (z, r, n; reset after the product)";

    fn seeded(input: usize, hidden: usize, seed: u64) -> Result<Self> {
        Self::random(input, hidden, &mut lstm_engine::init::SplitMix64::new(seed))
    }
}

mod backward;
mod pass;

pub use backward::GruGrad;
#[cfg(test)]
mod tests;
