//! The weights of one of the engine's two products (`x W_x + b` and `r W_r`), packed with only
//! the gate blocks the cell reads.
//!
//! A cell that couples its forget gate to its input gate (`f = 1 - i`) never reads the forget
//! block of either product, and a state-gated cell's candidate reads no recurrent input. Those
//! blocks are not stored and not computed: each block that is kept is packed on its own whole
//! panels of [`NR`] columns and written to its place in the row of pre-activations, so the
//! others cost nothing. A block's padding columns (when `H` is not a whole number of panels)
//! spill into the start of the next block; blocks are written in order, so a kept block
//! overwrites the spill, and a skipped one is never read. When every block is kept, or when
//! the padding would cost more panels than the skipped blocks save, the blocks are packed side
//! by side as one product.

use lstm_kernels::{NR, Packed, Panels};
use ndarray::ArrayView2;

use crate::Scalar;

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct GateWeights<F> {
    packed: Packed<F>,
    hidden: usize,
    /// Per gate (i, f, g, o): the index of its block among the kept ones, if kept.
    blocks: [Option<usize>; 4],
    /// Whether the four blocks are packed side by side (`4H` columns, one product).
    whole: bool,
    /// The bias in packed column order, padded to the packed width (the input product's).
    init: Vec<F>,
}

/// Columns of one kept block in the split layout: `H` rounded up to whole panels.
fn block_width(hidden: usize) -> usize {
    hidden.div_ceil(NR) * NR
}

impl<F: Scalar> GateWeights<F> {
    /// Packs `w [4H, K]` (blocks i, f, g, o) with the blocks `keep` selects, and `bias` (`4H`
    /// values, or none) in the same column order.
    pub(crate) fn new(w: ArrayView2<'_, F>, keep: [bool; 4], bias: Option<&[F]>) -> Self {
        let hidden = w.nrows() / 4;
        let k = w.ncols();
        let kept: Vec<usize> = (0..4).filter(|&g| keep[g]).collect();
        let bw = block_width(hidden);
        let whole = kept.len() == 4 || kept.len() * bw >= block_width(4 * hidden);
        let mut blocks = [None; 4];
        // The weight row (and bias entry) behind each packed column, if any.
        let source: Vec<Option<usize>> = if whole {
            for &g in &kept {
                blocks[g] = Some(g);
            }
            // A block not kept is zero: stored, but never read.
            (0..4 * hidden)
                .map(|n| keep[n / hidden].then_some(n))
                .collect()
        } else {
            let mut cols = vec![None; kept.len() * bw];
            for (slot, &g) in kept.iter().enumerate() {
                blocks[g] = Some(slot);
                for j in 0..hidden {
                    cols[slot * bw + j] = Some(g * hidden + j);
                }
            }
            cols
        };
        let packed = Packed::from_fn(k, source.len(), |kk, n| {
            source[n].map_or_else(F::zero, |row| w[[row, kk]])
        });
        let mut init = vec![F::zero(); packed.padded_cols()];
        if let Some(b) = bias {
            for (d, s) in init.iter_mut().zip(&source) {
                if let Some(row) = s {
                    *d = b[*row];
                }
            }
        }
        Self {
            packed,
            hidden,
            blocks,
            whole,
            init,
        }
    }

    /// How many of the four gate blocks are computed.
    pub(crate) fn kept(&self) -> usize {
        self.blocks.iter().flatten().count()
    }

    /// `K`, the rows of the packed matrix.
    pub(crate) fn rows(&self) -> usize {
        self.packed.rows()
    }

    /// The weight of gate row `n` (of `4H`) and column `k`: zero for a block not kept.
    pub(crate) fn get(&self, k: usize, n: usize) -> F {
        let (g, j) = (n / self.hidden, n % self.hidden);
        match self.blocks[g] {
            Some(_) if self.whole => self.packed.get(k, n),
            Some(slot) => self.packed.get(k, slot * block_width(self.hidden) + j),
            None => F::zero(),
        }
    }

    /// The four blocks side by side, when they are packed so (every block kept, or too few
    /// skipped to pay for the padding): the matrix and bias the unit split selects panels of.
    pub(crate) fn whole(&self) -> Option<(&Packed<F>, &[F])> {
        self.whole.then_some((&self.packed, &self.init[..]))
    }

    /// Width a row of the product's output needs: the kept blocks at their places, with the
    /// last one's padding.
    pub(crate) fn row_width(&self) -> usize {
        if self.whole {
            return self.packed.padded_cols();
        }
        let last = (0..4)
            .rev()
            .find(|&g| self.blocks[g].is_some())
            .unwrap_or(0);
        last * self.hidden + block_width(self.hidden)
    }

    /// `c = a W + b` (`with_bias`) or `c += a W` on the kept blocks, for `m` rows of `a` (`K`
    /// values at stride `lda`) and of `c` (stride `ldc`, at least [`Self::row_width`]).
    pub(crate) fn apply(
        &self,
        m: usize,
        a: &[F],
        lda: usize,
        c: &mut [F],
        ldc: usize,
        with_bias: bool,
    ) {
        let init = with_bias.then_some(&self.init[..]);
        if self.whole {
            return lstm_kernels::gemm(m, a, lda, &self.packed, c, ldc, init);
        }
        if m == 0 {
            return;
        }
        let bw = block_width(self.hidden);
        let panels = bw / NR;
        let mut g = 0;
        while g < 4 {
            let Some(slot) = self.blocks[g] else {
                g += 1;
                continue;
            };
            // Kept blocks that follow each other without padding are one product.
            let mut len = 1;
            while bw == self.hidden && g + len < 4 && self.blocks[g + len] == Some(slot + len) {
                len += 1;
            }
            let sel = Panels {
                first: slot * panels,
                len: len * panels,
                runs: 1,
                stride: 0,
            };
            let init = init.map(|i| &i[slot * bw..]);
            let c = &mut c[g * self.hidden..];
            lstm_kernels::gemm_panels(m, a, lda, &self.packed, sel, c, ldc, init);
            g += len;
        }
    }
}
