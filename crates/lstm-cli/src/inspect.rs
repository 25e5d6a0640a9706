//! `lstm inspect`: what a model file holds and what of it can run.

use std::path::PathBuf;

use lexopt::prelude::*;
use lstm_layers::{Format, onnx, torch};

use crate::{CliError, CliResult};

/// Parsed arguments of `lstm inspect`.
#[derive(Debug)]
pub struct InspectArgs {
    model: PathBuf,
}

/// Parses the arguments after `inspect`.
pub fn parse(mut p: lexopt::Parser) -> CliResult<InspectArgs> {
    let mut model = None;
    while let Some(arg) = p.next()? {
        match arg {
            Value(v) if model.is_none() => model = Some(PathBuf::from(v)),
            Long("model") => model = Some(p.value()?.into()),
            _ => return Err(crate::help::unexpected("inspect", arg)),
        }
    }
    let model = model.ok_or_else(|| CliError::Usage("`lstm inspect` needs a MODEL".into()))?;
    Ok(InspectArgs { model })
}

/// Runs the command.
pub fn run(a: &InspectArgs) -> CliResult {
    match Format::of(&a.model)? {
        Format::Onnx => inspect_onnx(a),
        Format::Safetensors | Format::TorchSave => inspect_state_dict(a),
    }
}

fn inspect_onnx(a: &InspectArgs) -> CliResult {
    let graph = onnx::load::<f32>(&a.model)?;
    outln!("{}: ONNX graph", a.model.display());
    outln!("inputs:");
    for v in graph.inputs() {
        outln!("  {}", v.describe());
    }
    outln!("outputs:");
    for v in graph.outputs() {
        outln!("  {}", v.describe());
    }
    let nodes = graph.all_recurrent_nodes();
    outln!("recurrent nodes: {}", nodes.len());
    for (name, _) in &nodes {
        match graph.node(name) {
            Ok(n) => {
                let computed = graph.computed_state_inputs(name).unwrap_or_default();
                let note = if computed.is_empty() {
                    String::new()
                } else {
                    let c: Vec<String> = computed
                        .iter()
                        .map(|(slot, v)| format!("{} from {v:?}", slot_name(*slot)))
                        .collect();
                    format!("; computed by the graph: {}", c.join(", "))
                };
                outln!("  {name}: {}{note}", n.summary());
                outln!("    runs alone: lstm run --model M --node {name:?} ...");
            }
            Err(e) => outln!("  {name}: cannot run alone: {e}"),
        }
    }
    match graph.check_supported() {
        Ok(()) => outln!("runs whole: yes (lstm run --model M ...)"),
        Err(e) => {
            outln!("runs whole: no: {e}");
            let control_flow = graph
                .unsupported()
                .iter()
                .all(|(_, op)| matches!(*op, "If" | "Loop" | "Scan"));
            if nodes.len() == 1
                && graph.recurrent_nodes().is_empty()
                && control_flow
                && graph.node(&nodes[0].0).is_ok()
            {
                outln!("  without --node, `lstm run` runs its one recurrent node alone");
            }
        }
    }
    Ok(())
}

fn slot_name(slot: usize) -> &'static str {
    match slot {
        4 => "sequence_lens",
        5 => "initial_h",
        _ => "initial_c",
    }
}

fn inspect_state_dict(a: &InspectArgs) -> CliResult {
    let (format, tensors) = torch::tensor_list(&a.model)?;
    outln!(
        "{}: {format} state dict, {} tensors",
        a.model.display(),
        tensors.len()
    );
    for (name, shape, dtype) in &tensors {
        if shape.is_empty() && dtype != "float32" {
            outln!("  {name} {dtype}");
        } else {
            outln!("  {name} {shape:?} {dtype}");
        }
    }
    let names: Vec<String> = tensors.iter().map(|(n, _, _)| n.clone()).collect();
    let prefixes = torch::recurrent_prefixes(&names);
    outln!("recurrent models: {}", prefixes.len());
    for prefix in &prefixes {
        let what = torch::describe(&names, prefix);
        let flag = if prefixes.len() == 1 {
            String::new()
        } else {
            format!(" --prefix {prefix}")
        };
        match torch::load_model::<f32>(&a.model, Some(prefix)) {
            Ok(m) => {
                let (kind, stack) = match &m {
                    torch::TorchModel::Lstm(s) => (
                        "LSTM",
                        (
                            s.num_layers(),
                            s.num_directions(),
                            s.input_size(),
                            s.hidden_size(),
                            s.output_size(),
                        ),
                    ),
                    torch::TorchModel::Gru(s) => (
                        "GRU",
                        (
                            s.num_layers(),
                            s.num_directions(),
                            s.input_size(),
                            s.hidden_size(),
                            s.output_size(),
                        ),
                    ),
                };
                let (l, d, i, h, p) = stack;
                let proj = if p == h {
                    String::new()
                } else {
                    format!(", projection {p}")
                };
                outln!(
                    "  {prefix:?}: {kind}, {what}; {l} layer(s), {}, input {i}, hidden {h}{proj}",
                    if d == 2 {
                        "bidirectional"
                    } else {
                        "one direction"
                    }
                );
                outln!("    runs: lstm run --model M{flag} ...");
            }
            Err(e) => outln!("  {prefix:?}: cannot run: {e}"),
        }
    }
    Ok(())
}
