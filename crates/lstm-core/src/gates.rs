//! Gate helpers: the sigmoid, the gate order and the activation functions of ONNX.
//!
//! # Gate order
//!
//! Everywhere in this workspace the four gate blocks of a weight matrix, a bias and a gate trace
//! are stacked in the order **i, f, g, o** (input gate, forget gate, candidate, output gate), the
//! order of PyTorch and Keras. [`Gate`] names them. Importers reorder other conventions (ONNX uses
//! i, o, f, c) once, at load time.

use crate::{LstmError, Result, Scalar};

/// The four gate blocks, in the workspace's order i, f, g, o.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gate {
    /// Input gate `i`: how much of the candidate enters the cell.
    Input = 0,
    /// Forget gate `f`: how much of the previous cell state is kept.
    Forget = 1,
    /// Candidate `g` (ONNX calls it `c`): the new content.
    Cell = 2,
    /// Output gate `o`: how much of the squashed cell state is shown as `h`.
    Output = 3,
}

impl Gate {
    /// The block index of the gate (0..4).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// One-letter name: `i`, `f`, `g` or `o`.
    pub const fn letter(self) -> char {
        match self {
            Gate::Input => 'i',
            Gate::Forget => 'f',
            Gate::Cell => 'g',
            Gate::Output => 'o',
        }
    }
}

/// The logistic sigmoid `1 / (1 + e^-x)`, computed without overflow for any input.
#[inline]
pub fn sigmoid<F: Scalar>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

