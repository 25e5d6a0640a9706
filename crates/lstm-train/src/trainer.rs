//! Training a stack and its head: mini-batches, the optimizer, the schedule, checkpoints.
//!
//! The weights are kept as PyTorch names them, `lstm.weight_ih_l0`, ..., `head.weight`,
//! `head.bias` (`gru.` for a GRU), so that a checkpoint loads into a PyTorch module with an
//! `lstm` (`nn.LSTM`) and a `head` (`nn.Linear`) unchanged; each step builds the model from
//! them ([`lstm_layers::torch::model_from_tensors`]), runs it, backpropagates
//! ([`lstm_layers::Stack::backward`]) and updates them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use lstm_core::ndarray::{Array2, Array3, ArrayD, ArrayView3, Axis, IxDyn, s};
use lstm_core::{Activation, Layout, LstmError, Result, Scalar};
use lstm_engine::GateConfig;
use lstm_engine::init::SplitMix64;
use lstm_layers::torch::{self, TorchModel};
use lstm_layers::{StackOptions, Tape};

use crate::head::{Head, Target, positions};
use crate::{Optimizer, OptimizerState, Schedule, Scheduler, clip_grad_norm};

/// The recurrent layer kind.
///
/// Besides `nn.LSTM`, `nn.GRU` and the two cells of the seeds, it covers the variants of
/// Greff et al., "LSTM: A Search Space Odyssey" (2017), that the engine expresses: each is the
/// paper's vanilla LSTM (with peepholes, [`Kind::Peephole`]) with one change. The paper's
/// "no peepholes" is [`Kind::Lstm`]; its "full gate recurrence" is not built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `nn.LSTM`.
    Lstm,
    /// `nn.GRU`.
    Gru,
    /// `nn.LSTM` plus diagonal peepholes `lstm.weight_peephole_l{k} [3, H]` (i, f, o).
    Peephole,
    /// The state-gated cell: gates read `c_{t-1}` through `lstm.weight_ch_l{k} [3H, H]`
    /// (i, f, o, in place of `weight_hh`), the candidate only the input, `h = tanh(o c)`.
    StateGated,
    /// NIG: the peephole LSTM with the input gate held at 1.
    NoInputGate,
    /// NFG: the peephole LSTM with the forget gate held at 1.
    NoForgetGate,
    /// NOG: the peephole LSTM with the output gate held at 1.
    NoOutputGate,
    /// NIAF: the peephole LSTM without the candidate's activation, `g = z_g`.
    NoInputActivation,
    /// NOAF: the peephole LSTM without the output activation, `h = o c`.
    NoOutputActivation,
    /// CIFG: the peephole LSTM with the forget gate coupled to the input gate, `f = 1 - i`.
    Coupled,
}

impl Kind {
    /// Every kind, in the order `lstm compare` lists them.
    pub const ALL: [Kind; 10] = [
        Kind::Lstm,
        Kind::Gru,
        Kind::Peephole,
        Kind::StateGated,
        Kind::NoInputGate,
        Kind::NoForgetGate,
        Kind::NoOutputGate,
        Kind::NoInputActivation,
        Kind::NoOutputActivation,
        Kind::Coupled,
    ];

    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lstm => "lstm",
            Kind::Gru => "gru",
            Kind::Peephole => "peephole",
            Kind::StateGated => "state-gated",
            Kind::NoInputGate => "nig",
            Kind::NoForgetGate => "nfg",
            Kind::NoOutputGate => "nog",
            Kind::NoInputActivation => "niaf",
            Kind::NoOutputActivation => "noaf",
            Kind::Coupled => "cifg",
        }
    }

    /// The kind of a name ([`Self::name`]; `concat`, `split` and `np` are the standard LSTM,
    /// `vanilla` the peephole LSTM).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "concat" | "split" | "np" => Some(Kind::Lstm),
            "vanilla" => Some(Kind::Peephole),
            _ => Self::ALL.into_iter().find(|k| k.name() == name),
        }
    }

    /// Whether the cells have peepholes (the peephole LSTM and Greff et al.'s variants of it).
    pub fn has_peepholes(self) -> bool {
        !matches!(self, Kind::Lstm | Kind::Gru | Kind::StateGated)
    }

    /// The gate options of this kind's cells.
    pub fn gates<F: Scalar>(self) -> GateConfig<F> {
        let mut g = GateConfig::default();
        let identity = Activation::Affine {
            alpha: F::one(),
            beta: F::zero(),
        };
        match self {
            Kind::NoInputGate => g.open[0] = true,
            Kind::NoForgetGate => g.open[1] = true,
            Kind::NoOutputGate => g.open[2] = true,
            Kind::NoInputActivation => g.g = identity,
            Kind::NoOutputActivation => g.h = identity,
            Kind::Coupled => g.input_forget = true,
            Kind::Lstm | Kind::Gru | Kind::Peephole | Kind::StateGated => {}
        }
        g
    }
}

