//! A stack of LSTM layers, each one or two directions.

use lstm_core::ndarray::{Array2, Array3, ArrayView3, ArrayViewMut3, Axis, s};
use lstm_core::{
    CellState, Direction, Layout, LstmError, RecurrentCell, Result, Scalar, SeqOptions, Workspace,
    check_shape, unroll,
};
use lstm_engine::{EngineSpec, LstmEngine, threads as split};

mod backward;

pub use backward::{StackGradients, Tape};

/// Converts signed lengths (as `.npy` and ONNX store them) to `usize`, each in `0..=steps`.
/// The count is checked where the batch is known ([`LstmStack::forward`]).
///
/// # Errors
/// [`LstmError::Invalid`] naming the first length below 0 or above `steps`.
pub fn lengths_from_signed(lengths: &[i64], steps: usize) -> Result<Vec<usize>> {
    lengths
        .iter()
        .enumerate()
        .map(|(row, &v)| {
            usize::try_from(v)
                .ok()
                .filter(|&u| u <= steps)
                .ok_or_else(|| {
                    LstmError::invalid(
                        "sequence lengths",
                        format!("length {v} of batch row {row} is outside 0..={steps}"),
                    )
                })
        })
        .collect()
}

/// What the final state of a sample of length 0 is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmptyFinalState {
    /// The initial state, untouched (no step was taken).
    #[default]
    Initial,
    /// Zero (ONNX Runtime's convention).
    Zero,
}

/// Inter-layer dropout in training mode, as `nn.LSTM(dropout = p)` means it: each element of
/// every layer's output but the last is zeroed with probability `p` and the others scaled by
/// `1 / (1 - p)`. The masks come from `seed` and the layer, so that a forward run and the
/// backward run of the same options use the same ones (PyTorch's own random numbers cannot be
/// reproduced).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
    /// Seed of the masks.
    pub seed: u64,
}

impl Dropout {
    /// The mask of layer `layer`'s output `[T, B, W]`: `0` or `1 / (1 - p)` per element.
    fn mask<F: Scalar>(&self, layer: usize, shape: (usize, usize, usize)) -> Array3<F> {
        let mut rng = lstm_engine::init::SplitMix64::new(
            self.seed ^ (layer as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let keep = F::of(1.0 / (1.0 - self.p));
        Array3::from_shape_simple_fn(shape, || {
            if rng.uniform() < self.p {
                F::zero()
            } else {
                keep
            }
        })
    }
}

/// Options of a stack run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StackOptions<'a> {
    /// Layout of the input and the output sequence.
    pub layout: Layout,
    /// Valid length of each sample (`B` entries, each at most `T`).
    pub lengths: Option<&'a [usize]>,
    /// Final state of samples of length 0.
    pub empty_final_state: EmptyFinalState,
    /// Threads to use (0 and 1 both mean the calling thread only). With two or more, the two
    /// directions of a bidirectional layer run at once, and each direction's batch is split
    /// over the threads left to it.
    pub threads: usize,
    /// Inter-layer dropout (training mode); none by default.
    pub dropout: Option<Dropout>,
}

/// The result of [`LstmStack::forward`], shaped as `torch.nn.LSTM` returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct StackOutput<F> {
    /// `[T, B, D * P]` (or `[B, T, D * P]` batch-first): the last layer's hidden states, the
    /// directions concatenated (forward first).
    pub output: Array3<F>,
    /// `[D * L, B, P]`: the final hidden state of each layer and direction (index
    /// `layer * D + direction`).
    pub h_n: Array3<F>,
    /// `[D * L, B, H]`: the final cell states.
    pub c_n: Array3<F>,
}

/// Several layers of a recurrent cell `C`, each forward-only or bidirectional, as `torch.nn.LSTM`,
/// `torch.nn.GRU` and the ONNX recurrent operators define them: layer `k + 1` reads the
/// concatenated outputs of layer `k`.
#[derive(Clone, Debug)]
pub struct Stack<C, F> {
    layers: Vec<Vec<C>>,
    directions: Vec<Direction>,
    elem: std::marker::PhantomData<fn() -> F>,
}

/// A stack of LSTM layers on the engine.
pub type LstmStack<F> = Stack<LstmEngine<F>, F>;

/// The result of [`Stack::forward_states`].
#[derive(Clone, Debug, PartialEq)]
pub struct StackStates<F> {
    /// `[T, B, D * P]` (or `[B, T, D * P]` batch-first): the last layer's outputs.
    pub output: Array3<F>,
    /// For each part of the cell's state, `[D * L, B, width]`: the final state of each layer
    /// and direction (index `layer * D + direction`); part 0 is `h`.
    pub finals: Vec<Array3<F>>,
}

