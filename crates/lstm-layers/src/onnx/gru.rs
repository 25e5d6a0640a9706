//! The ONNX `GRU` operator (opset 7 and later): `X, W, R, B, sequence_lens, initial_h`; gate
//! order z, r, h; `linear_before_reset`, `clip`, `activations` with `activation_alpha` /
//! `activation_beta`, `direction`, and `layout` 0 and 1. The arithmetic is `lstm_gru::GruCell`.

use std::collections::HashMap;

use lstm_core::ndarray::{Array3, Array4, ArrayD, ArrayView3, Axis, s};
use lstm_core::{LstmError, Result, Scalar};
use lstm_gru::{GruCell, GruGrad};

use super::proto::NodeProto;
use super::rnn::{
    NodeArgs, NodeInputs, OnnxDirection, RnnWeights, backward_as_node, d_outputs_of, run_as_node,
};
use super::tensor::{Tensor, Value};
use crate::Stack;

/// An ONNX GRU node ready to run.
#[derive(Clone, Debug)]
pub struct OnnxGru<F> {
    stack: Stack<GruCell<F>, F>,
    direction: OnnxDirection,
    layout: usize,
    /// Threads [`OnnxGru::run`] uses (see [`crate::StackOptions::threads`]); 1 by default.
    pub threads: usize,
    has_bias: bool,
}

/// The two outputs of the operator, shaped for the node's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxGruOutput<F> {
    /// `Y`: `[T, D, B, H]` (layout 0) or `[B, T, D, H]` (layout 1).
    pub y: Array4<F>,
    /// `Y_h`: `[D, B, H]` (layout 0) or `[B, D, H]` (layout 1).
    pub y_h: Array3<F>,
}

impl<F: Scalar> OnnxGru<F> {
    /// Builds a `GRU` node at precision `F`; `W`, `R` and `B` must be among `constants` (see
    /// [`super::OnnxLstm::from_node`]).
    ///
    /// # Errors
    /// As [`super::OnnxLstm::from_node`].
    pub fn from_node(node: &NodeProto, constants: &HashMap<String, Tensor>) -> Result<Self> {
        let inputs = NodeInputs { node, constants };
        let RnnWeights {
            attrs,
            w,
            r,
            b,
            hidden: h,
        } = RnnWeights::<F>::read(&inputs, 3, "linear_before_reset")?;
        let d = attrs.direction.count();
        let funcs = attrs.functions::<F>(&["Sigmoid", "Tanh"])?;
        let cells = (0..d)
            .map(|dir| {
                let (wb, rb) = match &b {
                    Some(b) => (
                        Some(b.slice(s![dir, ..3 * h]).to_owned()),
                        Some(b.slice(s![dir, 3 * h..]).to_owned()),
                    ),
                    None => (None, None),
                };
                let mut cell = GruCell::new(
                    w.index_axis(Axis(0), dir).to_owned(),
                    r.index_axis(Axis(0), dir).to_owned(),
                    wb,
                    rb,
                    attrs.flag,
                )?;
                cell.f = funcs[2 * dir];
                cell.g = funcs[2 * dir + 1];
                cell.clip = attrs.clip.map(|c| F::of(f64::from(c)));
                Ok(cell)
            })
            .collect::<Result<_>>()?;
        let mut stack = Stack::new(vec![cells])?;
        if attrs.direction == OnnxDirection::Reverse {
            stack = stack.with_directions(&[lstm_core::Direction::Reverse])?;
        }
        Ok(Self {
            stack,
            direction: attrs.direction,
            layout: attrs.layout,
            threads: 1,
            has_bias: b.is_some(),
        })
    }

    /// The node's `layout` attribute (0 or 1).
    pub fn layout(&self) -> usize {
        self.layout
    }

    /// The direction attribute.
    pub fn direction(&self) -> OnnxDirection {
        self.direction
    }

