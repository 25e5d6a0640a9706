//! The help of every command (`lstm help CMD`, `lstm CMD --help`), the suggestions of error
//! messages, and the exit codes.

use crate::CliError;

/// The exit status of a command: 0 for success, and for each kind of failure its own code, so
/// that scripts can tell a mistake in the command line from a bad file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Bad input: a file that cannot be read or written, is malformed, or does not fit the
    /// model (shapes, values, unsupported contents).
    Input = 1,
    /// Bad usage: an unknown command or option, a missing or unreadable option value.
    Usage = 2,
    /// An internal failure: a worker thread panicked.
    Internal = 3,
}

impl Exit {
    /// The exit status of an error.
    pub fn of(e: &CliError) -> Self {
        match e {
            CliError::Usage(_) => Exit::Usage,
            CliError::Lstm(lstm_core::LstmError::WorkerPanicked { .. }) => Exit::Internal,
            CliError::Lstm(_) | CliError::Output(_) => Exit::Input,
        }
    }
}

/// The help of one command.
pub struct Command {
    /// The command's name.
    pub name: &'static str,
    /// One line of what it does.
    pub summary: &'static str,
    /// The required arguments, after `lstm NAME`.
    pub usage: &'static str,
    /// What it does, in full.
    pub about: &'static str,
    /// More of it, made when printed (the registered variants, say).
    pub more: Option<fn() -> String>,
    /// Every option: its spelling with its value, and what it does with its default.
    pub options: &'static [(&'static str, &'static str)],
    /// One example.
    pub example: &'static str,
}

impl Command {
    /// The option names (`--model`, ...), for suggestions.
    pub fn option_names(&self) -> impl Iterator<Item = &'static str> {
        self.options
            .iter()
            .filter_map(|(spelling, _)| spelling.split_whitespace().next())
    }

    /// The help text: usage, description, options with their defaults, an example.
    pub fn render(&self) -> String {
        let mut s = format!("lstm {} {}\n\n", self.name, self.usage);
        s.push_str(&wrap(self.about, 2));
        if let Some(more) = self.more {
            s.push_str(&more());
        }
        if !self.options.is_empty() {
            // Descriptions start at column 30; a longer option has its own line.
            const COL: usize = 30;
            s.push_str("\nOptions:\n");
            for (o, what) in self.options {
                let body = wrap(what, COL);
                if o.len() + 4 <= COL {
                    s.push_str(&format!("  {o:<w$}{}", &body[COL..], w = COL - 2));
                } else {
                    s.push_str(&format!("  {o}\n{body}"));
                }
            }
        }
        s.push_str(&format!("\nExample:\n  {}\n", self.example));
        s
    }
}

/// `text` wrapped at 92 columns, each line indented by `indent` spaces.
fn wrap(text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > 92 {
            out.push_str(&format!("{:indent$}{line}\n", ""));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{:indent$}{line}\n", ""));
    }
    out
}

const THREADS: (&str, &str) = (
    "--threads N",
    "Threads to use, at least 1 (default 1). Work is split only where it pays: the \
     directions of a bidirectional layer, the batch, or the hidden units.",
);

