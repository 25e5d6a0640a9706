//! The tensor operators that exporters put around recurrent layers: data movement and shape
//! arithmetic only (Identity, Transpose, Squeeze, Unsqueeze, Reshape, Flatten, Slice, Concat,
//! Split, Gather, Shape, Cast, ConstantOfShape, Expand). None of them computes with the values
//! of a float tensor, so they give the same bits at any precision.
//!
//! Each operator follows its ONNX definition for every opset since 1: where an opset moved an
//! attribute to an input (`axes` of Squeeze and Unsqueeze, `starts` / `ends` of Slice, `split` of
//! Split), the node's attribute is used when it has one, and the input otherwise.

use lstm_core::ndarray::{ArrayD, IxDyn};

mod arrays;

use arrays::{
    cast, concat, dims, expand, fill, flatten, gather, reshape, slice, split, squeeze, transpose,
    unsqueeze,
};

use super::proto::{AttributeProto, NodeProto, TensorProto};
use super::tensor::{ElemType, Value, decode_tensor};

/// What an operator reports when its inputs do not fit its definition.
pub type OpResult<T> = std::result::Result<T, String>;

/// The operators [`Op::parse`] knows.
pub const SUPPORTED: &[&str] = &[
    "Identity",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Reshape",
    "Flatten",
    "Slice",
    "Concat",
    "Split",
    "Gather",
    "Shape",
    "Cast",
    "ConstantOfShape",
    "Expand",
];

/// A parsed tensor operator with its attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `Identity`.
    Identity,
    /// `Transpose`; no `perm` reverses the axes.
    Transpose(Option<Vec<i64>>),
    /// `Squeeze`; axes from the attribute (opset < 13) or the second input.
    Squeeze(Option<Vec<i64>>),
    /// `Unsqueeze`; axes from the attribute (opset < 13) or the second input.
    Unsqueeze(Option<Vec<i64>>),
    /// `Reshape` with its `allowzero` flag (opset 5 and later: the shape is the second input).
    Reshape(bool),
    /// `Flatten` at `axis`.
    Flatten(i64),
    /// `Slice`: from attributes (opset < 10), else from inputs.
    Slice(Option<SliceAttrs>),
    /// `Concat` along `axis`.
    Concat(i64),
    /// `Split` along `axis`; sizes from the attribute (opset < 13), else the second input, else
    /// equal parts.
    Split(i64, Option<Vec<i64>>),
    /// `Gather` along `axis`.
    Gather(i64),
    /// `Shape` with `start` and `end` (opset 15).
    Shape(i64, Option<i64>),
    /// `Cast` to an element type.
    Cast(ElemType),
    /// `ConstantOfShape` with its fill value (float 0 by default).
    ConstantOfShape(Value<f64>),
    /// `Expand`.
    Expand,
}

