//! What the recurrent operators (`LSTM`, `GRU`) share: their common attributes, the activation
//! lists, and reading weights from the graph's constants.

use std::collections::HashMap;

use lstm_core::ndarray::{
    Array, Array2, Array3, Array4, ArrayD, ArrayView3, ArrayView4, Dimension,
};
use lstm_core::{
    Activation, Backward, Layout, LstmError, RecurrentCell, Result, Scalar, check_shape,
};

use crate::{EmptyFinalState, Stack, StackOptions};

use super::proto::NodeProto;
use super::tensor::{Tensor, Value};

/// The direction attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnnxDirection {
    /// `"forward"`.
    Forward,
    /// `"reverse"`.
    Reverse,
    /// `"bidirectional"`.
    Bidirectional,
}

impl OnnxDirection {
    /// 1, or 2 when bidirectional.
    pub fn count(self) -> usize {
        if self == OnnxDirection::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// The attributes every recurrent operator has, and the one flag of its own.
pub(super) struct RnnAttrs {
    pub direction: OnnxDirection,
    pub layout: usize,
    pub hidden_size: Option<i64>,
    pub clip: Option<f32>,
    pub activations: Option<Vec<String>>,
    pub alphas: Vec<f32>,
    pub betas: Vec<f32>,
    /// The value of the operator's own 0/1 flag (`input_forget`, `linear_before_reset`).
    pub flag: bool,
}

impl RnnAttrs {
    /// Reads the attributes of `node`; `flag` names the operator's own 0/1 attribute.
    pub fn parse(node: &NodeProto, flag: &str) -> Result<Self> {
        let op = node.op_type.as_str();
        let mut out = RnnAttrs {
            direction: OnnxDirection::Forward,
            layout: 0,
            hidden_size: None,
            clip: None,
            activations: None,
            alphas: Vec::new(),
            betas: Vec::new(),
            flag: false,
        };
        for a in &node.attribute {
            match a.name.as_str() {
                "direction" => {
                    out.direction = match String::from_utf8_lossy(&a.s).as_ref() {
                        "forward" => OnnxDirection::Forward,
                        "reverse" => OnnxDirection::Reverse,
                        "bidirectional" => OnnxDirection::Bidirectional,
                        other => {
                            return Err(LstmError::unsupported(format!(
                                "direction {other:?} (expected forward, reverse or bidirectional)"
                            )));
                        }
                    }
                }
                "layout" => {
                    out.layout = match a.i {
                        0 => 0,
                        1 => 1,
                        other => {
                            return Err(LstmError::unsupported(format!(
                                "layout {other} (expected 0 or 1)"
                            )));
                        }
                    }
                }
                "hidden_size" => out.hidden_size = Some(a.i),
                "clip" => {
                    // The engine takes any clip >= 0; the operator's reference (ONNX Runtime)
                    // refuses 0, and so does this importer.
                    if a.f.is_nan() || a.f <= 0.0 {
                        return Err(LstmError::invalid(
                            "clip",
                            format!("must be positive, got {}", a.f),
                        ));
                    }
                    out.clip = Some(a.f);
                }
                "activations" => {
                    out.activations = Some(
                        a.strings
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect(),
                    )
                }
                "activation_alpha" => out.alphas = a.floats.clone(),
                "activation_beta" => out.betas = a.floats.clone(),
                name if name == flag => {
                    out.flag = match a.i {
                        0 => false,
                        1 => true,
                        other => {
                            return Err(LstmError::unsupported(format!(
                                "{flag} {other} (expected 0 or 1)"
                            )));
                        }
                    }
                }
                other => return Err(LstmError::unsupported(format!("{op} attribute {other:?}"))),
            }
        }
        Ok(out)
    }

    /// The activation functions, `per_direction` for each direction, defaulting to `default`.
    pub fn functions<F: Scalar>(&self, default: &[&str]) -> Result<Vec<Activation<F>>> {
        let d = self.direction.count();
        let n = default.len();
        let names = self.activations.clone().unwrap_or_else(|| {
            default
                .iter()
                .cycle()
                .take(n * d)
                .map(|s| s.to_string())
                .collect()
        });
        if names.len() != n * d {
            return Err(LstmError::invalid(
                "activations",
                format!(
                    "expected {} functions ({n} per direction), got {}",
                    n * d,
                    names.len()
                ),
            ));
        }
        resolve_activations(&names, &self.alphas, &self.betas)
    }

    /// Checks the `hidden_size` attribute, if any, against the size `h` the weights have.
    pub fn check_hidden(&self, h: usize, w_shape: &[usize], gates: usize) -> Result<()> {
        match self.hidden_size {
            Some(hs) if hs != h as i64 => Err(LstmError::shape(
                "W",
                format!(
                    "[{}, {}, input_size] for hidden_size {hs}",
                    self.direction.count(),
                    hs.checked_mul(gates as i64)
                        .map_or_else(|| format!("{gates} * {hs}"), |v| v.to_string())
                ),
                w_shape,
            )),
            _ => Ok(()),
        }
    }
}

/// The inputs of a recurrent node that must be constants (weights) and those that may be
/// (optional state inputs), looked up in the graph's constants.
pub(super) struct NodeInputs<'a> {
    pub node: &'a NodeProto,
    pub constants: &'a HashMap<String, Tensor>,
}

impl NodeInputs<'_> {
    /// The name of input `k`, if the node has it.
    pub fn name(&self, k: usize) -> Option<&str> {
        self.node
            .input
            .get(k)
            .filter(|s| !s.is_empty())
            .map(String::as_str)
    }

