//! The array work of the tensor operators, each on one element type: shapes, axes, indices
//! and copies only.

use lstm_core::ndarray::{ArrayD, Axis, IxDyn, concatenate};

use super::super::tensor::{ElemType, Value};
use super::OpResult;

/// Sizes from a shape tensor, each non-negative.
pub(super) fn dims(v: &[i64]) -> OpResult<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d} in shape {v:?}")))
        .collect()
}

/// The number of elements of `shape`, or an error when it overflows.
pub(super) fn count(shape: &[usize]) -> OpResult<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than memory can hold"))
}

pub(super) fn fill<E: Clone>(shape: &[usize], v: E) -> OpResult<ArrayD<E>> {
    count(shape)?;
    Ok(ArrayD::from_elem(IxDyn(shape), v))
}

/// An axis in `-rank..rank`, made non-negative.
pub(super) fn axis(a: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    if (-r..r).contains(&a) {
        Ok(if a < 0 { a + r } else { a } as usize)
    } else {
        Err(format!(
            "axis {a} is outside -{r}..{r} for a tensor of rank {rank}"
        ))
    }
}

pub(super) fn owned<E: Clone>(a: lstm_core::ndarray::ArrayViewD<'_, E>) -> ArrayD<E> {
    a.as_standard_layout().into_owned()
}

pub(super) fn with_shape<E: Clone>(a: &ArrayD<E>, shape: &[usize]) -> OpResult<ArrayD<E>> {
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

pub(super) fn transpose<E: Clone>(a: &ArrayD<E>, perm: Option<&[i64]>) -> OpResult<ArrayD<E>> {
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
pub(super) fn axes_of(axes: &[i64], rank: usize) -> OpResult<Vec<usize>> {
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

pub(super) fn squeeze<E: Clone>(a: &ArrayD<E>, axes: Option<&[i64]>) -> OpResult<ArrayD<E>> {
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

pub(super) fn unsqueeze<E: Clone>(a: &ArrayD<E>, axes: &[i64]) -> OpResult<ArrayD<E>> {
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

pub(super) fn reshape<E: Clone>(
    a: &ArrayD<E>,
    shape: &[i64],
    allowzero: bool,
) -> OpResult<ArrayD<E>> {
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

pub(super) fn flatten<E: Clone>(a: &ArrayD<E>, at: i64) -> OpResult<ArrayD<E>> {
    let r = a.ndim() as i64;
    if !(-r..=r).contains(&at) {
        return Err(format!("axis {at} is outside -{r}..={r}"));
    }
    let at = if at < 0 { at + r } else { at } as usize;
    let outer = count(&a.shape()[..at])?;
    with_shape(a, &[outer, a.len().checked_div(outer).unwrap_or(0)])
}

/// The indices a Slice takes along one axis of size `dim`, with the operator's clamping.
pub(super) fn slice_indices(dim: usize, start: i64, end: i64, step: i64) -> OpResult<Vec<usize>> {
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

pub(super) fn slice<E: Clone>(
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

pub(super) fn concat<F: Clone>(parts: &[&Value<F>], at: i64) -> OpResult<Value<F>> {
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

pub(super) fn split<E: Clone>(
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

pub(super) fn gather<E: Clone>(a: &ArrayD<E>, idx: &ArrayD<i64>, at: i64) -> OpResult<ArrayD<E>> {
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

pub(super) fn cast<F: lstm_core::Scalar>(v: &Value<F>, to: ElemType) -> OpResult<Value<F>> {
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
pub(super) fn expand<E: Clone>(a: &ArrayD<E>, shape: &[i64]) -> OpResult<ArrayD<E>> {
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
