//! Gradients through a whole graph: reverse mode over its recurrent nodes and the tensor
//! operators around them.
//!
//! The tensor operators only move data ([`crate::onnx::ops`]), so each output element is a
//! copy of one input element, or of none. Rather than a backward rule per operator, the graph
//! is run a second time on *provenance*: every element of a float graph input and of a
//! recurrent node's output gets an id, each operator runs unchanged on the ids (integers move
//! as floats do), and an element's id says where it came from (`-1`: from a constant). A
//! gradient then flows back by adding each element's gradient into the element its id names,
//! and through each recurrent node, last first, by the node's own backward.

use std::collections::HashMap;

use lstm_core::ndarray::{ArrayD, IxDyn};
use lstm_core::{LstmError, Result, Scalar, check_shape};

use super::super::ops::Op;
use super::{Kind, OnnxGraph, RecurrentNode, in_node};
use crate::onnx::tensor::Value;

/// What [`OnnxGraph::backward`] gives.
#[derive(Clone, Debug)]
pub struct GraphGradients<F> {
    /// The graph's outputs, as [`OnnxGraph::run`] gives them.
    pub outputs: Vec<Value<F>>,
    /// The gradient with respect to each float graph input, by name, in the graph's order.
    pub inputs: Vec<(String, ArrayD<F>)>,
    /// The gradient with respect to each constant a recurrent node reads as a float input
    /// (`W`, `R`, `B` and `P`, and `initial_h` / `initial_c` when the model stores them), under
    /// the name the node reads it by: an initializer's or `Constant`'s name, or the name of
    /// the value a constant subgraph computed. A constant read by several nodes gets the sum.
    pub params: Vec<(String, ArrayD<F>)>,
}

/// Ids `first..first + len` in `shape`.
fn ids(first: usize, shape: &[usize]) -> ArrayD<i64> {
    let mut next = first as i64;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        next += 1;
        next - 1
    })
}

/// Adds `grad` into `acc` at each element's provenance.
fn scatter<F: Scalar>(acc: &mut [F], prov: &ArrayD<i64>, grad: &ArrayD<F>) {
    for (&id, &g) in prov.iter().zip(grad.iter()) {
        if let Ok(i) = usize::try_from(id) {
            acc[i] += g;
        }
    }
}

impl<F: Scalar> OnnxGraph<F> {
    /// The gradients of `L = sum over (name, d) in d_outputs of sum(output(name) * d)` with
    /// respect to every float graph input and every constant the recurrent nodes read, for the
    /// run of [`OnnxGraph::run`] on `feeds`. Outputs left out of `d_outputs` have a zero
    /// gradient. Through a recurrent node this is its stack's backward (`Stack::backward`)
    /// with the operator's semantics: lengths, `clip`, `input_forget`, peepholes and the
    /// activation functions.
    ///
    /// # Errors
    /// As [`OnnxGraph::run`]; [`LstmError::Invalid`] for a gradient of an output the graph
    /// does not have or that is not a float, and [`LstmError::Shape`] for one whose shape is
    /// not the output's.
    pub fn backward(
        &self,
        feeds: Vec<(String, Value<F>)>,
        d_outputs: &[(String, ArrayD<F>)],
    ) -> Result<GraphGradients<F>> {
        let (mut env, mut sizes) = self.evaluate(feeds)?;
        let outputs = self.output_values(&mut env, &mut sizes, true)?;
        for (name, d) in d_outputs {
            let k = self
                .outputs
                .iter()
                .position(|o| o.name == *name)
                .ok_or_else(|| {
                    LstmError::invalid(
                        format!("gradient of {name:?}"),
                        format!("{} has no output of that name", self.source),
                    )
                })?;
            match &outputs[k] {
                Value::Float(y) => {
                    check_shape(&format!("gradient of {name:?}"), d.shape(), y.shape())?
                }
                Value::Int(_) => {
                    return Err(LstmError::invalid(
                        format!("gradient of {name:?}"),
                        "the output holds integers, which have no gradient",
                    ));
                }
            }
        }
        let (prov, sources, total) = self.provenance(&env)?;
        let mut acc = vec![F::zero(); total];
        for (name, d) in d_outputs {
            if let Some(p) = prov.get(name.as_str()) {
                scatter(&mut acc, p, d);
            }
        }
        let mut params: Vec<(String, ArrayD<F>)> = Vec::new();
        for step in self.steps.iter().rev() {
            let Kind::Recurrent(r) = &step.kind else {
                continue;
            };
            let d_outs: Vec<Option<ArrayD<F>>> = step
                .outputs
                .iter()
                .map(|n| {
                    let p = prov.get(n.as_str())?;
                    Some(p.mapv(|id| usize::try_from(id).map_or(F::zero(), |i| acc[i])))
                })
                .collect();
            let refs: Vec<Option<&ArrayD<F>>> = d_outs.iter().map(Option::as_ref).collect();
            let args = self.args(step, &env)?;
            let grads = match r {
                RecurrentNode::Lstm(l) => l.backward_values(&args, &refs),
                RecurrentNode::Gru(g) => g.backward_values(&args, &refs),
            }
            .map_err(|e| in_node(e, &step.what()))?;
            for (slot, g) in grads {
                let Some(name) = step.inputs.get(slot).filter(|n| !n.is_empty()) else {
                    continue;
                };
                if let Some(p) = prov.get(name.as_str()) {
                    scatter(&mut acc, p, &g);
                } else if !env.contains_key(name.as_str()) {
                    match params.iter_mut().find(|(n, _)| n == name) {
                        Some((_, sum)) => *sum += &g,
                        None => params.push((name.clone(), g)),
                    }
                }
            }
        }
        let inputs = sources
            .into_iter()
            .map(|(name, first, shape)| {
                let n: usize = shape.iter().product();
                ArrayD::from_shape_vec(IxDyn(&shape), acc[first..first + n].to_vec())
                    .map(|a| (name.to_string(), a))
                    .map_err(|e| LstmError::invalid(format!("gradient of {name:?}"), e))
            })
            .collect::<Result<_>>()?;
        Ok(GraphGradients {
            outputs,
            inputs,
            params,
        })
    }

