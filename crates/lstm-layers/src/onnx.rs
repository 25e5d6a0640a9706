//! Import of an ONNX model holding one `LSTM` node (opset 7 and later), with the operator's full
//! semantics: `X, W, R, B, sequence_lens, initial_h, initial_c, P`; gate order i, o, f, c;
//! `clip`, `input_forget`, `activations` with `activation_alpha` / `activation_beta`,
//! `direction`, and `layout` 0 and 1.
//!
//! The protobuf is decoded with `prost` message types for the subset of `onnx.proto` needed
//! here, written out below, so no `protoc` is needed at build time.

use lstm_core::ndarray::{Array3, Array4, ArrayD, ArrayView3, Axis, Ix3, IxDyn};
use lstm_core::{
    Activation, EngineSpec, GateConfig, Layout, LstmEngine, LstmError, Result, Scalar, check_shape,
};
use prost::Message;

use crate::{EmptyFinalState, LstmStack, StackOptions, convert};

/// Protobuf messages: the subset of `onnx.proto` this importer reads.
pub mod proto {
    #![allow(missing_docs)]

    /// `ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    /// `OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// `GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
    }

    /// `NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    /// `AttributeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// `TensorProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }
}

use proto::{AttributeProto, NodeProto, TensorProto};

/// A numeric tensor read from the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    /// Floating point (FLOAT, DOUBLE, FLOAT16), widened to `f64` exactly.
    Float(ArrayD<f64>),
    /// Integer (INT32, INT64).
    Int(ArrayD<i64>),
}

/// Decodes a `TensorProto`.
///
/// # Errors
/// [`LstmError::Format`] for inconsistent data, [`LstmError::Unsupported`] for other element
/// types and external data.
pub fn decode_tensor(t: &TensorProto) -> Result<Tensor> {
    let name = format!("tensor {:?}", t.name);
    let bad = |r: String| LstmError::format(&name, r);
    if t.data_location == 1 {
        return Err(LstmError::unsupported(format!(
            "{name} stores its data externally"
        )));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<_>>()?;
    let count: usize = shape.iter().product();
    let raw = &t.raw_data;
    let from_raw = |w: usize| -> Result<Option<std::slice::ChunksExact<'_, u8>>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() != count * w {
            return Err(bad(format!(
                "raw data has {} bytes, shape {shape:?} needs {}",
                raw.len(),
                count * w
            )));
        }
        Ok(Some(raw.chunks_exact(w)))
    };
    let float = |v: Vec<f64>| -> Result<Tensor> {
        if v.len() != count {
            return Err(bad(format!(
                "has {} values, shape {shape:?} needs {count}",
                v.len()
            )));
        }
        ArrayD::from_shape_vec(IxDyn(&shape), v)
            .map(Tensor::Float)
            .map_err(|e| bad(e.to_string()))
    };
    let int = |v: Vec<i64>| -> Result<Tensor> {
        if v.len() != count {
            return Err(bad(format!(
                "has {} values, shape {shape:?} needs {count}",
                v.len()
            )));
        }
        ArrayD::from_shape_vec(IxDyn(&shape), v)
            .map(Tensor::Int)
            .map_err(|e| bad(e.to_string()))
    };
    match t.data_type {
        1 => float(match from_raw(4)? {
            Some(c) => c
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        }),
        11 => float(match from_raw(8)? {
            Some(c) => c
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None => t.double_data.clone(),
        }),
        10 => float(match from_raw(2)? {
            Some(c) => c
                .map(|b| crate::torch::f16_to_f64(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            None => t
                .int32_data
                .iter()
                .map(|&v| crate::torch::f16_to_f64(v as u16))
                .collect(),
        }),
        6 => int(match from_raw(4)? {
            Some(c) => c
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        }),
        7 => int(match from_raw(8)? {
            Some(c) => c
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None => t.int64_data.clone(),
        }),
        other => Err(LstmError::unsupported(format!(
            "{name} has ONNX element type {other} (supported: FLOAT, DOUBLE, FLOAT16, INT32, INT64)"
        ))),
    }
}

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

/// An ONNX LSTM node ready to run.
#[derive(Clone, Debug)]
pub struct OnnxLstm<F> {
    stack: LstmStack<F>,
    direction: OnnxDirection,
    layout: usize,
    hidden: usize,
    /// `sequence_lens` stored in the model, if any.
    pub sequence_lens: Option<Vec<i64>>,
    /// `initial_h` stored in the model, if any (in the node's layout).
    pub initial_h: Option<Array3<F>>,
    /// `initial_c` stored in the model, if any (in the node's layout).
    pub initial_c: Option<Array3<F>>,
    /// Threads [`OnnxLstm::run`] uses (see [`StackOptions::threads`]); 1 by default.
    pub threads: usize,
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

/// Reads an `.onnx` file.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read; otherwise as [`OnnxLstm::from_bytes`].
pub fn load<F: Scalar>(path: impl AsRef<std::path::Path>) -> Result<OnnxLstm<F>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| LstmError::Io {
        path: path.display().to_string(),
        source,
    })?;
    OnnxLstm::from_bytes(&bytes, &path.display().to_string())
}

