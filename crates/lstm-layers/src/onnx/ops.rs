//! The tensor operators that exporters put around recurrent layers: data movement and shape
//! arithmetic only (Identity, Transpose, Squeeze, Unsqueeze, Reshape, Flatten, Slice, Concat,
//! Split, Gather, Shape, Cast, ConstantOfShape, Expand). None of them computes with the values
//! of a float tensor, so they give the same bits at any precision.
//!
//! Each operator follows its ONNX definition for every opset since 1: where an opset moved an
//! attribute to an input (`axes` of Squeeze and Unsqueeze, `starts` / `ends` of Slice, `split` of
//! Split), the node's attribute is used when it has one, and the input otherwise.

use lstm_core::ndarray::{ArrayD, Axis, IxDyn, concatenate};

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

/// Sizes from a shape tensor, each non-negative.
fn dims(v: &[i64]) -> OpResult<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d} in shape {v:?}")))
        .collect()
}

/// The number of elements of `shape`, or an error when it overflows.
fn count(shape: &[usize]) -> OpResult<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than memory can hold"))
}

fn fill<E: Clone>(shape: &[usize], v: E) -> OpResult<ArrayD<E>> {
    count(shape)?;
    Ok(ArrayD::from_elem(IxDyn(shape), v))
}

/// An axis in `-rank..rank`, made non-negative.
fn axis(a: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    if (-r..r).contains(&a) {
        Ok(if a < 0 { a + r } else { a } as usize)
    } else {
        Err(format!(
            "axis {a} is outside -{r}..{r} for a tensor of rank {rank}"
        ))
    }
}

fn owned<E: Clone>(a: lstm_core::ndarray::ArrayViewD<'_, E>) -> ArrayD<E> {
    a.as_standard_layout().into_owned()
}

fn with_shape<E: Clone>(a: &ArrayD<E>, shape: &[usize]) -> OpResult<ArrayD<E>> {
    owned(a.view())
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| {
            format!(
                "cannot give shape {:?} to a tensor of shape {:?}",
                shape,
                a.shape()
            )
        })
}

fn transpose<E: Clone>(a: &ArrayD<E>, perm: Option<&[i64]>) -> OpResult<ArrayD<E>> {
    let rank = a.ndim();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&v| axis(v, rank)).collect::<OpResult<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &p in &perm {
        if std::mem::replace(&mut seen[p], true) {
            return Err(format!("perm {perm:?} is not a permutation of 0..{rank}"));
        }
    }
    if perm.len() != rank {
        return Err(format!(
            "perm {perm:?} has {} axes, the tensor has {rank}",
            perm.len()
        ));
    }
    Ok(owned(a.view().permuted_axes(IxDyn(&perm))))
}

/// Normalised, sorted, distinct axes.
fn axes_of(axes: &[i64], rank: usize) -> OpResult<Vec<usize>> {
    let mut v: Vec<usize> = axes
        .iter()
        .map(|&x| axis(x, rank))
        .collect::<OpResult<_>>()?;
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("axes {axes:?} name an axis twice"));
    }
    Ok(v)
}

fn squeeze<E: Clone>(a: &ArrayD<E>, axes: Option<&[i64]>) -> OpResult<ArrayD<E>> {
    let shape = a.shape();
    let drop: Vec<usize> = match axes {
        Some(ax) => {
            let v = axes_of(ax, shape.len())?;
            if let Some(&bad) = v.iter().find(|&&k| shape[k] != 1) {
                return Err(format!(
                    "cannot squeeze axis {bad} of shape {shape:?}: it is not 1"
                ));
            }
            v
        }
        None => (0..shape.len()).filter(|&k| shape[k] == 1).collect(),
    };
    let out: Vec<usize> = (0..shape.len())
        .filter(|k| !drop.contains(k))
        .map(|k| shape[k])
        .collect();
    with_shape(a, &out)
}

