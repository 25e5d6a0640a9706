//! `lstm bench`: the canonical workloads on random weights, median timings.

use std::io::Write;
use std::time::Instant;

use lexopt::prelude::*;
use lstm_concat::ConcatCell;
use lstm_core::ndarray::{Array2, Array3};
use lstm_core::{LstmState, RecurrentCell, SeqOptions, Workspace};
use lstm_engine::init::SplitMix64;
use lstm_engine::threads;
use lstm_engine::workload::Workload;
use lstm_layers::{LstmStack, StackOptions};
use lstm_peephole::{PeepholeCell, StateGatedCell};
use lstm_split::SplitCell;

use crate::{CliError, CliResult};

pub const HELP: &str = "\
    lstm bench [--workload stream|seq-small|batch-mid|batch-large] [--variant NAME]
               [--threads N] [--format json]
        Time the canonical workloads (float32, random weights, after a warm-up) and print the
        median: ns/step (stream), us/seq (seq-small), ms/batch (batch-*). Variants: concat,
        split, peephole, state-gated, layers (one bidirectional layer). Default: all of them.
";

const VARIANTS: [&str; 5] = ["concat", "split", "peephole", "state-gated", "layers"];

#[derive(Debug)]
pub struct BenchArgs {
    workloads: Vec<Workload>,
    variants: Vec<&'static str>,
    threads: usize,
    json: bool,
}

pub fn parse(mut p: lexopt::Parser) -> CliResult<BenchArgs> {
    let mut a = BenchArgs {
        workloads: Workload::ALL.to_vec(),
        variants: VARIANTS.to_vec(),
        threads: 1,
        json: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("workload") => {
                let v = p.value()?.string()?;
                let w = Workload::by_name(&v).ok_or_else(|| CliError::Usage(format!("unknown workload {v:?} (expected stream, seq-small, batch-mid or batch-large)")))?;
                a.workloads = vec![w];
            }
            Long("variant") => {
                let v = p.value()?.string()?;
                let found = VARIANTS.iter().find(|n| **n == v).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown variant {v:?} (expected one of {VARIANTS:?})"
                    ))
                })?;
                a.variants = vec![found];
            }
            Long("threads") => {
                a.threads = crate::parse_threads(&p.value()?.string()?)?;
            }
            Long("format") => {
                let v = p.value()?.string()?;
                a.json = match v.as_str() {
                    "json" => true,
                    "table" => false,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "unknown format {v:?} (expected json or table)"
                        )));
                    }
                };
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(a)
}

/// A runnable workload instance.
enum Subject {
    Cell(Box<dyn RecurrentCell<f32, State = LstmState<f32>> + Sync>),
    Stack(LstmStack<f32>),
}

