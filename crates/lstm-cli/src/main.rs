//! `lstm`: the command-line tool of the lstm workspace.
//!
//! ```text
//! lstm demo                      the seeds' worked examples and a per-step trace of every variant
//! lstm run --model M --input X.npy --output Y.npy [options]
//! lstm grad --model M --input X.npy --grad-output DY.npy --output GRADS.safetensors [options]
//! lstm train --input X.npy --target Y.npy --output MODEL.safetensors [options]
//! lstm predict --model MODEL.safetensors --input X.npy --output P.npy
//! lstm compare --task adding|copy [--variants ...] [--seeds K] [--epochs E]
//! lstm bench --workload W [--variant V] [--threads N] [--format json]
//! lstm export --model M --output M.onnx [--lengths] [--states]   a stack as ONNX
//! lstm inspect MODEL             what a model file holds and what of it can run
//! lstm help [COMMAND]             every command, or one with its options and an example
//! ```
//!
//! Exit codes: 0 success, 1 bad input, 2 bad usage, 3 internal failure ([`help::Exit`]).

use std::io::Write as _;
use std::process::ExitCode;

/// `print!` that returns a write error (a full disk, a closed pipe) as [`CliError::Output`]
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        {
            use std::io::Write as _;
            write!(std::io::stdout(), $($arg)*)
        }
        .map_err($crate::CliError::Output)?
    };
}

/// `println!` that returns a write error as [`CliError::Output`] (see [`out!`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        out!("{}\n", format_args!($($arg)*))
    };
}

mod bench;
mod compare;
mod demo;
mod export;
mod grad;
mod graph;
mod help;
mod inspect;
mod plot;
mod predict;
mod run;
mod train;

/// An error of the command line: bad usage, or an error from the library.
#[derive(Debug)]
enum CliError {
    Usage(String),
    Lstm(lstm_core::LstmError),
    /// Standard output could not be written.
    Output(std::io::Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m} (see `lstm help`)"),
            CliError::Lstm(e) => write!(f, "{e}"),
            CliError::Output(e) => write!(f, "cannot write to standard output: {e}"),
        }
    }
}

impl From<lstm_core::LstmError> for CliError {
    fn from(e: lstm_core::LstmError) -> Self {
        CliError::Lstm(e)
    }
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError::Usage(e.to_string())
    }
}

type CliResult<T = ()> = Result<T, CliError>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`lstm bench ... | head -1`): stop quietly, as a filter does.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // Nothing more can be done if standard error is gone too.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(help::Exit::of(&e) as u8)
        }
    }
}

fn run() -> CliResult {
    let mut args = std::env::args_os().skip(1);
    let Some(cmd) = args.next() else {
        // The help goes with the usage error; if it cannot be written, the error still can.
        let _ = write!(std::io::stdout(), "{}", help::overview());
        return Err(CliError::Usage("no command given".into()));
    };
    let rest: Vec<_> = args.collect();
    let cmd = cmd.to_string_lossy().into_owned();
    if help::command(&cmd).is_some() && rest.iter().any(|a| a == "--help" || a == "-h") {
        return print_help(&cmd);
    }
    let parser = || lexopt::Parser::from_args(rest.clone());
    match cmd.as_str() {
        "run" => run::run(&run::parse(parser())?),
        "bench" => bench::run(&bench::parse(parser())?),
        "grad" => grad::run(&grad::parse(parser())?),
        "train" => train::run(&train::parse(parser())?),
        "predict" => train::predict(&train::parse_predict(parser())?),
        "compare" => compare::run(&compare::parse(parser())?),
        "inspect" => inspect::run(&inspect::parse(parser())?),
        "export" => export::run(&export::parse(parser())?),
        "demo" => {
            if let Some(a) = rest.first() {
                return Err(CliError::Usage(format!(
                    "`lstm demo` takes no arguments, got {a:?}"
                )));
            }
            demo::run()
        }
        "help" | "--help" | "-h" => match rest.first() {
            None => {
                out!("{}", help::overview());
                Ok(())
            }
            Some(name) => print_help(&name.to_string_lossy()),
        },
        other => Err(CliError::Usage(format!(
            "unknown command {other:?}{}",
            help::did_you_mean(other, help::COMMANDS.iter().map(|c| c.name))
        ))),
    }
}

/// Prints the help of command `name`.
fn print_help(name: &str) -> CliResult {
    match help::command(name) {
        Some(c) => {
            out!("{}", c.render());
            Ok(())
        }
        None => Err(CliError::Usage(format!(
            "no command {name:?}{}",
            help::did_you_mean(name, help::COMMANDS.iter().map(|c| c.name))
        ))),
    }
}

/// The value of `--format`: `true` for `json`, `false` for `table`.
fn parse_format(v: &str) -> CliResult<bool> {
    match v {
        "json" => Ok(true),
        "table" => Ok(false),
        _ => Err(CliError::Usage(format!(
            "unknown format {v:?} (expected json or table)"
        ))),
    }
}

/// The value of `--threads`: a positive integer.
fn parse_threads(v: &str) -> CliResult<usize> {
    v.parse()
        .ok()
        .filter(|&n: &usize| n >= 1)
        .ok_or_else(|| CliError::Usage(format!("--threads needs a positive integer, got {v:?}")))
}
