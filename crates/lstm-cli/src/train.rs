//! `lstm train` and `lstm predict`: a stack and a linear head trained on `.npy` data, and its
//! predictions.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lexopt::prelude::*;
use lstm_core::ndarray::{Array3, ArrayD, Axis, Ix1, Ix2, Ix3};
use lstm_core::{LstmError, Scalar};
use lstm_layers::npy::{self, NpyArray, NpyElement};
use lstm_train::{Kind, Optimizer, Schedule, Target, TrainConfig, Trainer};

use crate::run::read_lengths;

use crate::plot::{EpochLoss, svg};
pub use crate::predict::{parse_predict, predict};
use crate::{CliError, CliResult};

/// Parsed arguments of `lstm train`.
#[derive(Debug)]
pub struct TrainArgs {
    input: Option<PathBuf>,
    target: Option<PathBuf>,
    output: Option<PathBuf>,
    kind: Kind,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    proj_size: usize,
    classification: bool,
    per_step: bool,
    epochs: usize,
    batch_size: usize,
    optimizer: String,
    lr: f64,
    weight_decay: Option<f64>,
    clip: Option<f64>,
    validation: f64,
    lengths: Option<PathBuf>,
    batch_first: bool,
    seed: u64,
    threads: usize,
    resume: Option<PathBuf>,
    tbptt: Option<usize>,
    dropout: Option<f64>,
    schedule: Schedule<f64>,
    forget_bias: Option<f64>,
    plot: Option<PathBuf>,
    json: bool,
}

pub(crate) fn number<T: std::str::FromStr>(p: &mut lexopt::Parser, flag: &str) -> CliResult<T> {
    let v = p.value()?.string()?;
    v.parse()
        .map_err(|_| CliError::Usage(format!("{flag} needs a number, got {v:?}")))
}

/// Parses the arguments after `train`.
pub fn parse(mut p: lexopt::Parser) -> CliResult<TrainArgs> {
    let mut a = TrainArgs {
        input: None,
        target: None,
        output: None,
        kind: Kind::Lstm,
        hidden: 32,
        layers: 1,
        bidirectional: false,
        proj_size: 0,
        classification: false,
        per_step: false,
        epochs: 10,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: 1e-3,
        weight_decay: None,
        clip: None,
        validation: 0.0,
        lengths: None,
        batch_first: false,
        seed: 0,
        threads: 1,
        resume: None,
        tbptt: None,
        dropout: None,
        schedule: Schedule::Constant,
        forget_bias: None,
        plot: None,
        json: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("input") => a.input = Some(p.value()?.into()),
            Long("target") => a.target = Some(p.value()?.into()),
            Long("output") => a.output = Some(p.value()?.into()),
            Long("variant") => {
                let v = p.value()?.string()?;
                a.kind = Kind::from_name(&v).ok_or_else(|| {
                    CliError::Usage(format!(
                        "--variant is one of {} (or concat, split, np, vanilla), got {v:?}{}",
                        crate::compare::kind_names(),
                        crate::help::did_you_mean(&v, Kind::ALL.map(Kind::name))
                    ))
                })?;
            }
            Long("hidden") => a.hidden = number(&mut p, "--hidden")?,
            Long("layers") => a.layers = number(&mut p, "--layers")?,
            Long("bidirectional") => a.bidirectional = true,
            Long("proj-size") => a.proj_size = number(&mut p, "--proj-size")?,
            Long("task") => {
                let v = p.value()?.string()?;
                a.classification = match v.as_str() {
                    "regression" => false,
                    "classification" => true,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--task is regression or classification, got {v:?}"
                        )));
                    }
                };
            }
            Long("per-step") => a.per_step = true,
            Long("epochs") => a.epochs = number(&mut p, "--epochs")?,
            Long("batch-size") => a.batch_size = number(&mut p, "--batch-size")?,
            Long("optimizer") => a.optimizer = p.value()?.string()?,
            Long("lr") => a.lr = number(&mut p, "--lr")?,
            Long("weight-decay") => a.weight_decay = Some(number(&mut p, "--weight-decay")?),
            Long("clip-grad-norm") => a.clip = Some(number(&mut p, "--clip-grad-norm")?),
            Long("validation-split") => a.validation = number(&mut p, "--validation-split")?,
            Long("sequence-lens") => a.lengths = Some(p.value()?.into()),
            Long("batch-first") => a.batch_first = true,
            Long("schedule") => a.schedule = schedule(&p.value()?.string()?)?,
            Long("forget-bias") => a.forget_bias = Some(number(&mut p, "--forget-bias")?),
            Long("seed") => a.seed = number(&mut p, "--seed")?,
            Long("threads") => a.threads = crate::parse_threads(&p.value()?.string()?)?,
            Long("resume") => a.resume = Some(p.value()?.into()),
            Long("loss-plot") => a.plot = Some(p.value()?.into()),
            Long("tbptt") => a.tbptt = Some(number(&mut p, "--tbptt")?),
            Long("dropout") => a.dropout = Some(number(&mut p, "--dropout")?),
            Long("format") => a.json = crate::parse_format(&p.value()?.string()?)?,
            _ => return Err(crate::help::unexpected("train", arg)),
        }
    }
    if !(0.0..1.0).contains(&a.validation) {
        return Err(CliError::Usage(format!(
            "--validation-split is a fraction in [0, 1), got {}",
            a.validation
        )));
    }
    Ok(a)
}

