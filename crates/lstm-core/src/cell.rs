//! The [`RecurrentCell`] contract.

use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};

use crate::{CellState, LstmError, LstmState, Result, Scalar, Workspace, unroll};

/// How the time and batch axes of a sequence are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// `[T, B, features]` (PyTorch's default, ONNX `layout = 0`).
    #[default]
    TimeMajor,
    /// `[B, T, features]` (PyTorch's `batch_first`, ONNX `layout = 1`).
    BatchFirst,
}

/// Which way a sequence is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// From the first step to the last.
    #[default]
    Forward,
    /// From each sample's last valid step back to the first.
    Reverse,
}

/// How to run a sequence: layout, direction, per-sample lengths and whether to record a trace.
///
/// With `lengths`, sample `b` is `lengths[b]` steps long: outputs past its length are zero, its
/// final state is the state after its last valid step (the initial state for length 0), and in
/// reverse it starts at its own last valid step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqOptions<'a> {
    /// Layout of the input and of the returned output.
    pub layout: Layout,
    /// Reading direction.
    pub direction: Direction,
    /// Valid length of each sample (`B` entries, each at most `T`), or `None` for all `T`.
    pub lengths: Option<&'a [usize]>,
    /// Record every gate activation and cell state (see [`Trace`]).
    pub trace: bool,
}

impl<'a> SeqOptions<'a> {
    /// Batch-first input and output.
    pub fn batch_first(mut self) -> Self {
        self.layout = Layout::BatchFirst;
        self
    }
    /// Read in reverse.
    pub fn reverse(mut self) -> Self {
        self.direction = Direction::Reverse;
        self
    }
    /// Per-sample lengths.
    pub fn lengths(mut self, lengths: &'a [usize]) -> Self {
        self.lengths = Some(lengths);
        self
    }
    /// Record a trace.
    pub fn traced(mut self) -> Self {
        self.trace = true;
        self
    }
}

/// Every gate activation and state of a run, indexed by time step (time-major whatever the
/// input layout). Entries past a sample's length are zero.
///
/// This is what a backward pass through time needs besides the inputs and the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace<F> {
    /// Gate activations `[T, B, G, H]`, `G` = [`RecurrentCell::gate_count`] blocks in the
    /// cell's order (i, f, g, o for an LSTM).
    pub gates: Array4<F>,
    /// The last part of the state after each step, `[T, B, H]`: the cell state `c` of an LSTM,
    /// `h` itself for a cell whose state is `h` alone.
    pub cell: Array3<F>,
}

impl<F: Scalar> Trace<F> {
    /// An all-zero trace of `gates` blocks.
    pub fn zeros(steps: usize, batch: usize, gates: usize, hidden: usize) -> Self {
        Self {
            gates: Array4::zeros((steps, batch, gates, hidden)),
            cell: Array3::zeros((steps, batch, hidden)),
        }
    }
}

/// The result of [`RecurrentCell::unroll`].
#[derive(Clone, Debug, PartialEq)]
pub struct Unrolled<F, S = LstmState<F>> {
    /// Hidden state at every step, `[T, B, P]` or `[B, T, P]` following the input layout.
    pub output: Array3<F>,
    /// The final state.
    pub state: S,
    /// The trace, when asked for.
    pub trace: Option<Trace<F>>,
}

