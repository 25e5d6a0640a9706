//! `lstm compare`: every variant trained on one task with the same budget and seeds.

use std::time::Instant;

use lexopt::prelude::*;
use lstm_core::ndarray::Axis;
use lstm_train::tasks::{self, TaskData};
use lstm_train::{Kind, Optimizer, Schedule, Target, TrainConfig, Trainer};

use crate::train::number;
use crate::{CliError, CliResult};

/// The variants' names, for messages.
pub fn kind_names() -> String {
    Kind::ALL.map(Kind::name).join(", ")
}

/// Parsed arguments of `lstm compare`.
#[derive(Debug)]
pub struct CompareArgs {
    task: String,
    kinds: Vec<Kind>,
    seeds: u64,
    epochs: usize,
    hidden: usize,
    steps: Option<usize>,
    plot: Option<std::path::PathBuf>,
    json: bool,
}

/// Parses the arguments after `compare`.
pub fn parse(mut p: lexopt::Parser) -> CliResult<CompareArgs> {
    let mut a = CompareArgs {
        task: String::new(),
        kinds: Kind::ALL.to_vec(),
        seeds: 3,
        epochs: 10,
        hidden: 32,
        steps: None,
        plot: None,
        json: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("task") => a.task = p.value()?.string()?,
            Long("variants") => {
                let v = p.value()?.string()?;
                a.kinds = v
                    .split(',')
                    .map(|n| {
                        Kind::from_name(n.trim()).ok_or_else(|| {
                            CliError::Usage(format!(
                                "unknown variant {n:?}{} (expected {})",
                                crate::help::did_you_mean(n.trim(), Kind::ALL.map(Kind::name)),
                                kind_names()
                            ))
                        })
                    })
                    .collect::<CliResult<_>>()?;
            }
            Long("seeds") => a.seeds = number(&mut p, "--seeds")?,
            Long("epochs") => a.epochs = number(&mut p, "--epochs")?,
            Long("hidden") => a.hidden = number(&mut p, "--hidden")?,
            Long("steps") => a.steps = Some(number(&mut p, "--steps")?),
            Long("plot") => a.plot = Some(p.value()?.into()),
            Long("format") => a.json = crate::parse_format(&p.value()?.string()?)?,
            _ => return Err(crate::help::unexpected("compare", arg)),
        }
    }
    if a.task != "adding" && a.task != "copy" {
        return Err(CliError::Usage(format!(
            "`lstm compare` needs --task adding or --task copy, got {:?}{}",
            a.task,
            crate::help::did_you_mean(&a.task, ["adding", "copy"])
        )));
    }
    if a.seeds == 0 || a.epochs == 0 || a.hidden == 0 {
        return Err(CliError::Usage(
            "--seeds, --epochs and --hidden must be at least 1".into(),
        ));
    }
    Ok(a)
}

/// One variant's results over the seeds.
struct Row {
    kind: Kind,
    losses: Vec<f64>,
    accuracies: Vec<f64>,
    /// Mean validation loss after each epoch, over the seeds.
    curve: Vec<f64>,
    epoch_ms: f64,
}

fn data(a: &CompareArgs, n: usize, seed: u64) -> CliResult<TaskData<f32>> {
    Ok(match a.task.as_str() {
        "adding" => tasks::adding(n, a.steps.unwrap_or(30), seed)?,
        _ => tasks::copy(n, 4, 5, a.steps.unwrap_or(10), seed)?,
    })
}

/// Runs the command.
pub fn run(a: &CompareArgs) -> CliResult {
    let (train, val) = (data(a, 1000, 1)?, data(a, 200, 2)?);
    let (t, n) = (train.x.dim().0, train.x.dim().1);
    let (lt, lv) = (vec![t; n], vec![t; val.x.len_of(Axis(1))]);
    let outputs = match &train.target {
        Target::Values(_) | Target::StepValues(_) => 1,
        Target::Classes(_) | Target::StepClasses(_) => 5,
    };
    let mut rows = Vec::new();
    for &kind in &a.kinds {
        let mut row = Row {
            kind,
            losses: Vec::new(),
            accuracies: Vec::new(),
            curve: vec![0.0; a.epochs],
            epoch_ms: 0.0,
        };
        for seed in 0..a.seeds {
            let config = TrainConfig {
                kind,
                input: train.x.dim().2,
                hidden: a.hidden,
                layers: 1,
                bidirectional: false,
                proj_size: 0,
                outputs,
                batch_size: 32,
                optimizer: Optimizer::adam(),
                lr: 0.01,
                schedule: Schedule::Constant,
                clip_grad_norm: Some(1.0),
                forget_bias: Some(1.0),
                seed,
                threads: 1,
                tbptt: None,
                dropout: None,
            };
            let mut trainer = Trainer::new(config)?;
            let start = Instant::now();
            let mut last = None;
            for e in 0..a.epochs {
                trainer.epoch_on(train.x.view(), &lt, &train.target)?;
                let v = trainer.evaluate(val.x.view(), &lv, &val.target)?;
                row.curve[e] += f64::from(v.loss) / a.seeds as f64;
                last = Some(v);
            }
            row.epoch_ms +=
                start.elapsed().as_secs_f64() * 1e3 / (a.epochs as f64 * a.seeds as f64);
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\r{} seed {seed} done          ", kind.name()).as_bytes(),
            );
            if let Some(v) = last {
                row.losses.push(f64::from(v.loss));
                if let Some(acc) = v.accuracy {
                    row.accuracies.push(acc);
                }
            }
        }
        rows.push(row);
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"\r                              \r",
    );
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64;
        (m, var.sqrt())
    };
    if a.json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                let (m, s) = stats(&r.losses);
                let acc = if r.accuracies.is_empty() {
                    "null".to_string()
                } else {
                    format!("{}", stats(&r.accuracies).0)
                };
                let curve: Vec<String> = r.curve.iter().map(|v| format!("{v}")).collect();
                format!(
                    "{{\"variant\": \"{}\", \"loss_mean\": {m}, \"loss_std\": {s}, \"accuracy_mean\": {acc}, \"epoch_ms\": {:.2}, \"curve\": [{}]}}",
                    r.kind.name(),
                    r.epoch_ms,
                    curve.join(", ")
                )
            })
            .collect();
        outln!(
            "{{\"task\": \"{}\", \"steps\": {t}, \"seeds\": {}, \"epochs\": {}, \"variants\": [{}]}}",
            a.task,
            a.seeds,
            a.epochs,
            items.join(", ")
        );
    } else {
        outln!(
            "{} task, T = {t}, {} seeds, {} epochs, H = {}",
            a.task,
            a.seeds,
            a.epochs,
            a.hidden
        );
        outln!(
            "{:<12} {:>12} {:>10} {:>10} {:>10}",
            "variant",
            "val loss",
            "spread",
            "accuracy",
            "ms/epoch"
        );
        for r in &rows {
            let (m, s) = stats(&r.losses);
            let acc = if r.accuracies.is_empty() {
                "-".to_string()
            } else {
                format!("{:.3}", stats(&r.accuracies).0)
            };
            outln!(
                "{:<12} {m:>12.5} {s:>10.5} {acc:>10} {:>10.1}",
                r.kind.name(),
                r.epoch_ms
            );
        }
    }
    if let Some(p) = &a.plot {
        let curves: Vec<(&str, &[f64])> =
            rows.iter().map(|r| (r.kind.name(), &r.curve[..])).collect();
        std::fs::write(p, crate::plot::curves_svg(&curves)).map_err(|source| {
            lstm_core::LstmError::Io {
                path: p.display().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}