    /// The provenance of every float value that depends on a graph input (see the module
    /// documentation): the ids by value name, the float graph inputs with their first id and
    /// shape, and the number of ids.
    #[allow(clippy::type_complexity)]
    fn provenance<'a>(
        &'a self,
        env: &HashMap<&'a str, Value<F>>,
    ) -> Result<(
        HashMap<&'a str, ArrayD<i64>>,
        Vec<(&'a str, usize, Vec<usize>)>,
        usize,
    )> {
        let mut prov: HashMap<&str, ArrayD<i64>> = HashMap::new();
        let mut sources = Vec::new();
        let mut next = 0;
        let mut fresh = |name: &'a str, prov: &mut HashMap<&'a str, ArrayD<i64>>| {
            if let Some(Value::Float(a)) = env.get(name) {
                prov.insert(name, ids(next, a.shape()));
                let first = next;
                next += a.len();
                Some((first, a.shape().to_vec()))
            } else {
                None
            }
        };
        for i in &self.inputs {
            if let Some((first, shape)) = fresh(i.name.as_str(), &mut prov) {
                sources.push((i.name.as_str(), first, shape));
            }
        }
        for step in &self.steps {
            match &step.kind {
                Kind::Recurrent(_) => {
                    for o in step.outputs.iter().filter(|o| !o.is_empty()) {
                        fresh(o.as_str(), &mut prov);
                    }
                }
                Kind::Tensor(op) => {
                    let traced = step.inputs.iter().any(|n| prov.contains_key(n.as_str()));
                    if !traced {
                        continue;
                    }
                    let outs: Vec<Option<ArrayD<i64>>> = if let Op::Cast(to) = op {
                        // A cast to a float type keeps each element where it is; to an
                        // integer type it ends the gradient.
                        let p = prov.get(step.inputs[0].as_str());
                        vec![p.filter(|_| to.is_float()).cloned()]
                    } else {
                        let args: Vec<Option<Value<F>>> = step
                            .inputs
                            .iter()
                            .map(|n| {
                                if n.is_empty() {
                                    return None;
                                }
                                if let Some(p) = prov.get(n.as_str()) {
                                    return Some(Value::Int(p.clone()));
                                }
                                match env.get(n.as_str()).or_else(|| self.constants.get(n)) {
                                    Some(Value::Float(a)) => {
                                        Some(Value::Int(ArrayD::from_elem(a.raw_dim(), -1)))
                                    }
                                    other => other.cloned(),
                                }
                            })
                            .collect();
                        let refs: Vec<Option<&Value<F>>> =
                            args.iter().map(Option::as_ref).collect();
                        op.run(&refs, step.outputs.len())
                            .map_err(|m| LstmError::invalid(step.what(), m))?
                            .into_iter()
                            .map(|v| match v {
                                Value::Int(a) => Some(a),
                                Value::Float(_) => None,
                            })
                            .collect()
                    };
                    for (name, p) in step.outputs.iter().zip(outs) {
                        if let (Some(p), Some(Value::Float(_))) = (p, env.get(name.as_str())) {
                            prov.insert(name.as_str(), p);
                        }
                    }
                }
                Kind::Unsupported => {}
            }
        }
        Ok((prov, sources, next))
    }
}