fn unsqueeze<E: Clone>(a: &ArrayD<E>, axes: &[i64]) -> OpResult<ArrayD<E>> {
    let rank = a.ndim() + axes.len();
    let ins = axes_of(axes, rank)?;
    let mut rest = a.shape().iter();
    let out: Vec<usize> = (0..rank)
        .map(|k| {
            if ins.contains(&k) {
                1
            } else {
                rest.next().copied().unwrap_or(1)
            }
        })
        .collect();
    with_shape(a, &out)
}

fn reshape<E: Clone>(a: &ArrayD<E>, shape: &[i64], allowzero: bool) -> OpResult<ArrayD<E>> {
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (k, &d) in shape.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            0 if !allowzero => out.push(*a.shape().get(k).ok_or_else(|| {
                format!(
                    "shape {shape:?} copies axis {k}, the input has rank {}",
                    a.ndim()
                )
            })?),
            d => out.push(
                usize::try_from(d)
                    .map_err(|_| format!("invalid dimension {d} in shape {shape:?}"))?,
            ),
        }
    }
    if let Some(k) = infer {
        let known = count(&out)?;
        if known == 0 || !a.len().is_multiple_of(known) {
            return Err(format!(
                "cannot infer the -1 of shape {shape:?} for {} elements",
                a.len()
            ));
        }
        out[k] = a.len() / known;
    }
    if count(&out)? != a.len() {
        return Err(format!(
            "shape {shape:?} holds {} elements, the input of shape {:?} has {}",
            count(&out)?,
            a.shape(),
            a.len()
        ));
    }
    with_shape(a, &out)
}

fn flatten<E: Clone>(a: &ArrayD<E>, at: i64) -> OpResult<ArrayD<E>> {
    let r = a.ndim() as i64;
    if !(-r..=r).contains(&at) {
        return Err(format!("axis {at} is outside -{r}..={r}"));
    }
    let at = if at < 0 { at + r } else { at } as usize;
    let outer = count(&a.shape()[..at])?;
    with_shape(a, &[outer, a.len().checked_div(outer).unwrap_or(0)])
}

/// The indices a Slice takes along one axis of size `dim`, with the operator's clamping.
fn slice_indices(dim: usize, start: i64, end: i64, step: i64) -> OpResult<Vec<usize>> {
    if step == 0 {
        return Err("a Slice step of 0".into());
    }
    let d = dim as i64;
    let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (wrap(start), wrap(end));
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (s.clamp(0, d), e.clamp(0, d));
        while i < e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    } else {
        let (mut i, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
        while i > e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    }
    Ok(out)
}

fn slice<E: Clone>(
    a: &ArrayD<E>,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> OpResult<ArrayD<E>> {
    let n = starts.len();
    let default_axes: Vec<i64> = (0..n as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    if ends.len() != n || axes.len() != n || steps.is_some_and(|s| s.len() != n) {
        return Err(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        ));
    }
    axes_of(axes, a.ndim())?;
    let mut out = a.clone();
    for k in 0..n {
        let ax = axis(axes[k], a.ndim())?;
        let step = steps.map_or(1, |s| s[k]);
        let idx = slice_indices(a.shape()[ax], starts[k], ends[k], step)?;
        out = out.select(Axis(ax), &idx);
    }
    Ok(out)
}

fn concat<F: Clone>(parts: &[&Value<F>], at: i64) -> OpResult<Value<F>> {
    let first = parts.first().ok_or("Concat needs at least one input")?;
    let ax = axis(at, first.shape().len())?;
    let err = |e: lstm_core::ndarray::ShapeError| {
        let shapes: Vec<&[usize]> = parts.iter().map(|p| p.shape()).collect();
        format!("cannot concatenate shapes {shapes:?} along axis {ax}: {e}")
    };
    match first {
        Value::Float(_) => {
            let views = parts
                .iter()
                .map(|p| match p {
                    Value::Float(a) => Ok(a.view()),
                    Value::Int(_) => Err("Concat of float and integer tensors".to_string()),
                })
                .collect::<OpResult<Vec<_>>>()?;
            concatenate(Axis(ax), &views).map(Value::Float).map_err(err)
        }
        Value::Int(_) => {
            let views = parts
                .iter()
                .map(|p| match p {
                    Value::Int(a) => Ok(a.view()),
                    Value::Float(_) => Err("Concat of integer and float tensors".to_string()),
                })
                .collect::<OpResult<Vec<_>>>()?;
            concatenate(Axis(ax), &views).map(Value::Int).map_err(err)
        }
    }
}

fn split<E: Clone>(
    a: &ArrayD<E>,
    at: i64,
    sizes: Option<&[i64]>,
    outputs: usize,
) -> OpResult<Vec<ArrayD<E>>> {
    let ax = axis(at, a.ndim())?;
    let dim = a.shape()[ax];
    let sizes: Vec<usize> = match sizes {
        Some(s) => dims(s)?,
        None => {
            if outputs == 0 {
                return Err("Split has no outputs".into());
            }
            let part = dim.div_ceil(outputs);
            (0..outputs)
                .map(|k| part.min(dim.saturating_sub(k * part)))
                .collect()
        }
    };
    if sizes.len() != outputs || sizes.iter().sum::<usize>() != dim {
        return Err(format!(
            "sizes {sizes:?} do not split axis {ax} of size {dim} into {outputs} outputs"
        ));
    }
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&n| {
            let idx: Vec<usize> = (start..start + n).collect();
            start += n;
            a.select(Axis(ax), &idx)
        })
        .collect())
}

