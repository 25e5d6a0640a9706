//! `lstm export`: a state dict's stack as a standard ONNX graph.

use std::path::PathBuf;

use lexopt::prelude::*;
use lstm_core::{LstmError, Scalar};
use lstm_layers::onnx::export::{ExportOptions, export};
use lstm_layers::{Format, Model};

use crate::{CliError, CliResult};

/// Parsed arguments of `lstm export`.
#[derive(Debug, Default)]
pub struct ExportArgs {
    model: Option<PathBuf>,
    output: Option<PathBuf>,
    prefix: Option<String>,
    opts: ExportOptions,
    double: bool,
}

/// Parses the arguments after `export`.
pub fn parse(mut p: lexopt::Parser) -> CliResult<ExportArgs> {
    let mut a = ExportArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => a.model = Some(p.value()?.into()),
            Long("output") => a.output = Some(p.value()?.into()),
            Long("prefix") => a.prefix = Some(p.value()?.string()?),
            Long("lengths") => a.opts.lengths = true,
            Long("states") => a.opts.states = true,
            Long("dtype") => {
                let v = p.value()?.string()?;
                a.double = match v.as_str() {
                    "float32" => false,
                    "float64" => true,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--dtype is float32 or float64, got {v:?}{}",
                            crate::help::did_you_mean(&v, ["float32", "float64"])
                        )));
                    }
                };
            }
            _ => return Err(crate::help::unexpected("export", arg)),
        }
    }
    Ok(a)
}

/// Runs the command.
pub fn run(a: &ExportArgs) -> CliResult {
    if a.double {
        typed::<f64>(a)
    } else {
        typed::<f32>(a)
    }
}

fn typed<F: Scalar>(a: &ExportArgs) -> CliResult {
    let model = a
        .model
        .as_deref()
        .ok_or_else(|| CliError::Usage("`lstm export` needs --model M".into()))?;
    let output = a
        .output
        .as_deref()
        .ok_or_else(|| CliError::Usage("`lstm export` needs --output M.onnx".into()))?;
    if Format::of(model)? == Format::Onnx {
        return Err(CliError::Usage(format!(
            "`lstm export` takes a state dict (.safetensors, .pt, .pth), got {}",
            model.display()
        )));
    }
    let m = match Model::<F>::load(model, a.prefix.as_deref()) {
        Ok(Model::StateDict { model, .. }) => model,
        Ok(Model::Onnx(_)) => {
            return Err(CliError::Usage(format!(
                "`lstm export` takes a state dict (.safetensors, .pt, .pth), got {}",
                model.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = export(&m, a.opts).map_err(|e| match e {
        LstmError::Unsupported(m) => LstmError::unsupported(format!(
            "{} cannot be written as ONNX: {m}",
            model.display()
        )),
        other => other,
    })?;
    std::fs::write(output, bytes).map_err(|source| LstmError::Io {
        path: output.display().to_string(),
        source,
    })?;
    Ok(())
}
