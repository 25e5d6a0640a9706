//! The ONNX `LSTM` operator (opset 7 and later) with its full semantics: `X, W, R, B,
//! sequence_lens, initial_h, initial_c, P`; gate order i, o, f, c; `clip`, `input_forget`,
//! `activations` with `activation_alpha` / `activation_beta`, `direction`, and `layout` 0 and 1.

use std::collections::HashMap;

use lstm_core::ndarray::{Array1, Array2, Array3, Array4, ArrayD, ArrayView3, Axis, Ix3};
use lstm_core::{LstmError, Result, Scalar, check_shape};
use lstm_engine::{EngineSpec, GateConfig, LstmEngine};

use super::proto::NodeProto;
use super::rnn::{
    NodeArgs, NodeInputs, OnnxDirection, RnnWeights, backward_as_node, d_outputs_of, run_as_node,
    to_float,
};
use super::tensor::{Tensor, Value};
use crate::{LstmStack, convert};

/// An ONNX LSTM node ready to run.
#[derive(Clone, Debug)]
pub struct OnnxLstm<F> {
    stack: LstmStack<F>,
    direction: OnnxDirection,
    layout: usize,
    /// `sequence_lens` stored in the model, if any.
    pub sequence_lens: Option<Vec<i64>>,
    /// `initial_h` stored in the model, if any (in the node's layout).
    pub initial_h: Option<Array3<F>>,
    /// `initial_c` stored in the model, if any (in the node's layout).
    pub initial_c: Option<Array3<F>>,
    /// Threads [`OnnxLstm::run`] uses (see [`crate::StackOptions::threads`]); 1 by default.
    pub threads: usize,
    has_bias: bool,
    has_peepholes: bool,
}

/// The three outputs of the operator, shaped for the node's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxOutput<F> {
    /// `Y`: `[T, D, B, H]` (layout 0) or `[B, T, D, H]` (layout 1).
    pub y: Array4<F>,
    /// `Y_h`: `[D, B, H]` (layout 0) or `[B, D, H]` (layout 1).
    pub y_h: Array3<F>,
    /// `Y_c`: like `Y_h`.
    pub y_c: Array3<F>,
}

impl<F: Scalar> OnnxLstm<F> {
    /// Builds an `LSTM` node of a graph at precision `F`. `constants` holds the graph's
    /// initializers, `Constant` outputs and whatever was computed from them alone; `W`, `R`,
    /// `B` and `P` must be among them, and `sequence_lens`, `initial_h` and `initial_c` are kept
    /// when they are (see [`OnnxLstm::run`]).
    ///
    /// # Errors
    /// [`LstmError::Format`] for weights that are not constants, [`LstmError::Unsupported`] for
    /// an unknown attribute or attribute value, [`LstmError::Shape`] for tensors that do not fit
    /// together.
    pub fn from_node(node: &NodeProto, constants: &HashMap<String, Tensor>) -> Result<Self> {
        let inputs = NodeInputs { node, constants };
        let RnnWeights {
            attrs,
            w,
            r,
            b,
            hidden: h,
        } = RnnWeights::<F>::read(&inputs, 4, "input_forget")?;
        let d = attrs.direction.count();
        let p: Option<Array2<F>> = inputs.weight(7, "P")?;
        if let Some(p) = &p {
            check_shape("P", p.shape(), &[d, 3 * h])?;
        }
        let funcs = attrs.functions::<F>(&["Sigmoid", "Tanh", "Tanh"])?;
        let gates = GateConfig::<F> {
            clip: attrs.clip.map(|c| F::of(f64::from(c))),
            input_forget: attrs.flag,
            ..GateConfig::default()
        };
        let mut engines = Vec::new();
        for dir in 0..d {
            let wk = convert::gates_from_onnx(w.index_axis(Axis(0), dir))?;
            let rk = convert::gates_from_onnx(r.index_axis(Axis(0), dir))?;
            let biases = match &b {
                Some(b) => {
                    let (wb, rb) = convert::bias_from_onnx(b.row(dir))?;
                    vec![wb, rb]
                }
                None => Vec::new(),
            };
            let peep = p
                .as_ref()
                .map(|p| convert::peephole_from_onnx(p.row(dir)))
                .transpose()?;
            let mut spec = EngineSpec::standard(wk.view(), rk.view());
            spec.biases = biases.iter().map(|b| b.view()).collect();
            spec.peephole = peep.as_ref().map(|p| p.view());
            spec.gates = GateConfig {
                f: funcs[3 * dir],
                g: funcs[3 * dir + 1],
                h: funcs[3 * dir + 2],
                ..gates
            };
            engines.push(LstmEngine::new(spec)?);
        }
        let sequence_lens = inputs
            .stored(4)
            .map(|t| t.ints("sequence_lens"))
            .transpose()?;
        let initial_h = inputs
            .stored(5)
            .map(|t| to_float::<F, Ix3, f64>(t, "initial_h"))
            .transpose()?;
        let initial_c = inputs
            .stored(6)
            .map(|t| to_float::<F, Ix3, f64>(t, "initial_c"))
            .transpose()?;
        let mut stack = LstmStack::new(vec![engines])?;
        if attrs.direction == OnnxDirection::Reverse {
            stack = stack.with_directions(&[lstm_core::Direction::Reverse])?;
        }
        Ok(Self {
            stack,
            direction: attrs.direction,
            layout: attrs.layout,
            sequence_lens,
            initial_h,
            initial_c,
            threads: 1,
            has_bias: b.is_some(),
            has_peepholes: p.is_some(),
        })
    }

