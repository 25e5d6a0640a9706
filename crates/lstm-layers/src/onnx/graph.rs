//! A whole ONNX graph, run from its declared inputs to its declared outputs: recurrent nodes
//! (`LSTM`, `GRU`) and the tensor operators exporters put around them ([`super::ops`]).
//!
//! Loading folds every node whose inputs are all constants (initializers, `Constant` nodes, and
//! what is computed from them alone), so weights built by constant subgraphs are found. A node of
//! any other operator is kept as unsupported: [`OnnxGraph::run`] refuses the graph and names
//! it, while its recurrent nodes can still be run alone ([`OnnxGraph::node`]).

use std::collections::HashMap;

use lstm_core::ndarray::ArrayD;
use lstm_core::{LstmError, Result, Scalar};
use prost::Message;

use super::declared::{GraphValue, check_declared};
use super::gru::OnnxGru;
use super::lstm::OnnxLstm;
use super::ops::Op;
use super::proto::{self, NodeProto};
use super::tensor::{Tensor, Value, decode_tensor};

mod backward;
mod roles;
pub use backward::GraphGradients;
pub use roles::{InputRole, OutputRole};

/// A recurrent node of a graph.
#[derive(Clone, Debug)]
pub enum RecurrentNode<F> {
    /// An `LSTM` node.
    Lstm(Box<OnnxLstm<F>>),
    /// A `GRU` node.
    Gru(OnnxGru<F>),
}

#[derive(Clone, Debug)]
enum Kind<F> {
    Tensor(Op),
    Recurrent(RecurrentNode<F>),
    Unsupported,
}