/// Every command.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        summary: "run a PyTorch or ONNX model on a sequence",
        usage: "--model MODEL --input X.npy --output Y.npy [OPTIONS]",
        about: "Run a PyTorch nn.LSTM or nn.GRU (its state_dict saved as .safetensors) or an \
                ONNX model (.onnx). An ONNX graph runs whole, from its inputs to its outputs: \
                --input, --initial-h, --initial-c and --sequence-lens feed the graph inputs \
                that reach a recurrent node's X, initial_h, initial_c and sequence_lens; \
                --output, --final-h and --final-c take the graph outputs that come from its \
                Y, Y_h and Y_c. float32 input computes in float32, float64 in float64.",
        more: None,
        options: &[
            (
                "--model MODEL",
                "The model: .safetensors or .onnx (required).",
            ),
            (
                "--input X.npy",
                "The input, [T, B, I] ([B, T, I] with --batch-first) (required).",
            ),
            (
                "--output Y.npy",
                "Where the output goes, in the model's layout (required).",
            ),
            (
                "--initial-h H0.npy",
                "The initial hidden state, [L * D, B, H] (default: zeros).",
            ),
            (
                "--initial-c C0.npy",
                "The initial cell state of an LSTM, [L * D, B, H] (default: zeros).",
            ),
            (
                "--final-h HN.npy",
                "Where the final hidden state goes (default: not written).",
            ),
            (
                "--final-c CN.npy",
                "Where the final cell state goes (default: not written).",
            ),
            (
                "--sequence-lens LENS.npy",
                "Each sample's length, [B] integers (default: every sample has T steps).",
            ),
            (
                "--batch-first",
                "The input and output are [B, T, ...] (a state dict's batch_first=True; \
                 default: time-major). ONNX graphs say their layout themselves.",
            ),
            (
                "--prefix NAME.",
                "The recurrent model's prefix in a state dict (default: found when the file \
                 holds exactly one).",
            ),
            THREADS,
            (
                "--graph-input NAME=FILE.npy",
                "Feeds the ONNX graph input NAME (repeatable; default: none).",
            ),
            (
                "--graph-output NAME=FILE.npy",
                "Writes the ONNX graph output NAME (repeatable; default: none).",
            ),
            (
                "--node NAME",
                "Runs one LSTM or GRU node of an ONNX graph alone, on its own inputs and \
                 outputs (default: the whole graph).",
            ),
        ],
        example: "lstm run --model model.onnx --input x.npy --output y.npy --final-h hn.npy",
    },
    Command {
        name: "grad",
        summary: "gradients of a model's output with respect to its weights and inputs",
        usage: "--model M --input X.npy --grad-output DY.npy --output GRADS.safetensors \
                [OPTIONS]",
        about: "Write the gradient of L = sum(Y * DY) + sum(HN * DHN) + sum(CN * DCN), where Y, \
                HN and CN are what `lstm run` writes to --output, --final-h and --final-c with \
                the same model and options, with respect to every weight (under the model \
                file's own tensor names: for ONNX, the initializers or constants the LSTM and \
                GRU nodes read as W, R, B and P), the input (`input`), the initial states \
                given (`initial_h`, `initial_c`) and each graph input fed by --graph-input \
                (under its own name). The gradients are float32 or float64 as the input is.",
        more: None,
        options: &[
            ("--model M", "The model: .safetensors or .onnx (required)."),
            ("--input X.npy", "The input, as for `lstm run` (required)."),
            (
                "--grad-output DY.npy",
                "The loss's gradient with respect to the output, the output's shape \
                 (required).",
            ),
            (
                "--output GRADS.safetensors",
                "Where the gradients go (required).",
            ),
            (
                "--initial-h H0.npy",
                "The initial hidden state (default: zeros).",
            ),
            (
                "--initial-c C0.npy",
                "The initial cell state (default: zeros).",
            ),
            (
                "--grad-h DHN.npy",
                "The gradient with respect to the final h (default: zero).",
            ),
            (
                "--grad-c DCN.npy",
                "The gradient with respect to the final c (default: zero).",
            ),
            (
                "--sequence-lens LENS.npy",
                "Each sample's length (default: T each).",
            ),
            (
                "--batch-first",
                "Batch-first input and output (default: time-major).",
            ),
            (
                "--prefix NAME.",
                "The model's prefix in a state dict (default: found).",
            ),
            THREADS,
            (
                "--graph-input NAME=FILE.npy",
                "Feeds the ONNX graph input NAME; its gradient is written under NAME \
                 (repeatable).",
            ),
        ],
        example: "lstm grad --model m.safetensors --input x.npy --grad-output dy.npy --output \
                  grads.safetensors",
    },
    Command {
        name: "train",
        summary: "train a stack and a linear head on .npy data",
        usage: "--input X.npy --target Y.npy --output MODEL.safetensors [OPTIONS]",
        about: "Train a stack and a linear head. X is [T, B, I] ([B, T, I] with \
                --batch-first). Regression targets are float [B, O] ([T, B, O] with \
                --per-step), classification targets integer class ids [B] ([T, B]). MODEL \
                holds PyTorch's names (lstm.* or gru.*, head.weight, head.bias), loadable by \
                load_state_dict; the peephole LSTM and Greff et al.'s variants add \
                lstm.weight_peephole_l*, the state-gated cell has lstm.weight_ch_l* [3H, H] \
                for weight_hh_l*, and Greff's gate options are in the metadata (lstm.gates.*), \
                which `lstm run` reads. The optimizer state goes to \
                MODEL.optimizer.safetensors, for --resume.",
        more: None,
        options: &[
            ("--input X.npy", "The training inputs (required)."),
            ("--target Y.npy", "The targets (required)."),
            (
                "--output MODEL.safetensors",
                "Where the checkpoint goes (required).",
            ),
            (
                "--variant V",
                "lstm (also concat, split, np), gru, peephole (also vanilla), state-gated, \
                 or Greff et al.'s (2017) changes to the peephole LSTM: nig, nfg, nog (no \
                 input, forget, output gate), niaf, noaf (no input, output activation), cifg \
                 (f = 1 - i) (default lstm).",
            ),
            ("--hidden H", "Hidden units (default 32)."),
            ("--layers N", "Layers (default 1)."),
            (
                "--bidirectional",
                "Two directions per layer (default: one).",
            ),
            (
                "--proj-size P",
                "An LSTM's projection size, below H (default 0: none).",
            ),
            (
                "--task regression|classification",
                "Mean squared error on values, or cross-entropy on class ids (default \
                 regression).",
            ),
            (
                "--per-step",
                "Targets at every step (default: at each sample's last step).",
            ),
            ("--epochs E", "Epochs (default 10)."),
            ("--batch-size B", "Samples per optimizer step (default 32)."),
            (
                "--optimizer sgd|adam|adamw",
                "torch.optim's update rule (default adam).",
            ),
            ("--lr LR", "Learning rate (default 1e-3)."),
            (
                "--weight-decay W",
                "Weight decay (default: the optimizer's, 0 or 0.01 for adamw).",
            ),
            (
                "--clip-grad-norm X",
                "clip_grad_norm_ before each step (default: none).",
            ),
            (
                "--tbptt K",
                "Truncated backpropagation through time: chunks of K steps, one optimizer \
                 step per chunk, the state carried; needs --per-step and one direction \
                 (default: whole sequences).",
            ),
            (
                "--dropout P",
                "Dropout between layers while training, as nn.LSTM(dropout=P) (default 0).",
            ),
            (
                "--validation-split F",
                "The last fraction F of the samples is held out and evaluated each epoch \
                 (default 0).",
            ),
            (
                "--sequence-lens LENS.npy",
                "Each sample's length (default: T each).",
            ),
            (
                "--batch-first",
                "X (and per-step targets) batch-first (default: time-major).",
            ),
            (
                "--seed S",
                "Seed of the initialisation and the batch order (default 0).",
            ),
            (
                "--schedule constant|step:N[:GAMMA]|cosine:N[:MIN]",
                "The learning rate, stepped once per epoch: StepLR (times GAMMA, default \
                 0.1, every N epochs) or CosineAnnealingLR (down to MIN, default 0, over N \
                 epochs) (default constant).",
            ),
            (
                "--forget-bias V",
                "Start the forget gate's biases at V (default: PyTorch's uniform \
                 initialisation).",
            ),
            THREADS,
            (
                "--resume CKPT",
                "Continue the run saved in CKPT exactly (default: a new run).",
            ),
            (
                "--loss-plot LOSS.svg",
                "Draw the loss curves (default: none).",
            ),
            (
                "--format json",
                "Print one JSON object with the curves (default: a table).",
            ),
        ],
        example: "lstm train --input x.npy --target y.npy --output m.safetensors --epochs 40 \
                  --schedule cosine:40",
    },
    Command {
        name: "predict",
        summary: "run a model `lstm train` wrote",
        usage: "--model MODEL.safetensors --input X.npy --output P.npy [OPTIONS]",
        about: "Run a model `lstm train` wrote: values, or class probabilities (the softmax \
                read-out), at each sample's last step ([B, O]) or at every step ([T, B, O]), \
                as it was trained.",
        more: None,
        options: &[
            ("--model MODEL.safetensors", "The checkpoint (required)."),
            ("--input X.npy", "The inputs (required)."),
            ("--output P.npy", "Where the predictions go (required)."),
            (
                "--sequence-lens LENS.npy",
                "Each sample's length (default: T each).",
            ),
            ("--batch-first", "X is [B, T, I] (default: time-major)."),
            THREADS,
        ],
        example: "lstm predict --model m.safetensors --input x.npy --output p.npy",
    },
    Command {
        name: "compare",
        summary: "train every variant on one task and compare them",
        usage: "--task adding|copy [OPTIONS]",
        about: "Train every variant on one task with the same data, budget and seeds (Adam at \
                0.01, batches of 32, gradient norm clipped at 1, forget bias 1), and print for \
                each the final validation loss (mean and spread over the seeds), its accuracy \
                for copy, and the time per epoch. adding: the adding problem of T steps \
                (always answering 1 scores 0.167). copy: 5 of 4 symbols recalled after T \
                blank steps.",
        more: None,
        options: &[
            ("--task adding|copy", "The task (required)."),
            (
                "--variants V,V,...",
                "The variants: lstm, gru, peephole, state-gated, nig, nfg, nog, niaf, noaf, \
                 cifg (default: all of them).",
            ),
            ("--seeds K", "Seeds per variant (default 3)."),
            ("--epochs E", "Epochs per run (default 10)."),
            ("--hidden H", "Hidden units (default 32)."),
            (
                "--steps T",
                "The task's length (default 30 for adding, 10 for copy).",
            ),
            (
                "--plot OUT.svg",
                "Plot the mean validation curves (default: none).",
            ),
            ("--format json", "Print one JSON object (default: a table)."),
        ],
        example: "lstm compare --task adding --variants lstm,peephole,nfg,cifg --seeds 5",
    },
    Command {
        name: "bench",
        summary: "time the canonical workloads",
        usage: "[OPTIONS]",
        about: "Time the canonical workloads (float32, random weights, after a warm-up) and \
                print the median: ns/step (stream), us/seq (seq-small), ms/batch (batch-*; \
                train-mid: one forward and backward pass, loss = sum of the outputs).",
        more: Some(bench_variants),
        options: &[
            (
                "--workload W",
                "stream, seq-small, batch-mid, batch-large or train-mid (default: the four \
                 inference workloads).",
            ),
            (
                "--variant NAME",
                "concat, split, peephole, state-gated, gru or layers (default: every one).",
            ),
            THREADS,
            (
                "--format json",
                "One JSON object per line (default: a table).",
            ),
        ],
        example: "lstm bench --workload batch-mid --variant concat --threads 2",
    },
    Command {
        name: "export",
        summary: "write a state dict's stack as a standard ONNX graph",
        usage: "--model M --output M.onnx [OPTIONS]",
        about: "Write the nn.LSTM or nn.GRU of a state dict (.safetensors, .pt, .pth; a model \
                `lstm train` wrote included) as an ONNX graph (opset 17): one LSTM or GRU node \
                per layer, joined by Transpose and Reshape. Its input is `input` [T, B, I] \
                (time-major, T and B dynamic); its outputs `output` [T, B, D * H], `h_n` and, \
                for an LSTM, `c_n` [L * D, B, H]: what `lstm run` writes for the state dict, \
                which ONNX Runtime computes too. Peepholes, the coupled forget gate and other \
                activations are written as the operator's attributes; a projection, the \
                state-gated cell and held-open gates have no ONNX form and are refused.",
        more: None,
        options: &[
            ("--model M", "The state dict (required)."),
            ("--output M.onnx", "Where the graph goes (required)."),
            (
                "--prefix NAME.",
                "The model's prefix in the state dict (default: found).",
            ),
            (
                "--lengths",
                "A `sequence_lens` [B] (int32) graph input (default: none).",
            ),
            (
                "--states",
                "`initial_h` (and `initial_c`) [L * D, B, H] graph inputs (default: none; \
                 zero states).",
            ),
            (
                "--dtype float32|float64",
                "The weights' element type (default float32).",
            ),
        ],
        example: "lstm export --model m.safetensors --output m.onnx --lengths --states",
    },
    Command {
        name: "inspect",
        summary: "what a model file holds and what of it can run",
        usage: "MODEL",
        about: "Print what MODEL holds: for ONNX, the graph's inputs and outputs and every LSTM \
                and GRU node, inside If, Loop and Scan subgraphs too, by path, with its \
                direction, sizes and layout, whether it can run alone (and why not), and \
                whether the graph runs whole; for a state dict (.safetensors, .pt, .pth), \
                every tensor with its shape and element type, and every LSTM, GRU or cell \
                found, with its prefix, layers, directions and sizes.",
        more: None,
        options: &[(
            "--model MODEL",
            "The model, instead of the positional MODEL.",
        )],
        example: "lstm inspect model.onnx",
    },
    Command {
        name: "demo",
        summary: "the seeds' worked examples and a trace of every variant",
        usage: "",
        about: "Reproduce the seed notebooks' worked examples (seeds 003 and 004) and print a \
                per-step trace of every cell variant over the sequence \"I ate cake\".",
        more: None,
        options: &[],
        example: "lstm demo",
    },
    Command {
        name: "help",
        summary: "the help of every command, or of one",
        usage: "[COMMAND]",
        about: "Print the list of commands, or the help of COMMAND (also `lstm COMMAND \
                --help`). Exit codes: 0 success, 1 bad input (a file that cannot be read or \
                written, is malformed, or does not fit the model), 2 bad usage (an unknown \
                command or option, a missing or unreadable value), 3 an internal failure.",
        more: None,
        options: &[],
        example: "lstm help run",
    },
];