impl<F: Scalar, C: RecurrentCell<F> + Sync> Stack<C, F> {
    /// A stack from `layers[k][d]`, the cell of layer `k`, direction `d` (0 forward, 1 reverse).
    ///
    /// # Errors
    /// [`LstmError::Invalid`] for no layers or a layer without 1 or 2 directions;
    /// [`LstmError::Shape`] when the directions disagree or a layer's input size is not the
    /// previous layer's output size.
    pub fn new(layers: Vec<Vec<C>>) -> Result<Self> {
        let first = layers
            .first()
            .ok_or_else(|| LstmError::invalid("layer stack", "needs at least one layer"))?;
        let d = first.len();
        if d != 1 && d != 2 {
            return Err(LstmError::invalid(
                "layer stack",
                format!("a layer has 1 or 2 directions, got {d}"),
            ));
        }
        let (h, p) = (first[0].hidden_size(), first[0].output_size());
        let mut input = first[0].input_size();
        for (k, layer) in layers.iter().enumerate() {
            if layer.len() != d {
                return Err(LstmError::invalid(
                    "layer stack",
                    format!("layer {k} has {} directions, layer 0 has {d}", layer.len()),
                ));
            }
            for e in layer {
                let got = [e.input_size(), e.hidden_size(), e.output_size()];
                check_shape(&format!("layer {k} sizes [I, H, P]"), &got, &[input, h, p])?;
            }
            input = d * p;
        }
        let directions = [Direction::Forward, Direction::Reverse][..d].to_vec();
        Ok(Self {
            layers,
            directions,
            elem: std::marker::PhantomData,
        })
    }

    /// Sets the reading direction of each direction slot (by default forward, then reverse);
    /// a one-direction stack that reads in reverse is ONNX's `direction = "reverse"`.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] when `directions` does not have one entry per direction.
    pub fn with_directions(mut self, directions: &[Direction]) -> Result<Self> {
        if directions.len() != self.directions.len() {
            return Err(LstmError::invalid(
                "directions",
                format!(
                    "expected {} entries, got {}",
                    self.directions.len(),
                    directions.len()
                ),
            ));
        }
        self.directions = directions.to_vec();
        Ok(self)
    }

    /// Number of layers `L`.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Number of directions `D` (1 or 2).
    pub fn num_directions(&self) -> usize {
        self.layers[0].len()
    }

    /// Input width `I`.
    pub fn input_size(&self) -> usize {
        self.layers[0][0].input_size()
    }

    /// Cell width `H`.
    pub fn hidden_size(&self) -> usize {
        self.layers[0][0].hidden_size()
    }

    /// Hidden-state width `P` (`H` without projection).
    pub fn output_size(&self) -> usize {
        self.layers[0][0].output_size()
    }

    /// The direction of each direction slot of a layer.
    pub fn directions(&self) -> &[Direction] {
        &self.directions
    }

    /// The cells, `[layer][direction]`.
    pub fn layers(&self) -> &[Vec<C>] {
        &self.layers
    }

    /// Checks a run's input, initial states, lengths and dropout; `(T, B)`.
    pub(crate) fn check_run(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
    ) -> Result<(usize, usize)> {
        let (d, l, h, p, i) = (
            self.num_directions(),
            self.num_layers(),
            self.hidden_size(),
            self.output_size(),
            self.input_size(),
        );
        let (t, b) = unroll::check_input(x.shape(), i, opts.layout)?;
        let parts = <C::State as CellState<F>>::PARTS;
        if initial.len() > parts {
            return Err(LstmError::invalid(
                "initial state",
                format!("the cell's state has {parts} parts, got {}", initial.len()),
            ));
        }
        let width = |k: usize| if k == 0 { p } else { h };
        for (k, part) in initial.iter().enumerate() {
            if let Some(a) = part {
                let what = if k == 0 {
                    "initial h".to_string()
                } else if parts == 2 {
                    "initial c".to_string()
                } else {
                    format!("initial state part {k}")
                };
                check_shape(&what, a.shape(), &[d * l, b, width(k)])?;
            }
        }
        if let Some(lengths) = opts.lengths {
            unroll::check_lengths(lengths, b, t)?;
        }
        if let Some(drop) = opts.dropout
            && !(0.0..1.0).contains(&drop.p)
        {
            return Err(LstmError::invalid(
                "dropout",
                format!("the probability must be in [0, 1), got {}", drop.p),
            ));
        }
        Ok((t, b))
    }

