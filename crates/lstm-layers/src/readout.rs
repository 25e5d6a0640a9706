//! A linear read-out with optional softmax, `y = softmax(W_y h + b_y)`.

use lstm_core::ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3};

use lstm_core::{LstmError, Result, Scalar, check_finite, check_shape};

/// A linear map from the hidden state to `K` outputs, optionally followed by a softmax.
#[derive(Clone, Debug, PartialEq)]
pub struct Readout<F> {
    /// `[K, P]`.
    w: Array2<F>,
    /// `[K]`.
    b: Array1<F>,
    softmax: bool,
}

impl<F: Scalar> Readout<F> {
    /// A read-out from `W_y [K, P]` and `b_y [K]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the bias does not match, [`LstmError::Invalid`] for an empty
    /// matrix, [`LstmError::NonFinite`] for a non-finite weight.
    pub fn new(w: Array2<F>, b: Array1<F>, softmax: bool) -> Result<Self> {
        if w.is_empty() {
            return Err(LstmError::shape(
                "read-out weights",
                "[K, P] with K, P >= 1",
                w.shape(),
            ));
        }
        check_shape("read-out bias", b.shape(), &[w.nrows()])?;
        check_finite("read-out weights", w.iter())?;
        check_finite("read-out bias", b.iter())?;
        Ok(Self { w, b, softmax })
    }

    /// Number of outputs `K`.
    pub fn outputs(&self) -> usize {
        self.w.nrows()
    }

    /// Applies the read-out to rows `h [N, P]`, giving `[N, K]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when `P` does not match.
    pub fn apply(&self, h: ArrayView2<'_, F>) -> Result<Array2<F>> {
        if h.ncols() != self.w.ncols() {
            return Err(LstmError::shape(
                "read-out input",
                format!("[N, {}]", self.w.ncols()),
                h.shape(),
            ));
        }
        let mut y = h.dot(&self.w.t()) + &self.b;
        if self.softmax {
            for mut row in y.rows_mut() {
                let m = row.iter().fold(F::neg_infinity(), |a, &v| a.max(v));
                row.mapv_inplace(|v| (v - m).exp());
                let s = row.sum();
                row.mapv_inplace(|v| v / s);
            }
        }
        Ok(y)
    }

    /// Applies the read-out to every step of a sequence `[T, B, P]` (or `[B, T, P]`), giving
    /// `[T, B, K]` (or `[B, T, K]`).
    ///
    /// # Errors
    /// [`LstmError::Shape`] when `P` does not match.
    pub fn apply_sequence(&self, h: ArrayView3<'_, F>) -> Result<Array3<F>> {
        let (a, b, p) = h.dim();
        let flat = h
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((a * b, p))
            .map_err(|e| LstmError::invalid("read-out input", e))?;
        let y = self.apply(flat.view())?;
        y.into_shape_with_order((a, b, self.outputs()))
            .map_err(|e| LstmError::invalid("read-out output", e))
    }
}
