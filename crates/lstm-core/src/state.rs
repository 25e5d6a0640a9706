//! What a cell carries between steps: the [`CellState`] contract, and the LSTM's `(h, c)`.

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use crate::{LstmError, Result, Scalar, error::fmt_shape};

/// The state a cell carries from one step to the next: [`PARTS`](Self::PARTS) matrices with one
/// row per batch row, in standard layout. Part 0 is the hidden state `h [B, P]` the cell
/// outputs; an LSTM has a second part, its cell state `c [B, H]`; a GRU has `h` only.
///
/// The unroller needs nothing else: it saves and restores the rows of samples that have ended
/// ([`SeqOptions::lengths`](crate::SeqOptions::lengths)), writes part 0 to the output, and
/// records the last part in a [`Trace`](crate::Trace).
pub trait CellState<F: Scalar>: Clone + std::fmt::Debug + PartialEq + Send + Sync {
    /// How many matrices the state has.
    const PARTS: usize;

    /// The zero state of `batch` rows for a cell whose output is `output` wide and whose other
    /// parts are `hidden` wide.
    fn zeros(batch: usize, output: usize, hidden: usize) -> Self;

    /// Part `k` (`k < PARTS`), `[B, width]`.
    fn part(&self, k: usize) -> ArrayView2<'_, F>;

    /// Part `k`, mutable (its shape cannot change through the view).
    fn part_mut(&mut self, k: usize) -> ArrayViewMut2<'_, F>;

    /// Checks the state against a batch of `batch`, output width `output` and width `hidden`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] naming the part that differs.
    fn check(&self, batch: usize, output: usize, hidden: usize) -> Result<()>;

    /// Batch size `B`.
    fn batch(&self) -> usize {
        self.part(0).nrows()
    }

    /// Rows `range` as a state of their own.
    ///
    /// # Panics
    /// When `range` is not within `0..B`.
    fn rows(&self, range: Range<usize>) -> Self {
        let widths = (self.part(0).ncols(), self.part(Self::PARTS - 1).ncols());
        let mut out = Self::zeros(range.len(), widths.0, widths.1);
        for k in 0..Self::PARTS {
            out.part_mut(k)
                .assign(&self.part(k).slice(s![range.clone(), ..]));
        }
        out
    }

    /// Writes `rows` (a state of fewer rows) into rows `start..` of this one.
    ///
    /// # Panics
    /// When `rows` does not fit from `start`.
    fn assign_rows(&mut self, start: usize, rows: &Self) {
        let n = rows.batch();
        for k in 0..Self::PARTS {
            self.part_mut(k)
                .slice_mut(s![start..start + n, ..])
                .assign(&rows.part(k));
        }
    }
}

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
        let take = |a: &Array2<F>| a.slice(s![row..row + 1, ..]).to_owned();
        Ok(Self {
            h: take(&self.h),
            c: take(&self.c),
        })
    }
}

impl<F: Scalar> CellState<F> for LstmState<F> {
    const PARTS: usize = 2;

    fn zeros(batch: usize, output: usize, hidden: usize) -> Self {
        LstmState::zeros(batch, output, hidden)
    }

    fn part(&self, k: usize) -> ArrayView2<'_, F> {
        if k == 0 { self.h.view() } else { self.c.view() }
    }

    fn part_mut(&mut self, k: usize) -> ArrayViewMut2<'_, F> {
        if k == 0 {
            self.h.view_mut()
        } else {
            self.c.view_mut()
        }
    }

    fn check(&self, batch: usize, output: usize, hidden: usize) -> Result<()> {
        crate::check_shape("initial state h", self.h.shape(), &[batch, output])?;
        crate::check_shape("initial state c", self.c.shape(), &[batch, hidden])
    }
}
