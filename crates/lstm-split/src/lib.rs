#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

use lstm_core::ndarray::{Array1, Array2, ArrayView1, ArrayView2, s};
use lstm_core::{LstmError, Result, Scalar};
use lstm_engine::init::SplitMix64;
use lstm_engine::{EngineCell, EngineSpec, LstmEngine};

pub use lstm_core::{
    self, Direction, Gate, Layout, LstmState, RecurrentCell, SeqOptions, Trace, Unrolled, Workspace,
};
pub use lstm_engine;

/// The LSTM cell with split weights: `W [4H, I]` on the input, `U [4H, H]` on the hidden state,
/// an input-side bias `b_w` and an optional hidden-side bias `b_u` (PyTorch's `bias_ih` and
/// `bias_hh`); gate blocks stacked i, f, g, o.
///
/// ```text
/// [i; f; g; o] = [sigma; sigma; tanh; sigma](W x_t + b_w + U h_{t-1} + b_u)
/// c_t = f * c_{t-1} + i * g
/// h_t = o * tanh(c_t)
/// ```
#[derive(Clone, Debug)]
pub struct SplitCell<F> {
    engine: LstmEngine<F>,
    b_w: Option<Array1<F>>,
    b_u: Option<Array1<F>>,
}

impl<F: Scalar> SplitCell<F> {
    /// A cell with random weights and biases, uniform in `[-1/sqrt(H), 1/sqrt(H))` as PyTorch
    /// initialises an LSTM.
    ///
    /// # Errors
    /// An [`LstmError`] when `input` or `hidden` is zero.
    pub fn random(input: usize, hidden: usize, rng: &mut SplitMix64) -> Result<Self> {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let w = rng.uniform_array::<F, _>((4 * hidden, input), k);
        let u = rng.uniform_array::<F, _>((4 * hidden, hidden), k);
        let b_w = rng.uniform_array::<F, _>(4 * hidden, k);
        let b_u = rng.uniform_array::<F, _>(4 * hidden, k);
        Self::new(w.view(), u.view(), Some(b_w.view()), Some(b_u.view()))
    }
    /// A cell from `W [4H, I]`, `U [4H, H]` and the optional biases `b_w [4H]`, `b_u [4H]`
    /// (absent biases are zero).
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the shapes disagree; [`LstmError::NonFinite`] for a NaN or
    /// infinite weight.
    pub fn new(
        w: ArrayView2<'_, F>,
        u: ArrayView2<'_, F>,
        b_w: Option<ArrayView1<'_, F>>,
        b_u: Option<ArrayView1<'_, F>>,
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
        let mut spec = EngineSpec::standard(w, u);
        for (name, b) in [("input bias b_w", b_w), ("recurrent bias b_u", b_u)] {
            if let Some(b) = b {
                lstm_core::check_shape(name, b.shape(), &[rows])?;
                spec.biases.push(b);
            }
        }
        Ok(Self {
            engine: LstmEngine::new(spec)?,
            b_w: b_w.map(|b| b.to_owned()),
            b_u: b_u.map(|b| b.to_owned()),
        })
    }

    /// The cell computing the same function as the concatenated cell `W_cat [4H, H + I]`
    /// (h columns first), `b [4H]`: `W` and `U` are its column blocks, `b_w = b`, no `b_u`.
    ///
    /// # Errors
    /// As [`SplitCell::new`], and [`LstmError::Shape`] when `W_cat` is not `[4H, H + I]`.
    pub fn from_concatenated(w_cat: ArrayView2<'_, F>, b: ArrayView1<'_, F>) -> Result<Self> {
        let (w, u) = split_concatenated(w_cat)?;
        Self::new(w, u, Some(b), None)
    }

    /// The concatenated form `(W_cat [4H, H + I], b = b_w + b_u)` of this cell.
    pub fn to_concatenated(&self) -> (Array2<F>, Array1<F>) {
        let e = &self.engine;
        (e.w_concatenated(), e.bias().to_owned())
    }

    /// `W [4H, I]` (a copy: the cell stores its weights packed).
    pub fn w(&self) -> Array2<F> {
        self.engine.w_input()
    }

    /// `U [4H, H]` (a copy: the cell stores its weights packed).
    pub fn u(&self) -> Array2<F> {
        self.engine.w_recurrent()
    }

    /// The input-side bias, if given.
    pub fn b_w(&self) -> Option<ArrayView1<'_, F>> {
        self.b_w.as_ref().map(|b| b.view())
    }

    /// The hidden-side bias, if given.
    pub fn b_u(&self) -> Option<ArrayView1<'_, F>> {
        self.b_u.as_ref().map(|b| b.view())
    }
}

/// Splits a concatenated matrix `W_cat [4H, H + I]` (h columns first) into `(W [4H, I], U [4H, H])`.
///
/// # Errors
/// [`LstmError::Shape`] when `W_cat` is not `[4H, H + I]` with `H, I >= 1`.
pub fn split_concatenated<F: Scalar>(
    w_cat: ArrayView2<'_, F>,
) -> Result<(ArrayView2<'_, F>, ArrayView2<'_, F>)> {
    let rows = w_cat.nrows();
    let h = rows / 4;
    if rows == 0 || !rows.is_multiple_of(4) || w_cat.ncols() <= h {
        return Err(LstmError::shape(
            "concatenated weights",
            "[4H, H + I] with H, I >= 1",
            w_cat.shape(),
        ));
    }
    Ok((w_cat.slice_move(s![.., h..]), w_cat.slice_move(s![.., ..h])))
}

impl<F: Scalar> EngineCell for SplitCell<F> {
    type Elem = F;

    fn engine(&self) -> &LstmEngine<F> {
        &self.engine
    }

    /// `w [4H, I]`, `u [4H, H]`, then `b_w` and `b_u` (`[4H]`, the same gradient: they are
    /// summed) for the biases the cell has.
    fn grad_tensors(
        &self,
        g: &lstm_engine::EngineGrad<F>,
    ) -> Vec<(&'static str, lstm_core::ndarray::ArrayD<F>)> {
        let mut out = vec![
            ("w", g.w_input.clone().into_dyn()),
            ("u", g.w_recurrent.clone().into_dyn()),
        ];
        if self.b_w.is_some() {
            out.push(("b_w", g.bias.clone().into_dyn()));
        }
        if self.b_u.is_some() {
            out.push(("b_u", g.bias.clone().into_dyn()));
        }
        out
    }
}

lstm_engine::engine_cell!(
    SplitCell,
    "split",
    "the LSTM with split W [4H, I], U [4H, H] and a bias on each side"
);