pub(crate) fn need<'a>(v: &'a Option<PathBuf>, cmd: &str, flag: &str) -> CliResult<&'a Path> {
    v.as_deref()
        .ok_or_else(|| CliError::Usage(format!("`lstm {cmd}` needs {flag}")))
}

/// The input `[T, N, I]` time-major at precision `F`.
pub(crate) fn input<F: Scalar + NpyElement>(
    a: ArrayD<F>,
    batch_first: bool,
) -> CliResult<Array3<F>> {
    let shape = a.shape().to_vec();
    let expected = if batch_first {
        "[B, T, I]"
    } else {
        "[T, B, I]"
    };
    let x = a
        .into_dimensionality::<Ix3>()
        .map_err(|_| LstmError::shape("input", expected, &shape))?;
    Ok(if batch_first {
        x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
    } else {
        x
    })
}

pub(crate) fn lengths_for(path: &Option<PathBuf>, t: usize, n: usize) -> CliResult<Vec<usize>> {
    match path {
        Some(p) => {
            let l = lstm_layers::lengths_from_signed(&read_lengths(p)?, t)?;
            lstm_core::unroll::check_lengths(&l, n, t)?;
            Ok(l)
        }
        None => Ok(vec![t; n]),
    }
}

/// Runs `lstm train` at the input's precision.
pub fn run(a: &TrainArgs) -> CliResult {
    let x = need(&a.input, "train", "--input X.npy")?;
    need(&a.target, "train", "--target Y.npy")?;
    need(&a.output, "train", "--output MODEL.safetensors")?;
    match npy::read(x)? {
        NpyArray::F32(x) => train_typed::<f32>(a, x),
        NpyArray::F64(x) => train_typed::<f64>(a, x),
        other => Err(LstmError::format(
            x.display(),
            format!("input must be float32 or float64, got {}", other.dtype()),
        )
        .into()),
    }
}

/// The target of `lstm train`, its outputs (values per target, or classes).
fn target<F: Scalar>(a: &TrainArgs, t: usize, n: usize) -> CliResult<(Target<F>, usize)> {
    let path = need(&a.target, "train", "--target Y.npy")?;
    let arr = npy::read(path)?;
    let shape = arr.shape().to_vec();
    let what = format!("targets {}", path.display());
    let bf = a.batch_first && a.per_step;
    if a.classification {
        let ids: ArrayD<i64> = match arr {
            NpyArray::I32(v) => v.mapv(i64::from),
            NpyArray::I64(v) => v,
            other => {
                return Err(LstmError::format(
                    path.display(),
                    format!("class ids must be int32 or int64, got {}", other.dtype()),
                )
                .into());
            }
        };
        if let Some(bad) = ids.iter().find(|&&v| v < 0) {
            return Err(LstmError::invalid(what, format!("class id {bad} is negative")).into());
        }
        let ids = ids.mapv(|v| v as usize);
        let classes = ids.iter().max().map_or(1, |m| m + 1).max(2);
        let target = if a.per_step {
            let m = ids
                .into_dimensionality::<Ix2>()
                .map_err(|_| LstmError::shape(&what, "[T, B] (--per-step)", &shape))?;
            let m = if bf {
                m.reversed_axes().as_standard_layout().into_owned()
            } else {
                m
            };
            lstm_core::check_shape(&what, m.shape(), &[t, n])?;
            Target::StepClasses(m)
        } else {
            let v = ids
                .into_dimensionality::<Ix1>()
                .map_err(|_| LstmError::shape(&what, "[B]", &shape))?;
            lstm_core::check_shape(&what, v.shape(), &[n])?;
            Target::Classes(v.to_vec())
        };
        return Ok((target, classes));
    }
    let values: ArrayD<F> = match arr {
        NpyArray::F32(v) => v.mapv(|x| F::of(f64::from(x))),
        NpyArray::F64(v) => v.mapv(F::of),
        other => {
            return Err(LstmError::format(
                path.display(),
                format!(
                    "regression targets must be float32 or float64, got {}",
                    other.dtype()
                ),
            )
            .into());
        }
    };
    lstm_core::check_finite(&what, values.iter())?;
    if a.per_step {
        let v = values
            .into_dimensionality::<Ix3>()
            .map_err(|_| LstmError::shape(&what, "[T, B, O] (--per-step)", &shape))?;
        let v = if bf {
            v.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            v
        };
        let o = v.dim().2;
        lstm_core::check_shape(&what, v.shape(), &[t, n, o])?;
        Ok((Target::StepValues(v), o))
    } else {
        let v = values
            .into_dimensionality::<Ix2>()
            .map_err(|_| LstmError::shape(&what, "[B, O]", &shape))?;
        let o = v.ncols();
        lstm_core::check_shape(&what, v.shape(), &[n, o])?;
        Ok((Target::Values(v), o))
    }
}

