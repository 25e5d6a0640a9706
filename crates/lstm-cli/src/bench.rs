//! `lstm bench`: the canonical workloads on random weights, median timings.

use std::io::Write;
use std::time::Instant;

use lexopt::prelude::*;
use lstm_core::ndarray::{Array2, Array3};
use lstm_core::{Backward, RecurrentCell, SeqOptions, Variant, Workspace};
use lstm_engine::init::SplitMix64;
use lstm_engine::threads;
use lstm_engine::workload::Workload;
use lstm_layers::{LstmStack, StackOptions};

use lstm_cli::variants::{self, Visit};

use crate::{CliError, CliResult};

/// The names of the registered cells, then `layers`.
fn variants() -> Vec<&'static str> {
    let mut v: Vec<_> = variants::names().into_iter().map(|(n, _)| n).collect();
    v.push(LAYERS);
    v
}

/// The benchmark of one bidirectional layer of the stack.
const LAYERS: &str = "layers";

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
        variants: variants(),
        threads: 1,
        json: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("workload") => {
                let v = p.value()?.string()?;
                let names = [
                    "stream",
                    "seq-small",
                    "batch-mid",
                    "batch-large",
                    "train-mid",
                ];
                let w = Workload::by_name(&v).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown workload {v:?}{} (expected {})",
                        crate::help::did_you_mean(&v, names),
                        names.join(", ")
                    ))
                })?;
                a.workloads = vec![w];
            }
            Long("variant") => {
                let v = p.value()?.string()?;
                let known = variants();
                let found = known.iter().find(|n| **n == v).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown variant {v:?}{} (expected one of {known:?})",
                        crate::help::did_you_mean(&v, known.iter().copied())
                    ))
                })?;
                a.variants = vec![*found];
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
            _ => return Err(crate::help::unexpected("bench", arg)),
        }
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `variant` on `w`: median seconds per unit (step for stream, run otherwise) and the
/// multiply-adds of one unit.
fn measure(variant: &str, w: &Workload, threads: usize) -> CliResult<(f64, f64)> {
    struct Measure<'a> {
        variant: &'a str,
        w: &'a Workload,
        threads: usize,
        result: Option<CliResult<(f64, f64)>>,
    }
    impl Visit for Measure<'_> {
        fn visit<C: Variant<f32> + lstm_core::Backward<f32> + Sync + 'static>(&mut self) {
            if self.result.is_none() && self.variant == C::NAME {
                let w = self.w;
                self.result = Some(
                    C::seeded(w.input, w.hidden, 42)
                        .map_err(CliError::from)
                        .and_then(|cell| measure_cell(&cell, w, self.threads)),
                );
            }
        }
    }
    let mut m = Measure {
        variant,
        w,
        threads,
        result: None,
    };
    variants::each(&mut m);
    if let Some(result) = m.result {
        return result;
    }
    let stack = LstmStack::random(w.input, w.hidden, 1, 2, &mut SplitMix64::new(42))?;
    let mut rng = SplitMix64::new(1);
    let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
    let opts = StackOptions {
        threads,
        ..StackOptions::default()
    };
    let (warm, reps) = repetitions(w);
    if w.trains() {
        let dy = Array3::<f32>::ones((w.steps, w.batch, 2 * w.hidden));
        let secs = time_runs(warm, reps, || {
            stack.backward_params(x.view(), &[], &opts, dy.view(), &[])?;
            Ok(())
        })?;
        // Forward and backward, three times the forward's work.
        return Ok((secs, 3.0 * w.flops()));
    }
    let secs = time_runs(warm, reps, || {
        stack.forward(x.view(), None, None, &opts)?;
        Ok(())
    })?;
    // Two directions of `w.flops() / 2` multiply-adds each.
    Ok((secs, w.flops()))
}

fn repetitions(w: &Workload) -> (usize, usize) {
    match w.name {
        "stream" => (200, 2000),
        "seq-small" => (2, 301),
        "batch-mid" | "train-mid" => (2, 21),
        _ => (2, 7),
    }
}

/// Times one cell: a step at a time with its state carried for stream, whole sequences
/// otherwise.
fn measure_cell<C: RecurrentCell<f32> + Backward<f32> + Sync>(
    cell: &C,
    w: &Workload,
    threads: usize,
) -> CliResult<(f64, f64)> {
    let mut rng = SplitMix64::new(1);
    let mut ws = Workspace::new();
    let work = cell.step_work() as f64;
    if w.trains() {
        let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
        let dy = Array3::<f32>::ones((w.steps, w.batch, cell.output_size()));
        let opts = SeqOptions::default();
        let (warm, reps) = repetitions(w);
        let mut ws = [Workspace::new(), Workspace::new()];
        let secs = time_runs(warm, reps, || {
            lstm_engine::threads::backward_in_threads(
                cell,
                x.view(),
                None,
                &opts,
                dy.view(),
                None,
                false,
                threads,
                &mut ws,
            )?;
            Ok(())
        })?;
        return Ok((secs, 3.0 * work * (w.steps * w.batch) as f64));
    }
    if w.name == "stream" {
        let x: Array2<f32> = rng.uniform_array((1, w.input), 1.0);
        let mut gates = Array2::zeros((1, cell.gate_count() * cell.hidden_size()));
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
        return Ok((median(samples), work));
    }
    let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
    let mut out = Array3::zeros((w.steps, w.batch, cell.output_size()));
    let opts = SeqOptions::default();
    let (warm, reps) = repetitions(w);
    let secs = time_runs(warm, reps, || {
        let mut st = cell.zero_state(w.batch);
        threads::unroll_into_threads(
            cell,
            x.view(),
            &mut st,
            out.view_mut(),
            &opts,
            threads,
            &mut ws,
        )?;
        Ok(())
    })?;
    Ok((secs, work * (w.steps * w.batch) as f64))
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
            let (secs, work) = measure(variant, w, a.threads)?;
            let threads = match variant {
                LAYERS => a.threads,
                _ if w.name == "stream" => 1,
                _ => a.threads.min(w.batch),
            };
            let (value, unit) = match w.name {
                "stream" => (secs * 1e9, "ns/step"),
                "seq-small" => (secs * 1e6, "us/seq"),
                _ => (secs * 1e3, "ms/batch"),
            };
            let flops = 2.0 * work;
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
