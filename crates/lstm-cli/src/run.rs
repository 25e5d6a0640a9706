//! `lstm run`: a PyTorch (safetensors) or ONNX model over `.npy` inputs.

use std::path::{Path, PathBuf};

use lexopt::prelude::*;
use lstm_core::ndarray::{ArrayD, Ix1, Ix3};
use lstm_core::{Layout, LstmError, Scalar};
use lstm_layers::npy::{self, NpyArray, NpyElement};
use lstm_layers::{Format, Model, StackOptions, onnx, torch};

use crate::{CliError, CliResult};

/// Parsed arguments of `lstm run`.
#[derive(Debug, Default)]
pub struct RunArgs {
    pub(crate) model: Option<PathBuf>,
    pub(crate) input: Option<PathBuf>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) initial_h: Option<PathBuf>,
    pub(crate) initial_c: Option<PathBuf>,
    pub(crate) final_h: Option<PathBuf>,
    pub(crate) final_c: Option<PathBuf>,
    pub(crate) sequence_lens: Option<PathBuf>,
    pub(crate) batch_first: bool,
    pub(crate) prefix: Option<String>,
    pub(crate) threads: usize,
    pub(crate) node: Option<String>,
    pub(crate) graph_inputs: Vec<(String, PathBuf)>,
    pub(crate) graph_outputs: Vec<(String, PathBuf)>,
}

/// Parses the arguments after `run`.
pub fn parse(mut p: lexopt::Parser) -> CliResult<RunArgs> {
    let mut a = RunArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => a.model = Some(p.value()?.into()),
            Long("input") => a.input = Some(p.value()?.into()),
            Long("output") => a.output = Some(p.value()?.into()),
            Long("initial-h") => a.initial_h = Some(p.value()?.into()),
            Long("initial-c") => a.initial_c = Some(p.value()?.into()),
            Long("final-h") => a.final_h = Some(p.value()?.into()),
            Long("final-c") => a.final_c = Some(p.value()?.into()),
            Long("sequence-lens") => a.sequence_lens = Some(p.value()?.into()),
            Long("batch-first") => a.batch_first = true,
            Long("prefix") => a.prefix = Some(p.value()?.string()?),
            Long("threads") => a.threads = crate::parse_threads(&p.value()?.string()?)?,
            Long("node") => a.node = Some(p.value()?.string()?),
            Long("graph-input") => a
                .graph_inputs
                .push(named_file(&p.value()?.string()?, "--graph-input")?),
            Long("graph-output") => a
                .graph_outputs
                .push(named_file(&p.value()?.string()?, "--graph-output")?),
            _ => return Err(crate::help::unexpected("run", arg)),
        }
    }
    Ok(a)
}

/// `NAME=FILE` of `--graph-input` and `--graph-output`.
pub(crate) fn named_file(v: &str, flag: &str) -> CliResult<(String, PathBuf)> {
    match v.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_string(), file.into()))
        }
        _ => Err(CliError::Usage(format!(
            "{flag} needs NAME=FILE.npy, got {v:?}"
        ))),
    }
}

fn required<'a>(v: &'a Option<PathBuf>, flag: &str) -> CliResult<&'a Path> {
    v.as_deref()
        .ok_or_else(|| CliError::Usage(format!("`lstm run` needs {flag}")))
}

/// Reads a float `.npy` at precision `F`.
pub(crate) fn read_float<F: Scalar>(path: &Path, what: &str) -> CliResult<ArrayD<F>> {
    Ok(match npy::read(path)? {
        NpyArray::F32(a) => a.mapv(|v| F::of(f64::from(v))),
        NpyArray::F64(a) => a.mapv(F::of),
        other => {
            return Err(LstmError::format(
                path.display(),
                format!("{what} must be float32 or float64, got {}", other.dtype()),
            )
            .into());
        }
    })
}

pub(crate) fn read_lengths(path: &Path) -> CliResult<Vec<i64>> {
    let a: ArrayD<i64> = match npy::read(path)? {
        NpyArray::I32(a) => a.mapv(i64::from),
        NpyArray::I64(a) => a,
        other => {
            return Err(LstmError::format(
                path.display(),
                format!(
                    "sequence lengths must be int32 or int64, got {}",
                    other.dtype()
                ),
            )
            .into());
        }
    };
    let shape = a.shape().to_vec();
    let v = a.into_dimensionality::<Ix1>().map_err(|_| {
        LstmError::shape(
            format!("sequence lengths {}", path.display()),
            "[B]",
            &shape,
        )
    })?;
    Ok(v.to_vec())
}