fn train_typed<F: Scalar + NpyElement>(a: &TrainArgs, x: ArrayD<F>) -> CliResult {
    let x = input(x, a.batch_first)?;
    lstm_core::check_finite("input", x.iter())?;
    let (t, n, i) = x.dim();
    let lengths = lengths_for(&a.lengths, t, n)?;
    let (target, outputs) = target::<F>(a, t, n)?;
    let optimizer = match a.optimizer.as_str() {
        "sgd" => Optimizer::sgd(),
        "adam" => Optimizer::adam(),
        "adamw" => Optimizer::adamw(),
        other => {
            return Err(CliError::Usage(format!(
                "--optimizer is sgd, adam or adamw, got {other:?}{}",
                crate::help::did_you_mean(other, ["sgd", "adam", "adamw"])
            )));
        }
    };
    let optimizer = match a.weight_decay {
        Some(w) => optimizer.with_weight_decay(F::of(w)),
        None => optimizer,
    };
    let config = TrainConfig {
        kind: a.kind,
        input: i,
        hidden: a.hidden,
        layers: a.layers,
        bidirectional: a.bidirectional,
        proj_size: a.proj_size,
        outputs,
        batch_size: a.batch_size,
        optimizer,
        lr: F::of(a.lr),
        schedule: match a.schedule {
            Schedule::Constant => Schedule::Constant,
            Schedule::Step { step_size, gamma } => Schedule::Step {
                step_size,
                gamma: F::of(gamma),
            },
            Schedule::Cosine { t_max, eta_min } => Schedule::Cosine {
                t_max,
                eta_min: F::of(eta_min),
            },
        },
        clip_grad_norm: a.clip.map(F::of),
        forget_bias: a.forget_bias.map(F::of),
        seed: a.seed,
        threads: a.threads,
        tbptt: a.tbptt,
        dropout: a.dropout,
    };
    let mut run = match &a.resume {
        Some(p) => Trainer::resume(config, p)?,
        None => Trainer::new(config)?,
    };
    run.note(
        "task",
        if a.classification {
            "classification"
        } else {
            "regression"
        },
    );
    run.note("per_step", if a.per_step { "true" } else { "false" });
    // The last samples are held out for validation.
    let held = ((n as f64) * a.validation).ceil() as usize;
    let train_n = n - held;
    if train_n == 0 {
        return Err(CliError::Usage(
            "--validation-split leaves no training sample".into(),
        ));
    }
    let rows = |r: std::ops::Range<usize>| -> Vec<usize> { r.collect() };
    let (tr, va) = (rows(0..train_n), rows(train_n..n));
    let (xt, xv) = (x.select(Axis(1), &tr), x.select(Axis(1), &va));
    let (lt, lv): (Vec<usize>, Vec<usize>) = (
        tr.iter().map(|&r| lengths[r]).collect(),
        va.iter().map(|&r| lengths[r]).collect(),
    );
    let (yt, yv) = (target.select(&tr), target.select(&va));
    let start = Instant::now();
    let mut curve: Vec<EpochLoss> = Vec::new();
    let (mut last_train, mut last_val) = (None, None);
    for e in 0..a.epochs {
        let stats = run.epoch_on(xt.view(), &lt, &yt)?;
        let val = (held > 0)
            .then(|| run.evaluate(xv.view(), &lv, &yv))
            .transpose()?;
        let loss = stats.loss.f64();
        if !loss.is_finite() {
            return Err(LstmError::invalid(
                "training",
                format!("the loss became {loss} in epoch {}", run.epoch()),
            )
            .into());
        }
        curve.push((loss, val.map(|v| v.loss.f64())));
        last_train = Some(stats);
        last_val = val;
        let secs = start.elapsed().as_secs_f64();
        let left = secs / (e + 1) as f64 * (a.epochs - e - 1) as f64;
        // Progress is best effort: a closed standard error does not stop training.
        let _ = write!(
            std::io::stderr(),
            "\repoch {}/{}  loss {loss:.5}  {secs:.1} s, about {left:.0} s left   ",
            e + 1,
            a.epochs
        );
    }
    let _ = writeln!(std::io::stderr());
    let out = need(&a.output, "train", "--output MODEL.safetensors")?;
    run.save(out)?;
    let secs = start.elapsed().as_secs_f64();
    let rate = (train_n * a.epochs) as f64 / secs.max(1e-9);
    if let Some(p) = &a.plot {
        std::fs::write(p, svg(&curve)).map_err(|source| LstmError::Io {
            path: p.display().to_string(),
            source,
        })?;
    }
    let f = |v: Option<F>| v.map_or("null".to_string(), |v| format!("{}", v.f64()));
    let acc = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v}"));
    let train_loss = last_train.map(|s| s.loss);
    let train_acc = last_train.and_then(|s| s.accuracy);
    let (val_loss, val_acc) = (last_val.map(|s| s.loss), last_val.and_then(|s| s.accuracy));
    if a.json {
        let epochs: Vec<String> = curve
            .iter()
            .enumerate()
            .map(|(k, (l, v))| {
                let v = v.map_or("null".to_string(), |v| format!("{v}"));
                format!(
                    "{{\"epoch\": {}, \"train_loss\": {l}, \"validation_loss\": {v}}}",
                    k + 1
                )
            })
            .collect();
        outln!(
            "{{\"train_loss\": {}, \"train_accuracy\": {}, \"validation_loss\": {}, \"validation_accuracy\": {}, \"seconds\": {secs:.3}, \"sequences_per_second\": {rate:.1}, \"epochs\": [{}]}}",
            f(train_loss),
            acc(train_acc),
            f(val_loss),
            acc(val_acc),
            epochs.join(", ")
        );
    } else {
        outln!(
            "trained {} epochs on {train_n} sequences in {secs:.2} s ({rate:.0} sequences/s)",
            a.epochs
        );
        outln!("train loss {}, accuracy {}", f(train_loss), acc(train_acc));
        if held > 0 {
            outln!(
                "validation loss {} on {held} sequences, accuracy {}",
                f(val_loss),
                acc(val_acc)
            );
        }
        outln!("saved {}", out.display());
    }
    Ok(())
}

/// `--schedule`: `constant`, `step:N[:GAMMA]` or `cosine:N[:MIN]`.
fn schedule(v: &str) -> CliResult<Schedule<f64>> {
    let bad = || {
        CliError::Usage(format!(
            "--schedule is constant, step:N[:GAMMA] or cosine:N[:MIN] (N a whole number of \
             epochs, at least 1), got {v:?}"
        ))
    };
    let mut parts = v.split(':');
    let kind = parts.next().unwrap_or("");
    let n = parts.next().map(str::parse::<u64>);
    let x = parts.next().map(str::parse::<f64>);
    if parts.next().is_some() {
        return Err(bad());
    }
    let x = match x {
        None => None,
        Some(Ok(x)) if x.is_finite() => Some(x),
        Some(_) => return Err(bad()),
    };
    Ok(match (kind, n) {
        ("constant", None) if x.is_none() => Schedule::Constant,
        ("step", Some(Ok(n))) if n >= 1 => Schedule::Step {
            step_size: n,
            gamma: x.unwrap_or(0.1),
        },
        ("cosine", Some(Ok(n))) if n >= 1 => Schedule::Cosine {
            t_max: n,
            eta_min: x.unwrap_or(0.0),
        },
        _ => return Err(bad()),
    })
}
