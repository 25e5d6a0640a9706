//! `lstm grad`: the gradients of a loss through a model, for the same models and options as
//! `lstm run`.

use std::path::{Path, PathBuf};

use lexopt::prelude::*;
use lstm_core::ndarray::ArrayD;
use lstm_core::{Layout, LstmError, Scalar};
use lstm_layers::npy::{self, NpyArray, NpyElement};
use lstm_layers::onnx::{InputRole, OutputRole};
use lstm_layers::{Format, Model, StackOptions, torch};

use crate::run::{read_float, read_lengths, three_d};
use crate::{CliError, CliResult};

/// Parsed arguments of `lstm grad`.
#[derive(Debug, Default)]
pub struct GradArgs {
    model: Option<PathBuf>,
    input: Option<PathBuf>,
    grad_output: Option<PathBuf>,
    output: Option<PathBuf>,
    initial_h: Option<PathBuf>,
    initial_c: Option<PathBuf>,
    grad_h: Option<PathBuf>,
    grad_c: Option<PathBuf>,
    sequence_lens: Option<PathBuf>,
    batch_first: bool,
    prefix: Option<String>,
    threads: usize,
    graph_inputs: Vec<(String, PathBuf)>,
}

/// Parses the arguments after `grad`.
pub fn parse(mut p: lexopt::Parser) -> CliResult<GradArgs> {
    let mut a = GradArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => a.model = Some(p.value()?.into()),
            Long("input") => a.input = Some(p.value()?.into()),
            Long("grad-output") => a.grad_output = Some(p.value()?.into()),
            Long("output") => a.output = Some(p.value()?.into()),
            Long("initial-h") => a.initial_h = Some(p.value()?.into()),
            Long("initial-c") => a.initial_c = Some(p.value()?.into()),
            Long("grad-h") => a.grad_h = Some(p.value()?.into()),
            Long("grad-c") => a.grad_c = Some(p.value()?.into()),
            Long("sequence-lens") => a.sequence_lens = Some(p.value()?.into()),
            Long("batch-first") => a.batch_first = true,
            Long("prefix") => a.prefix = Some(p.value()?.string()?),
            Long("threads") => a.threads = crate::parse_threads(&p.value()?.string()?)?,
            Long("graph-input") => a.graph_inputs.push(crate::run::named_file(
                &p.value()?.string()?,
                "--graph-input",
            )?),
            _ => return Err(crate::help::unexpected("grad", arg)),
        }
    }
    Ok(a)
}

fn required<'a>(v: &'a Option<PathBuf>, flag: &str) -> CliResult<&'a Path> {
    v.as_deref()
        .ok_or_else(|| CliError::Usage(format!("`lstm grad` needs {flag}")))
}

/// Runs the command at the input's precision.
pub fn run(a: &GradArgs) -> CliResult {
    let model = required(&a.model, "--model M")?;
    let input = required(&a.input, "--input X.npy")?;
    required(&a.grad_output, "--grad-output DY.npy")?;
    required(&a.output, "--output GRADS.safetensors")?;
    let onnx = Format::of(model)? == Format::Onnx;
    if !onnx && !a.graph_inputs.is_empty() {
        return Err(CliError::Usage(
            "--graph-input applies to .onnx models only".into(),
        ));
    }
    match (npy::read(input)?, onnx) {
        (NpyArray::F32(x), false) => grad_typed::<f32>(a, model, x),
        (NpyArray::F64(x), false) => grad_typed::<f64>(a, model, x),
        (NpyArray::F32(x), true) => grad_graph::<f32>(a, model, x),
        (NpyArray::F64(x), true) => grad_graph::<f64>(a, model, x),
        (other, _) => Err(LstmError::format(
            input.display(),
            format!("input must be float32 or float64, got {}", other.dtype()),
        )
        .into()),
    }
}