    /// Runs the node on graph values: `inputs[k]` is the node's input `k` (`X`, `W`, ...), or
    /// `None` when absent; gives `[Y, Y_h, Y_c]`.
    pub(super) fn run_values(&self, inputs: &[Option<&Value<F>>]) -> Result<Vec<Value<F>>> {
        let NodeArgs { x, lens, h0, c0 } = NodeArgs::read(inputs, "LSTM")?;
        let out = self.run(
            x.view(),
            lens.as_deref(),
            h0.as_ref().map(|a| a.view()),
            c0.as_ref().map(|a| a.view()),
        )?;
        Ok(vec![
            Value::Float(out.y.into_dyn()),
            Value::Float(out.y_h.into_dyn()),
            Value::Float(out.y_c.into_dyn()),
        ])
    }

    /// The backward of [`OnnxLstm::run_values`]: given the node's inputs and the gradients of
    /// its outputs `[Y, Y_h, Y_c]` (absent ones are zero), the gradient of each float input
    /// the node has, by slot: `X` (0), `W` (1), `R` (2), `B` (3), `initial_h` (5),
    /// `initial_c` (6) and `P` (7), in the operator's shapes and gate order.
    pub(super) fn backward_values(
        &self,
        inputs: &[Option<&Value<F>>],
        d_outputs: &[Option<&ArrayD<F>>],
    ) -> Result<Vec<(usize, ArrayD<F>)>> {
        let NodeArgs { x, lens, h0, c0 } = NodeArgs::read(inputs, "LSTM")?;
        let d = d_outputs_of::<F, 3>(d_outputs, ["Y", "Y_h", "Y_c"])?;
        let g = backward_as_node(
            &self.stack,
            self.layout,
            x.view(),
            lens.as_deref(),
            &[
                (h0.as_ref().map(|a| a.view()), "initial_h"),
                (c0.as_ref().map(|a| a.view()), "initial_c"),
            ],
            self.threads,
            d.y.as_ref().map(|a| a.view()),
            &[
                d.finals[0].as_ref().map(|a| a.view()),
                d.finals[1].as_ref().map(|a| a.view()),
            ],
        )?;
        let mut out = vec![(0, g.x.into_dyn())];
        let per_dir = |f: &dyn Fn(&lstm_engine::EngineGrad<F>) -> Result<Array1<F>>| {
            let rows = g.params.iter().map(f).collect::<Result<Vec<_>>>()?;
            let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
            lstm_core::ndarray::stack(Axis(0), &views)
                .map(|a| a.into_dyn())
                .map_err(|e| LstmError::invalid("LSTM gradient", e))
        };
        let per_dir2 = |f: &dyn Fn(&lstm_engine::EngineGrad<F>) -> Result<Array2<F>>| {
            let mats = g.params.iter().map(f).collect::<Result<Vec<_>>>()?;
            let views: Vec<_> = mats.iter().map(|r| r.view()).collect();
            lstm_core::ndarray::stack(Axis(0), &views)
                .map(|a| a.into_dyn())
                .map_err(|e| LstmError::invalid("LSTM gradient", e))
        };
        out.push((1, per_dir2(&|e| convert::gates_to_onnx(e.w_input.view()))?));
        out.push((
            2,
            per_dir2(&|e| convert::gates_to_onnx(e.w_recurrent.view()))?,
        ));
        if self.has_bias {
            // B = [Wb | Rb]: both are summed into the gates, so both get the summed bias's
            // gradient.
            out.push((
                3,
                per_dir(&|e| convert::bias_to_onnx(e.bias.view(), e.bias.view()))?,
            ));
        }
        let given = [h0.is_some(), c0.is_some()];
        for ((slot, part), given) in [(5, &g.initial[0]), (6, &g.initial[1])]
            .into_iter()
            .zip(given)
        {
            if given {
                out.push((slot, part.clone().into_dyn()));
            }
        }
        if self.has_peepholes {
            out.push((
                7,
                per_dir(&|e| match &e.peephole {
                    Some(p) => convert::peephole_to_onnx(p.view()),
                    None => Err(LstmError::invalid("P", "the engine has no peepholes")),
                })?,
            ));
        }
        Ok(out)
    }