pub(crate) fn three_d<F: Clone>(
    a: ArrayD<F>,
    what: &str,
    expected: &str,
) -> CliResult<lstm_core::ndarray::Array3<F>> {
    let shape = a.shape().to_vec();
    Ok(a.into_dimensionality::<Ix3>()
        .map_err(|_| LstmError::shape(what, expected, &shape))?)
}

pub(crate) fn write<F: NpyElement>(
    path: &Option<PathBuf>,
    a: lstm_core::ndarray::ArrayViewD<'_, F>,
) -> CliResult {
    if let Some(p) = path {
        npy::write(p, a)?;
    }
    Ok(())
}

/// Runs the command. The precision is that of `--input` (or, without it, of the first float
/// `--graph-input`).
pub fn run(args: &RunArgs) -> CliResult {
    required(&args.model, "--model MODEL")?;
    if args.graph_outputs.is_empty() {
        required(&args.output, "--output Y.npy")?;
    }
    let Some(input) = args.input.as_deref() else {
        if args.graph_inputs.is_empty() {
            required(&args.input, "--input X.npy")?;
        }
        for (_, path) in &args.graph_inputs {
            match npy::read(path)? {
                NpyArray::F32(_) => return run_typed::<f32>(args, None),
                NpyArray::F64(_) => return run_typed::<f64>(args, None),
                _ => {}
            }
        }
        return Err(CliError::Usage(
            "`lstm run` needs --input X.npy or a float32 or float64 --graph-input, to set the \
             precision"
                .into(),
        ));
    };
    match npy::read(input)? {
        NpyArray::F32(x) => run_typed::<f32>(args, Some(x)),
        NpyArray::F64(x) => run_typed::<f64>(args, Some(x)),
        other => Err(LstmError::format(
            input.display(),
            format!("input must be float32 or float64, got {}", other.dtype()),
        )
        .into()),
    }
}

