//! The recurrent state `(h, c)`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::{LstmError, Result, Scalar, error::fmt_shape};

/// The state an LSTM carries between steps: hidden state `h [B, P]` and cell state `c [B, H]`,
/// batch-major. `P` equals `H` except for a cell with a projection.
///
/// Both arrays are kept in standard (row-major) layout.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmState<F> {
    h: Array2<F>,
    c: Array2<F>,
}

impl<F: Scalar> LstmState<F> {
    /// A state from `h [B, P]` and `c [B, H]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the batch sizes differ.
    pub fn new(h: Array2<F>, c: Array2<F>) -> Result<Self> {
        if h.nrows() != c.nrows() {
            return Err(LstmError::Shape {
                what: "state (h, c)".into(),
                expected: format!("the same batch size in h {} and c", fmt_shape(h.shape())),
                got: fmt_shape(c.shape()),
            });
        }
        Ok(Self {
            h: h.as_standard_layout().into_owned(),
            c: c.as_standard_layout().into_owned(),
        })
    }

    /// The all-zero state for `batch` rows, `output` wide h and `hidden` wide c.
    pub fn zeros(batch: usize, output: usize, hidden: usize) -> Self {
        Self {
            h: Array2::zeros((batch, output)),
            c: Array2::zeros((batch, hidden)),
        }
    }

    /// The hidden state `h [B, P]`.
    pub fn h(&self) -> ArrayView2<'_, F> {
        self.h.view()
    }

    /// The cell state `c [B, H]`.
    pub fn c(&self) -> ArrayView2<'_, F> {
        self.c.view()
    }

    /// Both parts, mutable (the shapes cannot change through these views).
    pub fn parts_mut(&mut self) -> (ArrayViewMut2<'_, F>, ArrayViewMut2<'_, F>) {
        (self.h.view_mut(), self.c.view_mut())
    }

    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.h.nrows()
    }

    /// Takes the state apart into `(h, c)`.
    pub fn into_parts(self) -> (Array2<F>, Array2<F>) {
        (self.h, self.c)
    }

    /// The state of one batch row as a batch of one.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] when `row >= B`.
    pub fn row(&self, row: usize) -> Result<Self> {
        if row >= self.batch() {
            return Err(LstmError::invalid(
                "row",
                format!("{row} is out of range for batch {}", self.batch()),
            ));
        }
        let take = |a: &Array2<F>| a.slice(ndarray::s![row..row + 1, ..]).to_owned();
        Ok(Self {
            h: take(&self.h),
            c: take(&self.c),
        })
    }

    /// Checks the state against the expected `B`, `P` and `H`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] naming the part that differs.
    pub fn check(&self, batch: usize, output: usize, hidden: usize) -> Result<()> {
        crate::check_shape("initial state h", self.h.shape(), &[batch, output])?;
        crate::check_shape("initial state c", self.c.shape(), &[batch, hidden])
    }
}
