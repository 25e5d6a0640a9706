//! `lstm run` on an ONNX model: the whole graph from its inputs to its outputs, or, with
//! `--node`, one recurrent node alone.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use lstm_core::ndarray::{Array3, ArrayD};
use lstm_core::{LstmError, Scalar};
use lstm_layers::npy::{self, NpyArray, NpyElement};
use lstm_layers::onnx::{GraphValue, InputRole, OnnxGraph, OutputRole, RecurrentNode, Value};

use crate::run::{RunArgs, three_d, write};
use crate::{CliError, CliResult};

/// The command-line flag of each input role, and the node input it stands for.
const INPUT_FLAGS: [(InputRole, &str, &str); 4] = [
    (InputRole::Sequence, "--input", "X"),
    (InputRole::Lengths, "--sequence-lens", "sequence_lens"),
    (InputRole::InitialH, "--initial-h", "initial_h"),
    (InputRole::InitialC, "--initial-c", "initial_c"),
];

/// The command-line flag of each output role, and the node output it stands for.
const OUTPUT_FLAGS: [(OutputRole, &str, &str); 3] = [
    (OutputRole::Sequence, "--output", "Y"),
    (OutputRole::FinalH, "--final-h", "Y_h"),
    (OutputRole::FinalC, "--final-c", "Y_c"),
];

/// A `.npy` file as a graph value at precision `F`: floats must be of that precision (a run
/// computes in the precision of `--input`), integers may be int32 or int64.
pub(crate) fn read_value<F: Scalar>(path: &Path) -> CliResult<Value<F>> {
    Ok(match npy::read(path)? {
        NpyArray::F32(a) if F::NAME == "f32" => Value::Float(a.mapv(|v| F::of(f64::from(v)))),
        NpyArray::F64(a) if F::NAME == "f64" => Value::Float(a.mapv(F::of)),
        NpyArray::I32(a) => Value::Int(a.mapv(i64::from)),
        NpyArray::I64(a) => Value::Int(a),
        other => {
            return Err(LstmError::format(
                path.display(),
                format!(
                    "holds {}, but this run computes in {} (the precision of --input)",
                    other.dtype(),
                    if F::NAME == "f32" {
                        "float32"
                    } else {
                        "float64"
                    }
                ),
            )
            .into());
        }
    })
}

fn write_value<F: Scalar + NpyElement>(path: &Path, v: &Value<F>) -> CliResult {
    match v {
        Value::Float(a) => npy::write(path, a.view())?,
        Value::Int(a) => npy::write(path, a.view())?,
    }
    Ok(())
}

