//! Backpropagation through the stack: every layer and direction, from the last layer down.

use lstm_core::ndarray::{Array3, ArrayView3, Axis, s};
use lstm_core::{
    Backward, CellState, Layout, LstmError, RecurrentCell, Result, Scalar, SeqOptions, Workspace,
    check_shape,
};
use lstm_engine::threads as split;

use super::{Dropout, EmptyFinalState, Stack, StackOptions, StackStates};

/// What [`Stack::backward`] returns.
#[derive(Clone, Debug)]
pub struct StackGradients<F, G> {
    /// The gradient with respect to the input, in its shape and layout.
    pub input: Array3<F>,
    /// For each part of the cell's state, `[D * L, B, width]`: the gradient with respect to
    /// each layer's and direction's initial state (index `layer * D + direction`).
    pub initial: Vec<Array3<F>>,
    /// The gradient of each cell's parameters, `[layer][direction]`.
    pub params: Vec<Vec<G>>,
}

impl<F: Scalar, C: Backward<F> + Sync> Stack<C, F> {
    /// The gradients of a loss with respect to the input, the initial states and every cell's
    /// parameters of the run [`Stack::forward_states`] makes with the same `x`, `initial` and
    /// `opts`, given the loss's gradients with respect to the output (`d_output`, the output's
    /// shape and layout) and to the final states (`d_finals[k]` for part `k`,
    /// `[D * L, B, width]`; absent parts are zero).
    ///
    /// Each layer's forward run is kept, then each direction of each layer, from the last
    /// layer down, runs [`lstm_core::backward`]; a layer's input gradient (the sum over its
    /// directions) is the output gradient of the layer below. Padded steps get no gradient,
    /// and with [`EmptyFinalState::Zero`] neither does a length-0 sample's final state.
    ///
    /// # Errors
    /// As [`Stack::forward_states`], and [`LstmError::Shape`] for gradients of the wrong
    /// shape.
    pub fn backward(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d_finals: &[Option<ArrayView3<'_, F>>],
    ) -> Result<StackGradients<F, C::Grad>> {
        self.run_backward(x, initial, opts, d_output, d_finals, true)
    }

    /// [`Stack::backward`] without the gradient with respect to the input, as training needs
    /// it (the input is data): the first layer skips that product, and the returned `input`
    /// is empty (`[0, 0, 0]`).
    ///
    /// # Errors
    /// As [`Stack::backward`].
    pub fn backward_params(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d_finals: &[Option<ArrayView3<'_, F>>],
    ) -> Result<StackGradients<F, C::Grad>> {
        self.run_backward(x, initial, opts, d_output, d_finals, false)
    }

    fn run_backward(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d_finals: &[Option<ArrayView3<'_, F>>],
        want_input: bool,
    ) -> Result<StackGradients<F, C::Grad>> {
        let mut tape = Tape::default();
        self.forward_kept(x, initial, opts, &mut tape)?;
        self.backward_kept(&mut tape, d_output, d_finals, want_input)
    }

    /// The run [`Stack::forward_states`] makes, in training mode: the same output and final
    /// states, with what [`Stack::backward_kept`] needs kept in `tape` (each layer's input,
    /// each cell's activations). A training step computes its loss from the output, then
    /// calls [`Stack::backward_kept`], so that the stack runs forward once. A tape kept
    /// across steps of the same shapes allocates its buffers once.
    ///
    /// # Errors
    /// As [`Stack::forward_states`].
    pub fn forward_kept(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
        tape: &mut Tape<F>,
    ) -> Result<StackStates<F>> {
        let (t, b) = self.check_run(x, initial, opts)?;
        let (d, p, h, l) = (
            self.num_directions(),
            self.output_size(),
            self.hidden_size(),
            self.num_layers(),
        );
        let parts = <C::State as CellState<F>>::PARTS;
        tape.ready = false;
        tape.dims = (t, b);
        tape.layout = opts.layout;
        tape.lengths = opts.lengths.map(<[usize]>::to_vec);
        tape.empty_final_state = opts.empty_final_state;
        tape.dropout = opts.dropout;
        tape.threads = opts.threads;
        tape.initial.resize_with(parts, || Array3::zeros((0, 0, 0)));
        for (k, slot) in tape.initial.iter_mut().enumerate() {
            let shape = (d * l, b, if k == 0 { p } else { h });
            reuse(slot, shape);
            match initial.get(k).copied().flatten() {
                Some(a) => slot.assign(&a),
                None => slot.fill(F::zero()),
            }
        }
        tape.inputs.resize_with(l, || Array3::zeros((0, 0, 0)));
        reuse(&mut tape.inputs[0], (t, b, self.input_size()));
        match opts.layout {
            Layout::TimeMajor => tape.inputs[0].assign(&x),
            Layout::BatchFirst => tape.inputs[0].assign(&x.permuted_axes([1, 0, 2])),
        }
        tape.ws.resize_with(l * d, Default::default);
        tape.split.resize(l * d, false);
        let mut finals: Vec<Array3<F>> = tape
            .initial
            .iter()
            .map(|a| Array3::zeros(a.raw_dim()))
            .collect();
        let mut output = Array3::zeros((t, b, d * p));
        let lengths = tape.lengths.as_deref();
        for (k, layer) in self.layers.iter().enumerate() {
            let (done, rest) = tape.inputs.split_at_mut(k + 1);
            let out = match rest.first_mut() {
                Some(next) => {
                    reuse(next, (t, b, d * p));
                    next
                }
                None => &mut output,
            };
            for (dir, cell) in layer.iter().enumerate() {
                let idx = k * d + dir;
                let mut state = state_of(cell, b, idx, &tape.initial);
                let split = split::kept_split(cell, t, b, opts.threads);
                tape.split[idx] = split;
                split::forward_kept_in_threads(
                    cell,
                    done[k].view(),
                    &self.seq(dir, lengths),
                    out.slice_mut(s![.., .., dir * p..(dir + 1) * p]),
                    &mut state,
                    split,
                    &mut tape.ws[idx],
                )?;
                if opts.empty_final_state == EmptyFinalState::Zero
                    && let Some(lengths) = lengths
                {
                    for (row, _) in lengths.iter().enumerate().filter(|&(_, &n)| n == 0) {
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
                && k + 1 < l
            {
                *out *= &drop.mask::<F>(k, out.dim());
            }
        }
        tape.ready = true;
        let output = match opts.layout {
            Layout::TimeMajor => output,
            Layout::BatchFirst => output
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned(),
        };
        Ok(StackStates { output, finals })
    }

    /// The backward run of the forward run [`Stack::forward_kept`] kept in `tape` (with its
    /// input, initial states and options), given the loss's gradients with respect to the
    /// output and the final states (as [`Stack::backward`] takes them). Without
    /// `want_input` the first layer skips the input's gradient and the returned `input` is
    /// empty (as [`Stack::backward_params`]). The tape stays as it was, ready for another
    /// backward run of the same forward run.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] for a tape no forward run of this stack filled,
    /// [`LstmError::Shape`] for gradients of the wrong shape, and
    /// [`LstmError::WorkerPanicked`] when a worker panicked.
    pub fn backward_kept(
        &self,
        tape: &mut Tape<F>,
        d_output: ArrayView3<'_, F>,
        d_finals: &[Option<ArrayView3<'_, F>>],
        want_input: bool,
    ) -> Result<StackGradients<F, C::Grad>> {
        let (d, p, h, l) = (
            self.num_directions(),
            self.output_size(),
            self.hidden_size(),
            self.num_layers(),
        );
        let parts = <C::State as CellState<F>>::PARTS;
        if !tape.ready
            || tape.inputs.len() != l
            || tape.ws.len() != l * d
            || tape.initial.len() != parts
            || tape.inputs[0].dim().2 != self.input_size()
        {
            return Err(LstmError::invalid(
                "tape",
                "no forward run of this stack was kept in it (call forward_kept first)",
            ));
        }
        let (t, b) = tape.dims;
        let out_shape = match tape.layout {
            Layout::TimeMajor => [t, b, d * p],
            Layout::BatchFirst => [b, t, d * p],
        };
        check_shape("output gradient", d_output.shape(), &out_shape)?;
        let final_shape = |k: usize| [d * l, b, if k == 0 { p } else { h }];
        if d_finals.len() > parts {
            return Err(LstmError::invalid(
                "final state gradient",
                format!("the cell's state has {parts} parts, got {}", d_finals.len()),
            ));
        }
        for (k, d) in d_finals.iter().enumerate() {
            if let Some(a) = d {
                let what = format!("final state gradient (part {k})");
                check_shape(&what, a.shape(), &final_shape(k))?;
            }
        }
        let mut given: Vec<Array3<F>> = (0..parts)
            .map(|k| match d_finals.get(k).copied().flatten() {
                Some(a) => a.to_owned(),
                None => Array3::zeros(final_shape(k)),
            })
            .collect();
        if tape.empty_final_state == EmptyFinalState::Zero
            && let Some(lengths) = &tape.lengths
        {
            for (row, _) in lengths.iter().enumerate().filter(|&(_, &n)| n == 0) {
                for g in &mut given {
                    g.slice_mut(s![.., row, ..]).fill(F::zero());
                }
            }
        }
        let mut d_out = match tape.layout {
            Layout::TimeMajor => d_output.to_owned(),
            Layout::BatchFirst => d_output
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned(),
        };
        let mut init_grads: Vec<Array3<F>> =
            (0..parts).map(|k| Array3::zeros(final_shape(k))).collect();
        let mut params: Vec<Vec<C::Grad>> = Vec::with_capacity(l);
        let lengths = tape.lengths.as_deref();
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = &tape.inputs[k];
            let skip_input = k == 0 && !want_input;
            let width = if skip_input { 0 } else { input.dim().2 };
            let mut d_in = Array3::zeros((t, b, width));
            let mut grads = Vec::with_capacity(d);
            for (dir, cell) in layer.iter().enumerate() {
                let idx = k * d + dir;
                let s0 = state_of(cell, b, idx, &tape.initial);
                let mut ds = state_of(cell, b, idx, &given);
                let mut grad = cell.zero_grad();
                let mut dx = Array3::zeros((t, b, width));
                split::backward_kept_in_threads(
                    cell,
                    input.view(),
                    &s0,
                    &self.seq(dir, lengths),
                    d_out.slice(s![.., .., dir * p..(dir + 1) * p]),
                    &mut ds,
                    dx.view_mut(),
                    &mut grad,
                    tape.split[idx],
                    &mut tape.ws[idx],
                )?;
                if !skip_input {
                    d_in += &dx;
                }
                for (part, acc) in init_grads.iter_mut().enumerate() {
                    acc.index_axis_mut(Axis(0), idx).assign(&ds.part(part));
                }
                grads.push(grad);
            }
            params.push(grads);
            // The layer below's output went through its dropout mask.
            if let Some(drop) = tape.dropout
                && k > 0
            {
                d_in *= &drop.mask::<F>(k - 1, d_in.dim());
            }
            d_out = d_in;
        }
        params.reverse();
        let input_grad = match tape.layout {
            _ if !want_input => Array3::zeros((0, 0, 0)),
            Layout::TimeMajor => d_out,
            Layout::BatchFirst => d_out
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned(),
        };
        Ok(StackGradients {
            input: input_grad,
            initial: init_grads,
            params,
        })
    }

    /// The sequence options of direction slot `dir` of a run over `lengths`, time-major.
    fn seq<'a>(&self, dir: usize, lengths: Option<&'a [usize]>) -> SeqOptions<'a> {
        SeqOptions {
            layout: Layout::TimeMajor,
            direction: self.directions[dir],
            lengths,
            trace: false,
        }
    }
}

/// What [`Stack::forward_kept`] keeps for [`Stack::backward_kept`]: the run's options, each
/// layer's input, the initial states and each cell's workspace. Kept across training steps
/// of the same shapes, it allocates its buffers once.
#[derive(Clone, Debug, Default)]
pub struct Tape<F> {
    ready: bool,
    dims: (usize, usize),
    layout: Layout,
    lengths: Option<Vec<usize>>,
    empty_final_state: EmptyFinalState,
    dropout: Option<Dropout>,
    threads: usize,
    /// Each part of the initial state, `[D * L, B, width]`.
    initial: Vec<Array3<F>>,
    /// Each layer's input, time-major.
    inputs: Vec<Array3<F>>,
    /// Each cell's two workspaces (one per half of a split batch), `[layer * D + dir]`.
    ws: Vec<[Workspace<F>; 2]>,
    /// Whether each cell's run split the batch.
    split: Vec<bool>,
}

impl<F: Scalar> Tape<F> {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Makes `a` of shape `shape`, reusing its buffer when it has that shape already.
fn reuse<F: Scalar>(a: &mut Array3<F>, shape: (usize, usize, usize)) {
    if a.dim() != shape {
        *a = Array3::zeros(shape);
    }
}

/// The state of cell slot `idx` of a batch of `b` from the parts `given[k] [D * L, B, width]`.
fn state_of<F: Scalar, C: RecurrentCell<F>>(
    cell: &C,
    b: usize,
    idx: usize,
    given: &[Array3<F>],
) -> C::State {
    let mut s = cell.zero_state(b);
    for (part, a) in given.iter().enumerate() {
        s.part_mut(part).assign(&a.index_axis(Axis(0), idx));
    }
    s
}