/// Everything a training run is set up from.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig<F> {
    /// The layer kind.
    pub kind: Kind,
    /// Input width `I`.
    pub input: usize,
    /// Hidden width `H`.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Two directions per layer.
    pub bidirectional: bool,
    /// `proj_size` (LSTM only; 0 for none).
    pub proj_size: usize,
    /// Head outputs: values per target, or classes.
    pub outputs: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// The optimizer.
    pub optimizer: Optimizer<F>,
    /// Base learning rate.
    pub lr: F,
    /// Learning-rate schedule, stepped once per epoch.
    pub schedule: Schedule<F>,
    /// `clip_grad_norm_` before each step.
    pub clip_grad_norm: Option<F>,
    /// Initial value of the forget gate's bias (PyTorch's uniform initialisation otherwise).
    pub forget_bias: Option<F>,
    /// Seed of the initialisation and of the batch order.
    pub seed: u64,
    /// Threads of the forward runs.
    pub threads: usize,
    /// Truncated backpropagation through time: chunks of this many steps (see
    /// [`Trainer::step`]).
    pub tbptt: Option<usize>,
    /// Inter-layer dropout probability while training ([`lstm_layers::Dropout`]; a new mask
    /// for every optimizer step, from the seed and the step count). Evaluation and prediction
    /// run without it.
    pub dropout: Option<f64>,
}

impl<F: Scalar> TrainConfig<F> {
    fn prefix(&self) -> &'static str {
        match self.kind {
            Kind::Gru => "gru.",
            _ => "lstm.",
        }
    }

    /// The architecture saved in a checkpoint's metadata ([`Trainer::save`]); the training
    /// hyperparameters take their defaults (Adam at 1e-3, batches of 32, seed 0).
    ///
    /// # Errors
    /// [`LstmError::Format`] naming the first entry that is missing or not understood.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Self> {
        let bad = |k: &str| {
            LstmError::format(
                "checkpoint metadata",
                format!("missing or unreadable entry {k:?}"),
            )
        };
        let num = |k: &str| -> Result<usize> {
            meta.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(k))
        };
        let kind = meta
            .get("kind")
            .and_then(|k| Kind::from_name(k))
            .ok_or_else(|| bad("kind"))?;
        Ok(Self {
            kind,
            input: num("input_size")?,
            hidden: num("hidden_size")?,
            layers: num("num_layers")?,
            bidirectional: meta
                .get("bidirectional")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("bidirectional"))?,
            proj_size: num("proj_size")?,
            outputs: num("outputs")?,
            batch_size: 32,
            optimizer: Optimizer::adam(),
            lr: F::of(1e-3),
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            forget_bias: None,
            seed: 0,
            threads: 1,
            tbptt: None,
            dropout: None,
        })
    }

    fn metadata(&self) -> HashMap<String, String> {
        let v = |x: F| format!("{}", x.f64());
        let mut m = HashMap::new();
        m.insert("kind".into(), self.kind.name().to_string());
        for (k, x) in [
            ("input_size", self.input),
            ("hidden_size", self.hidden),
            ("num_layers", self.layers),
            ("proj_size", self.proj_size),
            ("outputs", self.outputs),
            ("batch_size", self.batch_size),
            ("threads", self.threads),
        ] {
            m.insert(k.into(), x.to_string());
        }
        m.insert("bidirectional".into(), self.bidirectional.to_string());
        m.insert("lr".into(), v(self.lr));
        m.insert("seed".into(), self.seed.to_string());
        m.insert("optimizer".into(), format!("{:?}", self.optimizer));
        m.insert("schedule".into(), format!("{:?}", self.schedule));
        m.extend(torch::gates_metadata(
            &self.kind.gates::<F>(),
            self.prefix(),
        ));
        m
    }
}