fn subject(variant: &str, w: &Workload) -> CliResult<Subject> {
    let mut rng = SplitMix64::new(42);
    let (i, h) = (w.input, w.hidden);
    Ok(match variant {
        "concat" => Subject::Cell(Box::new(ConcatCell::random(i, h, &mut rng)?)),
        "split" => Subject::Cell(Box::new(SplitCell::random(i, h, &mut rng)?)),
        "peephole" => Subject::Cell(Box::new(PeepholeCell::random(i, h, &mut rng)?)),
        "state-gated" => Subject::Cell(Box::new(StateGatedCell::random(i, h, &mut rng)?)),
        _ => Subject::Stack(LstmStack::random(i, h, 1, 2, &mut rng)?),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds per unit (step for stream, run otherwise).
fn measure(s: &Subject, w: &Workload, threads: usize) -> CliResult<f64> {
    let mut rng = SplitMix64::new(1);
    let mut ws = Workspace::new();
    if w.name == "stream" {
        let Subject::Cell(cell) = s else {
            let x: Array3<f32> = rng.uniform_array((1, 1, w.input), 1.0);
            return time_runs(200, 2000, || s_forward(s, &x, threads));
        };
        let x: Array2<f32> = rng.uniform_array((1, w.input), 1.0);
        let mut gates = Array2::zeros((1, 4 * w.hidden));
        let mut state = cell.zero_state(1);
        let mut step = || {
            cell.step_into(x.view(), &mut state, gates.view_mut(), &mut ws)
                .map_err(CliError::from)
        };
        for _ in 0..500 {
            step()?;
        }
        let mut samples = Vec::new();
        for _ in 0..21 {
            let t0 = Instant::now();
            for _ in 0..500 {
                step()?;
            }
            samples.push(t0.elapsed().as_secs_f64() / 500.0);
        }
        return Ok(median(samples));
    }
    let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
    let reps = match w.name {
        "seq-small" => 301,
        "batch-mid" => 21,
        _ => 7,
    };
    match s {
        Subject::Cell(cell) => {
            let mut out = Array3::zeros((w.steps, w.batch, cell.output_size()));
            let opts = SeqOptions::default();
            time_runs(2, reps, || {
                let mut st = cell.zero_state(w.batch);
                threads::unroll_into_threads(
                    cell.as_ref(),
                    x.view(),
                    &mut st,
                    out.view_mut(),
                    &opts,
                    threads,
                    &mut ws,
                )?;
                Ok(())
            })
        }
        Subject::Stack(_) => time_runs(2, reps, || s_forward(s, &x, threads)),
    }
}

fn s_forward(s: &Subject, x: &Array3<f32>, threads: usize) -> CliResult {
    if let Subject::Stack(stack) = s {
        let opts = StackOptions {
            threads,
            ..StackOptions::default()
        };
        stack.forward(x.view(), None, None, &opts)?;
    }
    Ok(())
}

fn time_runs(warm: usize, reps: usize, mut f: impl FnMut() -> CliResult) -> CliResult<f64> {
    for _ in 0..warm {
        f()?;
    }
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        samples.push(t0.elapsed().as_secs_f64());
    }
    Ok(median(samples))
}

pub fn run(a: &BenchArgs) -> CliResult {
    if !a.json {
        outln!(
            "{:<12} {:<12} {:>7} {:>14} {:<9} {:>8}",
            "workload",
            "variant",
            "threads",
            "median",
            "unit",
            "GFLOP/s"
        );
    }
    let total = a.workloads.len() * a.variants.len();
    let mut done = 0;
    for w in &a.workloads {
        for &variant in &a.variants {
            done += 1;
            if !a.json {
                // Progress is best effort: a closed standard error does not stop the run.
                let _ = write!(
                    std::io::stderr(),
                    "\r[{done}/{total}] {} / {variant} ...          ",
                    w.name
                );
                let _ = std::io::stderr().flush();
            }
            let s = subject(variant, w)?;
            let secs = measure(&s, w, a.threads)?;
            let threads = match s {
                Subject::Stack(_) => a.threads,
                _ if w.name == "stream" => 1,
                _ => a.threads.min(w.batch),
            };
            let (value, unit) = match w.name {
                "stream" => (secs * 1e9, "ns/step"),
                "seq-small" => (secs * 1e6, "us/seq"),
                _ => (secs * 1e3, "ms/batch"),
            };
            let (b, t, i, h) = (
                w.batch as f64,
                w.steps as f64,
                w.input as f64,
                w.hidden as f64,
            );
            let flops = match variant {
                "state-gated" => 2.0 * b * t * (4.0 * h * i + 3.0 * h * h),
                "layers" => 2.0 * w.flops(),
                _ => w.flops(),
            };
            let gflops = flops / secs / 1e9;
            if a.json {
                outln!(
                    "{{\"workload\": \"{}\", \"variant\": \"{variant}\", \"threads\": {threads}, \"value\": {value:.3}, \"unit\": \"{unit}\", \"gflops\": {gflops:.3}}}",
                    w.name
                );
            } else {
                let _ = write!(std::io::stderr(), "\r{:60}\r", "");
                outln!(
                    "{:<12} {:<12} {:>7} {:>14.3} {:<9} {:>8.2}",
                    w.name,
                    variant,
                    threads,
                    value,
                    unit,
                    gflops
                );
            }
        }
    }
    Ok(())
}
