//! `torch.optim`'s update rules, step for step as its single-tensor implementations compute
//! them, and `clip_grad_norm_`.

use lstm_core::ndarray::{ArrayD, Zip};
use lstm_core::{LstmError, Result, Scalar, check_shape};

/// An optimizer and its hyperparameters; the learning rate is given at each step (see
/// [`crate::Scheduler`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer<F> {
    /// `torch.optim.SGD`.
    Sgd {
        /// Momentum factor (0: none).
        momentum: F,
        /// Dampening of the momentum.
        dampening: F,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: F,
    },
    /// `torch.optim.Adam`, whose weight decay is an L2 penalty added to the gradient.
    Adam {
        /// Decay of the first moment.
        beta1: F,
        /// Decay of the second moment.
        beta2: F,
        /// Added to the denominator.
        eps: F,
        /// L2 penalty added to the gradient.
        weight_decay: F,
    },
    /// `torch.optim.AdamW`: Adam with decoupled weight decay (`p *= 1 - lr * weight_decay`).
    AdamW {
        /// Decay of the first moment.
        beta1: F,
        /// Decay of the second moment.
        beta2: F,
        /// Added to the denominator.
        eps: F,
        /// Decoupled weight decay.
        weight_decay: F,
    },
}

impl<F: Scalar> Optimizer<F> {
    /// SGD without momentum or weight decay (PyTorch's defaults).
    pub fn sgd() -> Self {
        Self::Sgd {
            momentum: F::zero(),
            dampening: F::zero(),
            nesterov: false,
            weight_decay: F::zero(),
        }
    }

    /// Adam with PyTorch's defaults: betas 0.9 and 0.999, eps 1e-8, no weight decay.
    pub fn adam() -> Self {
        Self::Adam {
            beta1: F::of(0.9),
            beta2: F::of(0.999),
            eps: F::of(1e-8),
            weight_decay: F::zero(),
        }
    }

    /// AdamW with PyTorch's defaults: betas 0.9 and 0.999, eps 1e-8, weight decay 0.01.
    pub fn adamw() -> Self {
        Self::AdamW {
            beta1: F::of(0.9),
            beta2: F::of(0.999),
            eps: F::of(1e-8),
            weight_decay: F::of(0.01),
        }
    }

    /// The same optimizer with weight decay `weight_decay` (an L2 penalty for SGD and Adam,
    /// decoupled for AdamW).
    pub fn with_weight_decay(self, weight_decay: F) -> Self {
        match self {
            Self::Sgd {
                momentum,
                dampening,
                nesterov,
                ..
            } => Self::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            },
            Self::Adam {
                beta1, beta2, eps, ..
            } => Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            },
            Self::AdamW {
                beta1, beta2, eps, ..
            } => Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            },
        }
    }

    /// Adam's and AdamW's `(beta1, beta2, eps, weight_decay)` (zeros for SGD).
    fn moments(&self) -> (F, F, F, F) {
        match *self {
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => (beta1, beta2, eps, weight_decay),
            Self::Sgd { .. } => (F::zero(), F::zero(), F::zero(), F::zero()),
        }
    }

    /// Checks the hyperparameters as `torch.optim` does.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] naming the first value out of its range.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, v: F, ok: bool| {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(LstmError::invalid(what, format!("{v} is out of range")))
            }
        };
        let (zero, one) = (F::zero(), F::one());
        match *self {
            Self::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                bad("momentum", momentum, momentum >= zero)?;
                bad("dampening", dampening, true)?;
                bad("weight decay", weight_decay, weight_decay >= zero)?;
                if nesterov && (momentum <= zero || dampening != zero) {
                    return Err(LstmError::invalid(
                        "nesterov",
                        "needs a positive momentum and zero dampening",
                    ));
                }
                Ok(())
            }
            Self::Adam { .. } | Self::AdamW { .. } => {
                let (beta1, beta2, eps, weight_decay) = self.moments();
                bad("beta1", beta1, beta1 >= zero && beta1 < one)?;
                bad("beta2", beta2, beta2 >= zero && beta2 < one)?;
                bad("eps", eps, eps >= zero)?;
                bad("weight decay", weight_decay, weight_decay >= zero)
            }
        }
    }

    /// One step: updates `params` in place from `grads` (the same shapes) with learning rate
    /// `lr`, and advances `state`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when `grads` or `state` do not match `params`;
    /// [`LstmError::Invalid`] for a negative or non-finite `lr` or hyperparameters out of range.
    pub fn step(
        &self,
        params: &mut [ArrayD<F>],
        grads: &[ArrayD<F>],
        state: &mut OptimizerState<F>,
        lr: F,
    ) -> Result<()> {
        self.check()?;
        if !(lr.is_finite() && lr >= F::zero()) {
            return Err(LstmError::invalid(
                "learning rate",
                format!("must be a non-negative number, got {lr}"),
            ));
        }
        check_shape("gradients", &[grads.len()], &[params.len()])?;
        check_shape("optimizer state", &[state.first.len()], &[params.len()])?;
        for (k, (p, g)) in params.iter().zip(grads).enumerate() {
            check_shape(&format!("gradient {k}"), g.shape(), p.shape())?;
            check_shape(
                &format!("optimizer state {k}"),
                state.first[k].shape(),
                p.shape(),
            )?;
        }
        state.step += 1;
        let one = F::one();
        match *self {
            Self::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                for (k, (p, g)) in params.iter_mut().zip(grads).enumerate() {
                    let buf = &mut state.first[k];
                    let first = state.step == 1;
                    Zip::from(p).and(g).and(buf).for_each(|p, &g, b| {
                        let mut d = g;
                        if weight_decay != F::zero() {
                            d += weight_decay * *p;
                        }
                        if momentum != F::zero() {
                            *b = if first {
                                d
                            } else {
                                *b * momentum + (one - dampening) * d
                            };
                            d = if nesterov { d + momentum * *b } else { *b };
                        }
                        *p -= lr * d;
                    });
                }
            }
            Self::Adam { .. } | Self::AdamW { .. } => {
                let (beta1, beta2, eps, weight_decay) = self.moments();
                let decoupled = matches!(self, Self::AdamW { .. });
                let t = F::of(state.step as f64);
                let bias1 = one - beta1.powf(t);
                let bias2_sqrt = (one - beta2.powf(t)).sqrt();
                let step_size = lr / bias1;
                let w = one - beta1;
                for (k, (p, g)) in params.iter_mut().zip(grads).enumerate() {
                    let (m, v) = (&mut state.first[k], &mut state.second[k]);
                    Zip::from(p).and(g).and(m).and(v).for_each(|p, &g, m, v| {
                        let mut d = g;
                        if decoupled {
                            *p *= one - lr * weight_decay;
                        } else if weight_decay != F::zero() {
                            d += weight_decay * *p;
                        }
                        *m = lerp(*m, d, w);
                        *v = *v * beta2 + (one - beta2) * d * d;
                        let denom = v.sqrt() / bias2_sqrt + eps;
                        *p -= step_size * (*m / denom);
                    });
                }
            }
        }
        Ok(())
    }
}

