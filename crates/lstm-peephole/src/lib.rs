#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

use lstm_core::ndarray::{Array2, ArrayView1, ArrayView2, s};
use lstm_core::{LstmError, Result, Scalar};
use lstm_engine::init::SplitMix64;
use lstm_engine::{EngineCell, EngineSpec, LstmEngine, OutputMode, Recurrence};

pub use lstm_core::{
    self, Direction, Gate, Layout, LstmState, RecurrentCell, SeqOptions, Trace, Unrolled, Workspace,
};
pub use lstm_engine;

/// The state-gated cell: the gates read the previous **cell** state, the candidate reads only
/// the input, and the output gate acts before the squashing.
///
/// ```text
/// [i; f; o] = sigma(W_{ifo} x_t + U c_{t-1} + b_{ifo})
/// g         = tanh(W_g x_t + b_g)
/// c_t       = f * c_{t-1} + i * g
/// h_t       = tanh(o * c_t)
/// ```
///
/// `W [4H, I]` and `b [4H]` hold the blocks i, f, g, o (the g block is `W_cell`, `b_cell`);
/// `U [3H, H]` holds the blocks i, f, o. The hidden state `h` is an output only: it does not feed
/// back.
#[derive(Clone, Debug)]
pub struct StateGatedCell<F> {
    engine: LstmEngine<F>,
}

impl<F: Scalar> StateGatedCell<F> {
    /// A cell with random weights and bias, uniform in `[-1/sqrt(H), 1/sqrt(H))`.
    ///
    /// # Errors
    /// An [`LstmError`] when `input` or `hidden` is zero.
    pub fn random(input: usize, hidden: usize, rng: &mut SplitMix64) -> Result<Self> {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let w = rng.uniform_array::<F, _>((4 * hidden, input), k);
        let u = rng.uniform_array::<F, _>((3 * hidden, hidden), k);
        let b = rng.uniform_array::<F, _>(4 * hidden, k);
        Self::new(w.view(), u.view(), b.view())
    }
    /// A cell from `W [4H, I]` (i, f, g, o), `U [3H, H]` (i, f, o, acting on `c_{t-1}`) and
    /// `b [4H]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the shapes disagree; [`LstmError::NonFinite`] for a NaN or
    /// infinite weight.
    pub fn new(w: ArrayView2<'_, F>, u: ArrayView2<'_, F>, b: ArrayView1<'_, F>) -> Result<Self> {
        let rows = w.nrows();
        if rows == 0 || !rows.is_multiple_of(4) || w.ncols() == 0 {
            return Err(LstmError::shape(
                "input weights W",
                "[4H, I] with H, I >= 1",
                w.shape(),
            ));
        }
        let h = rows / 4;
        lstm_core::check_shape("cell-state weights U", u.shape(), &[3 * h, h])?;
        lstm_core::check_shape("bias b", b.shape(), &[rows])?;
        lstm_core::check_finite("cell-state weights U", u.iter())?;
        let mut full = Array2::zeros((rows, h));
        full.slice_mut(s![..2 * h, ..])
            .assign(&u.slice(s![..2 * h, ..]));
        full.slice_mut(s![3 * h.., ..])
            .assign(&u.slice(s![2 * h.., ..]));
        let mut spec = EngineSpec::standard(w, full.view());
        spec.biases.push(b);
        spec.recurrence = Recurrence::Cell;
        spec.output_mode = OutputMode::SquashGated;
        Ok(Self {
            engine: LstmEngine::new(spec)?,
        })
    }

    /// `W [4H, I]` (a copy: the cell stores its weights packed).
    pub fn w(&self) -> Array2<F> {
        self.engine.w_input()
    }

    /// `U [3H, H]` (i, f, o).
    pub fn u(&self) -> Array2<F> {
        let full = self.engine.w_recurrent();
        let h = full.ncols();
        let mut u = Array2::zeros((3 * h, h));
        u.slice_mut(s![..2 * h, ..])
            .assign(&full.slice(s![..2 * h, ..]));
        u.slice_mut(s![2 * h.., ..])
            .assign(&full.slice(s![3 * h.., ..]));
        u
    }
}

/// The classic peephole LSTM (Gers & Schmidhuber 2000; the `P` input of the ONNX LSTM operator):
/// the standard split cell plus diagonal peephole weights `p [3, H]` in the order i, f, o.
///
/// ```text
/// i   = sigma(W_i x_t + U_i h_{t-1} + b_i + p_i * c_{t-1})
/// f   = sigma(W_f x_t + U_f h_{t-1} + b_f + p_f * c_{t-1})
/// g   = tanh(W_g x_t + U_g h_{t-1} + b_g)
/// c_t = f * c_{t-1} + i * g
/// o   = sigma(W_o x_t + U_o h_{t-1} + b_o + p_o * c_t)
/// h_t = o * tanh(c_t)
/// ```
#[derive(Clone, Debug)]
pub struct PeepholeCell<F> {
    engine: LstmEngine<F>,
    p: Array2<F>,
}