fn gather<E: Clone>(a: &ArrayD<E>, idx: &ArrayD<i64>, at: i64) -> OpResult<ArrayD<E>> {
    let ax = axis(at, a.ndim())?;
    let dim = a.shape()[ax] as i64;
    let flat: Vec<usize> = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            if (0..dim).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("index {i} is outside -{dim}..{dim} on axis {ax}"))
            }
        })
        .collect::<OpResult<_>>()?;
    let picked = a.select(Axis(ax), &flat);
    let mut shape = a.shape()[..ax].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&a.shape()[ax + 1..]);
    with_shape(&picked, &shape)
}

fn cast<F: lstm_core::Scalar>(v: &Value<F>, to: ElemType) -> OpResult<Value<F>> {
    let same_float = match F::NAME {
        "f32" => ElemType::Float32,
        _ => ElemType::Float64,
    };
    match (v, to) {
        (Value::Int(a), ElemType::Int64 | ElemType::Int32) => Ok(Value::Int(a.clone())),
        (Value::Int(a), t) if t == same_float => Ok(Value::Float(a.mapv(|i| F::of(i as f64)))),
        (Value::Float(a), t) if t == same_float => Ok(Value::Float(a.clone())),
        (Value::Float(a), ElemType::Int64 | ElemType::Int32) => a
            .iter()
            .map(|&x| {
                let t = x.f64().trunc();
                if t.is_finite() && t.abs() < 9.2e18 {
                    Ok(t as i64)
                } else {
                    Err(format!("cannot cast {x} to an integer"))
                }
            })
            .collect::<OpResult<Vec<i64>>>()
            .and_then(|v| ArrayD::from_shape_vec(a.raw_dim(), v).map_err(|e| e.to_string()))
            .map(Value::Int),
        (_, t) => Err(format!(
            "Cast of a {} tensor to {} in a graph that runs its floats as {}: mixed precision is not supported",
            v.kind(),
            t.name(),
            same_float.name()
        )),
    }
}