/// The attributes of a `Slice` below opset 10.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceAttrs {
    /// First index of each axis.
    pub starts: Vec<i64>,
    /// End (exclusive) of each axis.
    pub ends: Vec<i64>,
    /// The axes, `0..n` when absent.
    pub axes: Option<Vec<i64>>,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints_attr(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn int_attr(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

impl Op {
    /// The operator of a node of the default domain, or `None` when it is not one of
    /// [`SUPPORTED`].
    ///
    /// # Errors
    /// A message for an attribute the operator does not have or a value it cannot take.
    pub fn parse(node: &NodeProto) -> OpResult<Option<Op>> {
        let known: &[&str] = match node.op_type.as_str() {
            "Identity" | "Expand" | "ConstantOfShape" => &["value"],
            "Transpose" => &["perm"],
            "Squeeze" | "Unsqueeze" => &["axes"],
            "Reshape" => &["allowzero"],
            "Flatten" | "Concat" | "Gather" => &["axis"],
            "Slice" => &["starts", "ends", "axes"],
            "Split" => &["axis", "split", "num_outputs"],
            "Shape" => &["start", "end"],
            "Cast" => &["to", "saturate"],
            _ => return Ok(None),
        };
        if let Some(a) = node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            return Err(format!(
                "{} has no attribute {:?} that this library knows",
                node.op_type, a.name
            ));
        }
        Ok(Some(match node.op_type.as_str() {
            "Identity" => Op::Identity,
            "Transpose" => Op::Transpose(ints_attr(node, "perm")),
            "Squeeze" => Op::Squeeze(ints_attr(node, "axes")),
            "Unsqueeze" => Op::Unsqueeze(ints_attr(node, "axes")),
            "Reshape" => Op::Reshape(int_attr(node, "allowzero", 0) != 0),
            "Flatten" => Op::Flatten(int_attr(node, "axis", 1)),
            "Slice" => Op::Slice(match (ints_attr(node, "starts"), ints_attr(node, "ends")) {
                (Some(starts), Some(ends)) => Some(SliceAttrs {
                    starts,
                    ends,
                    axes: ints_attr(node, "axes"),
                }),
                (None, None) => None,
                _ => return Err("Slice has only one of the starts and ends attributes".into()),
            }),
            "Concat" => Op::Concat(
                attr(node, "axis")
                    .ok_or("Concat needs its axis attribute")?
                    .i,
            ),
            "Split" => Op::Split(int_attr(node, "axis", 0), ints_attr(node, "split")),
            "Gather" => Op::Gather(int_attr(node, "axis", 0)),
            "Shape" => Op::Shape(int_attr(node, "start", 0), attr(node, "end").map(|a| a.i)),
            "Cast" => Op::Cast(ElemType::from_code(
                i32::try_from(attr(node, "to").ok_or("Cast needs its to attribute")?.i)
                    .map_err(|_| "Cast: element type out of range")?,
            )),
            "ConstantOfShape" => Op::ConstantOfShape(match attr(node, "value") {
                Some(a) => {
                    let t: &TensorProto = a.t.as_ref().ok_or("value must be a tensor")?;
                    let v = decode_tensor(t).map_err(|e| e.to_string())?;
                    if v.shape().iter().product::<usize>() != 1 {
                        return Err(format!(
                            "ConstantOfShape: value must hold one element, has shape {:?}",
                            v.shape()
                        ));
                    }
                    v
                }
                None => Value::Float(ArrayD::zeros(IxDyn(&[1]))),
            }),
            "Expand" => Op::Expand,
            _ => return Ok(None),
        }))
    }

    /// Runs the operator on `inputs` (absent optional inputs are `None`), giving `outputs`
    /// results. Integer results come out as integers, float results at precision `F`.
    ///
    /// # Errors
    /// A message saying which input does not fit and why.
    pub fn run<F: lstm_core::Scalar>(
        &self,
        inputs: &[Option<&Value<F>>],
        outputs: usize,
    ) -> OpResult<Vec<Value<F>>> {
        let data = || -> OpResult<&Value<F>> {
            inputs
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| "the data input is missing".to_string())
        };
        let operand = |k: usize, what: &str| -> OpResult<Option<Vec<i64>>> {
            inputs
                .get(k)
                .copied()
                .flatten()
                .map(|v| v.ints(what).map_err(|e| e.to_string()))
                .transpose()
        };
        macro_rules! each {
            ($v:expr, $a:ident => $e:expr) => {
                match $v {
                    Value::Float($a) => Value::Float($e),
                    Value::Int($a) => Value::Int($e),
                }
            };
        }
        let one = |v: Value<F>| Ok(vec![v]);
        match self {
            Op::Identity => one(data()?.clone()),
            Op::Transpose(perm) => one(each!(data()?, a => transpose(a, perm.as_deref())?)),
            Op::Squeeze(axes) => {
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None => operand(1, "Squeeze axes")?,
                };
                one(each!(data()?, a => squeeze(a, axes.as_deref())?))
            }
            Op::Unsqueeze(axes) => {
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => operand(1, "Unsqueeze axes")?.ok_or("Unsqueeze needs axes")?,
                };
                one(each!(data()?, a => unsqueeze(a, &axes)?))
            }
            Op::Reshape(allowzero) => {
                let shape = operand(1, "Reshape shape")?.ok_or("Reshape needs its shape input")?;
                one(each!(data()?, a => reshape(a, &shape, *allowzero)?))
            }
            Op::Flatten(axis) => one(each!(data()?, a => flatten(a, *axis)?)),
            Op::Slice(attrs) => {
                let (starts, ends, axes, steps) = match attrs {
                    Some(a) => (a.starts.clone(), a.ends.clone(), a.axes.clone(), None),
                    None => (
                        operand(1, "Slice starts")?.ok_or("Slice needs starts")?,
                        operand(2, "Slice ends")?.ok_or("Slice needs ends")?,
                        operand(3, "Slice axes")?,
                        operand(4, "Slice steps")?,
                    ),
                };
                one(
                    each!(data()?, a => slice(a, &starts, &ends, axes.as_deref(), steps.as_deref())?),
                )
            }
            Op::Concat(axis) => {
                let parts: Vec<&Value<F>> = inputs.iter().copied().flatten().collect();
                one(concat(&parts, *axis)?)
            }
            Op::Split(axis, sizes) => {
                let sizes = match sizes {
                    Some(s) => Some(s.clone()),
                    None => operand(1, "Split sizes")?,
                };
                let v = data()?;
                Ok(match v {
                    Value::Float(a) => split(a, *axis, sizes.as_deref(), outputs)?
                        .into_iter()
                        .map(Value::Float)
                        .collect(),
                    Value::Int(a) => split(a, *axis, sizes.as_deref(), outputs)?
                        .into_iter()
                        .map(Value::Int)
                        .collect(),
                })
            }
            Op::Gather(axis) => {
                let idx = match inputs.get(1).copied().flatten() {
                    Some(Value::Int(i)) => i,
                    Some(Value::Float(_)) => return Err("Gather indices must be integers".into()),
                    None => return Err("Gather needs its indices".into()),
                };
                one(each!(data()?, a => gather(a, idx, *axis)?))
            }
            Op::Shape(start, end) => {
                let shape = data()?.shape();
                let r = shape.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (s, e) = (clamp(*start), clamp(end.unwrap_or(r)));
                let dims: Vec<i64> = shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
                one(Value::Int(
                    ArrayD::from_shape_vec(IxDyn(&[dims.len()]), dims)
                        .map_err(|e| e.to_string())?,
                ))
            }
            Op::Cast(to) => one(cast(data()?, *to)?),
            Op::ConstantOfShape(value) => {
                let shape = dims(
                    &operand(0, "ConstantOfShape shape")?
                        .ok_or("ConstantOfShape needs its shape")?,
                )?;
                one(match value.to_precision::<F>() {
                    Value::Float(v) => {
                        Value::Float(fill(&shape, v.iter().next().copied().unwrap_or_default())?)
                    }
                    Value::Int(v) => {
                        Value::Int(fill(&shape, v.iter().next().copied().unwrap_or_default())?)
                    }
                })
            }
            Op::Expand => {
                let shape = operand(1, "Expand shape")?.ok_or("Expand needs its shape input")?;
                one(each!(data()?, a => expand(a, &shape)?))
            }
        }
    }
}