impl<F: Scalar> PeepholeCell<F> {
    /// A cell with random weights, bias and peepholes, uniform in `[-1/sqrt(H), 1/sqrt(H))`.
    ///
    /// # Errors
    /// An [`LstmError`] when `input` or `hidden` is zero.
    pub fn random(input: usize, hidden: usize, rng: &mut SplitMix64) -> Result<Self> {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let w = rng.uniform_array::<F, _>((4 * hidden, input), k);
        let u = rng.uniform_array::<F, _>((4 * hidden, hidden), k);
        let b = rng.uniform_array::<F, _>(4 * hidden, k);
        let p = rng.uniform_array::<F, _>((3, hidden), k);
        Self::new(w.view(), u.view(), Some(b.view()), p.view())
    }
    /// A cell from `W [4H, I]`, `U [4H, H]`, an optional bias `b [4H]` and peepholes `p [3, H]`
    /// (i, f, o).
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the shapes disagree; [`LstmError::NonFinite`] for a NaN or
    /// infinite weight.
    pub fn new(
        w: ArrayView2<'_, F>,
        u: ArrayView2<'_, F>,
        b: Option<ArrayView1<'_, F>>,
        p: ArrayView2<'_, F>,
    ) -> Result<Self> {
        let rows = w.nrows();
        if rows == 0 || !rows.is_multiple_of(4) || w.ncols() == 0 {
            return Err(LstmError::shape(
                "input weights W",
                "[4H, I] with H, I >= 1",
                w.shape(),
            ));
        }
        let h = rows / 4;
        lstm_core::check_shape("recurrent weights U", u.shape(), &[rows, h])?;
        lstm_core::check_shape("peephole weights p", p.shape(), &[3, h])?;
        let mut spec = EngineSpec::standard(w, u);
        if let Some(b) = b {
            lstm_core::check_shape("bias b", b.shape(), &[rows])?;
            spec.biases.push(b);
        }
        spec.peephole = Some(p);
        Ok(Self {
            engine: LstmEngine::new(spec)?,
            p: p.to_owned(),
        })
    }

    /// `W [4H, I]` (a copy: the cell stores its weights packed).
    pub fn w(&self) -> Array2<F> {
        self.engine.w_input()
    }

    /// `U [4H, H]` (a copy: the cell stores its weights packed).
    pub fn u(&self) -> Array2<F> {
        self.engine.w_recurrent()
    }

    /// Peepholes `p [3, H]` (i, f, o).
    pub fn peephole(&self) -> ArrayView2<'_, F> {
        self.p.view()
    }
}

impl<F: Scalar> EngineCell for StateGatedCell<F> {
    type Elem = F;

    fn engine(&self) -> &LstmEngine<F> {
        &self.engine
    }

    /// `w [4H, I]`, `u [3H, H]` (i, f, o) and `b [4H]`.
    fn grad_tensors(
        &self,
        g: &lstm_engine::EngineGrad<F>,
    ) -> Vec<(&'static str, lstm_core::ndarray::ArrayD<F>)> {
        let h = g.w_recurrent.ncols();
        let u = lstm_core::ndarray::concatenate(
            lstm_core::ndarray::Axis(0),
            &[
                g.w_recurrent.slice(s![..2 * h, ..]),
                g.w_recurrent.slice(s![3 * h.., ..]),
            ],
        )
        .expect("both have H columns");
        vec![
            ("w", g.w_input.clone().into_dyn()),
            ("u", u.into_dyn()),
            ("b", g.bias.clone().into_dyn()),
        ]
    }
}

lstm_engine::engine_cell!(
    StateGatedCell,
    "state-gated",
    "gates read c_{t-1}, the candidate only x, h = tanh(o c)"
);

impl<F: Scalar> EngineCell for PeepholeCell<F> {
    type Elem = F;

    fn engine(&self) -> &LstmEngine<F> {
        &self.engine
    }

    /// `w [4H, I]`, `u [4H, H]`, `b [4H]` and `p [3, H]`.
    fn grad_tensors(
        &self,
        g: &lstm_engine::EngineGrad<F>,
    ) -> Vec<(&'static str, lstm_core::ndarray::ArrayD<F>)> {
        let h = g.w_recurrent.ncols();
        let p = g
            .peephole
            .clone()
            .unwrap_or_else(|| lstm_core::ndarray::Array2::zeros((3, h)));
        vec![
            ("w", g.w_input.clone().into_dyn()),
            ("u", g.w_recurrent.clone().into_dyn()),
            ("b", g.bias.clone().into_dyn()),
            ("p", p.into_dyn()),
        ]
    }
}

lstm_engine::engine_cell!(
    PeepholeCell,
    "peephole",
    "the classic peephole LSTM (diagonal peepholes p [3, H] on c)"
);