/// A training run in progress. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Trainer<F> {
    config: TrainConfig<F>,
    /// More entries for the checkpoint's metadata.
    notes: BTreeMap<String, String>,
    tensors: BTreeMap<String, ArrayD<F>>,
    state: OptimizerState<F>,
    scheduler: Scheduler<F>,
    epoch: u64,
    /// The forward run of a step, kept for its backward run (buffers reused across steps).
    tape: Tape<F>,
}

/// What one epoch gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats<F> {
    /// The mean of the batches' losses.
    pub loss: F,
    /// Correct predictions over the positions read (classification).
    pub accuracy: Option<f64>,
}

impl<F: Scalar> Trainer<F> {
    /// A run from PyTorch's initialisation: every recurrent weight and bias uniform in
    /// `±1/sqrt(H)`, the head's in `±1/sqrt(fan_in)`, from `config.seed`.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] for a zero size, a projection on a GRU or a projection not
    /// below `H`, and as [`Optimizer::check`] and [`Scheduler::new`].
    pub fn new(config: TrainConfig<F>) -> Result<Self> {
        let c = &config;
        if c.input == 0 || c.hidden == 0 || c.layers == 0 || c.outputs == 0 || c.batch_size == 0 {
            return Err(LstmError::invalid(
                "training configuration",
                "input, hidden, layers, outputs and batch size must be at least 1",
            ));
        }
        if c.dropout.is_some_and(|p| !(0.0..1.0).contains(&p)) {
            return Err(LstmError::invalid(
                "dropout",
                "the probability must be in [0, 1)",
            ));
        }
        if c.tbptt == Some(0) {
            return Err(LstmError::invalid("tbptt", "chunks need at least one step"));
        }
        if c.proj_size > 0 && (c.kind == Kind::Gru || c.proj_size >= c.hidden) {
            return Err(LstmError::invalid(
                "proj_size",
                "needs an LSTM and a size below the hidden size",
            ));
        }
        c.optimizer.check()?;
        let scheduler = Scheduler::new(c.schedule, c.lr)?;
        let mut rng = SplitMix64::new(c.seed);
        let (h, gates) = (c.hidden, if c.kind == Kind::Gru { 3 } else { 4 });
        let p = if c.proj_size > 0 { c.proj_size } else { h };
        let d = if c.bidirectional { 2 } else { 1 };
        let k = 1.0 / (h as f64).sqrt();
        let mut tensors = BTreeMap::new();
        let prefix = c.prefix();
        for layer in 0..c.layers {
            let width = if layer == 0 { c.input } else { d * p };
            for dir in 0..d {
                let sfx = if dir == 0 { "" } else { "_reverse" };
                let mut put = |name: String, shape: &[usize]| {
                    let a: ArrayD<F> = rng.uniform_array(IxDyn(shape), k);
                    tensors.insert(format!("{prefix}{name}_l{layer}{sfx}"), a);
                };
                put("weight_ih".into(), &[gates * h, width]);
                if c.kind == Kind::StateGated {
                    put("weight_ch".into(), &[3 * h, h]);
                } else {
                    put("weight_hh".into(), &[gates * h, p]);
                }
                if c.kind.has_peepholes() {
                    put("weight_peephole".into(), &[3, h]);
                }
                put("bias_ih".into(), &[gates * h]);
                put("bias_hh".into(), &[gates * h]);
                if c.proj_size > 0 {
                    put("weight_hr".into(), &[p, h]);
                }
                if let (Some(v), true) = (c.forget_bias, c.kind != Kind::Gru) {
                    for (name, value) in [("bias_ih", v), ("bias_hh", F::zero())] {
                        let key = format!("{prefix}{name}_l{layer}{sfx}");
                        if let Some(b) = tensors.get_mut(&key) {
                            for j in h..2 * h {
                                b[[j]] = value;
                            }
                        }
                    }
                }
            }
        }
        let fan_in = d * p;
        let kh = 1.0 / (fan_in as f64).sqrt();
        tensors.insert(
            "head.weight".into(),
            rng.uniform_array(IxDyn(&[c.outputs, fan_in]), kh),
        );
        tensors.insert(
            "head.bias".into(),
            rng.uniform_array(IxDyn(&[c.outputs]), kh),
        );
        let params: Vec<ArrayD<F>> = tensors.values().cloned().collect();
        Ok(Self {
            state: OptimizerState::new(&params),
            notes: BTreeMap::new(),
            config,
            tensors,
            scheduler,
            epoch: 0,
            tape: Tape::new(),
        })
    }

