//! The random cases of the suite: dimensions, raw parameters, inputs, initial states, lengths,
//! direction and layout.

use ndarray::{Array2, Array3, ArrayD, IxDyn, s};
use proptest::{collection::vec, prelude::*};

use super::{CellFamily, parts_of};
use crate::{CellState, Layout, Scalar, SeqOptions};

/// A random test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Raw parameters.
    pub params: Vec<ArrayD<f64>>,
    /// Input `[T, B, I]`.
    pub x: Array3<f64>,
    /// The parts of the initial state, each `[B, H]`; part 0 is `h`.
    pub state0: Vec<Array2<f64>>,
    /// Per-sample lengths.
    pub lengths: Option<Vec<usize>>,
    /// Read in reverse.
    pub reverse: bool,
    /// Present the input batch-first.
    pub batch_first: bool,
}

impl Case {
    /// `(T, B)`.
    pub fn tb(&self) -> (usize, usize) {
        (self.x.shape()[0], self.x.shape()[1])
    }

    /// The options of the case, trace on.
    pub fn opts(&self) -> SeqOptions<'_> {
        SeqOptions {
            layout: if self.batch_first {
                Layout::BatchFirst
            } else {
                Layout::TimeMajor
            },
            direction: if self.reverse {
                crate::Direction::Reverse
            } else {
                crate::Direction::Forward
            },
            lengths: self.lengths.as_deref(),
            trace: true,
        }
    }

    /// The input in the case's layout, at precision `F`.
    pub fn input<F: Scalar>(&self) -> Array3<F> {
        let x = self.x.mapv(F::of);
        if self.batch_first {
            x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            x
        }
    }

    /// `H`.
    pub fn hidden(&self) -> usize {
        self.state0[0].ncols()
    }

    /// The initial state at precision `F`.
    pub fn state<F: Scalar, S: CellState<F>>(&self) -> S {
        let (b, h) = self.state0[0].dim();
        let mut s = S::zeros(b, h, h);
        for (k, part) in self.state0.iter().enumerate() {
            s.part_mut(k).assign(&part.mapv(F::of));
        }
        s
    }

    /// The case for batch row `row` alone.
    pub fn row(&self, row: usize) -> Case {
        Case {
            x: self.x.slice(s![.., row..row + 1, ..]).to_owned(),
            state0: self
                .state0
                .iter()
                .map(|p| p.slice(s![row..row + 1, ..]).to_owned())
                .collect(),
            lengths: self.lengths.as_ref().map(|l| vec![l[row]]),
            ..self.clone()
        }
    }

    /// The parameters at precision `F`.
    pub fn params<F: Scalar>(&self) -> Vec<ArrayD<F>> {
        self.params.iter().map(|p| p.mapv(F::of)).collect()
    }
}

/// Random cases for family `Fam` with inputs in `[-scale, scale]`: small shapes (`B < 4`,
/// `T < 12`, `I, H < 9`).
pub fn cases<Fam: CellFamily>(scale: f64) -> impl Strategy<Value = Case> {
    sized_cases::<Fam>(scale, [1..4, 0..12, 1..9, 1..9])
}

/// Random cases with `B`, `T`, `I` and `H` drawn from `dims`.
pub fn sized_cases<Fam: CellFamily>(
    scale: f64,
    dims: [std::ops::Range<usize>; 4],
) -> impl Strategy<Value = Case> {
    let [b, t, i, h] = dims;
    let parts = parts_of::<Fam>();
    (b, t, i, h)
        .prop_flat_map(move |(b, t, i, h)| {
            let shapes = Fam::param_shapes(i, h);
            let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
            (
                Just((b, t, i, h, shapes)),
                vec(-1.0..1.0f64, n),
                vec(-scale..scale, t * b * i),
                vec(-1.0..1.0f64, parts * b * h),
                proptest::option::of(vec(0..=t, b)),
                any::<(bool, bool)>(),
                // Which halves of the initial state are zero (the sequence paths skip the
                // first recurrent product when the recurrent input starts at zero).
                any::<(bool, bool)>(),
            )
        })
        .prop_map(
            move |(
                (b, t, i, h, shapes),
                flat,
                x,
                mut st,
                lengths,
                (reverse, batch_first),
                zero,
            )| {
                // Zero the first and/or the last part.
                if zero.0 {
                    st[..b * h].fill(0.0);
                }
                if zero.1 {
                    let n = st.len();
                    st[n - b * h..].fill(0.0);
                }
                let mut at = 0;
                let params = shapes
                    .iter()
                    .map(|s| {
                        let n: usize = s.iter().product();
                        at += n;
                        ArrayD::from_shape_vec(IxDyn(s), flat[at - n..at].to_vec()).expect("sized")
                    })
                    .collect();
                Case {
                    params,
                    x: Array3::from_shape_vec((t, b, i), x).expect("sized"),
                    state0: (0..parts)
                        .map(|k| {
                            let part = st[k * b * h..(k + 1) * b * h].to_vec();
                            Array2::from_shape_vec((b, h), part).expect("sized")
                        })
                        .collect(),
                    lengths,
                    reverse,
                    batch_first,
                }
            },
        )
}
