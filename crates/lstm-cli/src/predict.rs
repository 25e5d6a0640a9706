//! `lstm predict`: a model `lstm train` wrote, run on `.npy` inputs.

use std::path::PathBuf;

use lexopt::prelude::*;
use lstm_core::ndarray::{Array2, Array3, ArrayD};
use lstm_core::{LstmError, Scalar};
use lstm_layers::npy::{self, NpyArray, NpyElement};
use lstm_train::Trainer;

use crate::CliResult;
use crate::train::{input, lengths_for, need};

/// Parsed arguments of `lstm predict`.
#[derive(Debug, Default)]
pub struct PredictArgs {
    model: Option<PathBuf>,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    lengths: Option<PathBuf>,
    batch_first: bool,
    threads: usize,
}

/// Parses the arguments after `predict`.
pub fn parse_predict(mut p: lexopt::Parser) -> CliResult<PredictArgs> {
    let mut a = PredictArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => a.model = Some(p.value()?.into()),
            Long("input") => a.input = Some(p.value()?.into()),
            Long("output") => a.output = Some(p.value()?.into()),
            Long("sequence-lens") => a.lengths = Some(p.value()?.into()),
            Long("batch-first") => a.batch_first = true,
            Long("threads") => a.threads = crate::parse_threads(&p.value()?.string()?)?,
            _ => return Err(crate::help::unexpected("predict", arg)),
        }
    }
    Ok(a)
}

/// Runs `lstm predict` at the input's precision.
pub fn predict(a: &PredictArgs) -> CliResult {
    let x = need(&a.input, "predict", "--input X.npy")?;
    need(&a.model, "predict", "--model MODEL.safetensors")?;
    need(&a.output, "predict", "--output P.npy")?;
    match npy::read(x)? {
        NpyArray::F32(x) => predict_typed::<f32>(a, x),
        NpyArray::F64(x) => predict_typed::<f64>(a, x),
        other => Err(LstmError::format(
            x.display(),
            format!("input must be float32 or float64, got {}", other.dtype()),
        )
        .into()),
    }
}

fn predict_typed<F: Scalar + NpyElement>(a: &PredictArgs, x: ArrayD<F>) -> CliResult {
    let model = need(&a.model, "predict", "--model MODEL.safetensors")?;
    let (run, meta) = Trainer::<F>::load(model)?;
    let x = input(x, a.batch_first)?;
    let (t, n, i) = x.dim();
    lstm_core::check_shape("input width", &[i], &[run.config().input])?;
    let lengths = lengths_for(&a.lengths, t, n)?;
    let classes = meta.get("task").is_some_and(|v| v == "classification");
    let per_step = meta.get("per_step").is_some_and(|v| v == "true");
    let p = run.predict(x.view(), &lengths, per_step, classes)?;
    let out = need(&a.output, "predict", "--output P.npy")?;
    if per_step {
        // The rows are the valid (t, b) positions in time order; padded steps stay zero.
        let o = p.ncols();
        let mut full = Array3::<F>::zeros((t, n, o));
        let at = lstm_train::head::positions(t, &lengths, true);
        for (k, &(tt, b)) in at.iter().enumerate() {
            full.slice_mut(lstm_core::ndarray::s![tt, b, ..])
                .assign(&p.row(k));
        }
        let full = if a.batch_first {
            full.permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned()
        } else {
            full
        };
        npy::write(out, full.view().into_dyn())?;
    } else {
        // One row per sample (a sample of length 0 has no prediction: zeros).
        let o = p.ncols();
        let mut full = Array2::<F>::zeros((n, o));
        let at = lstm_train::head::positions(t, &lengths, false);
        for (k, &(_, b)) in at.iter().enumerate() {
            full.row_mut(b).assign(&p.row(k));
        }
        npy::write(out, full.view().into_dyn())?;
    }
    Ok(())
}