    fn what(&self) -> String {
        format!("{} node {:?}", self.node.op_type, self.node.name)
    }

    /// Input `k` as a float array of `D` dimensions at precision `F`: `None` when the node does
    /// not have it; an error when it has it and it is not a constant.
    pub fn weight<F: Scalar, D: Dimension>(
        &self,
        k: usize,
        what: &str,
    ) -> Result<Option<Array<F, D>>> {
        let Some(n) = self.name(k) else {
            return Ok(None);
        };
        let t = self.constants.get(n).ok_or_else(|| {
            LstmError::format(
                self.what(),
                format!(
                    "input {what} ({n:?}) must be an initializer, a Constant or computed from them"
                ),
            )
        })?;
        to_float(t, what).map(Some)
    }

    /// Input `k` when it is a constant (an optional input stored in the model).
    pub fn stored(&self, k: usize) -> Option<&Tensor> {
        self.name(k).and_then(|n| self.constants.get(n))
    }
}

/// What every recurrent node is built from: its attributes and its weights `W [D, G*H, I]`,
/// `R [D, G*H, H]` and `B [D, 2*G*H]` (if any), checked against each other, for `G` gate blocks.
pub(super) struct RnnWeights<F> {
    pub attrs: RnnAttrs,
    pub w: Array3<F>,
    pub r: Array3<F>,
    pub b: Option<Array2<F>>,
    /// `H`.
    pub hidden: usize,
}

impl<F: Scalar> RnnWeights<F> {
    /// Reads and checks the weights of `node` (`flag` as in [`RnnAttrs::parse`]).
    pub fn read(inputs: &NodeInputs<'_>, gates: usize, flag: &str) -> Result<Self> {
        let missing =
            |what: &str| LstmError::format(inputs.what(), format!("the node has no {what} input"));
        let w: Array3<F> = inputs.weight(1, "W")?.ok_or_else(|| missing("W"))?;
        let r: Array3<F> = inputs.weight(2, "R")?.ok_or_else(|| missing("R"))?;
        let attrs = RnnAttrs::parse(inputs.node, flag)?;
        let d = attrs.direction.count();
        let (wd, rows, _) = w.dim();
        if wd != d || rows == 0 || !rows.is_multiple_of(gates) {
            return Err(LstmError::shape(
                "W",
                format!("[{d}, {gates}*hidden_size, input_size]"),
                w.shape(),
            ));
        }
        let hidden = rows / gates;
        attrs.check_hidden(hidden, w.shape(), gates)?;
        check_shape("R", r.shape(), &[d, gates * hidden, hidden])?;
        let b: Option<Array2<F>> = inputs.weight(3, "B")?;
        if let Some(b) = &b {
            check_shape("B", b.shape(), &[d, 2 * gates * hidden])?;
        }
        Ok(Self {
            attrs,
            w,
            r,
            b,
            hidden,
        })
    }
}