fn list(values: &[GraphValue]) -> String {
    let names: Vec<String> = values.iter().map(GraphValue::describe).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The feeds of a whole-graph run, and which graph input each role's flag fed.
pub(crate) struct Feeds<F> {
    pub values: Vec<(String, Value<F>)>,
    pub roles: Vec<(InputRole, String)>,
}

/// The feeds of a whole-graph run: `--graph-input`s by name, then each role's file (`paths`
/// in the order of [`INPUT_FLAGS`]; the sequence is `x`, already read) to the one graph input
/// that feeds it. Every graph input must be given.
pub(crate) fn feeds<F: Scalar>(
    graph: &OnnxGraph<F>,
    model: &Path,
    graph_inputs: &[(String, PathBuf)],
    paths: [Option<&Path>; 4],
    x: Option<ArrayD<F>>,
) -> CliResult<Feeds<F>> {
    let mut values: Vec<(String, Value<F>)> = Vec::new();
    let mut roles = Vec::new();
    for (name, path) in graph_inputs {
        values.push((name.clone(), read_value(path)?));
    }
    let mut x = x.map(Value::Float);
    for ((role, flag, slot), path) in INPUT_FLAGS.into_iter().zip(paths) {
        let Some(path) = path else { continue };
        let targets: Vec<&GraphValue> = graph
            .inputs()
            .iter()
            .filter(|i| graph.input_role(&i.name) == Some(role))
            .filter(|i| !graph_inputs.iter().any(|(n, _)| *n == i.name))
            .collect();
        let target = match targets.as_slice() {
            [one] => one,
            [] => {
                return Err(CliError::Usage(format!(
                    "{flag}: {} has no input that feeds a recurrent node's {slot} (its inputs: {}); \
                     name the input with --graph-input NAME=FILE.npy",
                    model.display(),
                    list(graph.inputs())
                )));
            }
            many => {
                return Err(CliError::Usage(format!(
                    "{flag}: several inputs of {} feed a recurrent node's {slot} ({}); name each \
                     with --graph-input NAME=FILE.npy",
                    model.display(),
                    list(&many.iter().map(|v| (*v).clone()).collect::<Vec<_>>())
                )));
            }
        };
        let value = match role {
            InputRole::Sequence => x
                .take()
                .unwrap_or_else(|| Value::Float(ArrayD::zeros(vec![0]))),
            _ => read_value(path)?,
        };
        values.push((target.name.clone(), value));
        roles.push((role, target.name.clone()));
    }
    if let Some(missing) = graph
        .inputs()
        .iter()
        .find(|i| !values.iter().any(|(n, _)| *n == i.name))
    {
        let flag = graph
            .input_role(&missing.name)
            .and_then(|r| INPUT_FLAGS.iter().find(|(role, ..)| *role == r))
            .map_or_else(
                || format!("--graph-input {}=FILE.npy", missing.name),
                |(_, flag, _)| format!("{flag} FILE.npy"),
            );
        return Err(CliError::Usage(format!(
            "graph input {} is not given: pass it with {flag}",
            missing.describe()
        )));
    }
    Ok(Feeds { values, roles })
}

/// The index of the one graph output that holds `role` (`flag` names it in messages).
pub(crate) fn output_of_role<F: Scalar>(
    graph: &OnnxGraph<F>,
    model: &Path,
    role: OutputRole,
    flag: &str,
) -> CliResult<usize> {
    let outputs = graph.outputs();
    let slot = OUTPUT_FLAGS
        .iter()
        .find(|(r, ..)| *r == role)
        .map_or("Y", |(_, _, slot)| *slot);
    let found: Vec<usize> = (0..outputs.len())
        .filter(|&k| graph.output_role(&outputs[k].name) == Some(role))
        .collect();
    match found.as_slice() {
        [k] => Ok(*k),
        [] => Err(CliError::Usage(format!(
            "{flag}: no output of {} comes from a recurrent node's {slot} alone (its \
             outputs: {}); name the output with --graph-output NAME=FILE.npy",
            model.display(),
            list(outputs)
        ))),
        many => {
            let names: Vec<GraphValue> = many.iter().map(|&k| outputs[k].clone()).collect();
            Err(CliError::Usage(format!(
                "{flag}: several outputs of {} come from a recurrent node's {slot} ({}); name \
                 one with --graph-output NAME=FILE.npy",
                model.display(),
                list(&names)
            )))
        }
    }
}

/// The usage error of `--batch-first` with a whole graph.
pub(crate) fn no_batch_first() -> CliError {
    CliError::Usage(
        "--batch-first applies to PyTorch models: an ONNX graph declares the layout of its \
         inputs (and each recurrent node its layout attribute)"
            .into(),
    )
}

/// Runs the whole graph.
pub fn run_graph<F: Scalar + NpyElement>(
    args: &RunArgs,
    graph: &OnnxGraph<F>,
    x: Option<ArrayD<F>>,
) -> CliResult {
    if args.batch_first {
        return Err(no_batch_first());
    }
    if let Err(LstmError::Unsupported(m)) = graph.check_supported() {
        let nodes: Vec<String> = graph
            .all_recurrent_nodes()
            .into_iter()
            .map(|(n, op)| format!("{op} {n:?}"))
            .collect();
        return Err(LstmError::unsupported(format!(
            "{m}; `--node NAME` runs one LSTM or GRU node alone (the file has {})",
            nodes.join(", ")
        ))
        .into());
    }
    let model = args.model.as_deref().unwrap_or(Path::new(""));
    let paths = [
        args.input.as_deref(),
        args.sequence_lens.as_deref(),
        args.initial_h.as_deref(),
        args.initial_c.as_deref(),
    ];
    let feeds = feeds(graph, model, &args.graph_inputs, paths, x)?;
    // Outputs: by name, then by what they hold; all chosen before anything runs.
    let outputs = graph.outputs();
    let mut writes: Vec<(usize, PathBuf)> = Vec::new();
    for (name, path) in &args.graph_outputs {
        let k = outputs
            .iter()
            .position(|o| o.name == *name)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--graph-output: {} has no output named {name:?} (its outputs: {})",
                    model.display(),
                    list(outputs)
                ))
            })?;
        writes.push((k, path.clone()));
    }
    for (role, flag, _) in OUTPUT_FLAGS {
        let path = match role {
            OutputRole::Sequence => &args.output,
            OutputRole::FinalH => &args.final_h,
            OutputRole::FinalC => &args.final_c,
        };
        if let Some(path) = path {
            writes.push((output_of_role(graph, model, role, flag)?, path.clone()));
        }
    }
    let values = graph.run(feeds.values)?;
    for (k, path) in writes {
        write_value(&path, &values[k])?;
    }
    Ok(())
}