/// A recurrent cell: one step maps `(x_t, state_{t-1})` to `state_t`, whose first part is the
/// hidden state `h_t` the cell outputs ([`CellState`]): `(h, c)` for an LSTM ([`LstmState`]),
/// `h` for a GRU.
///
/// Implementers provide the sizes, the state type and
/// [`step_unchecked`](Self::step_unchecked); the trait builds validated stepping and the
/// sequence unroller on top. A cell may override [`sequence_unchecked`](Self::sequence_unchecked)
/// with a faster whole-sequence path; the shared test suite (`lstm_core::dev`, feature `dev`)
/// checks that it equals the stepwise default.
///
/// # Checklist for implementers
/// - `step_unchecked` may assume the shapes are right; the provided methods check them.
/// - It writes the [`gate_count`](Self::gate_count) blocks of gate activations to `gates`, in
///   the cell's documented order (i, f, g, o for an LSTM; see [`Gate`](crate::Gate)), so that
///   traces and a later backward pass can read them.
/// - It must not panic on non-finite inputs: NaN and infinities propagate.
/// - Run `lstm_core::cell_suite!` on the new cell.
///
/// # Example
/// A toy cell with no weights at all: every gate is one half and the candidate is `tanh(x)`.
/// ```
/// use lstm_core::{LstmState, RecurrentCell, SeqOptions, Workspace};
/// use ndarray::{Array3, ArrayView2, ArrayViewMut2};
///
/// struct Halves(usize);
///
/// impl RecurrentCell<f64> for Halves {
///     type State = LstmState<f64>;
///     fn input_size(&self) -> usize { self.0 }
///     fn hidden_size(&self) -> usize { self.0 }
///     fn gate_count(&self) -> usize { 4 }
///     fn step_unchecked(&self, x: ArrayView2<f64>, state: &mut LstmState<f64>,
///                       mut gates: ArrayViewMut2<f64>, _ws: &mut Workspace<f64>) {
///         let n = self.0;
///         let (mut h, mut c) = state.parts_mut();
///         for ((b, j), &xv) in x.indexed_iter() {
///             let g = xv.tanh();
///             c[[b, j]] = 0.5 * c[[b, j]] + 0.5 * g;
///             h[[b, j]] = 0.5 * c[[b, j]].tanh();
///             for (k, v) in [0.5, 0.5, g, 0.5].into_iter().enumerate() {
///                 gates[[b, k * n + j]] = v;
///             }
///         }
///     }
/// }
///
/// let cell = Halves(2);
/// let out = cell.unroll(Array3::ones((3, 1, 2)).view(), None, &SeqOptions::default())?;
/// assert_eq!(out.output.shape(), &[3, 1, 2]);
/// # Ok::<(), lstm_core::LstmError>(())
/// ```
pub trait RecurrentCell<F: Scalar> {
    /// What the cell carries from step to step.
    type State: CellState<F>;

    /// Width `I` of an input vector.
    fn input_size(&self) -> usize;

    /// Width `H` of the cell state (and of each gate).
    fn hidden_size(&self) -> usize;

    /// Width `P` of the hidden state `h`; `H` unless the cell projects its output.
    fn output_size(&self) -> usize {
        self.hidden_size()
    }

    /// `G`: the blocks of `H` gate activations a step writes (4 for an LSTM, 3 for a GRU).
    fn gate_count(&self) -> usize;

    /// The multiply-adds of one step of one batch row's products: `G H (I + P)` by default.
    /// Thread splits and benchmarks count work with it.
    fn step_work(&self) -> usize {
        (self.gate_count() * self.hidden_size())
            .saturating_mul(self.input_size() + self.output_size())
    }

