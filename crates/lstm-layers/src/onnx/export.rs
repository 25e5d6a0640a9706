//! Export of a stack (an `nn.LSTM` or `nn.GRU` state dict, or a model `lstm train` wrote) as
//! a standard ONNX graph: one `LSTM` or `GRU` node per layer (opset 17), the layers joined by
//! `Transpose` and `Reshape`, with PyTorch's input and outputs.
//!
//! The graph's inputs are `input [T, B, I]` (time-major, `T` and `B` dynamic) and, when asked
//! for, `sequence_lens [B]` (int32) and the initial states `initial_h` / `initial_c`
//! `[L * D, B, H]`, sliced per layer. Its outputs are `output [T, B, D * H]`, `h_n` and (for
//! an LSTM) `c_n` `[L * D, B, H]`: what `lstm run` writes for the state dict.

use lstm_core::ndarray::{Array1, ArrayView2, Axis, concatenate};
use lstm_core::{Activation, Direction, LstmError, RecurrentCell, Result, Scalar};
use lstm_engine::{LstmEngine, OutputMode, Recurrence};
use lstm_gru::GruCell;
use prost::Message;

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use crate::Stack;
use crate::convert::{bias_to_onnx, gates_to_onnx, peephole_to_onnx};
use crate::torch::TorchModel;

/// What the exported graph takes as inputs besides `input`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// A `sequence_lens [B]` input (int32).
    pub lengths: bool,
    /// `initial_h` (and, for an LSTM, `initial_c`) inputs, `[L * D, B, H]`.
    pub states: bool,
}

/// The ONNX model (its protobuf bytes) of `model`, in float32 or float64 as `F` is.
///
/// # Errors
/// [`LstmError::Unsupported`] for what the ONNX operators cannot express: a projection
/// (`proj_size`), the state-gated cell, held-open gates, or a stack whose directions are not
/// PyTorch's (forward, or forward and reverse).
pub fn export<F: Scalar>(model: &TorchModel<F>, opts: ExportOptions) -> Result<Vec<u8>> {
    let mut b = Builder::<F>::new(opts);
    match model {
        TorchModel::Lstm(s) => b.stack(s, true, |b, k, cells| b.lstm_node(k, cells))?,
        TorchModel::Gru(s) => b.stack(s, false, |b, k, cells| b.gru_node(k, cells))?,
    }
    Ok(b.finish().encode_to_vec())
}

struct Builder<F> {
    opts: ExportOptions,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    elem: std::marker::PhantomData<F>,
}

/// The element type of `F` in ONNX: FLOAT (1) or DOUBLE (11).
fn elem_of<F: Scalar>() -> i32 {
    if std::mem::size_of::<F>() == 8 { 11 } else { 1 }
}