/// Runs one recurrent node alone, on its own input and output convention.
pub fn run_node<F: Scalar + NpyElement>(
    args: &RunArgs,
    graph: &OnnxGraph<F>,
    name: &str,
    x: ArrayD<F>,
    [h0, c0]: [Option<ArrayD<F>>; 2],
    lens: Option<Vec<i64>>,
) -> CliResult {
    if !args.graph_inputs.is_empty() || !args.graph_outputs.is_empty() {
        return Err(CliError::Usage(
            "--graph-input and --graph-output name values of the whole graph; --node runs one \
             node alone"
                .into(),
        ));
    }
    let node = graph.node(name)?;
    // Optional inputs the graph computes (exporters build zero states from the input's shape)
    // are absent when the node runs alone, as ONNX lets them be: zero states, full lengths.
    let mut absent = Vec::new();
    for (slot, value) in graph.computed_state_inputs(name)? {
        let (given, flag, what, default) = match slot {
            4 => (
                lens.is_some(),
                "--sequence-lens",
                "sequence_lens",
                "every sequence full length",
            ),
            5 => (h0.is_some(), "--initial-h", "initial_h", "zeros"),
            _ => (c0.is_some(), "--initial-c", "initial_c", "zeros"),
        };
        if !given {
            absent.push(format!(
                "{what} (which the graph computes as {value:?}) is absent: {default}; {flag} sets it"
            ));
        }
    }
    let (op, layout) = match node {
        RecurrentNode::Lstm(l) => ("LSTM", l.layout()),
        RecurrentNode::Gru(g) => ("GRU", g.layout()),
    };
    if args.batch_first && layout == 0 {
        return Err(CliError::Usage(format!(
            "--batch-first: {op} node {name:?} has layout 0 (time-major); its layout attribute \
             decides"
        )));
    }
    let (xs, hs) = if layout == 1 {
        ("[B, T, I] (layout 1)", "[B, D, H] (layout 1)")
    } else {
        ("[T, B, I] (layout 0)", "[D, B, H] (layout 0)")
    };
    // Nothing more can be done if standard error is gone.
    let _ = writeln!(
        std::io::stderr(),
        "note: running {op} node {name:?} alone on its own inputs and outputs (X {xs}, Y \
         [T, D, B, H] or layout 1's [B, T, D, H]), not the whole graph"
    );
    for a in absent {
        let _ = writeln!(std::io::stderr(), "note: {a}");
    }
    let x = three_d(x, "X", xs)?;
    let state = |a: Option<ArrayD<F>>, what: &str| -> CliResult<Option<Array3<F>>> {
        a.map(|a| three_d(a, what, hs)).transpose()
    };
    let (h0, c0) = (state(h0, "initial_h")?, state(c0, "initial_c")?);
    match node {
        RecurrentNode::Lstm(l) => {
            let out = l.run(
                x.view(),
                lens.as_deref(),
                h0.as_ref().map(|a| a.view()),
                c0.as_ref().map(|a| a.view()),
            )?;
            write(&args.output, out.y.view().into_dyn())?;
            write(&args.final_h, out.y_h.view().into_dyn())?;
            write(&args.final_c, out.y_c.view().into_dyn())?;
        }
        RecurrentNode::Gru(g) => {
            if c0.is_some() || args.final_c.is_some() {
                return Err(CliError::Usage(format!(
                    "GRU node {name:?} has no cell state: --initial-c and --final-c apply to LSTM \
                     nodes"
                )));
            }
            let out = g.run(x.view(), lens.as_deref(), h0.as_ref().map(|a| a.view()))?;
            write(&args.output, out.y.view().into_dyn())?;
            write(&args.final_h, out.y_h.view().into_dyn())?;
        }
    }
    Ok(())
}