fn grad_typed<F: Scalar + NpyElement>(a: &GradArgs, model: &Path, x: ArrayD<F>) -> CliResult {
    let Model::StateDict {
        model: stack,
        names,
        prefix,
        ..
    } = Model::<F>::load(model, a.prefix.as_deref())?
    else {
        return Err(CliError::Usage(format!(
            "{} is not a state dict",
            model.display()
        )));
    };
    let (layout, x_shape) = if a.batch_first {
        (Layout::BatchFirst, "[B, T, I] (--batch-first)")
    } else {
        (Layout::TimeMajor, "[T, B, I]")
    };
    let x = three_d(x, "input", x_shape)?;
    let read3 = |p: &Option<PathBuf>, what: &str, shape: &str| {
        p.as_deref()
            .map(|p| three_d(read_float::<F>(p, what)?, what, shape))
            .transpose()
    };
    let dy = read3(&a.grad_output, "output gradient", "the output's shape")?
        .ok_or_else(|| CliError::Usage("`lstm grad` needs --grad-output DY.npy".into()))?;
    let h0 = read3(&a.initial_h, "initial h", "[D*L, B, H_out]")?;
    let c0 = read3(&a.initial_c, "initial c", "[D*L, B, H]")?;
    let dh = read3(&a.grad_h, "final h gradient", "[D*L, B, H_out]")?;
    let dc = read3(&a.grad_c, "final c gradient", "[D*L, B, H]")?;
    let (t, _) = lstm_core::unroll::dims(x.shape(), layout);
    let lengths = a
        .sequence_lens
        .as_deref()
        .map(|p| lstm_layers::lengths_from_signed(&read_lengths(p)?, t).map_err(CliError::from))
        .transpose()?;
    let opts = StackOptions {
        layout,
        lengths: lengths.as_deref(),
        threads: a.threads,
        ..StackOptions::default()
    };
    if matches!(stack, torch::TorchModel::Gru(_)) && (c0.is_some() || dc.is_some()) {
        return Err(CliError::Usage(
            "this state dict is an nn.GRU, which has no cell state: --initial-c and --grad-c \
             apply to LSTMs"
                .into(),
        ));
    }
    fn v<F>(
        o: &Option<lstm_core::ndarray::Array3<F>>,
    ) -> Option<lstm_core::ndarray::ArrayView3<'_, F>> {
        o.as_ref().map(|a| a.view())
    }
    let g = stack.backward(x.view(), v(&h0), v(&c0), &opts, dy.view(), v(&dh), v(&dc))?;
    let mut tensors = torch::named_gradients(&g, &prefix, &names);
    tensors.push(("input".into(), g.input().clone().into_dyn()));
    if h0.is_some() {
        tensors.push(("initial_h".into(), g.initial()[0].clone().into_dyn()));
    }
    if c0.is_some() {
        tensors.push(("initial_c".into(), g.initial()[1].clone().into_dyn()));
    }
    let out = required(&a.output, "--output GRADS.safetensors")?;
    torch::save(out, &tensors, None)?;
    Ok(())
}

/// `lstm grad` on a whole ONNX graph.
fn grad_graph<F: Scalar + NpyElement>(a: &GradArgs, model: &Path, x: ArrayD<F>) -> CliResult {
    if a.batch_first {
        return Err(crate::graph::no_batch_first());
    }
    if a.prefix.is_some() {
        return Err(CliError::Usage(
            "--prefix applies to .safetensors models only".into(),
        ));
    }
    let Model::Onnx(mut graph) = Model::<F>::load(model, None)? else {
        return Err(CliError::Usage(format!(
            "{} is not an ONNX model",
            model.display()
        )));
    };
    graph.check_supported()?;
    graph.set_threads(a.threads);
    let paths = [
        a.input.as_deref(),
        a.sequence_lens.as_deref(),
        a.initial_h.as_deref(),
        a.initial_c.as_deref(),
    ];
    let feeds = crate::graph::feeds(&graph, model, &a.graph_inputs, paths, Some(x))?;
    let mut d_outputs = Vec::new();
    for (role, flag, path) in [
        (OutputRole::Sequence, "--grad-output", &a.grad_output),
        (OutputRole::FinalH, "--grad-h", &a.grad_h),
        (OutputRole::FinalC, "--grad-c", &a.grad_c),
    ] {
        if let Some(path) = path {
            let k = crate::graph::output_of_role(&graph, model, role, flag)?;
            let name = graph.outputs()[k].name.clone();
            d_outputs.push((name, read_float::<F>(path, flag)?));
        }
    }
    let g = graph.backward(feeds.values, &d_outputs)?;
    let mut tensors: Vec<(String, ArrayD<F>)> = g.params;
    for (name, grad) in g.inputs {
        let role = feeds
            .roles
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(r, _)| *r);
        let key = match role {
            Some(InputRole::Sequence) => "input".to_string(),
            Some(InputRole::InitialH) => "initial_h".to_string(),
            Some(InputRole::InitialC) => "initial_c".to_string(),
            _ if a.graph_inputs.iter().any(|(n, _)| *n == name) => name,
            _ => continue,
        };
        if tensors.iter().any(|(n, _)| *n == key) {
            return Err(LstmError::invalid(
                format!("gradient {key:?}"),
                format!("{} has a weight of that name too", model.display()),
            )
            .into());
        }
        tensors.push((key, grad));
    }
    let out = required(&a.output, "--output GRADS.safetensors")?;
    torch::save(out, &tensors, None)?;
    Ok(())
}