    /// Adds an entry to the metadata [`Self::save`] writes (what the weights are for, say).
    pub fn note(&mut self, key: &str, value: &str) {
        self.notes.insert(key.to_string(), value.to_string());
    }

    /// Loads a checkpoint for prediction: the architecture from its metadata, the weights,
    /// and the metadata itself.
    ///
    /// # Errors
    /// As [`TrainConfig::from_metadata`] and [`Self::resume`].
    pub fn load(path: &Path) -> Result<(Self, HashMap<String, String>)> {
        let (_, meta) = torch::read_tensors::<F>(path)?;
        let config = TrainConfig::from_metadata(&meta)?;
        let mut run = Self::new(config)?;
        let (weights, _) = torch::read_tensors::<F>(path)?;
        run.take_weights(&weights, path)?;
        Ok((run, meta))
    }

    /// Takes every tensor this run has from `weights`, checking its shape.
    fn take_weights(&mut self, weights: &torch::NamedTensors<F>, path: &Path) -> Result<()> {
        for (k, slot) in self.tensors.iter_mut() {
            let t = weights
                .get(k)
                .ok_or_else(|| LstmError::format(path.display(), format!("missing tensor {k}")))?;
            lstm_core::check_shape(k, t.shape(), slot.shape())?;
            *slot = t.clone();
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig<F> {
        &self.config
    }

    /// Epochs done.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The weights under their PyTorch names.
    pub fn tensors(&self) -> &BTreeMap<String, ArrayD<F>> {
        &self.tensors
    }

    /// The recurrent model of the current weights.
    ///
    /// # Errors
    /// Never for weights this run made (as [`torch::model_from_tensors`] otherwise).
    pub fn model(&self) -> Result<TorchModel<F>> {
        let c = &self.config;
        torch::model_from_tensors_with(
            &self.tensors,
            "the trained model",
            c.prefix(),
            &c.kind.gates(),
        )
    }

    /// The head of the current weights.
    ///
    /// # Errors
    /// Never for weights this run made.
    pub fn head(&self) -> Result<Head<F>> {
        let get = |k: &str| {
            self.tensors
                .get(k)
                .cloned()
                .ok_or_else(|| LstmError::invalid("head", format!("no tensor {k}")))
        };
        let dims = |e: lstm_core::ndarray::ShapeError| LstmError::invalid("head", e);
        Ok(Head {
            weight: get("head.weight")?.into_dimensionality().map_err(dims)?,
            bias: get("head.bias")?.into_dimensionality().map_err(dims)?,
        })
    }

    fn stack_opts<'a>(&self, lengths: &'a [usize]) -> StackOptions<'a> {
        StackOptions {
            layout: Layout::TimeMajor,
            lengths: Some(lengths),
            threads: self.config.threads,
            ..StackOptions::default()
        }
    }