#[derive(Clone, Debug)]
struct Step<F> {
    name: String,
    op_type: String,
    kind: Kind<F>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl<F> Step<F> {
    fn what(&self) -> String {
        format!("{} node {:?}", self.op_type, self.name)
    }

    /// Whether running the step reads input `k` (a recurrent node's weights were taken when it
    /// was built).
    fn reads(&self, k: usize) -> bool {
        !matches!(self.kind, Kind::Recurrent(_)) || matches!(k, 0 | 4..=6)
    }

    /// Whether input `k` carries the data (as opposed to a shape, axes or indices operand), so
    /// that a role passes through it.
    fn passes(&self, k: usize) -> bool {
        match &self.kind {
            Kind::Tensor(Op::Concat(_)) => true,
            Kind::Tensor(Op::Shape(..) | Op::ConstantOfShape(_)) => false,
            Kind::Tensor(_) => k == 0,
            _ => false,
        }
    }
}

/// An ONNX graph ready to run at precision `F`.
#[derive(Clone, Debug)]
pub struct OnnxGraph<F> {
    source: String,
    inputs: Vec<GraphValue>,
    outputs: Vec<GraphValue>,
    steps: Vec<Step<F>>,
    /// Constants the steps or the outputs read, at precision `F`.
    constants: HashMap<String, Value<F>>,
    /// The recurrent nodes inside subgraphs (If branches, Loop and Scan bodies).
    nested: Vec<Nested<F>>,
}

impl<F: Scalar> RecurrentNode<F> {
    /// One line of what the node is: operator, direction, sizes, layout, bias and peepholes.
    pub fn summary(&self) -> String {
        let dir = |d: super::OnnxDirection| match d {
            super::OnnxDirection::Forward => "forward",
            super::OnnxDirection::Reverse => "reverse",
            super::OnnxDirection::Bidirectional => "bidirectional",
        };
        match self {
            RecurrentNode::Lstm(l) => {
                let (i, h, bias, peep) = l.sizes();
                format!(
                    "LSTM {}, input {i}, hidden {h}, layout {}{}{}",
                    dir(l.direction()),
                    l.layout(),
                    if bias { ", bias" } else { ", no bias" },
                    if peep { ", peepholes" } else { "" }
                )
            }
            RecurrentNode::Gru(g) => {
                let (i, h, bias) = g.sizes();
                format!(
                    "GRU {}, input {i}, hidden {h}, layout {}{}",
                    dir(g.direction()),
                    g.layout(),
                    if bias { ", bias" } else { ", no bias" }
                )
            }
        }
    }
}

/// Where [`OnnxGraph::find`] found a recurrent node.
enum Found<'a, F> {
    Top(usize),
    Nested(&'a Nested<F>),
}

/// A recurrent node inside a subgraph, which runs alone ([`OnnxGraph::node`]) by its path.
#[derive(Clone, Debug)]
struct Nested<F> {
    /// `NODE/ATTRIBUTE/.../NODE`: the enclosing nodes and the attributes holding each
    /// subgraph, down to the recurrent node (each node by its name, or its first output).
    path: String,
    op_type: String,
    /// The node, or why it cannot run alone (weights its subgraph computes at run time).
    node: std::result::Result<RecurrentNode<F>, String>,
    /// The optional state inputs (slot, value) the subgraph computes at run time.
    computed: Vec<(usize, String)>,
}

/// A node's name for paths and messages: its name, or its first output when it has none.
fn label(node: &NodeProto) -> &str {
    if node.name.is_empty() {
        node.output.first().map_or("", String::as_str)
    } else {
        &node.name
    }
}

/// Computes `node` now if every input is a constant, adding its outputs to `consts`;
/// `false` when some input is not known before a run.
fn fold(op: &Op, node: &NodeProto, consts: &mut HashMap<String, Tensor>) -> Result<bool> {
    let args: Option<Vec<Option<&Tensor>>> = node
        .input
        .iter()
        .map(|n| {
            if n.is_empty() {
                Some(None)
            } else {
                consts.get(n).map(Some)
            }
        })
        .collect();
    let Some(args) = args else {
        return Ok(false);
    };
    let values = op
        .run(&args, node.output.len())
        .map_err(|m| LstmError::invalid(format!("{} node {:?}", node.op_type, node.name), m))?;
    for (name, v) in node.output.iter().zip(values) {
        consts.insert(name.clone(), v);
    }
    Ok(true)
}

/// Finds the recurrent nodes inside the subgraphs of `node` (an `If`'s branches, a `Loop`'s
/// or `Scan`'s body, at any depth), with the constants of the enclosing scopes; `path` is
/// the enclosing path.
fn scan_subgraphs<F: Scalar>(
    node: &NodeProto,
    path: &str,
    outer: &HashMap<String, Tensor>,
    out: &mut Vec<Nested<F>>,
) -> Result<()> {
    for a in &node.attribute {
        let subs: Vec<&proto::GraphProto> = a.g.as_deref().into_iter().chain(&a.graphs).collect();
        for (k, g) in subs.iter().enumerate() {
            let attr = if a.graphs.is_empty() {
                a.name.clone()
            } else {
                format!("{}[{k}]", a.name)
            };
            let here = format!("{path}{}/{attr}/", label(node));
            let mut scope = outer.clone();
            for t in &g.initializer {
                scope.insert(t.name.clone(), decode_tensor(t)?);
            }
            for inner in &g.node {
                if !is_default_domain(&inner.domain) {
                    continue;
                }
                match inner.op_type.as_str() {
                    "Constant" => {
                        if let Some(o) = inner.output.first() {
                            scope.insert(o.clone(), constant_value(inner)?);
                        }
                    }
                    "LSTM" | "GRU" => {
                        let built = if inner.op_type == "LSTM" {
                            OnnxLstm::from_node(inner, &scope)
                                .map(|l| RecurrentNode::Lstm(Box::new(l)))
                        } else {
                            OnnxGru::from_node(inner, &scope).map(RecurrentNode::Gru)
                        };
                        let computed = inner
                            .input
                            .iter()
                            .enumerate()
                            .skip(4)
                            .filter(|(k, n)| *k <= 6 && !n.is_empty() && !scope.contains_key(*n))
                            .map(|(k, n)| (k, n.clone()))
                            .collect();
                        out.push(Nested {
                            path: format!("{here}{}", label(inner)),
                            op_type: inner.op_type.clone(),
                            node: built.map_err(|e| e.to_string()),
                            computed,
                        });
                    }
                    _ => match Op::parse(inner) {
                        Ok(Some(op)) => {
                            // A node that cannot be folded leaves its outputs unknown.
                            let _ = fold(&op, inner, &mut scope);
                        }
                        _ => scan_subgraphs(inner, &here, &scope, out)?,
                    },
                }
            }
        }
    }
    Ok(())
}

/// The tensor of a `Constant` node, from whichever of its attributes it has.
fn constant_value(node: &NodeProto) -> Result<Tensor> {
    let what = format!("Constant node {:?}", node.name);
    let a = match node.attribute.as_slice() {
        [a] => a,
        other => {
            return Err(LstmError::format(
                what,
                format!("expected one attribute, found {}", other.len()),
            ));
        }
    };
    let scalar = |v: Value<f64>| v;
    Ok(match a.name.as_str() {
        "value" => decode_tensor(
            a.t.as_ref()
                .ok_or_else(|| LstmError::format(&what, "value holds no tensor"))?,
        )?,
        "value_float" => scalar(Value::Float(ArrayD::from_elem(vec![], f64::from(a.f)))),
        "value_int" => scalar(Value::Int(ArrayD::from_elem(vec![], a.i))),
        "value_floats" => Value::Float(
            ArrayD::from_shape_vec(
                vec![a.floats.len()],
                a.floats.iter().map(|&v| f64::from(v)).collect(),
            )
            .map_err(|e| LstmError::format(&what, e))?,
        ),
        "value_ints" => Value::Int(
            ArrayD::from_shape_vec(vec![a.ints.len()], a.ints.clone())
                .map_err(|e| LstmError::format(&what, e))?,
        ),
        other => {
            return Err(LstmError::unsupported(format!(
                "{what}: attribute {other:?} (supported: value, value_float(s), value_int(s))"
            )));
        }
    })
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

impl<F: Scalar> OnnxGraph<F> {
    /// Decodes a model; `source` names it in messages.
    ///
    /// # Errors
    /// [`LstmError::Format`] for a malformed model, a graph without a recurrent node, or weights
    /// that are not constants; [`LstmError::Unsupported`] for an opset below 7 or an attribute a
    /// recurrent node does not have; [`LstmError::Invalid`] for a constant subgraph that fails.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let model = proto::ModelProto::decode(bytes)
            .map_err(|e| LstmError::format(format!("{source} (ONNX protobuf)"), e))?;
        Self::from_model(model, source)
    }

    /// Builds the graph of a decoded model (external data already resolved, see
    /// [`super::external`]); `source` names it in messages.
    ///
    /// # Errors
    /// As [`OnnxGraph::from_bytes`].
    pub fn from_model(model: proto::ModelProto, source: &str) -> Result<Self> {
        let graph = model
            .graph
            .ok_or_else(|| LstmError::format(source, "the model has no graph"))?;
        if let Some(op) = model
            .opset_import
            .iter()
            .find(|o| is_default_domain(&o.domain))
            && op.version < 7
        {
            return Err(LstmError::unsupported(format!(
                "opset {} (the recurrent operators are supported from opset 7)",
                op.version
            )));
        }
        let mut consts: HashMap<String, Tensor> = HashMap::new();
        for t in &graph.initializer {
            consts.insert(t.name.clone(), decode_tensor(t)?);
        }
        let inputs: Vec<GraphValue> = graph
            .input
            .iter()
            .filter(|v| !consts.contains_key(&v.name))
            .map(GraphValue::from_proto)
            .collect();
        let outputs: Vec<GraphValue> = graph.output.iter().map(GraphValue::from_proto).collect();
        let mut steps = Vec::new();
        let mut nested = Vec::new();
        for node in &graph.node {
            let step = |kind| Step {
                name: node.name.clone(),
                op_type: node.op_type.clone(),
                kind,
                inputs: node.input.clone(),
                outputs: node.output.clone(),
            };
            if !is_default_domain(&node.domain) {
                steps.push(step(Kind::Unsupported));
                continue;
            }
            let kind = match node.op_type.as_str() {
                "Constant" => {
                    if let Some(out) = node.output.first() {
                        consts.insert(out.clone(), constant_value(node)?);
                    }
                    continue;
                }
                "LSTM" => Kind::Recurrent(RecurrentNode::Lstm(Box::new(OnnxLstm::from_node(
                    node, &consts,
                )?))),
                "GRU" => Kind::Recurrent(RecurrentNode::Gru(OnnxGru::from_node(node, &consts)?)),
                _ => match Op::parse(node).map_err(|m| {
                    LstmError::unsupported(format!("{} node {:?}: {m}", node.op_type, node.name))
                })? {
                    Some(op) => {
                        if fold(&op, node, &mut consts)? {
                            continue;
                        }
                        Kind::Tensor(op)
                    }
                    None => {
                        scan_subgraphs(node, "", &consts, &mut nested)?;
                        Kind::Unsupported
                    }
                },
            };
            steps.push(step(kind));
        }
        if nested.is_empty() && !steps.iter().any(|s| matches!(s.kind, Kind::Recurrent(_))) {
            let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
            return Err(LstmError::format(
                source,
                format!("no LSTM or GRU node in the graph (nodes: {ops:?})"),
            ));
        }
        let wanted = steps
            .iter()
            .flat_map(|s| s.inputs.iter().enumerate().filter(|(k, _)| s.reads(*k)))
            .map(|(_, n)| n)
            .chain(outputs.iter().map(|o| &o.name));
        let mut constants = HashMap::new();
        for name in wanted {
            if let Some(t) = consts.get(name) {
                constants.insert(name.clone(), t.to_precision::<F>());
            }
        }
        Ok(Self {
            source: source.to_string(),
            inputs,
            outputs,
            steps,
            constants,
            nested,
        })
    }

    /// The inputs a run must be given (graph inputs without an initializer), in order.
    pub fn inputs(&self) -> &[GraphValue] {
        &self.inputs
    }

    /// The outputs a run gives, in order.
    pub fn outputs(&self) -> &[GraphValue] {
        &self.outputs
    }

    /// The nodes [`OnnxGraph::run`] cannot execute: `(node name, operator)`.
    pub fn unsupported(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .filter(|s| matches!(s.kind, Kind::Unsupported))
            .map(|s| (s.name.as_str(), s.op_type.as_str()))
            .collect()
    }

    /// Checks that [`OnnxGraph::run`] can execute every node.
    ///
    /// # Errors
    /// [`LstmError::Unsupported`] naming every node it cannot, with its operator.
    pub fn check_supported(&self) -> Result<()> {
        let unsupported = self.unsupported();
        if unsupported.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = unsupported
            .iter()
            .map(|(n, op)| format!("{op} (node {n:?})"))
            .collect();
        Err(LstmError::unsupported(format!(
            "{} has nodes this library does not execute: {}",
            self.source,
            list.join(", ")
        )))
    }

    /// The recurrent nodes: `(node name, operator, first output)`.
    pub fn recurrent_nodes(&self) -> Vec<(&str, &str, &str)> {
        self.steps
            .iter()
            .filter(|s| matches!(s.kind, Kind::Recurrent(_)))
            .map(|s| {
                let first = s.outputs.iter().find(|o| !o.is_empty());
                (
                    s.name.as_str(),
                    s.op_type.as_str(),
                    first.map_or("", String::as_str),
                )
            })
            .collect()
    }

    /// Every recurrent node, at the top and inside subgraphs, for messages: the top ones by
    /// name (or output), the nested ones by path.
    fn known_nodes(&self) -> String {
        let mut known: Vec<String> = self
            .recurrent_nodes()
            .iter()
            .map(|(n, op, out)| {
                if n.is_empty() {
                    format!("{op} with output {out:?}")
                } else {
                    format!("{op} {n:?}")
                }
            })
            .collect();
        known.extend(
            self.nested
                .iter()
                .map(|n| format!("{} {:?}", n.op_type, n.path)),
        );
        known.join(", ")
    }

    fn find(&self, name: &str) -> Result<Found<'_, F>> {
        if let Some(n) = self.nested.iter().find(|n| n.path == name) {
            return Ok(Found::Nested(n));
        }
        if let Some(k) = self.steps.iter().position(|s| {
            matches!(s.kind, Kind::Recurrent(_))
                && (s.name == name || (s.name.is_empty() && s.outputs.iter().any(|o| o == name)))
        }) {
            return Ok(Found::Top(k));
        }
        let by_name: Vec<&Nested<F>> = self
            .nested
            .iter()
            .filter(|n| n.path.rsplit('/').next() == Some(name))
            .collect();
        match by_name.as_slice() {
            [one] => Ok(Found::Nested(one)),
            [] => Err(LstmError::invalid(
                "node",
                format!(
                    "{} has no LSTM or GRU node named {name:?} (it has {})",
                    self.source,
                    self.known_nodes()
                ),
            )),
            many => Err(LstmError::invalid(
                "node",
                format!(
                    "{} has {} LSTM or GRU nodes named {name:?}; give one by its path: {}",
                    self.source,
                    many.len(),
                    many.iter()
                        .map(|n| n.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Every recurrent node of the file that [`Self::node`] can pick: `(name or path,
    /// operator)`, the top graph's first, then those inside subgraphs by path.
    pub fn all_recurrent_nodes(&self) -> Vec<(String, &str)> {
        let mut all: Vec<(String, &str)> = self
            .recurrent_nodes()
            .into_iter()
            .map(|(n, op, out)| (if n.is_empty() { out } else { n }.to_string(), op))
            .collect();
        all.extend(
            self.nested
                .iter()
                .map(|n| (n.path.clone(), n.op_type.as_str())),
        );
        all
    }

    /// The recurrent node named `name` (or, for an unnamed node, with an output of that name;
    /// inside a subgraph, by its path `NODE/ATTRIBUTE/NODE`, or by its name when no other
    /// node has it), to run alone on its own input and output convention.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] listing the recurrent nodes when none has that name, or the
    /// paths when several do; [`LstmError::Unsupported`] for a nested node whose weights its
    /// subgraph computes at run time.
    pub fn node(&self, name: &str) -> Result<&RecurrentNode<F>> {
        match self.find(name)? {
            Found::Top(k) => match &self.steps[k].kind {
                Kind::Recurrent(r) => Ok(r),
                _ => unreachable!("find returns recurrent steps"),
            },
            Found::Nested(n) => n.node.as_ref().map_err(|m| {
                LstmError::unsupported(format!(
                    "{} node {:?} cannot run alone: {m}",
                    n.op_type, n.path
                ))
            }),
        }
    }

    /// The optional inputs of node `name` (slot 4 `sequence_lens`, 5 `initial_h`, 6 `initial_c`)
    /// that the graph computes at run time, so that running the node alone needs them given:
    /// `(slot, value name)`.
    ///
    /// # Errors
    /// As [`OnnxGraph::node`].
    pub fn computed_state_inputs(&self, name: &str) -> Result<Vec<(usize, &str)>> {
        Ok(match self.find(name)? {
            Found::Top(k) => self.steps[k]
                .inputs
                .iter()
                .enumerate()
                .skip(4)
                .filter(|(k, n)| *k <= 6 && !n.is_empty() && !self.constants.contains_key(*n))
                .map(|(k, n)| (k, n.as_str()))
                .collect(),
            Found::Nested(n) => n.computed.iter().map(|(k, v)| (*k, v.as_str())).collect(),
        })
    }

    /// Sets the threads every recurrent node uses (see [`crate::StackOptions::threads`]).
    pub fn set_threads(&mut self, threads: usize) {
        for s in &mut self.steps {
            match &mut s.kind {
                Kind::Recurrent(RecurrentNode::Lstm(l)) => l.threads = threads,
                Kind::Recurrent(RecurrentNode::Gru(g)) => g.threads = threads,
                _ => {}
            }
        }
    }

    /// Runs the graph on `feeds` (one value per entry of [`OnnxGraph::inputs`], by name) and
    /// gives the values of [`OnnxGraph::outputs`], in order.
    ///
    /// # Errors
    /// [`LstmError::Unsupported`] naming every node the graph has that this library does not
    /// execute; [`LstmError::Invalid`] for a missing, unknown or mistyped feed or a node whose
    /// inputs do not fit it; [`LstmError::Shape`] for a feed whose shape is not the declared
    /// one, and whatever the recurrent nodes report.
    pub fn run(&self, feeds: Vec<(String, Value<F>)>) -> Result<Vec<Value<F>>> {
        let (mut env, mut sizes) = self.evaluate(feeds)?;
        self.output_values(&mut env, &mut sizes, false)
    }

    /// Runs every step on `feeds` (checked as [`OnnxGraph::run`] says): every value the graph
    /// computes, by name, and the sizes the declared dimensions took.
    #[allow(clippy::type_complexity)]
    fn evaluate(
        &self,
        feeds: Vec<(String, Value<F>)>,
    ) -> Result<(HashMap<&str, Value<F>>, HashMap<&str, usize>)> {
        self.check_supported()?;
        let mut env: HashMap<&str, Value<F>> = HashMap::new();
        let mut sizes: HashMap<&str, usize> = HashMap::new();
        for (name, value) in feeds {
            let decl = self.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
                let names: Vec<String> = self.inputs.iter().map(GraphValue::describe).collect();
                LstmError::invalid(
                    format!("graph input {name:?}"),
                    format!(
                        "{} has no such input (its inputs: {})",
                        self.source,
                        names.join(", ")
                    ),
                )
            })?;
            check_declared(decl, &value, &mut sizes, "graph input")?;
            env.insert(decl.name.as_str(), value);
        }
        if let Some(missing) = self
            .inputs
            .iter()
            .find(|i| !env.contains_key(i.name.as_str()))
        {
            return Err(LstmError::invalid(
                format!("graph input {}", missing.describe()),
                "not given",
            ));
        }
        for step in &self.steps {
            let args = self.args(step, &env)?;
            let values = match &step.kind {
                Kind::Tensor(op) => op
                    .run(&args, step.outputs.len())
                    .map_err(|m| LstmError::invalid(step.what(), m))?,
                Kind::Recurrent(r) => match r {
                    RecurrentNode::Lstm(l) => l.run_values(&args),
                    RecurrentNode::Gru(g) => g.run_values(&args),
                }
                .map_err(|e| in_node(e, &step.what()))?,
                Kind::Unsupported => unreachable!("refused above"),
            };
            for (name, v) in step.outputs.iter().zip(values) {
                if !name.is_empty() {
                    env.insert(name.as_str(), v);
                }
            }
        }
        Ok((env, sizes))
    }

    /// The values `step` reads, from `env` or the constants; `None` for absent inputs and for
    /// a recurrent node's weights, which it holds.
    fn args<'a>(
        &'a self,
        step: &Step<F>,
        env: &'a HashMap<&str, Value<F>>,
    ) -> Result<Vec<Option<&'a Value<F>>>> {
        step.inputs
            .iter()
            .enumerate()
            .map(|(k, n)| {
                if n.is_empty() || !step.reads(k) {
                    return Ok(None);
                }
                env.get(n.as_str())
                    .or_else(|| self.constants.get(n))
                    .map(Some)
                    .ok_or_else(|| {
                        LstmError::format(
                            &self.source,
                            format!(
                                "{} reads {n:?}, which no graph input, initializer or earlier \
                                 node gives",
                                step.what()
                            ),
                        )
                    })
            })
            .collect()
    }

    /// The graph's outputs from `env`, checked against their declarations; taken out of `env`
    /// unless `keep`.
    fn output_values<'a>(
        &'a self,
        env: &mut HashMap<&'a str, Value<F>>,
        sizes: &mut HashMap<&'a str, usize>,
        keep: bool,
    ) -> Result<Vec<Value<F>>> {
        self.outputs
            .iter()
            .map(|o| {
                let found = if keep {
                    env.get(o.name.as_str()).cloned()
                } else {
                    env.remove(o.name.as_str())
                };
                let v = found
                    .or_else(|| self.constants.get(&o.name).cloned())
                    .ok_or_else(|| {
                        LstmError::format(
                            &self.source,
                            format!("no node gives the graph output {:?}", o.name),
                        )
                    })?;
                check_declared(o, &v, sizes, "graph output")?;
                Ok(v)
            })
            .collect()
    }
}

/// Names the node in an error about one of its inputs.
fn in_node(e: LstmError, node: &str) -> LstmError {
    match e {
        LstmError::Shape {
            what,
            expected,
            got,
        } => LstmError::Shape {
            what: format!("{what} of {node}"),
            expected,
            got,
        },
        LstmError::Invalid { what, reason } => LstmError::Invalid {
            what: format!("{what} of {node}"),
            reason,
        },
        other => other,
    }
}