/// An activation function of a gate, with its parameters.
///
/// The list is that of the ONNX recurrent operators; the standard LSTM uses [`Sigmoid`](Self::Sigmoid)
/// for i, f and o and [`Tanh`](Self::Tanh) for the candidate and the output squashing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation<F> {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `alpha * x + beta`.
    Affine {
        /// Slope.
        alpha: F,
        /// Offset.
        beta: F,
    },
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: F,
    },
    /// `x` if `x > alpha`, else 0.
    ThresholdedRelu {
        /// Threshold.
        alpha: F,
    },
    /// `alpha * tanh(beta * x)`.
    ScaledTanh {
        /// Output scale.
        alpha: F,
        /// Input scale.
        beta: F,
    },
    /// `clamp(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        /// Slope.
        alpha: F,
        /// Offset.
        beta: F,
    },
    /// `x` if `x >= 0`, else `alpha * (e^x - 1)`.
    Elu {
        /// Scale for negative inputs.
        alpha: F,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

impl<F: Scalar> Activation<F> {
    /// The derivative at `x`. At a kink (Relu's and LeakyRelu's 0, ThresholdedRelu's `alpha`,
    /// HardSigmoid's ends) it takes PyTorch's side: the value of the branch [`apply`](Self::apply)
    /// takes there, so Relu'(0) = 0 and LeakyRelu'(0) = 1.
    pub fn derivative(&self, x: F) -> F {
        let (zero, one) = (F::zero(), F::one());
        match *self {
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (one - s)
            }
            Activation::Tanh => {
                let t = x.tanh();
                one - t * t
            }
            Activation::Relu => {
                if x > zero {
                    one
                } else {
                    zero
                }
            }
            Activation::Affine { alpha, .. } => alpha,
            Activation::LeakyRelu { alpha } => {
                if x >= zero {
                    one
                } else {
                    alpha
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha {
                    one
                } else {
                    zero
                }
            }
            Activation::ScaledTanh { alpha, beta } => {
                let t = (beta * x).tanh();
                alpha * beta * (one - t * t)
            }
            Activation::HardSigmoid { alpha, beta } => {
                let y = alpha * x + beta;
                if y > zero && y < one { alpha } else { zero }
            }
            Activation::Elu { alpha } => {
                if x >= zero {
                    one
                } else {
                    alpha * x.exp()
                }
            }
            Activation::Softsign => {
                let d = one + x.abs();
                one / (d * d)
            }
            Activation::Softplus => sigmoid(x),
        }
    }

    /// Applies the function.
    #[inline]
    pub fn apply(&self, x: F) -> F {
        let zero = F::zero();
        match *self {
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Relu => {
                if x > zero {
                    x
                } else {
                    zero
                }
            }
            Activation::Affine { alpha, beta } => alpha * x + beta,
            Activation::LeakyRelu { alpha } => {
                if x >= zero {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    zero
                }
            }
            Activation::ScaledTanh { alpha, beta } => alpha * (beta * x).tanh(),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).max(zero).min(F::one()),
            Activation::Elu { alpha } => {
                if x >= zero {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            Activation::Softsign => x / (F::one() + x.abs()),
            Activation::Softplus => {
                // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), exact and overflow-free.
                x.max(zero) + (-x.abs()).exp().ln_1p()
            }
        }
    }

    /// The ONNX name of the function (`"Sigmoid"`, `"LeakyRelu"`, ...).
    pub fn onnx_name(&self) -> &'static str {
        match self {
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::Relu => "Relu",
            Activation::Affine { .. } => "Affine",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::ScaledTanh { .. } => "ScaledTanh",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::Elu { .. } => "Elu",
            Activation::Softsign => "Softsign",
            Activation::Softplus => "Softplus",
        }
    }

    /// The parameters [`from_onnx`](Self::from_onnx) takes back with [`onnx_name`](Self::onnx_name):
    /// `[]`, `[alpha]` or `[alpha, beta]` (what an ONNX export writes to `activation_alpha` /
    /// `activation_beta`).
    pub fn onnx_params(&self) -> Vec<F> {
        match *self {
            Activation::Sigmoid
            | Activation::Tanh
            | Activation::Relu
            | Activation::Softsign
            | Activation::Softplus => vec![],
            Activation::LeakyRelu { alpha }
            | Activation::ThresholdedRelu { alpha }
            | Activation::Elu { alpha } => vec![alpha],
            Activation::Affine { alpha, beta }
            | Activation::ScaledTanh { alpha, beta }
            | Activation::HardSigmoid { alpha, beta } => vec![alpha, beta],
        }
    }

    /// How many of `alpha`, `beta` the named function takes (0, 1 or 2), or `None` for an
    /// unknown name. Names are matched case-insensitively, as ONNX Runtime does.
    pub fn onnx_param_count(name: &str) -> Option<usize> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sigmoid" | "tanh" | "relu" | "softsign" | "softplus" => 0,
            "leakyrelu" | "thresholdedrelu" | "elu" => 1,
            "affine" | "scaledtanh" | "hardsigmoid" => 2,
            _ => return None,
        })
    }

    /// The ONNX name of the activation and its parameters (alpha, then beta), the inverse of
    /// [`from_onnx`](Self::from_onnx).
    pub fn to_onnx(&self) -> (&'static str, Vec<F>) {
        match *self {
            Activation::Sigmoid => ("Sigmoid", vec![]),
            Activation::Tanh => ("Tanh", vec![]),
            Activation::Relu => ("Relu", vec![]),
            Activation::Softsign => ("Softsign", vec![]),
            Activation::Softplus => ("Softplus", vec![]),
            Activation::LeakyRelu { alpha } => ("LeakyRelu", vec![alpha]),
            Activation::ThresholdedRelu { alpha } => ("ThresholdedRelu", vec![alpha]),
            Activation::Elu { alpha } => ("Elu", vec![alpha]),
            Activation::Affine { alpha, beta } => ("Affine", vec![alpha, beta]),
            Activation::ScaledTanh { alpha, beta } => ("ScaledTanh", vec![alpha, beta]),
            Activation::HardSigmoid { alpha, beta } => ("HardSigmoid", vec![alpha, beta]),
        }
    }

    /// Builds the named ONNX activation from its parameters (`params.len()` must equal
    /// [`onnx_param_count`](Self::onnx_param_count)).
    ///
    /// # Errors
    /// [`LstmError::Unsupported`] for an unknown name, [`LstmError::Invalid`] for a wrong number of
    /// parameters.
    pub fn from_onnx(name: &str, params: &[F]) -> Result<Self> {
        let want = Self::onnx_param_count(name)
            .ok_or_else(|| LstmError::unsupported(format!("activation function {name:?}")))?;
        if params.len() != want {
            return Err(LstmError::invalid(
                format!("activation {name}"),
                format!("takes {want} parameter(s), got {}", params.len()),
            ));
        }
        let p = |k: usize| params[k];
        Ok(match name.to_ascii_lowercase().as_str() {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            "leakyrelu" => Activation::LeakyRelu { alpha: p(0) },
            "thresholdedrelu" => Activation::ThresholdedRelu { alpha: p(0) },
            "elu" => Activation::Elu { alpha: p(0) },
            "affine" => Activation::Affine {
                alpha: p(0),
                beta: p(1),
            },
            "scaledtanh" => Activation::ScaledTanh {
                alpha: p(0),
                beta: p(1),
            },
            _ => Activation::HardSigmoid {
                alpha: p(0),
                beta: p(1),
            },
        })
    }

    /// Converts the parameters to another precision.
    pub fn cast<G: Scalar>(&self) -> Activation<G> {
        let c = |v: F| G::of(v.f64());
        match *self {
            Activation::Sigmoid => Activation::Sigmoid,
            Activation::Tanh => Activation::Tanh,
            Activation::Relu => Activation::Relu,
            Activation::Affine { alpha, beta } => Activation::Affine {
                alpha: c(alpha),
                beta: c(beta),
            },
            Activation::LeakyRelu { alpha } => Activation::LeakyRelu { alpha: c(alpha) },
            Activation::ThresholdedRelu { alpha } => {
                Activation::ThresholdedRelu { alpha: c(alpha) }
            }
            Activation::ScaledTanh { alpha, beta } => Activation::ScaledTanh {
                alpha: c(alpha),
                beta: c(beta),
            },
            Activation::HardSigmoid { alpha, beta } => Activation::HardSigmoid {
                alpha: c(alpha),
                beta: c(beta),
            },
            Activation::Elu { alpha } => Activation::Elu { alpha: c(alpha) },
            Activation::Softsign => Activation::Softsign,
            Activation::Softplus => Activation::Softplus,
        }
    }

    /// Whether the function's range lies in `[0, 1]` (a proper gate).
    pub fn is_unit_range(&self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::HardSigmoid { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function survives the trip through its ONNX name and parameters, as an export and
    /// a re-import make it.
    #[test]
    fn onnx_names_and_parameters_round_trip() {
        let all = [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Relu,
            Activation::Affine {
                alpha: 0.5,
                beta: -1.0,
            },
            Activation::LeakyRelu { alpha: 0.125 },
            Activation::ThresholdedRelu { alpha: 0.375 },
            Activation::ScaledTanh {
                alpha: 2.0,
                beta: 0.5,
            },
            Activation::HardSigmoid {
                alpha: 0.25,
                beta: 0.5,
            },
            Activation::Elu { alpha: 1.5 },
            Activation::Softsign,
            Activation::Softplus,
        ];
        for a in all {
            let params = a.onnx_params();
            assert_eq!(
                Activation::<f64>::onnx_param_count(a.onnx_name()),
                Some(params.len())
            );
            assert_eq!(Activation::from_onnx(a.onnx_name(), &params).unwrap(), a);
            assert_eq!(a.cast::<f32>().cast::<f64>(), a, "exact in f32");
        }
        assert!(matches!(
            Activation::<f64>::from_onnx("Gelu", &[]),
            Err(LstmError::Unsupported(_))
        ));
        assert!(matches!(
            Activation::<f64>::from_onnx("Elu", &[]),
            Err(LstmError::Invalid { .. })
        ));
    }
}