/// The variants `lstm bench` times, each with what it is.
fn bench_variants() -> String {
    let mut s = String::from("  Variants:\n");
    for (name, about) in lstm_cli::variants::names() {
        s.push_str(&format!("    {name:<12} {about}\n"));
    }
    s.push_str("    layers       one bidirectional LSTM layer of the stack\n");
    s
}

/// The command named `name`.
pub fn command(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The overview: every command with its summary.
pub fn overview() -> String {
    let mut s = String::from(
        "lstm: run, differentiate and train LSTM and GRU models as their framework does, \
         fast\n\nUSAGE:\n    lstm COMMAND [OPTIONS]\n\nCOMMANDS:\n",
    );
    for c in COMMANDS {
        s.push_str(&format!("    {:<9} {}\n", c.name, c.summary));
    }
    s.push_str(
        "\n`lstm help COMMAND` or `lstm COMMAND --help` prints a command's options.\n\
         Exit codes: 0 success, 1 bad input, 2 bad usage, 3 internal failure.\n",
    );
    s
}

/// The closest of `candidates` to `given`, if one is close enough to be what was meant: within
/// a third of its length in edits (at least one), or `given` a prefix of it.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edits(given, c), c))
        .filter(|&(d, c)| d <= (c.len() / 3).max(1) || (given.len() >= 3 && c.starts_with(given)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// The edit distance between two strings: insertions, deletions, substitutions and swaps of
/// two neighbours (the optimal string alignment distance).
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        d[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// " (did you mean X?)" when one of `candidates` is close to `given`, else nothing.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(given, candidates).map_or(String::new(), |c| format!(" (did you mean {c}?)"))
}

/// The usage error of an argument command `cmd` does not take, naming it and the closest
/// option the command has.
pub fn unexpected(cmd: &str, arg: lexopt::Arg<'_>) -> CliError {
    let names = command(cmd)
        .map(|c| c.option_names().collect::<Vec<_>>())
        .unwrap_or_default();
    let msg = match arg {
        lexopt::Arg::Long(name) => {
            let given = format!("--{name}");
            format!(
                "`lstm {cmd}` has no option {given}{}",
                did_you_mean(&given, names.iter().copied())
            )
        }
        lexopt::Arg::Short(c) => format!("`lstm {cmd}` has no option -{c}"),
        lexopt::Arg::Value(v) => format!(
            "`lstm {cmd}` takes no positional argument, got {:?}; options start with --",
            v.to_string_lossy()
        ),
    };
    CliError::Usage(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("trian", "train"), 1);
        assert_eq!(
            closest("--ouput", ["--output", "--input"]),
            Some("--output")
        );
        assert_eq!(
            closest("--thread", ["--threads", "--task"]),
            Some("--threads")
        );
        assert_eq!(
            closest("--graph", ["--graph-input", "--model"]),
            Some("--graph-input")
        );
        assert_eq!(closest("--zzzzzz", ["--output", "--input"]), None);
        assert_eq!(closest("lstn", ["lstm", "gru"]), Some("lstm"));
    }

    #[test]
    fn every_command_renders_its_options_and_an_example() {
        for c in COMMANDS {
            let text = c.render();
            assert!(text.starts_with(&format!("lstm {}", c.name)));
            assert!(text.contains("Example:\n  lstm "), "{}", c.name);
            for name in c.option_names() {
                assert!(text.contains(name), "{}: {name}", c.name);
            }
            for line in text.lines() {
                assert!(line.len() <= 100, "{}: {line:?}", c.name);
            }
        }
        // The bench help names every registered variant.
        let bench = command("bench").map(Command::render).unwrap_or_default();
        for (name, _) in lstm_cli::variants::names() {
            assert!(bench.contains(name), "bench help lacks {name}");
        }
    }
}
