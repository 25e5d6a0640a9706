//! The read-out head (`nn.Linear`) on a stack's outputs, the losses, and their gradients.

use lstm_core::ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Axis, s};
use lstm_core::{LstmError, Result, Scalar, check_shape};
use lstm_layers::Readout;

/// What is trained: values or classes, read at each sample's last valid step or at every
/// valid step.
#[derive(Clone, Debug, PartialEq)]
pub enum Target<F> {
    /// Values `[B, O]`, mean squared error on the last valid step's output.
    Values(Array2<F>),
    /// Values `[T, B, O]`, mean squared error on every valid step.
    StepValues(Array3<F>),
    /// Class ids `[B]`, cross-entropy on the last valid step's output.
    Classes(Vec<usize>),
    /// Class ids `[T, B]`, cross-entropy on every valid step.
    StepClasses(Array2<usize>),
}

impl<F: Scalar> Target<F> {
    /// Whether the loss reads every valid step.
    pub fn per_step(&self) -> bool {
        matches!(self, Self::StepValues(_) | Self::StepClasses(_))
    }

    /// Whether the task is classification.
    pub fn classes(&self) -> bool {
        matches!(self, Self::Classes(_) | Self::StepClasses(_))
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        match self {
            Self::Values(v) => v.nrows(),
            Self::StepValues(v) => v.dim().1,
            Self::Classes(c) => c.len(),
            Self::StepClasses(c) => c.ncols(),
        }
    }

    /// The rows `rows` of the batch, in that order.
    pub fn select(&self, rows: &[usize]) -> Self {
        match self {
            Self::Values(v) => Self::Values(v.select(Axis(0), rows)),
            Self::StepValues(v) => Self::StepValues(v.select(Axis(1), rows)),
            Self::Classes(c) => Self::Classes(rows.iter().map(|&r| c[r]).collect()),
            Self::StepClasses(c) => Self::StepClasses(c.select(Axis(1), rows)),
        }
    }
}

/// The `(time, row)` positions the loss reads: each row's last valid step, or all of them.
pub fn positions(steps: usize, lengths: &[usize], per_step: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if per_step {
        for t in 0..steps {
            for (b, &len) in lengths.iter().enumerate() {
                if t < len {
                    out.push((t, b));
                }
            }
        }
    } else {
        for (b, &len) in lengths.iter().enumerate() {
            if len > 0 {
                out.push((len - 1, b));
            }
        }
    }
    out
}

/// The rows of `output [T, B, W]` at the positions `at`: `[N, W]`.
fn features<F: Scalar>(output: ArrayView3<'_, F>, at: &[(usize, usize)]) -> Array2<F> {
    let mut feats = Array2::zeros((at.len(), output.dim().2));
    for (n, &(t, b)) in at.iter().enumerate() {
        feats.row_mut(n).assign(&output.slice(s![t, b, ..]));
    }
    feats
}

/// The head: `logits = features W^T + b` (`nn.Linear`).
#[derive(Clone, Debug, PartialEq)]
pub struct Head<F> {
    /// `[O, D * P]`.
    pub weight: Array2<F>,
    /// `[O]`.
    pub bias: Array1<F>,
}

/// The loss, its gradient with respect to the stack's output and the head's gradients.
#[derive(Clone, Debug)]
pub struct HeadGradients<F> {
    /// The mean loss over the positions read.
    pub loss: F,
    /// Correct predictions (classification) among the positions read.
    pub correct: Option<usize>,
    /// `[T, B, D * P]`, time-major: the loss's gradient with respect to the stack's output.
    pub d_output: Array3<F>,
    /// `[O, D * P]`.
    pub weight: Array2<F>,
    /// `[O]`.
    pub bias: Array1<F>,
}

impl<F: Scalar> Head<F> {
    /// The head's outputs at the positions `at` of `output [T, B, D * P]` (time-major):
    /// `[N, O]`, and the features it read, `[N, D * P]`.
    fn forward(&self, output: ArrayView3<'_, F>, at: &[(usize, usize)]) -> (Array2<F>, Array2<F>) {
        let feats = features(output, at);
        let logits = feats.dot(&self.weight.t()) + &self.bias;
        (logits, feats)
    }

    /// The head as a read-out for inference: `y = W h + b`, or with `softmax` the seeds'
    /// read-out `y = softmax(W_y h + b_y)`, the class probabilities a classification head is
    /// trained (by cross-entropy) to give.
    ///
    /// # Errors
    /// As [`Readout::new`] (a non-finite weight, say).
    pub fn readout(&self, softmax: bool) -> Result<Readout<F>> {
        Readout::new(self.weight.clone(), self.bias.clone(), softmax)
    }