    /// `(input size, hidden size, has a bias)`.
    pub fn sizes(&self) -> (usize, usize, bool) {
        (
            self.stack.input_size(),
            self.stack.hidden_size(),
            self.has_bias,
        )
    }

    /// Runs the node. Shapes follow the node's layout: `X [T, B, I]` or `[B, T, I]`,
    /// `initial_h` `[D, B, H]` or `[B, D, H]`, `sequence_lens [B]`. A sample of length 0 has a
    /// zero final state, as in ONNX Runtime.
    ///
    /// # Errors
    /// [`LstmError::Shape`] for a wrong shape, [`LstmError::Invalid`] for lengths outside
    /// `0..=T`.
    pub fn run(
        &self,
        x: ArrayView3<'_, F>,
        sequence_lens: Option<&[i64]>,
        initial_h: Option<ArrayView3<'_, F>>,
    ) -> Result<OnnxGruOutput<F>> {
        let (y, mut finals) = run_as_node(
            &self.stack,
            self.layout,
            x,
            sequence_lens,
            &[(initial_h, "initial_h")],
            self.threads,
        )?;
        let y_h = finals
            .pop()
            .ok_or_else(|| LstmError::invalid("GRU state", "expected one part"))?;
        Ok(OnnxGruOutput { y, y_h })
    }

    /// Runs the node on graph values (see `OnnxLstm::run_values`); gives `[Y, Y_h]`.
    pub(super) fn run_values(&self, inputs: &[Option<&Value<F>>]) -> Result<Vec<Value<F>>> {
        let NodeArgs { x, lens, h0, .. } = NodeArgs::read(inputs, "GRU")?;
        let out = self.run(x.view(), lens.as_deref(), h0.as_ref().map(|a| a.view()))?;
        Ok(vec![
            Value::Float(out.y.into_dyn()),
            Value::Float(out.y_h.into_dyn()),
        ])
    }

    /// The backward of [`OnnxGru::run_values`] (see `OnnxLstm::backward_values`): the
    /// gradients of `X` (slot 0), `W` (1), `R` (2), `B` (3) and `initial_h` (5), given those of
    /// `[Y, Y_h]`.
    pub(super) fn backward_values(
        &self,
        inputs: &[Option<&Value<F>>],
        d_outputs: &[Option<&ArrayD<F>>],
    ) -> Result<Vec<(usize, ArrayD<F>)>> {
        let NodeArgs { x, lens, h0, .. } = NodeArgs::read(inputs, "GRU")?;
        let d = d_outputs_of::<F, 2>(d_outputs, ["Y", "Y_h"])?;
        let g = backward_as_node(
            &self.stack,
            self.layout,
            x.view(),
            lens.as_deref(),
            &[(h0.as_ref().map(|a| a.view()), "initial_h")],
            self.threads,
            d.y.as_ref().map(|a| a.view()),
            &[d.finals[0].as_ref().map(|a| a.view())],
        )?;
        let stacked = |f: &dyn Fn(&GruGrad<F>) -> ArrayD<F>| {
            let parts: Vec<ArrayD<F>> = g.params.iter().map(f).collect();
            let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
            lstm_core::ndarray::stack(Axis(0), &views)
                .map_err(|e| LstmError::invalid("GRU gradient", e))
        };
        let mut out = vec![
            (0, g.x.into_dyn()),
            (1, stacked(&|e| e.w.clone().into_dyn())?),
            (2, stacked(&|e| e.r.clone().into_dyn())?),
        ];
        if self.has_bias {
            out.push((
                3,
                stacked(&|e| {
                    lstm_core::ndarray::concatenate(Axis(0), &[e.wb.view(), e.rb.view()])
                        .map_or_else(|_| e.wb.clone().into_dyn(), |a| a.into_dyn())
                })?,
            ));
        }
        if h0.is_some() {
            out.push((5, g.initial[0].clone().into_dyn()));
        }
        Ok(out)
    }
}