    /// [`Self::stack_opts`] in training mode: with this step's dropout masks.
    fn train_opts<'a>(&self, lengths: &'a [usize]) -> StackOptions<'a> {
        let seed = self.config.seed ^ self.state.step.wrapping_mul(0x2545_f491_4f6c_dd1d);
        StackOptions {
            dropout: self
                .config
                .dropout
                .map(|p| lstm_layers::Dropout { p, seed }),
            ..self.stack_opts(lengths)
        }
    }

    /// The stack's time-major output `[T, B, D * P]` for `x [T, B, I]`.
    fn output(
        &self,
        model: &TorchModel<F>,
        x: ArrayView3<'_, F>,
        lengths: &[usize],
    ) -> Result<Array3<F>> {
        let opts = self.stack_opts(lengths);
        Ok(match model {
            TorchModel::Lstm(s) => s.forward_states(x, &[], &opts)?.output,
            TorchModel::Gru(s) => s.forward_states(x, &[], &opts)?.output,
        })
    }

    /// One optimizer step on one mini-batch (`x [T, B, I]` time-major, `lengths` of its rows);
    /// returns the batch's loss and correct count. With [`TrainConfig::tbptt`] set to `K`
    /// below `T`, the batch is cut into chunks of `K` steps: truncated backpropagation
    /// through time, one optimizer step per chunk, the final states of a chunk (detached)
    /// starting the next; the loss returned is the mean over the chunks.
    ///
    /// # Errors
    /// As [`Head::loss`] and [`lstm_layers::Stack::backward`];
    /// [`LstmError::NonFinite`] when the gradients are not finite (the weights are then left
    /// as they were); [`LstmError::Invalid`] for truncation with last-step targets or two
    /// directions.
    pub fn step(
        &mut self,
        x: ArrayView3<'_, F>,
        lengths: &[usize],
        target: &Target<F>,
    ) -> Result<(F, Option<usize>)> {
        let t = x.dim().0;
        let k = match self.config.tbptt {
            Some(k) if k < t => k,
            _ => {
                return self
                    .step_from(x, lengths, target, None)
                    .map(|(l, c, _)| (l, c));
            }
        };
        if !target.per_step() || self.config.bidirectional {
            return Err(LstmError::invalid(
                "truncated backpropagation",
                "needs targets at every step and one direction",
            ));
        }
        let (mut sum, mut chunks, mut correct, mut carried) = (F::zero(), 0usize, None, None);
        for t0 in (0..t).step_by(k) {
            let t1 = (t0 + k).min(t);
            let lc: Vec<usize> = lengths
                .iter()
                .map(|&l| l.saturating_sub(t0).min(t1 - t0))
                .collect();
            if lc.iter().all(|&l| l == 0) {
                break;
            }
            let tc = match target {
                Target::StepValues(v) => Target::StepValues(v.slice(s![t0..t1, .., ..]).to_owned()),
                Target::StepClasses(c) => Target::StepClasses(c.slice(s![t0..t1, ..]).to_owned()),
                _ => unreachable!("checked: targets at every step"),
            };
            let xc = x.slice(s![t0..t1, .., ..]);
            let (loss, c, finals) = self.step_from(xc, &lc, &tc, carried.as_deref())?;
            sum += loss;
            chunks += 1;
            if let Some(c) = c {
                *correct.get_or_insert(0) += c;
            }
            carried = Some(finals);
        }
        Ok((sum / F::of(chunks.max(1) as f64), correct))
    }

    /// One optimizer step from the initial states `initial` (zero if `None`); the loss, the
    /// correct count and the final states.
    fn step_from(
        &mut self,
        x: ArrayView3<'_, F>,
        lengths: &[usize],
        target: &Target<F>,
        initial: Option<&[Array3<F>]>,
    ) -> Result<(F, Option<usize>, Vec<Array3<F>>)> {
        let model = self.model()?;
        let head = self.head()?;
        let opts = self.train_opts(lengths);
        let init: Vec<Option<ArrayView3<'_, F>>> = initial
            .map(|parts| parts.iter().map(|a| Some(a.view())).collect())
            .unwrap_or_default();
        // One forward run, kept for the backward one.
        let states = model.forward_kept(x, &init, &opts, &mut self.tape)?;
        let hg = head.loss(states.output.view(), lengths, target)?;
        let g = model.backward_kept(&mut self.tape, hg.d_output.view(), &[], false)?;
        let names: Vec<String> = self.tensors.keys().cloned().collect();
        let mut named: BTreeMap<String, ArrayD<F>> =
            torch::named_gradients(&g, self.config.prefix(), &names)
                .into_iter()
                .collect();
        named.insert("head.weight".into(), hg.weight.into_dyn());
        named.insert("head.bias".into(), hg.bias.into_dyn());
        let mut grads: Vec<ArrayD<F>> = Vec::with_capacity(names.len());
        for n in &names {
            grads.push(
                named.remove(n).ok_or_else(|| {
                    LstmError::invalid("gradients", format!("no gradient for {n}"))
                })?,
            );
        }
        for (n, g) in names.iter().zip(&grads) {
            lstm_core::check_finite(&format!("gradient of {n}"), g.iter())?;
        }
        if let Some(max) = self.config.clip_grad_norm {
            clip_grad_norm(&mut grads, max)?;
        }
        let mut params: Vec<ArrayD<F>> = self.tensors.values().cloned().collect();
        self.config
            .optimizer
            .step(&mut params, &grads, &mut self.state, self.scheduler.lr())?;
        for (slot, p) in self.tensors.values_mut().zip(params) {
            *slot = p;
        }
        Ok((hg.loss, hg.correct, states.finals))
    }

    /// One epoch over the samples of `x [T, N, I]` (time-major) in mini-batches, in an order
    /// shuffled from the seed and the epoch (so that a resumed run takes the same batches),
    /// then one step of the schedule.
    ///
    /// # Errors
    /// As [`Self::step`]; [`LstmError::Shape`] when the lengths or targets do not have one
    /// entry per sample.
    pub fn epoch_on(
        &mut self,
        x: ArrayView3<'_, F>,
        lengths: &[usize],
        target: &Target<F>,
    ) -> Result<EpochStats<F>> {
        let n = x.dim().1;
        lstm_core::check_shape("lengths", &[lengths.len()], &[n])?;
        lstm_core::check_shape("targets", &[target.batch()], &[n])?;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = SplitMix64::new(self.config.seed ^ (self.epoch + 1).wrapping_mul(0x9e37));
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let (mut sum, mut batches, mut correct, mut read) = (F::zero(), 0usize, 0usize, 0usize);
        for rows in order.chunks(self.config.batch_size) {
            let xb = x.select(Axis(1), rows);
            let lb: Vec<usize> = rows.iter().map(|&r| lengths[r]).collect();
            let tb = target.select(rows);
            let (loss, c) = self.step(xb.view(), &lb, &tb)?;
            sum += loss;
            batches += 1;
            if let Some(c) = c {
                correct += c;
                read += positions(x.dim().0, &lb, target.per_step()).len();
            }
        }
        self.epoch += 1;
        self.scheduler.step();
        Ok(EpochStats {
            loss: sum / F::of(batches.max(1) as f64),
            accuracy: target
                .classes()
                .then(|| correct as f64 / read.max(1) as f64),
        })
    }

    /// The loss (and accuracy) of the current weights on `x [T, N, I]`, without training.
    ///
    /// # Errors
    /// As [`Head::loss`].
    pub fn evaluate(
        &self,
        x: ArrayView3<'_, F>,
        lengths: &[usize],
        target: &Target<F>,
    ) -> Result<EpochStats<F>> {
        let output = self.output(&self.model()?, x, lengths)?;
        let hg = self.head()?.loss(output.view(), lengths, target)?;
        let read = positions(x.dim().0, lengths, target.per_step()).len();
        Ok(EpochStats {
            loss: hg.loss,
            accuracy: hg.correct.map(|c| c as f64 / read.max(1) as f64),
        })
    }

    /// The optimizer state's file beside a checkpoint: `NAME.optimizer.safetensors`.
    pub fn optimizer_path(path: &Path) -> PathBuf {
        let stem = path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy());
        path.with_file_name(format!("{stem}.optimizer.safetensors"))
    }

    /// Saves the weights to `path` (PyTorch's names, the configuration and the epoch in the
    /// header's `__metadata__`) and the optimizer state beside it
    /// ([`Self::optimizer_path`]), each written whole or not at all.
    ///
    /// # Errors
    /// [`LstmError::Io`] when a file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = self.config.metadata();
        meta.insert("epoch".into(), self.epoch.to_string());
        for (k, v) in &self.notes {
            meta.insert(k.clone(), v.clone());
        }
        let tensors: Vec<(String, ArrayD<F>)> = self
            .tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        torch::save(path, &tensors, Some(meta))?;
        let mut opt = Vec::new();
        for ((name, _), (m, v)) in self
            .tensors
            .iter()
            .zip(self.state.first.iter().zip(&self.state.second))
        {
            opt.push((format!("first.{name}"), m.clone()));
            opt.push((format!("second.{name}"), v.clone()));
        }
        let mut ometa = HashMap::new();
        ometa.insert("step".into(), self.state.step.to_string());
        ometa.insert("epoch".into(), self.epoch.to_string());
        torch::save(&Self::optimizer_path(path), &opt, Some(ometa))
    }

    /// Continues a run saved by [`Self::save`] with the same `config`: the weights, the
    /// optimizer state, the epoch and the schedule's position, so that the run goes on as if
    /// it had not stopped.
    ///
    /// # Errors
    /// [`LstmError::Io`] or [`LstmError::Format`] for files that cannot be read or do not hold
    /// this configuration's tensors.
    pub fn resume(config: TrainConfig<F>, path: &Path) -> Result<Self> {
        let mut run = Self::new(config)?;
        let (weights, meta) = torch::read_tensors::<F>(path)?;
        let (opt, ometa) = torch::read_tensors::<F>(&Self::optimizer_path(path))?;
        let name = path.display().to_string();
        let missing = |what: String| LstmError::format(&name, format!("missing {what}"));
        for (k, slot) in run.tensors.iter_mut() {
            let t = weights
                .get(k)
                .ok_or_else(|| missing(format!("tensor {k}")))?;
            lstm_core::check_shape(k, t.shape(), slot.shape())?;
            *slot = t.clone();
        }
        for (idx, k) in run.tensors.keys().enumerate() {
            let m = opt
                .get(&format!("first.{k}"))
                .ok_or_else(|| missing(format!("first.{k}")))?;
            let v = opt
                .get(&format!("second.{k}"))
                .ok_or_else(|| missing(format!("second.{k}")))?;
            lstm_core::check_shape(k, m.shape(), run.state.first[idx].shape())?;
            lstm_core::check_shape(k, v.shape(), run.state.second[idx].shape())?;
            run.state.first[idx] = m.clone();
            run.state.second[idx] = v.clone();
        }
        let num = |m: &HashMap<String, String>, k: &str| -> Result<u64> {
            m.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| missing(format!("metadata {k}")))
        };
        run.state.step = num(&ometa, "step")?;
        run.epoch = num(&meta, "epoch")?;
        for _ in 0..run.epoch {
            run.scheduler.step();
        }
        Ok(run)
    }

    /// Predictions of the current weights at each sample's last valid step (or every valid
    /// step): `[N, O]` values or class probabilities, rows in the order of
    /// [`crate::head::positions`].
    ///
    /// # Errors
    /// As [`Head::predict`].
    pub fn predict(
        &self,
        x: ArrayView3<'_, F>,
        lengths: &[usize],
        per_step: bool,
        classes: bool,
    ) -> Result<Array2<F>> {
        let output = self.output(&self.model()?, x, lengths)?;
        let at = positions(x.dim().0, lengths, per_step);
        self.head()?.predict(output.view(), &at, classes)
    }
}