/// NumPy's broadcast of `a` and `shape`, as Expand defines it.
fn expand<E: Clone>(a: &ArrayD<E>, shape: &[i64]) -> OpResult<ArrayD<E>> {
    let want = dims(shape)?;
    let rank = a.ndim().max(want.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (have, want) = (pad(a.shape()), pad(&want));
    let out: Vec<usize> = have
        .iter()
        .zip(&want)
        .map(|(&x, &y)| match (x, y) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!(
                "cannot broadcast shape {:?} to {shape:?}",
                a.shape()
            )),
        })
        .collect::<OpResult<_>>()?;
    count(&out)?;
    let a = with_shape(a, &have)?;
    let view = a
        .broadcast(IxDyn(&out))
        .ok_or_else(|| format!("cannot broadcast shape {have:?} to {out:?}"))?;
    Ok(owned(view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lstm_core::ndarray::Array;

    fn arange(shape: &[usize]) -> ArrayD<i64> {
        let n: usize = shape.iter().product();
        Array::from_shape_vec(IxDyn(shape), (0..n as i64).collect()).unwrap()
    }

    #[test]
    fn slice_clamps_and_steps_as_onnx_says() {
        assert_eq!(slice_indices(5, 1, 3, 1).unwrap(), [1, 2]);
        assert_eq!(slice_indices(5, -2, i64::MAX, 1).unwrap(), [3, 4]);
        assert_eq!(
            slice_indices(5, i64::MAX, i64::MIN, -1).unwrap(),
            [4, 3, 2, 1, 0]
        );
        assert_eq!(slice_indices(5, 4, 0, -2).unwrap(), [4, 2]);
        assert_eq!(slice_indices(5, 0, 9, 2).unwrap(), [0, 2, 4]);
        assert!(slice_indices(5, 3, 1, 1).unwrap().is_empty());
        assert!(slice_indices(5, 0, 1, 0).is_err());
        let a = arange(&[4, 2, 3]);
        let s = slice(&a, &[1, -1], &[3, i64::MAX], Some(&[0, 2]), None).unwrap();
        assert_eq!(s.shape(), &[2, 2, 1]);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [8, 11, 14, 17]);
    }

    #[test]
    fn shape_moves() {
        let a = arange(&[2, 3, 4]);
        let t = transpose(&a, Some(&[1, 0, 2])).unwrap();
        assert_eq!(t.shape(), &[3, 2, 4]);
        assert_eq!(t[[2, 1, 3]], a[[1, 2, 3]]);
        assert!(transpose(&a, Some(&[0, 0, 1])).is_err());
        assert!(transpose(&a, Some(&[0, 1])).is_err());
        let u = unsqueeze(&a, &[0, -1]).unwrap();
        assert_eq!(u.shape(), &[1, 2, 3, 4, 1]);
        assert_eq!(squeeze(&u, None).unwrap(), a);
        assert_eq!(squeeze(&u, Some(&[-1])).unwrap().shape(), &[1, 2, 3, 4]);
        assert!(squeeze(&a, Some(&[0])).is_err());
        assert_eq!(reshape(&a, &[0, -1], false).unwrap().shape(), &[2, 12]);
        assert_eq!(reshape(&a, &[4, 0, -1], false).unwrap().shape(), &[4, 3, 2]);
        assert!(reshape(&a, &[4, 0, 3], false).is_err());
        assert!(reshape(&a, &[5, -1], false).is_err());
        assert!(reshape(&a, &[-1, -1], false).is_err());
        assert_eq!(flatten(&a, 2).unwrap().shape(), &[6, 4]);
        let g = gather(
            &a,
            &Array::from_shape_vec(IxDyn(&[2]), vec![-1, 0]).unwrap(),
            1,
        )
        .unwrap();
        assert_eq!(g.shape(), &[2, 2, 4]);
        assert_eq!(g[[0, 0, 0]], a[[0, 2, 0]]);
        let scalar = gather(&a, &ArrayD::from_elem(IxDyn(&[]), 1), 0).unwrap();
        assert_eq!(scalar.shape(), &[3, 4]);
        assert!(gather(&a, &ArrayD::from_elem(IxDyn(&[]), 2), 0).is_err());
        let parts = split(&a, 2, None, 2).unwrap();
        assert_eq!(parts[1].shape(), &[2, 3, 2]);
        assert!(split(&a, 2, Some(&[1, 2]), 2).is_err());
        let e = expand(&arange(&[3, 1]), &[2, 1, 4]).unwrap();
        assert_eq!(e.shape(), &[2, 3, 4]);
        assert_eq!(e[[1, 2, 3]], 2);
        assert!(expand(&arange(&[3]), &[2]).is_err());
    }
}
