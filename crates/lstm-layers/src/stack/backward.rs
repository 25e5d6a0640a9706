//! Backpropagation through the stack: every layer and direction, from the last layer down.

use lstm_core::ndarray::{Array3, ArrayView3, Axis, s};
use lstm_core::{Backward, CellState, Layout, LstmError, Result, Scalar, SeqOptions, check_shape};
use lstm_engine::threads::backward_in_threads;

use super::{EmptyFinalState, Stack, StackOptions};

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
        let (t, b) = self.check_run(x, initial, opts)?;
        let (d, p, h, l) = (
            self.num_directions(),
            self.output_size(),
            self.hidden_size(),
            self.num_layers(),
        );
        let out_shape = match opts.layout {
            Layout::TimeMajor => [t, b, d * p],
            Layout::BatchFirst => [b, t, d * p],
        };
        check_shape("output gradient", d_output.shape(), &out_shape)?;
        let parts = <C::State as CellState<F>>::PARTS;
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
        let time_major = |a: ArrayView3<'_, F>| match opts.layout {
            Layout::TimeMajor => a.to_owned(),
            Layout::BatchFirst => a.permuted_axes([1, 0, 2]).as_standard_layout().into_owned(),
        };
        let state_of = |cell: &C, idx: usize, given: &[Option<ArrayView3<'_, F>>]| {
            let mut s = cell.zero_state(b);
            for (part, a) in given.iter().enumerate() {
                if let Some(a) = a {
                    s.part_mut(part).assign(&a.index_axis(Axis(0), idx));
                }
            }
            s
        };
        // Each layer's input, time-major.
        let mut inputs = vec![time_major(x)];
        for layer in &self.layers[..self.layers.len() - 1] {
            let idx = inputs.len() - 1;
            let input = &inputs[idx];
            let mut out = Array3::zeros((t, b, d * p));
            for (dir, cell) in layer.iter().enumerate() {
                let s0 = state_of(cell, idx * d + dir, initial);
                let run = cell.unroll(input.view(), Some(&s0), &self.seq(dir, opts))?;
                out.slice_mut(s![.., .., dir * p..(dir + 1) * p])
                    .assign(&run.output);
            }
            if let Some(drop) = opts.dropout {
                out *= &drop.mask::<F>(idx, out.dim());
            }
            inputs.push(out);
        }
        let mut d_out = time_major(d_output);
        let mut init_grads: Vec<Array3<F>> =
            (0..parts).map(|k| Array3::zeros(final_shape(k))).collect();
        let mut ws = [lstm_core::Workspace::new(), lstm_core::Workspace::new()];
        let mut params: Vec<Vec<C::Grad>> = Vec::with_capacity(self.layers.len());
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = &inputs[k];
            let skip_input = k == 0 && !want_input;
            let mut d_in = if skip_input {
                Array3::zeros((0, 0, 0))
            } else {
                Array3::zeros(input.raw_dim())
            };
            let mut grads = Vec::with_capacity(d);
            for (dir, cell) in layer.iter().enumerate() {
                let idx = k * d + dir;
                let s0 = state_of(cell, idx, initial);
                let mut d_final = state_of(cell, idx, d_finals);
                if opts.empty_final_state == EmptyFinalState::Zero
                    && let Some(lengths) = opts.lengths
                {
                    for (row, _) in lengths.iter().enumerate().filter(|&(_, &l)| l == 0) {
                        for part in 0..parts {
                            d_final.part_mut(part).row_mut(row).fill(F::zero());
                        }
                    }
                }
                let dy = d_out.slice(s![.., .., dir * p..(dir + 1) * p]);
                let g = backward_in_threads(
                    cell,
                    input.view(),
                    Some(&s0),
                    &self.seq(dir, opts),
                    dy,
                    Some(&d_final),
                    !skip_input,
                    opts.threads,
                    &mut ws,
                )?;
                if !skip_input {
                    d_in += &g.input;
                }
                for (part, acc) in init_grads.iter_mut().enumerate() {
                    acc.index_axis_mut(Axis(0), idx)
                        .assign(&g.initial.part(part));
                }
                grads.push(g.params);
            }
            params.push(grads);
            // The layer below's output went through its dropout mask.
            if let Some(drop) = opts.dropout
                && k > 0
            {
                d_in *= &drop.mask::<F>(k - 1, d_in.dim());
            }
            d_out = d_in;
        }
        params.reverse();
        let input_grad = match opts.layout {
            _ if !want_input => d_out,
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

    /// The sequence options of direction slot `dir` of a run with `opts`, time-major.
    fn seq<'a>(&self, dir: usize, opts: &StackOptions<'a>) -> SeqOptions<'a> {
        SeqOptions {
            layout: Layout::TimeMajor,
            direction: self.directions[dir],
            lengths: opts.lengths,
            trace: false,
        }
    }
}
