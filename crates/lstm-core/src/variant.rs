//! [`Variant`]: how a cell crate registers its cell with the tools.

use crate::{RecurrentCell, Result, Scalar};

/// A cell that tools can name and build on random weights: `lstm bench --variant NAME` and the
/// CLI's variant list find every type that implements it, so a new cell crate implements this
/// once and adds one line to the CLI's list, and no table of names is edited.
pub trait Variant<F: Scalar>: RecurrentCell<F> + Sized {
    /// The name tools use (`"concat"`, `"gru"`): lower case, no spaces.
    const NAME: &'static str;

    /// One line saying what the cell is.
    const ABOUT: &'static str;

    /// The cell with `input` and `hidden` wide vectors on random weights, uniform in
    /// `[-1/sqrt(H), 1/sqrt(H)]` as PyTorch initialises a recurrent layer, from `seed`.
    ///
    /// # Errors
    /// What the cell's constructor returns for a zero size.
    fn seeded(input: usize, hidden: usize, seed: u64) -> Result<Self>;
}