fn attr_str(a: &AttributeProto) -> String {
    String::from_utf8_lossy(&a.s).into_owned()
}

fn to_f<F: Scalar, D: lstm_core::ndarray::Dimension>(
    t: Tensor,
    what: &str,
) -> Result<lstm_core::ndarray::Array<F, D>> {
    match t {
        Tensor::Float(a) => {
            let shape = a.shape().to_vec();
            a.mapv(F::of)
                .into_dimensionality::<D>()
                .map_err(|_| LstmError::shape(what, format!("{}-D", D::NDIM.unwrap_or(0)), &shape))
        }
        Tensor::Int(_) => Err(LstmError::format(
            what,
            "expected a floating-point tensor, got integers",
        )),
    }
}

impl<F: Scalar> OnnxLstm<F> {
    /// Decodes a model and builds its LSTM node at precision `F`.
    ///
    /// # Errors
    /// [`LstmError::Format`] for a malformed model, no or several LSTM nodes, or weights that are
    /// not initializers; [`LstmError::Unsupported`] for an unknown attribute or attribute value
    /// or an opset below 7; [`LstmError::Shape`] for tensors that do not fit together.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let model = proto::ModelProto::decode(bytes)
            .map_err(|e| LstmError::format(format!("{name} (ONNX protobuf)"), e))?;
        let graph = model
            .graph
            .ok_or_else(|| LstmError::format(name, "the model has no graph"))?;
        if let Some(op) = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            && op.version < 7
        {
            return Err(LstmError::unsupported(format!(
                "opset {} (the LSTM operator is supported from opset 7)",
                op.version
            )));
        }
        let lstms: Vec<&NodeProto> = graph.node.iter().filter(|n| n.op_type == "LSTM").collect();
        let node = match lstms.as_slice() {
            [one] => *one,
            [] => {
                let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
                return Err(LstmError::format(
                    name,
                    format!("no LSTM node in the graph (nodes: {ops:?})"),
                ));
            }
            many => {
                return Err(LstmError::unsupported(format!(
                    "{} LSTM nodes in one graph (expected one)",
                    many.len()
                )));
            }
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(LstmError::unsupported(format!(
                "LSTM in domain {:?}",
                node.domain
            )));
        }
        let mut constants: std::collections::HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
            if let (Some(out), Some(t)) = (
                n.output.first(),
                n.attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref()),
            ) {
                constants.insert(out.as_str(), t);
            }
        }
        let input = |k: usize| {
            node.input
                .get(k)
                .filter(|s| !s.is_empty())
                .map(String::as_str)
        };
        let constant = |k: usize, what: &str| -> Result<Option<Tensor>> {
            match input(k) {
                None => Ok(None),
                Some(n) => match constants.get(n) {
                    Some(t) => decode_tensor(t).map(Some),
                    None if k <= 3 || k == 7 => Err(LstmError::format(
                        name,
                        format!("LSTM input {what} ({n:?}) must be an initializer or a Constant"),
                    )),
                    None => Ok(None),
                },
            }
        };
        let w: Array3<F> = to_f(
            constant(1, "W")?
                .ok_or_else(|| LstmError::format(name, "the LSTM node has no W input"))?,
            "W",
        )?;
        let r: Array3<F> = to_f(
            constant(2, "R")?
                .ok_or_else(|| LstmError::format(name, "the LSTM node has no R input"))?,
            "R",
        )?;

        let mut direction = OnnxDirection::Forward;
        let mut layout = 0usize;
        let mut hidden_attr = None;
        let mut gates = GateConfig::<F>::default();
        let (mut acts, mut alphas, mut betas) = (None, Vec::new(), Vec::new());
        for a in &node.attribute {
            match a.name.as_str() {
                "direction" => {
                    direction = match attr_str(a).as_str() {
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
                    layout = match a.i {
                        0 => 0,
                        1 => 1,
                        other => {
                            return Err(LstmError::unsupported(format!(
                                "layout {other} (expected 0 or 1)"
                            )));
                        }
                    }
                }
                "hidden_size" => hidden_attr = Some(a.i),
                "clip" => {
                    if a.f.is_nan() || a.f <= 0.0 {
                        return Err(LstmError::invalid(
                            "clip",
                            format!("must be positive, got {}", a.f),
                        ));
                    }
                    gates.clip = Some(F::of(f64::from(a.f)));
                }
                "input_forget" => {
                    gates.input_forget = match a.i {
                        0 => false,
                        1 => true,
                        other => {
                            return Err(LstmError::unsupported(format!(
                                "input_forget {other} (expected 0 or 1)"
                            )));
                        }
                    }
                }
                "activations" => {
                    acts = Some(
                        a.strings
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<Vec<_>>(),
                    )
                }
                "activation_alpha" => alphas = a.floats.clone(),
                "activation_beta" => betas = a.floats.clone(),
                other => return Err(LstmError::unsupported(format!("LSTM attribute {other:?}"))),
            }
        }
        let d = if direction == OnnxDirection::Bidirectional {
            2
        } else {
            1
        };
        let (wd, rows, _) = w.dim();
        if wd != d || rows == 0 || !rows.is_multiple_of(4) {
            return Err(LstmError::shape(
                "W",
                format!("[{d}, 4*hidden_size, input_size]"),
                w.shape(),
            ));
        }
        let h = rows / 4;
        if let Some(hs) = hidden_attr
            && hs != h as i64
        {
            return Err(LstmError::shape(
                "W",
                format!("[{d}, {}, input_size] for hidden_size {hs}", 4 * hs),
                w.shape(),
            ));
        }
        check_shape("R", r.shape(), &[d, 4 * h, h])?;
        let b: Option<lstm_core::ndarray::Array2<F>> =
            constant(3, "B")?.map(|t| to_f(t, "B")).transpose()?;
        if let Some(b) = &b {
            check_shape("B", b.shape(), &[d, 8 * h])?;
        }
        let p: Option<lstm_core::ndarray::Array2<F>> =
            constant(7, "P")?.map(|t| to_f(t, "P")).transpose()?;
        if let Some(p) = &p {
            check_shape("P", p.shape(), &[d, 3 * h])?;
        }
        let names = acts.unwrap_or_else(|| {
            ["Sigmoid", "Tanh", "Tanh"]
                .iter()
                .cycle()
                .take(3 * d)
                .map(|s| s.to_string())
                .collect()
        });
        if names.len() != 3 * d {
            return Err(LstmError::invalid(
                "activations",
                format!(
                    "expected {} functions (3 per direction), got {}",
                    3 * d,
                    names.len()
                ),
            ));
        }
        let funcs = resolve_activations(&names, &alphas, &betas)?;
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
        let sequence_lens = match constant(4, "sequence_lens")? {
            Some(Tensor::Int(a)) => Some(a.iter().copied().collect()),
            Some(Tensor::Float(_)) => {
                return Err(LstmError::format(
                    name,
                    "sequence_lens must be an integer tensor",
                ));
            }
            None => None,
        };
        let initial_h = constant(5, "initial_h")?
            .map(|t| to_f::<F, Ix3>(t, "initial_h"))
            .transpose()?;
        let initial_c = constant(6, "initial_c")?
            .map(|t| to_f::<F, Ix3>(t, "initial_c"))
            .transpose()?;
        let mut stack = LstmStack::new(vec![engines])?;
        if direction == OnnxDirection::Reverse {
            stack = stack.with_directions(&[lstm_core::Direction::Reverse])?;
        }
        Ok(Self {
            stack,
            direction,
            layout,
            hidden: h,
            sequence_lens,
            initial_h,
            initial_c,
            threads: 1,
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
        let d = self.stack.num_directions();
        let h = self.hidden;
        let layout = if self.layout == 1 {
            Layout::BatchFirst
        } else {
            Layout::TimeMajor
        };
        let (t, b) = lstm_core::unroll::dims(x.shape(), layout);
        let lens_src = sequence_lens.or(self.sequence_lens.as_deref());
        let lengths = lens_src
            .map(|l| crate::lengths_from_signed(l, t))
            .transpose()?;
        let state_in = |given: Option<ArrayView3<'_, F>>,
                        stored: &Option<Array3<F>>,
                        what: &str|
         -> Result<Option<Array3<F>>> {
            let a = match given {
                Some(a) => a.to_owned(),
                None => match stored {
                    Some(a) => a.clone(),
                    None => return Ok(None),
                },
            };
            let want = if self.layout == 1 {
                [b, d, h]
            } else {
                [d, b, h]
            };
            check_shape(what, a.shape(), &want)?;
            Ok(Some(if self.layout == 1 {
                a.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
            } else {
                a
            }))
        };
        let h0 = state_in(initial_h, &self.initial_h, "initial_h")?;
        let c0 = state_in(initial_c, &self.initial_c, "initial_c")?;
        let opts = StackOptions {
            layout,
            lengths: lengths.as_deref(),
            empty_final_state: EmptyFinalState::Zero,
            threads: self.threads,
        };
        let out = self.stack.forward(
            x,
            h0.as_ref().map(|a| a.view()),
            c0.as_ref().map(|a| a.view()),
            &opts,
        )?;
        let y = match layout {
            Layout::TimeMajor => out
                .output
                .into_shape_with_order((t, b, d, h))
                .map_err(|e| LstmError::invalid("Y", e))?
                .permuted_axes([0, 2, 1, 3])
                .as_standard_layout()
                .into_owned(),
            Layout::BatchFirst => out
                .output
                .into_shape_with_order((b, t, d, h))
                .map_err(|e| LstmError::invalid("Y", e))?,
        };
        let fix = |a: Array3<F>| {
            if self.layout == 1 {
                a.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
            } else {
                a
            }
        };
        Ok(OnnxOutput {
            y,
            y_h: fix(out.h_n),
            y_c: fix(out.c_n),
        })
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
