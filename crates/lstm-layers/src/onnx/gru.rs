//! The ONNX `GRU` operator (opset 7 and later): `X, W, R, B, sequence_lens, initial_h`; gate
//! order z, r, h; `linear_before_reset`, `clip`, `activations` with `activation_alpha` /
//! `activation_beta`, `direction`, and `layout` 0 and 1. The arithmetic is `lstm_gru::GruCell`.

use std::collections::HashMap;

use lstm_core::ndarray::{Array3, Array4, ArrayView3, Axis, s};
use lstm_core::{LstmError, Result, Scalar, check_shape};
use lstm_gru::{GruCell, RecurrentCell};

use super::proto::NodeProto;
use super::rnn::{NodeInputs, OnnxDirection, RnnWeights, to_float};
use super::tensor::{Tensor, Value};

/// An ONNX GRU node ready to run.
#[derive(Clone, Debug)]
pub struct OnnxGru<F> {
    cells: Vec<GruCell<F>>,
    direction: OnnxDirection,
    layout: usize,
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
        Ok(Self {
            cells,
            direction: attrs.direction,
            layout: attrs.layout,
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
        let batch_first = self.layout == 1;
        let x = if batch_first {
            x.permuted_axes([1, 0, 2])
        } else {
            x
        };
        let (t, b, _) = x.dim();
        let d = self.cells.len();
        let h = self.cells[0].hidden_size();
        let lengths = sequence_lens
            .map(|l| crate::lengths_from_signed(l, t))
            .transpose()?;
        let h0 = initial_h
            .map(|a| {
                let want = if batch_first { [b, d, h] } else { [d, b, h] };
                check_shape("initial_h", a.shape(), &want)?;
                Ok::<_, LstmError>(if batch_first {
                    a.permuted_axes([1, 0, 2])
                } else {
                    a
                })
            })
            .transpose()?;
        let mut y = Array4::zeros((t, d, b, h));
        let mut y_h = Array3::zeros((d, b, h));
        for (dir, cell) in self.cells.iter().enumerate() {
            let reverse = self.direction == OnnxDirection::Reverse || dir == 1;
            let out = cell.forward(
                x,
                h0.as_ref().map(|a| a.index_axis(Axis(0), dir)),
                lengths.as_deref(),
                reverse,
            )?;
            y.index_axis_mut(Axis(1), dir).assign(&out.output);
            let mut last = y_h.index_axis_mut(Axis(0), dir);
            last.assign(&out.h_n);
            if let Some(l) = &lengths {
                for (row, _) in l.iter().enumerate().filter(|(_, n)| **n == 0) {
                    last.row_mut(row).fill(F::zero());
                }
            }
        }
        Ok(if batch_first {
            OnnxGruOutput {
                y: y.permuted_axes([2, 0, 1, 3])
                    .as_standard_layout()
                    .into_owned(),
                y_h: y_h
                    .permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned(),
            }
        } else {
            OnnxGruOutput { y, y_h }
        })
    }

    /// Runs the node on graph values (see `OnnxLstm::run_values`); gives `[Y, Y_h]`.
    pub(super) fn run_values(&self, inputs: &[Option<&Value<F>>]) -> Result<Vec<Value<F>>> {
        let get = |k: usize| inputs.get(k).copied().flatten();
        let x: Array3<F> = to_float(
            get(0).ok_or_else(|| LstmError::invalid("GRU", "no input X"))?,
            "X",
        )?;
        let lens = get(4).map(|v| v.ints("sequence_lens")).transpose()?;
        let h0: Option<Array3<F>> = get(5).map(|v| to_float(v, "initial_h")).transpose()?;
        let out = self.run(x.view(), lens.as_deref(), h0.as_ref().map(|a| a.view()))?;
        Ok(vec![
            Value::Float(out.y.into_dyn()),
            Value::Float(out.y_h.into_dyn()),
        ])
    }
}