    /// The node's `layout` attribute (0 or 1).
    pub fn layout(&self) -> usize {
        self.layout
    }

    /// The direction attribute.
    pub fn direction(&self) -> OnnxDirection {
        self.direction
    }

    /// `(input size, hidden size, has a bias, has peepholes)`.
    pub fn sizes(&self) -> (usize, usize, bool, bool) {
        (
            self.stack.input_size(),
            self.stack.hidden_size(),
            self.has_bias,
            self.has_peepholes,
        )
    }

    /// Runs the node. Arguments given here override the model's stored optional inputs. Shapes
    /// follow the node's layout: `X [T, B, I]` or `[B, T, I]`, `initial_h` / `initial_c`
    /// `[D, B, H]` or `[B, D, H]`, `sequence_lens [B]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] for a wrong shape, [`LstmError::Invalid`] for lengths outside
    /// `0..=T`.
    pub fn run(
        &self,
        x: ArrayView3<'_, F>,
        sequence_lens: Option<&[i64]>,
        initial_h: Option<ArrayView3<'_, F>>,
        initial_c: Option<ArrayView3<'_, F>>,
    ) -> Result<OnnxOutput<F>> {
        let (y, finals) = run_as_node(
            &self.stack,
            self.layout,
            x,
            sequence_lens.or(self.sequence_lens.as_deref()),
            &[
                (
                    initial_h.or(self.initial_h.as_ref().map(|a| a.view())),
                    "initial_h",
                ),
                (
                    initial_c.or(self.initial_c.as_ref().map(|a| a.view())),
                    "initial_c",
                ),
            ],
            self.threads,
        )?;
        let [y_h, y_c]: [Array3<F>; 2] = finals
            .try_into()
            .map_err(|_| LstmError::invalid("LSTM state", "expected two parts"))?;
        Ok(OnnxOutput { y, y_h, y_c })
    }
}