/// A float tensor of `D` dimensions at precision `F`.
pub(super) fn to_float<F: Scalar, D: Dimension, G: Scalar>(
    t: &Value<G>,
    what: &str,
) -> Result<Array<F, D>> {
    match t {
        Value::Float(a) => {
            let shape = a.shape().to_vec();
            a.mapv(|v| F::of(v.f64()))
                .into_dimensionality::<D>()
                .map_err(|_| LstmError::shape(what, format!("{}-D", D::NDIM.unwrap_or(0)), &shape))
        }
        Value::Int(_) => Err(LstmError::format(
            what,
            "expected a floating-point tensor, got integers",
        )),
    }
}

/// Resolves activation names and the flat `activation_alpha` / `activation_beta` lists, consumed
/// in order by the functions that take them. Missing values take ONNX Runtime's defaults
/// (LeakyRelu 0.01, HardSigmoid 0.2 / 0.5, Elu 1.0, otherwise 0).
///
/// # Errors
/// [`LstmError::Unsupported`] for an unknown function name.
pub fn resolve_activations<F: Scalar>(
    names: &[String],
    alphas: &[f32],
    betas: &[f32],
) -> Result<Vec<Activation<F>>> {
    let (mut ai, mut bi) = (0, 0);
    names
        .iter()
        .map(|n| {
            let count = Activation::<F>::onnx_param_count(n)
                .ok_or_else(|| LstmError::unsupported(format!("activation function {n:?}")))?;
            let lower = n.to_ascii_lowercase();
            let (da, db) = match lower.as_str() {
                "leakyrelu" => (0.01, 0.0),
                "hardsigmoid" => (0.2, 0.5),
                "elu" => (1.0, 0.0),
                _ => (0.0, 0.0),
            };
            let mut params = Vec::new();
            if count >= 1 {
                params.push(F::of(alphas.get(ai).map_or(da, |&v| f64::from(v))));
                ai += 1;
            }
            if count == 2 {
                params.push(F::of(betas.get(bi).map_or(db, |&v| f64::from(v))));
                bi += 1;
            }
            Activation::from_onnx(n, &params)
        })
        .collect()
}

/// A call of a one-layer `stack` in an ONNX recurrent node's conventions: the node's `layout`
/// (0: `X [T, B, I]`, states `[D, B, H]`, `Y [T, D, B, H]`; 1: `[B, T, I]`, `[B, D, H]`,
/// `[B, T, D, H]`), lengths signed as the operator has them, and a sample of length 0 with a
/// zero final state, as in ONNX Runtime.
struct NodeCall<F> {
    batch_first: bool,
    t: usize,
    b: usize,
    d: usize,
    h: usize,
    lengths: Option<Vec<usize>>,
    /// The initial state parts, `[D, B, H]`.
    states: Vec<Option<Array3<F>>>,
}