    /// Runs the stack. `initial[k]` (if given) is part `k` of every layer's and direction's
    /// initial state, `[D * L, B, width]` (`P` for part 0, `H` for the others); absent parts
    /// are zero.
    ///
    /// # Errors
    /// [`LstmError::Shape`] for inputs or initial states of the wrong shape,
    /// [`LstmError::Invalid`] for lengths that are not `B` values in `0..=T` or more initial
    /// parts than the state has.
    pub fn forward_states(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
    ) -> Result<StackStates<F>> {
        let (d, h, p) = (
            self.num_directions(),
            self.hidden_size(),
            self.output_size(),
        );
        let (t, b) = self.check_run(x, initial, opts)?;
        let (l, parts) = (self.num_layers(), <C::State as CellState<F>>::PARTS);
        let width = |k: usize| if k == 0 { p } else { h };
        let x_tm = match opts.layout {
            Layout::TimeMajor => x,
            Layout::BatchFirst => x.permuted_axes([1, 0, 2]),
        };
        let mut finals: Vec<Array3<F>> = (0..parts)
            .map(|k| Array3::zeros((d * l, b, width(k))))
            .collect();
        let threads = opts.threads.max(1);
        let mut ws = Workspace::new();
        let mut layer_in: Option<Array3<F>> = None;
        for (k, layer) in self.layers.iter().enumerate() {
            let mut out = Array3::zeros((t, b, d * p));
            let input = layer_in.as_ref().map_or(x_tm.view(), |a| a.view());
            let run = |dir: usize,
                       out: ArrayViewMut3<'_, F>,
                       threads: usize,
                       ws: &mut Workspace<F>|
             -> Result<C::State> {
                let idx = k * d + dir;
                let mut state = layer[dir].zero_state(b);
                for (part, given) in initial.iter().enumerate() {
                    if let Some(a) = given {
                        state.part_mut(part).assign(&a.index_axis(Axis(0), idx));
                    }
                }
                let seq = SeqOptions {
                    layout: Layout::TimeMajor,
                    direction: self.directions[dir],
                    lengths: opts.lengths,
                    trace: false,
                };
                split::unroll_into_threads(&layer[dir], input, &mut state, out, &seq, threads, ws)?;
                Ok(state)
            };
            // The two directions at once where each is worth a thread of its own.
            let parallel = d == 2
                && split::useful_threads(threads, 2, 2 * split::sequence_work(&layer[0], t, b))
                    == 2;
            let states: Vec<Result<C::State>> = if parallel {
                let (fwd, bwd) = out.multi_slice_mut((s![.., .., ..p], s![.., .., p..]));
                let [ws0, ws1] = ws.per_thread(2) else {
                    unreachable!("per_thread(2) returns two workspaces")
                };
                split::both(
                    [(fwd, ws0, threads - threads / 2), (bwd, ws1, threads / 2)],
                    |dir, (out, ws, n)| run(dir, out, n, ws),
                )
                .into()
            } else {
                (0..d)
                    .map(|dir| {
                        run(
                            dir,
                            out.slice_mut(s![.., .., dir * p..(dir + 1) * p]),
                            threads,
                            &mut ws,
                        )
                    })
                    .collect()
            };
            for (dir, state) in states.into_iter().enumerate() {
                let idx = k * d + dir;
                let mut state = state?;
                if opts.empty_final_state == EmptyFinalState::Zero
                    && let Some(lengths) = opts.lengths
                {
                    for (row, _) in lengths.iter().enumerate().filter(|&(_, &len)| len == 0) {
                        for part in 0..parts {
                            state.part_mut(part).row_mut(row).fill(F::zero());
                        }
                    }
                }
                for (part, fin) in finals.iter_mut().enumerate() {
                    fin.index_axis_mut(Axis(0), idx).assign(&state.part(part));
                }
            }
            if let Some(drop) = opts.dropout
                && k + 1 < self.layers.len()
            {
                out *= &drop.mask::<F>(k, out.dim());
            }
            layer_in = Some(out);
        }
        let out = layer_in.unwrap_or_else(|| Array3::zeros((t, b, d * p)));
        let output = match opts.layout {
            Layout::TimeMajor => out,
            Layout::BatchFirst => out
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned(),
        };
        Ok(StackStates { output, finals })
    }
}

impl<F: Scalar> LstmStack<F> {
    /// A stack on random weights, uniform in `[-1/sqrt(H), 1/sqrt(H)]` as `torch.nn.LSTM`
    /// initialises them, without biases: for benchmarks and tests.
    ///
    /// # Errors
    /// As [`LstmStack::new`], and [`LstmError::Invalid`] for a zero size.
    pub fn random(
        input: usize,
        hidden: usize,
        layers: usize,
        directions: usize,
        rng: &mut lstm_engine::init::SplitMix64,
    ) -> Result<Self> {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let engines = (0..layers)
            .map(|layer| {
                let width = if layer == 0 {
                    input
                } else {
                    directions * hidden
                };
                (0..directions)
                    .map(|_| {
                        let wx: Array2<F> = rng.uniform_array((4 * hidden, width), k);
                        let wr: Array2<F> = rng.uniform_array((4 * hidden, hidden), k);
                        LstmEngine::new(EngineSpec::standard(wx.view(), wr.view()))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(engines)
    }

    /// Runs the stack. `h0 [D * L, B, P]` and `c0 [D * L, B, H]` default to zero.
    ///
    /// # Errors
    /// [`LstmError::Shape`] for inputs or initial states of the wrong shape,
    /// [`LstmError::Invalid`] for lengths that are not `B` values in `0..=T`.
    pub fn forward(
        &self,
        x: ArrayView3<'_, F>,
        h0: Option<ArrayView3<'_, F>>,
        c0: Option<ArrayView3<'_, F>>,
        opts: &StackOptions<'_>,
    ) -> Result<StackOutput<F>> {
        let StackStates { output, finals } = self.forward_states(x, &[h0, c0], opts)?;
        let [h_n, c_n]: [Array3<F>; 2] = finals
            .try_into()
            .map_err(|_| LstmError::invalid("LSTM state", "expected two parts"))?;
        Ok(StackOutput { output, h_n, c_n })
    }
}