/// `torch.lerp`: `a + w (b - a)` for `|w| < 0.5`, `b - (b - a) (1 - w)` otherwise.
fn lerp<F: Scalar>(a: F, b: F, w: F) -> F {
    if w.abs() < F::of(0.5) {
        a + w * (b - a)
    } else {
        b - (b - a) * (F::one() - w)
    }
}

/// What an optimizer carries between steps: the step count and, per parameter, the first
/// buffer (SGD's momentum, Adam's first moment) and the second (Adam's second moment).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<F> {
    /// Steps taken.
    pub step: u64,
    /// Per parameter: the momentum buffer or first moment.
    pub first: Vec<ArrayD<F>>,
    /// Per parameter: the second moment (unused by SGD, zero).
    pub second: Vec<ArrayD<F>>,
}

impl<F: Scalar> OptimizerState<F> {
    /// The state before the first step, for parameters of the shapes of `params`.
    pub fn new(params: &[ArrayD<F>]) -> Self {
        let zeros = || params.iter().map(|p| ArrayD::zeros(p.raw_dim())).collect();
        Self {
            step: 0,
            first: zeros(),
            second: zeros(),
        }
    }
}

/// `torch.nn.utils.clip_grad_norm_`: scales every gradient by `min(1, max_norm / (norm +
/// 1e-6))`, where `norm` is the 2-norm of all of them together, and returns `norm`.
///
/// # Errors
/// [`LstmError::Invalid`] for a negative or non-finite `max_norm`, and
/// [`LstmError::NonFinite`] when the norm is not finite (a NaN or an infinity in a gradient),
/// leaving the gradients untouched.
pub fn clip_grad_norm<F: Scalar>(grads: &mut [ArrayD<F>], max_norm: F) -> Result<F> {
    if !(max_norm.is_finite() && max_norm >= F::zero()) {
        return Err(LstmError::invalid(
            "max norm",
            format!("must be a non-negative number, got {max_norm}"),
        ));
    }
    let total = grads
        .iter()
        .map(|g| {
            let n = g.iter().fold(F::zero(), |s, &v| s + v * v).sqrt();
            n * n
        })
        .fold(F::zero(), |s, v| s + v)
        .sqrt();
    if !total.is_finite() {
        lstm_core::check_finite("gradient norm", std::iter::once(&total))?;
    }
    let coef = (max_norm / (total + F::of(1e-6))).min(F::one());
    for g in grads.iter_mut() {
        g.mapv_inplace(|v| v * coef);
    }
    Ok(total)
}