    /// Predictions at the positions read: values, or class probabilities (the softmax
    /// read-out, [`Self::readout`]).
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the output's width is not the head's.
    pub fn predict(
        &self,
        output: ArrayView3<'_, F>,
        at: &[(usize, usize)],
        classes: bool,
    ) -> Result<Array2<F>> {
        check_shape(
            "stack output width",
            &[output.dim().2],
            &[self.weight.ncols()],
        )?;
        self.readout(classes)?.apply(features(output, at).view())
    }

    /// The loss of `output [T, B, D * P]` (time-major) for `target`, and its gradients.
    /// Mean squared error is averaged over every value read, cross-entropy (with a stable
    /// log-softmax) over the positions read, as `nn.MSELoss` and `nn.CrossEntropyLoss` do.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when the target does not fit the output or the head,
    /// [`LstmError::Invalid`] for a class id past the head's outputs or no position to read.
    pub fn loss(
        &self,
        output: ArrayView3<'_, F>,
        lengths: &[usize],
        target: &Target<F>,
    ) -> Result<HeadGradients<F>> {
        let (t, b, width) = output.dim();
        check_shape("stack output width", &[width], &[self.weight.ncols()])?;
        check_shape("target batch", &[target.batch()], &[b])?;
        let o = self.weight.nrows();
        let at = positions(t, lengths, target.per_step());
        if at.is_empty() {
            return Err(LstmError::invalid(
                "loss",
                "no valid step to read (every length is 0)",
            ));
        }
        let (logits, feats) = self.forward(output, &at);
        let n = at.len();
        let mut dlogits = Array2::zeros((n, o));
        let (loss, correct) = match target {
            Target::Values(_) | Target::StepValues(_) => {
                let want = |(tt, bb): (usize, usize)| -> Result<ArrayView2<'_, F>> {
                    Ok(match target {
                        Target::Values(v) => {
                            check_shape("targets", v.shape(), &[b, o])?;
                            v.slice(s![bb..=bb, ..])
                        }
                        Target::StepValues(v) => {
                            check_shape("targets", v.shape(), &[t, b, o])?;
                            v.slice(s![tt, bb..=bb, ..])
                        }
                        _ => unreachable!("values only"),
                    })
                };
                let count = F::of((n * o) as f64);
                let mut sum = F::zero();
                for (k, &p) in at.iter().enumerate() {
                    let w = want(p)?;
                    for j in 0..o {
                        let diff = logits[[k, j]] - w[[0, j]];
                        sum += diff * diff;
                        dlogits[[k, j]] = (diff + diff) / count;
                    }
                }
                (sum / count, None)
            }
            Target::Classes(_) | Target::StepClasses(_) => {
                let class = |(tt, bb): (usize, usize)| -> Result<usize> {
                    let c = match target {
                        Target::Classes(c) => c[bb],
                        Target::StepClasses(c) => {
                            check_shape("targets", c.shape(), &[t, b])?;
                            c[[tt, bb]]
                        }
                        _ => unreachable!("classes only"),
                    };
                    if c >= o {
                        return Err(LstmError::invalid(
                            "class id",
                            format!("{c} is not below the {o} classes"),
                        ));
                    }
                    Ok(c)
                };
                let count = F::of(n as f64);
                let (mut sum, mut correct) = (F::zero(), 0);
                for (k, &p) in at.iter().enumerate() {
                    let c = class(p)?;
                    let row = logits.row(k);
                    let max = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
                    let lse = row.iter().fold(F::zero(), |s, &v| s + (v - max).exp()).ln() + max;
                    sum += lse - row[c];
                    let best = (0..o).fold(0, |m, j| if row[j] > row[m] { j } else { m });
                    correct += usize::from(best == c);
                    for j in 0..o {
                        let p = (row[j] - lse).exp();
                        let one = if j == c { F::one() } else { F::zero() };
                        dlogits[[k, j]] = (p - one) / count;
                    }
                }
                (sum / count, Some(correct))
            }
        };
        let weight = dlogits.t().dot(&feats);
        let bias = dlogits.sum_axis(Axis(0));
        let dfeats = dlogits.dot(&self.weight);
        let mut d_output = Array3::zeros((t, b, width));
        for (k, &(tt, bb)) in at.iter().enumerate() {
            d_output.slice_mut(s![tt, bb, ..]).assign(&dfeats.row(k));
        }
        Ok(HeadGradients {
            loss,
            correct,
            d_output,
            weight,
            bias,
        })
    }
}