    /// One step for a batch, shapes trusted: `x [B, I]`, `state` of batch `B`, `gates [B, G*H]`
    /// (standard layout) receives the gate activations.
    fn step_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        state: &mut Self::State,
        gates: ArrayViewMut2<'_, F>,
        ws: &mut Workspace<F>,
    );

    /// A whole sequence, shapes and lengths trusted: `input [T, B, I]` and `output [T, B, P]`
    /// are time-major views (any strides), `output` is zero on entry, `opts.layout` is ignored.
    /// The default runs [`unroll::stepwise`].
    fn sequence_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut Self::State,
        output: ArrayViewMut3<'_, F>,
        opts: &SeqOptions<'_>,
        trace: Option<&mut Trace<F>>,
        ws: &mut Workspace<F>,
    ) {
        unroll::stepwise(self, input, state, output, opts, trace, ws);
    }

    /// A whole sequence on `threads` threads (at least 2) that share each step's work, rather
    /// than each taking a block of the batch, for cells that have such a path and shapes where
    /// it pays. Shapes are trusted as in [`sequence_unchecked`](Self::sequence_unchecked); every
    /// row steps at every position and no trace is recorded. Returns `None`, touching nothing,
    /// where the cell has no such path (the default): the batch split of `lstm-engine`'s
    /// `threads::unroll_into_threads` then splits the batch instead.
    ///
    /// The engine cells of `lstm-engine` split the hidden units when the recurrent weights
    /// outgrow a core's L2 cache (`LstmEngine::unit_split_threads`).
    ///
    /// # Errors
    /// [`LstmError::WorkerPanicked`](crate::LstmError::WorkerPanicked) when a worker thread panicked.
    fn sequence_split_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut Self::State,
        output: ArrayViewMut3<'_, F>,
        direction: Direction,
        threads: usize,
        ws: &mut Workspace<F>,
    ) -> Option<Result<()>> {
        let _ = (input, state, output, direction, threads, ws);
        None
    }

    /// The all-zero state for a batch of `batch`.
    fn zero_state(&self, batch: usize) -> Self::State {
        Self::State::zeros(batch, self.output_size(), self.hidden_size())
    }

    /// One step, allocation-free: updates `state` in place from `x [B, I]` and writes the gate
    /// activations to `gates [B, G*H]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when `x`, `state` or `gates` do not fit the cell or each other.
    fn step_into(
        &self,
        x: ArrayView2<'_, F>,
        state: &mut Self::State,
        mut gates: ArrayViewMut2<'_, F>,
        ws: &mut Workspace<F>,
    ) -> Result<()> {
        let b = state.batch();
        crate::check_shape("input x", x.shape(), &[b, self.input_size()])?;
        state.check(b, self.output_size(), self.hidden_size())?;
        let width = self.gate_count() * self.hidden_size();
        crate::check_shape("gates", gates.shape(), &[b, width])?;
        if gates.is_standard_layout() {
            self.step_unchecked(x, state, gates, ws);
        } else {
            let mut tmp = Array2::zeros((b, width));
            self.step_unchecked(x, state, tmp.view_mut(), ws);
            gates.assign(&tmp);
        }
        Ok(())
    }

    /// One step: updates `state` from `x [B, I]` and returns the gate activations `[B, G, H]`.
    ///
    /// # Errors
    /// [`LstmError::Shape`] when `x` and `state` do not fit the cell.
    fn step(&self, x: ArrayView2<'_, F>, state: &mut Self::State) -> Result<Array3<F>> {
        let (b, g, h) = (state.batch(), self.gate_count(), self.hidden_size());
        let mut gates = Array2::zeros((b, g * h));
        self.step_into(x, state, gates.view_mut(), &mut Workspace::new())?;
        gates
            .into_shape_with_order((b, g, h))
            .map_err(|e| LstmError::invalid("gates", e))
    }

    /// Runs a sequence and returns the hidden sequence, the final state and (on request) the
    /// trace. `initial` defaults to the zero state.
    ///
    /// # Errors
    /// [`LstmError::Shape`] for an input or initial state that does not fit, and
    /// [`LstmError::Invalid`] for lengths that are not `B` values in `0..=T`.
    fn unroll(
        &self,
        input: ArrayView3<'_, F>,
        initial: Option<&Self::State>,
        opts: &SeqOptions<'_>,
    ) -> Result<Unrolled<F, Self::State>> {
        let (t, b) = unroll::dims(input.shape(), opts.layout);
        let mut state = match initial {
            Some(s) => s.clone(),
            None => self.zero_state(b),
        };
        let p = self.output_size();
        let mut output = match opts.layout {
            Layout::TimeMajor => Array3::zeros((t, b, p)),
            Layout::BatchFirst => Array3::zeros((b, t, p)),
        };
        let mut trace = opts
            .trace
            .then(|| Trace::zeros(t, b, self.gate_count(), self.hidden_size()));
        self.unroll_into(
            input,
            &mut state,
            output.view_mut(),
            opts,
            trace.as_mut(),
            &mut Workspace::new(),
        )?;
        Ok(Unrolled {
            output,
            state,
            trace,
        })
    }

    /// [`unroll`](Self::unroll) into caller-owned memory: `state` is read as the initial state and
    /// left as the final one, `output` (same layout as `input`) is overwritten, `trace` (when
    /// given) must be `[T, B, G, H]` / `[T, B, H]`. With a reused workspace this allocates nothing.
    ///
    /// # Errors
    /// As [`unroll`](Self::unroll), plus [`LstmError::Shape`] for `output` or `trace`.
    fn unroll_into(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut Self::State,
        mut output: ArrayViewMut3<'_, F>,
        opts: &SeqOptions<'_>,
        trace: Option<&mut Trace<F>>,
        ws: &mut Workspace<F>,
    ) -> Result<()> {
        let (t, b) = unroll::check_sequence(self, input.shape(), state, opts)?;
        let p = self.output_size();
        let h = self.hidden_size();
        let expected = match opts.layout {
            Layout::TimeMajor => [t, b, p],
            Layout::BatchFirst => [b, t, p],
        };
        crate::check_shape("output", output.shape(), &expected)?;
        let mut trace = trace;
        if let Some(tr) = trace.as_deref_mut() {
            let g = self.gate_count();
            crate::check_shape("trace gates", tr.gates.shape(), &[t, b, g, h])?;
            crate::check_shape("trace cell", tr.cell.shape(), &[t, b, h])?;
            tr.gates.fill(F::zero());
            tr.cell.fill(F::zero());
        }
        output.fill(F::zero());
        let (input, output) = match opts.layout {
            Layout::TimeMajor => (input, output),
            Layout::BatchFirst => (
                input.permuted_axes([1, 0, 2]),
                output.permuted_axes([1, 0, 2]),
            ),
        };
        debug_assert_eq!(input.len_of(Axis(0)), t);
        self.sequence_unchecked(input, state, output, opts, trace, ws);
        Ok(())
    }
}
