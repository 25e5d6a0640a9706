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

/// The standard LSTM cell with one weight matrix `W [4H, H + I]` acting on `[h_{t-1}; x_t]`
/// (h first) and one bias `b [4H]`; gate blocks stacked i, f, g, o.
///
/// ```text
/// [i; f; g; o] = [sigma; sigma; tanh; sigma](W [h_{t-1}; x_t] + b)
/// c_t = f * c_{t-1} + i * g
/// h_t = o * tanh(c_t)
/// ```
#[derive(Clone, Debug)]
pub struct ConcatCell<F> {
    engine: LstmEngine<F>,
}

impl<F: Scalar> ConcatCell<F> {
    /// A cell with random weights, uniform in `[-1/sqrt(H), 1/sqrt(H))` as PyTorch initialises an
    /// LSTM, and zero bias.
    ///
    /// # Errors
    /// An [`LstmError`] when `input` or `hidden` is zero.
    pub fn random(input: usize, hidden: usize, rng: &mut SplitMix64) -> Result<Self> {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let w = rng.uniform_array::<F, _>((4 * hidden, hidden + input), k);
        Self::new(w.view(), Array1::zeros(4 * hidden).view())
    }
    /// A cell from `W [4H, H + I]` (columns: `H` for h, then `I` for x) and `b [4H]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when `W` is not `[4H, H + I]` with `H, I >= 1` or `b` is not `[4H]`;
    /// [`LstmError::NonFinite`] for a NaN or infinite weight.
    pub fn new(w: ArrayView2<'_, F>, b: ArrayView1<'_, F>) -> Result<Self> {
        let rows = w.nrows();
        let h = rows / 4;
        if rows == 0 || !rows.is_multiple_of(4) || w.ncols() <= h {
            return Err(LstmError::shape(
                "concatenated weights W",
                "[4H, H + I] with H, I >= 1",
                w.shape(),
            ));
        }
        lstm_core::check_shape("bias b", b.shape(), &[rows])?;
        let mut spec = EngineSpec::standard(w.slice(s![.., h..]), w.slice(s![.., ..h]));
        spec.biases.push(b);
        Ok(Self {
            engine: LstmEngine::new(spec)?,
        })
    }

    /// The weights `W [4H, H + I]` as given.
    pub fn weights(&self) -> Array2<F> {
        self.engine.w_concatenated()
    }

    /// The bias `b [4H]`.
    pub fn bias(&self) -> Array1<F> {
        self.engine.bias().to_owned()
    }
}

impl<F: Scalar> EngineCell for ConcatCell<F> {
    type Elem = F;

    fn engine(&self) -> &LstmEngine<F> {
        &self.engine
    }

    /// `w [4H, H + I]` (the recurrent columns first, as the cell takes them) and `b [4H]`.
    fn grad_tensors(
        &self,
        g: &lstm_engine::EngineGrad<F>,
    ) -> Vec<(&'static str, lstm_core::ndarray::ArrayD<F>)> {
        let w = lstm_core::ndarray::concatenate(
            lstm_core::ndarray::Axis(1),
            &[g.w_recurrent.view(), g.w_input.view()],
        )
        .expect("both have 4H rows");
        vec![("w", w.into_dyn()), ("b", g.bias.clone().into_dyn())]
    }
}

lstm_engine::engine_cell!(
    ConcatCell,
    "concat",
    "the standard LSTM, one matrix W [4H, H + I] on [h; x]"
);