impl<F: Scalar> NodeCall<F> {
    /// Checks `x` and the initial state parts (`names` for messages) of a run of `stack`.
    fn new<C: RecurrentCell<F> + Sync>(
        stack: &Stack<C, F>,
        layout: usize,
        x: ArrayView3<'_, F>,
        lengths: Option<&[i64]>,
        initial: &[(Option<ArrayView3<'_, F>>, &str)],
    ) -> Result<Self> {
        let (d, h) = (stack.num_directions(), stack.hidden_size());
        let batch_first = layout == 1;
        let (t, b) = lstm_core::unroll::dims(x.shape(), Self::seq_layout(batch_first));
        let lengths = lengths
            .map(|l| crate::lengths_from_signed(l, t))
            .transpose()?;
        let mut call = Self {
            batch_first,
            t,
            b,
            d,
            h,
            lengths,
            states: Vec::new(),
        };
        call.states = initial
            .iter()
            .map(|(given, what)| given.map(|a| call.state_in(a, what)).transpose())
            .collect::<Result<_>>()?;
        Ok(call)
    }

    fn seq_layout(batch_first: bool) -> Layout {
        if batch_first {
            Layout::BatchFirst
        } else {
            Layout::TimeMajor
        }
    }

    /// A state part in the node's layout, checked, as the stack's `[D, B, H]`.
    fn state_in(&self, a: ArrayView3<'_, F>, what: &str) -> Result<Array3<F>> {
        let (d, b, h) = (self.d, self.b, self.h);
        let want = if self.batch_first {
            [b, d, h]
        } else {
            [d, b, h]
        };
        check_shape(what, a.shape(), &want)?;
        Ok(self.swap(a))
    }

    /// Between `[D, B, H]` and the node's layout (a transpose when batch-first).
    fn swap(&self, a: ArrayView3<'_, F>) -> Array3<F> {
        if self.batch_first {
            a.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            a.to_owned()
        }
    }

    fn opts(&self, threads: usize) -> StackOptions<'_> {
        StackOptions {
            layout: Self::seq_layout(self.batch_first),
            lengths: self.lengths.as_deref(),
            empty_final_state: EmptyFinalState::Zero,
            threads,
            dropout: None,
        }
    }

    fn views(parts: &[Option<Array3<F>>]) -> Vec<Option<ArrayView3<'_, F>>> {
        parts.iter().map(|s| s.as_ref().map(|a| a.view())).collect()
    }

    /// The stack's output `[T, B, D*H]` (or `[B, T, D*H]`) as the node's `Y`.
    fn y_out(&self, out: Array3<F>) -> Result<Array4<F>> {
        let (t, b, d, h) = (self.t, self.b, self.d, self.h);
        Ok(if self.batch_first {
            out.into_shape_with_order((b, t, d, h))
                .map_err(|e| LstmError::invalid("Y", e))?
        } else {
            out.into_shape_with_order((t, b, d, h))
                .map_err(|e| LstmError::invalid("Y", e))?
                .permuted_axes([0, 2, 1, 3])
                .as_standard_layout()
                .into_owned()
        })
    }

    /// A gradient of the node's `Y`, checked, in the stack's output shape.
    fn y_in(&self, dy: ArrayView4<'_, F>) -> Result<Array3<F>> {
        let (t, b, d, h) = (self.t, self.b, self.d, self.h);
        let (want, perm) = if self.batch_first {
            ([b, t, d, h], [0, 1, 2, 3])
        } else {
            ([t, d, b, h], [0, 2, 1, 3])
        };
        check_shape("gradient of Y", dy.shape(), &want)?;
        let rows = if self.batch_first { [b, t] } else { [t, b] };
        dy.permuted_axes(perm)
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((rows[0], rows[1], d * h))
            .map_err(|e| LstmError::invalid("gradient of Y", e))
    }
}