/// A tensor's declared type: element type `elem` and dimensions, a number or a name.
fn value_info(name: &str, elem: i32, d: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = d
        .iter()
        .map(|v| match v {
            Ok(n) => Dimension {
                dim_value: Some(*n),
                dim_param: None,
            },
            Err(p) => Dimension {
                dim_value: None,
                dim_param: Some((*p).to_string()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: 2,
        ..AttributeProto::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: 7,
        ..AttributeProto::default()
    }
}

fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: 3,
        ..AttributeProto::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        attribute: attrs,
        domain: String::new(),
    }
}

impl<F: Scalar> Builder<F> {
    fn new(opts: ExportOptions) -> Self {
        Self {
            opts,
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            elem: std::marker::PhantomData,
        }
    }

    /// An initializer of `values` with shape `shape`, in `F`'s element type.
    fn float(&mut self, name: &str, shape: &[usize], values: impl Iterator<Item = F>) {
        let mut raw = Vec::new();
        for v in values {
            if elem_of::<F>() == 11 {
                raw.extend_from_slice(&v.f64().to_le_bytes());
            } else {
                raw.extend_from_slice(&(v.f64() as f32).to_le_bytes());
            }
        }
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: elem_of::<F>(),
            name: name.into(),
            raw_data: raw,
            ..TensorProto::default()
        });
    }

    fn int64s(&mut self, name: &str, values: &[i64]) {
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: 7,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
    }

    /// The layers of `stack`, each made by `layer(self, k, cells)`, joined, with the graph's
    /// inputs and outputs.
    fn stack<C>(
        &mut self,
        stack: &Stack<C, F>,
        lstm: bool,
        layer: impl Fn(&mut Self, usize, &[C]) -> Result<String>,
    ) -> Result<()>
    where
        C: lstm_core::RecurrentCell<F> + Sync,
    {
        let (l, d, i, h) = (
            stack.num_layers(),
            stack.num_directions(),
            stack.input_size(),
            stack.hidden_size(),
        );
        if stack.output_size() != h {
            return Err(LstmError::unsupported(
                "a projection (proj_size): the ONNX LSTM operator has none",
            ));
        }
        let pytorch = [Direction::Forward, Direction::Reverse];
        if stack.directions() != &pytorch[..d] {
            return Err(LstmError::unsupported(format!(
                "directions {:?}: export writes PyTorch's (forward, or forward and reverse)",
                stack.directions()
            )));
        }
        let elem = elem_of::<F>();
        let (t, bt) = (Err("T"), Err("B"));
        let ld = (l * d) as i64;
        self.inputs
            .push(value_info("input", elem, &[t, bt, Ok(i as i64)]));
        if self.opts.lengths {
            self.inputs.push(value_info("sequence_lens", 6, &[bt]));
        }
        if self.opts.states {
            self.inputs
                .push(value_info("initial_h", elem, &[Ok(ld), bt, Ok(h as i64)]));
            if lstm {
                self.inputs
                    .push(value_info("initial_c", elem, &[Ok(ld), bt, Ok(h as i64)]));
            }
            for k in 0..l {
                self.int64s(&format!("state_start_{k}"), &[(k * d) as i64]);
                self.int64s(&format!("state_end_{k}"), &[((k + 1) * d) as i64]);
            }
            self.int64s("state_axis", &[0]);
        }
        self.int64s("layer_shape", &[0, 0, -1]);
        let mut finals: Vec<String> = Vec::new();
        let mut cells: Vec<String> = Vec::new();
        for (k, cells_k) in stack.layers().iter().enumerate() {
            let y = layer(self, k, cells_k)?;
            finals.push(format!("Y_h_{k}"));
            if lstm {
                cells.push(format!("Y_c_{k}"));
            }
            // [T, D, B, H] -> [T, B, D, H] -> [T, B, D * H]: the next layer's input.
            let out = if k + 1 == l {
                "output".to_string()
            } else {
                format!("X_{}", k + 1)
            };
            let tr = format!("Y_t_{k}");
            self.nodes.push(node(
                "Transpose",
                &format!("transpose_{k}"),
                &[&y],
                &[&tr],
                vec![ints_attr("perm", &[0, 2, 1, 3])],
            ));
            self.nodes.push(node(
                "Reshape",
                &format!("reshape_{k}"),
                &[&tr, "layer_shape"],
                &[&out],
                vec![],
            ));
        }
        let concat = |b: &mut Self, parts: &[String], out: &str| {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            b.nodes.push(node(
                "Concat",
                &format!("concat_{out}"),
                &refs,
                &[out],
                vec![int_attr("axis", 0)],
            ));
        };
        concat(self, &finals, "h_n");
        let state = [Ok(ld), bt, Ok(h as i64)];
        self.outputs
            .push(value_info("output", elem, &[t, bt, Ok((d * h) as i64)]));
        self.outputs.push(value_info("h_n", elem, &state));
        if lstm {
            concat(self, &cells, "c_n");
            self.outputs.push(value_info("c_n", elem, &state));
        }
        Ok(())
    }

    /// The inputs a layer's node reads: its X, and the optional lengths and states sliced for
    /// layer `k`.
    fn node_inputs(&mut self, k: usize, parts: usize) -> Vec<String> {
        let x = if k == 0 {
            "input".to_string()
        } else {
            format!("X_{k}")
        };
        let mut ins = vec![x, String::new(), String::new(), String::new()];
        if self.opts.lengths {
            ins.push("sequence_lens".into());
        } else {
            ins.push(String::new());
        }
        if self.opts.states {
            for name in ["initial_h", "initial_c"].iter().take(parts) {
                let out = format!("{name}_{k}");
                self.nodes.push(node(
                    "Slice",
                    &format!("slice_{name}_{k}"),
                    &[
                        name,
                        &format!("state_start_{k}"),
                        &format!("state_end_{k}"),
                        "state_axis",
                    ],
                    &[&out],
                    vec![],
                ));
                ins.push(out);
            }
        }
        while ins.last().is_some_and(String::is_empty) {
            ins.pop();
        }
        ins
    }

    fn lstm_node(&mut self, k: usize, cells: &[LstmEngine<F>]) -> Result<String> {
        let e0 = &cells[0];
        let g = e0.gate_config();
        if e0.recurrence() != Recurrence::Hidden || e0.output_mode() != OutputMode::GateThenSquash {
            return Err(LstmError::unsupported(
                "the state-gated cell: the ONNX LSTM operator's gates read h, not c",
            ));
        }
        if g.any_open() {
            return Err(LstmError::unsupported(
                "held-open gates (Greff et al.'s NIG, NFG, NOG): the ONNX LSTM operator has none",
            ));
        }
        let h = e0.hidden_size();
        let d = cells.len();
        let (mut w, mut r, mut b, mut p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for e in cells {
            w.push(gates_to_onnx(e.w_input().view())?);
            r.push(gates_to_onnx(e.w_recurrent().view())?);
            let zero = Array1::zeros(4 * h);
            b.push(bias_to_onnx(e.bias(), zero.view())?);
            if let Some(pp) = e.peephole() {
                p.push(peephole_to_onnx(pp)?);
            }
        }
        let stack2 = |v: &[lstm_core::ndarray::Array2<F>]| -> Result<Vec<F>> {
            let views: Vec<ArrayView2<'_, F>> = v.iter().map(|a| a.view()).collect();
            let all = lstm_core::ndarray::stack(Axis(0), &views)
                .map_err(|e| LstmError::invalid("export", e))?;
            Ok(all.iter().copied().collect())
        };
        let stack1 = |v: &[Array1<F>]| -> Result<Vec<F>> {
            let views: Vec<_> = v.iter().map(|a| a.view()).collect();
            let all = concatenate(Axis(0), &views).map_err(|e| LstmError::invalid("export", e))?;
            Ok(all.iter().copied().collect())
        };
        let (iw, rw) = (w[0].ncols(), r[0].ncols());
        self.float(&format!("W_{k}"), &[d, 4 * h, iw], stack2(&w)?.into_iter());
        self.float(&format!("R_{k}"), &[d, 4 * h, rw], stack2(&r)?.into_iter());
        self.float(&format!("B_{k}"), &[d, 8 * h], stack1(&b)?.into_iter());
        let mut ins = self.node_inputs(k, 2);
        ins.resize(ins.len().max(4), String::new());
        ins[1] = format!("W_{k}");
        ins[2] = format!("R_{k}");
        ins[3] = format!("B_{k}");
        if !p.is_empty() {
            self.float(&format!("P_{k}"), &[d, 3 * h], stack1(&p)?.into_iter());
            ins.resize(8, String::new());
            ins[7] = format!("P_{k}");
        }
        let mut attrs = vec![
            int_attr("hidden_size", h as i64),
            string_attr(
                "direction",
                if d == 2 { "bidirectional" } else { "forward" },
            ),
        ];
        if g.input_forget {
            attrs.push(int_attr("input_forget", 1));
        }
        if let Some(c) = g.clip {
            attrs.push(AttributeProto {
                name: "clip".into(),
                f: c.f64() as f32,
                r#type: 1,
                ..AttributeProto::default()
            });
        }
        let acts = [g.f, g.g, g.h];
        if acts != [Activation::Sigmoid, Activation::Tanh, Activation::Tanh] {
            activations(&mut attrs, &acts, d);
        }
        let y = format!("Y_{k}");
        let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
        self.nodes.push(node(
            "LSTM",
            &format!("lstm_{k}"),
            &refs,
            &[&y, &format!("Y_h_{k}"), &format!("Y_c_{k}")],
            attrs,
        ));
        Ok(y)
    }

    fn gru_node(&mut self, k: usize, cells: &[GruCell<F>]) -> Result<String> {
        let h = cells[0].hidden_size();
        let d = cells.len();
        let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for c in cells {
            let (cw, cr) = c.weights();
            let (wb, rb) = c.biases();
            w.extend(cw.iter().copied());
            r.extend(cr.iter().copied());
            b.extend(wb.iter().copied());
            b.extend(rb.iter().copied());
        }
        let i = w.len() / (d * 3 * h);
        self.float(&format!("W_{k}"), &[d, 3 * h, i], w.into_iter());
        self.float(&format!("R_{k}"), &[d, 3 * h, h], r.into_iter());
        self.float(&format!("B_{k}"), &[d, 6 * h], b.into_iter());
        let mut ins = self.node_inputs(k, 1);
        ins.resize(ins.len().max(4), String::new());
        ins[1] = format!("W_{k}");
        ins[2] = format!("R_{k}");
        ins[3] = format!("B_{k}");
        let attrs = vec![
            int_attr("hidden_size", h as i64),
            string_attr(
                "direction",
                if d == 2 { "bidirectional" } else { "forward" },
            ),
            int_attr(
                "linear_before_reset",
                i64::from(cells[0].linear_before_reset()),
            ),
        ];
        let y = format!("Y_{k}");
        let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
        self.nodes.push(node(
            "GRU",
            &format!("gru_{k}"),
            &refs,
            &[&y, &format!("Y_h_{k}")],
            attrs,
        ));
        Ok(y)
    }

    fn finish(self) -> ModelProto {
        ModelProto {
            ir_version: 8,
            producer_name: "lstm".into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: "lstm_export".into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
        }
    }
}

/// The `activations` (f, g, h per direction) and their alphas and betas.
fn activations<F: Scalar>(attrs: &mut Vec<AttributeProto>, acts: &[Activation<F>; 3], d: usize) {
    let (mut names, mut alphas, mut betas) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..d {
        for a in acts {
            let (name, params) = a.to_onnx();
            names.push(name.as_bytes().to_vec());
            if let Some(al) = params.first() {
                alphas.push(al.f64() as f32);
            }
            if let Some(be) = params.get(1) {
                betas.push(be.f64() as f32);
            }
        }
    }
    attrs.push(AttributeProto {
        name: "activations".into(),
        strings: names,
        r#type: 8,
        ..AttributeProto::default()
    });
    for (name, v) in [("activation_alpha", alphas), ("activation_beta", betas)] {
        if !v.is_empty() {
            attrs.push(AttributeProto {
                name: name.into(),
                floats: v,
                r#type: 6,
                ..AttributeProto::default()
            });
        }
    }
}