fn run_typed<F: Scalar + NpyElement>(args: &RunArgs, x: Option<ArrayD<F>>) -> CliResult {
    let model = required(&args.model, "--model MODEL")?;
    let format = Format::of(model)?;
    if format.is_state_dict()
        && (args.node.is_some() || !args.graph_inputs.is_empty() || !args.graph_outputs.is_empty())
    {
        return Err(CliError::Usage(
            "--node, --graph-input and --graph-output apply to .onnx models only".into(),
        ));
    }
    if format == Format::Onnx && args.prefix.is_some() {
        return Err(CliError::Usage(
            "--prefix applies to state dicts (.safetensors, .pt) only".into(),
        ));
    }
    let loaded = Model::<F>::load(model, args.prefix.as_deref())?;
    let mut auto = None;
    if let (Model::Onnx(graph), None) = (&loaded, &args.node) {
        // The graph reads its own inputs: each file must hold the type the graph declares.
        let mut graph = graph.clone();
        graph.set_threads(args.threads);
        auto = single_node(args, &graph);
        if auto.is_none() {
            return crate::graph::run_graph(args, &graph, x);
        }
    }
    let x = x.ok_or_else(|| CliError::Usage("`lstm run` needs --input X.npy".into()))?;
    let h0 = args
        .initial_h
        .as_deref()
        .map(|p| read_float::<F>(p, "initial h"))
        .transpose()?;
    let c0 = args
        .initial_c
        .as_deref()
        .map(|p| read_float::<F>(p, "initial c"))
        .transpose()?;
    let lens = args
        .sequence_lens
        .as_deref()
        .map(read_lengths)
        .transpose()?;
    match loaded {
        Model::StateDict {
            model: stack,
            names,
            prefix,
            ..
        } => {
            if matches!(stack, torch::TorchModel::Gru(_))
                && (c0.is_some() || args.final_c.is_some())
            {
                return Err(CliError::Usage(
                    "this state dict is an nn.GRU, which has no cell state: --initial-c and \
                     --final-c apply to LSTMs"
                        .into(),
                ));
            }
            let x_shape = if args.batch_first {
                "[B, T, I] (--batch-first)"
            } else {
                "[T, B, I]"
            };
            let x = three_d(x, "input", x_shape)?;
            let layout = if args.batch_first {
                Layout::BatchFirst
            } else {
                Layout::TimeMajor
            };
            let (t, _) = lstm_core::unroll::dims(x.shape(), layout);
            let lengths = lens
                .map(|l| lstm_layers::lengths_from_signed(&l, t))
                .transpose()?;
            let h0 = h0
                .map(|a| three_d(a, "initial h", "[D*L, B, H_out]"))
                .transpose()?;
            let c0 = c0
                .map(|a| three_d(a, "initial c", "[D*L, B, H]"))
                .transpose()?;
            let opts = StackOptions {
                layout,
                lengths: lengths.as_deref(),
                threads: args.threads,
                ..StackOptions::default()
            };
            let initial = [h0.as_ref().map(|a| a.view()), c0.as_ref().map(|a| a.view())];
            let out = match &stack {
                torch::TorchModel::Lstm(s) => s.forward_states(x.view(), &initial, &opts)?,
                torch::TorchModel::Gru(s) => s.forward_states(x.view(), &initial[..1], &opts)?,
            };
            write(&args.output, out.output.view().into_dyn())?;
            write(&args.final_h, out.finals[0].view().into_dyn())?;
            if let Some(c_n) = out.finals.get(1) {
                write(&args.final_c, c_n.view().into_dyn())?;
            }
            if args.prefix.is_none() {
                found_note(&names, &prefix, &stack);
            }
        }
        Model::Onnx(mut graph) => {
            graph.set_threads(args.threads);
            match args.node.as_deref().or(auto.as_deref()) {
                Some(name) => crate::graph::run_node(args, &graph, name, x, [h0, c0], lens)?,
                None => crate::graph::run_graph(args, &graph, Some(x))?,
            }
        }
    }
    Ok(())
}

/// Says on standard error what an auto-detected state dict held, when that is not a plain
/// `nn.LSTM` or `nn.GRU` without a prefix: its prefix, and whether it is a cell.
fn found_note<F: lstm_core::Scalar>(names: &[String], prefix: &str, stack: &torch::TorchModel<F>) {
    use std::io::Write as _;
    let what = torch::describe(names, prefix);
    if prefix.is_empty() && what.starts_with("a stack") {
        return;
    }
    let kind = match stack {
        torch::TorchModel::Lstm(_) => "LSTM",
        torch::TorchModel::Gru(_) => "GRU",
    };
    let _ = writeln!(
        std::io::stderr(),
        "lstm: found one {kind} under the prefix {prefix:?}: {what}"
    );
}

/// The one LSTM or GRU node of a graph this library cannot run whole because of its control
/// flow (If, Loop, Scan), when that node sits inside a subgraph: it runs alone without
/// `--node`, and standard error says so. `None` when the graph runs whole, has another
/// operator it cannot run, holds several recurrent nodes or one at the top, or graph inputs
/// or outputs were named.
fn single_node<F: Scalar>(args: &RunArgs, graph: &onnx::OnnxGraph<F>) -> Option<String> {
    use std::io::Write as _;
    let e = graph.check_supported().err()?;
    if !args.graph_inputs.is_empty() || !args.graph_outputs.is_empty() {
        return None;
    }
    // Only where the graph cannot run whole for its control flow, and the one recurrent node
    // sits inside it: a graph with any other operator it cannot run is refused, so that
    // nothing runs a part of a graph for the whole of it unasked.
    let control_flow = graph
        .unsupported()
        .iter()
        .all(|(_, op)| matches!(*op, "If" | "Loop" | "Scan"));
    if !control_flow || !graph.recurrent_nodes().is_empty() {
        return None;
    }
    match graph.all_recurrent_nodes().as_slice() {
        [(path, op)] => {
            let _ = writeln!(
                std::io::stderr(),
                "lstm: {e}; running its one {op} node {path:?} alone, on its own inputs and \
                 outputs (as --node {path:?})"
            );
            Some(path.clone())
        }
        _ => None,
    }
}