/// Runs `stack` (one layer) as an ONNX recurrent node (see [`NodeCall`]): `x`, the initial
/// state parts (`names` for messages) and the outputs in the node's `layout`. Gives `Y` and
/// each final state part.
pub(super) fn run_as_node<F: Scalar, C: RecurrentCell<F> + Sync>(
    stack: &Stack<C, F>,
    layout: usize,
    x: ArrayView3<'_, F>,
    lengths: Option<&[i64]>,
    initial: &[(Option<ArrayView3<'_, F>>, &str)],
    threads: usize,
) -> Result<(Array4<F>, Vec<Array3<F>>)> {
    let call = NodeCall::new(stack, layout, x, lengths, initial)?;
    let out = stack.forward_states(x, &NodeCall::views(&call.states), &call.opts(threads))?;
    let y = call.y_out(out.output)?;
    let finals = out.finals.iter().map(|a| call.swap(a.view())).collect();
    Ok((y, finals))
}

/// The gradients [`backward_as_node`] gives, in the node's layout.
pub(super) struct NodeGrads<F, G> {
    /// `dX`.
    pub x: Array3<F>,
    /// The gradient of each initial state part.
    pub initial: Vec<Array3<F>>,
    /// Each direction's parameter gradients.
    pub params: Vec<G>,
}

/// The backward of [`run_as_node`] for the gradients `d_y` of `Y` and `d_finals` of the final
/// state parts (absent ones are zero), all in the node's layout.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_as_node<F: Scalar, C: Backward<F> + Sync>(
    stack: &Stack<C, F>,
    layout: usize,
    x: ArrayView3<'_, F>,
    lengths: Option<&[i64]>,
    initial: &[(Option<ArrayView3<'_, F>>, &str)],
    threads: usize,
    d_y: Option<ArrayView4<'_, F>>,
    d_finals: &[Option<ArrayView3<'_, F>>],
) -> Result<NodeGrads<F, C::Grad>> {
    let call = NodeCall::new(stack, layout, x, lengths, initial)?;
    let d_out = match d_y {
        Some(dy) => call.y_in(dy)?,
        None => {
            let rows = if call.batch_first {
                [call.b, call.t]
            } else {
                [call.t, call.b]
            };
            Array3::zeros((rows[0], rows[1], call.d * call.h))
        }
    };
    let d_finals = d_finals
        .iter()
        .zip(initial)
        .map(|(g, (_, what))| {
            g.map(|a| call.state_in(a, &format!("gradient of the final {what}")))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    let g = stack.backward(
        x,
        &NodeCall::views(&call.states),
        &call.opts(threads),
        d_out.view(),
        &NodeCall::views(&d_finals),
    )?;
    Ok(NodeGrads {
        x: g.input,
        initial: g.initial.iter().map(|a| call.swap(a.view())).collect(),
        params: g.params.into_iter().next().unwrap_or_default(),
    })
}

/// The gradients of a recurrent node's outputs `[Y, Y_h, Y_c]` (or `[Y, Y_h]`) as arrays of
/// their ranks; absent ones are `None`.
pub(super) struct OutputGrads<F> {
    pub y: Option<Array4<F>>,
    pub finals: Vec<Option<Array3<F>>>,
}

/// Reads `d_outputs` (`names` for messages) as [`OutputGrads`].
pub(super) fn d_outputs_of<F: Scalar, const N: usize>(
    d_outputs: &[Option<&ArrayD<F>>],
    names: [&str; N],
) -> Result<OutputGrads<F>> {
    let get = |k: usize| d_outputs.get(k).copied().flatten();
    let rank = |a: &ArrayD<F>, what: &str, n: usize| {
        LstmError::shape(format!("gradient of {what}"), format!("{n}-D"), a.shape())
    };
    let y = get(0)
        .map(|a| {
            a.clone()
                .into_dimensionality()
                .map_err(|_| rank(a, names[0], 4))
        })
        .transpose()?;
    let finals = (1..N)
        .map(|k| {
            get(k)
                .map(|a| {
                    a.clone()
                        .into_dimensionality()
                        .map_err(|_| rank(a, names[k], 3))
                })
                .transpose()
        })
        .collect::<Result<_>>()?;
    Ok(OutputGrads { y, finals })
}

/// The run-time inputs of a recurrent node, from the graph values `inputs` (slot `k` is the
/// node's input `k`; `op` names the operator in messages): `X`, `sequence_lens`, `initial_h`
/// and `initial_c` (slots 0, 4, 5 and 6).
pub(super) struct NodeArgs<F> {
    pub x: Array3<F>,
    pub lens: Option<Vec<i64>>,
    pub h0: Option<Array3<F>>,
    pub c0: Option<Array3<F>>,
}

impl<F: Scalar> NodeArgs<F> {
    pub fn read(inputs: &[Option<&Value<F>>], op: &str) -> Result<Self> {
        let get = |k: usize| inputs.get(k).copied().flatten();
        Ok(Self {
            x: to_float(
                get(0).ok_or_else(|| LstmError::invalid(op, "no input X"))?,
                "X",
            )?,
            lens: get(4).map(|v| v.ints("sequence_lens")).transpose()?,
            h0: get(5).map(|v| to_float(v, "initial_h")).transpose()?,
            c0: get(6).map(|v| to_float(v, "initial_c")).transpose()?,
        })
    }
}
