//! Gradients: the vector-Jacobian product of one step ([`Backward`]) and backpropagation
//! through time on top of it ([`backward`]), for any cell.
//!
//! The loss is given by its gradients with respect to what a forward run returns: `d_output`
//! for every step's output (the same shape and layout as the output) and, optionally,
//! `d_final` for the final state. [`backward`] returns the gradients with respect to the
//! input, the initial state and the cell's parameters. Padded steps (past a sample's length)
//! get no gradient: their outputs are zero whatever the parameters, and the final state of a
//! sample is the one after its last valid step.

use ndarray::{Array3, ArrayD, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, s};

use crate::unroll::{self, INACTIVE};
use crate::{CellState, Direction, Layout, RecurrentCell, Result, Scalar, SeqOptions, Workspace};

/// A cell that can be differentiated: the vector-Jacobian product of one step.
///
/// The generic [`backward`] runs backpropagation through time for any such cell; the shared
/// suite checks every implementation against finite differences.
pub trait Backward<F: Scalar>: RecurrentCell<F> {
    /// The gradient of the cell's parameters, in the layout the cell computes it. Gradients
    /// add (`+=`), so that parts of a batch can be differentiated apart and summed.
    type Grad: Clone + std::fmt::Debug + Send + for<'a> std::ops::AddAssign<&'a Self::Grad>;

    /// A zero gradient for this cell's parameters.
    fn zero_grad(&self) -> Self::Grad;

    /// The step's vector-Jacobian product for `B` rows, shapes trusted: with `x [B, I]` the
    /// step's input and `prev` the state before it, and `d` on entry the gradient of the loss
    /// with respect to the state after it (every part), this leaves in `d` the gradient with
    /// respect to `prev`, writes the gradient with respect to `x` to `dx [B, I]` and adds the
    /// gradient with respect to the parameters to `grad`.
    #[allow(clippy::too_many_arguments)]
    fn step_backward_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        prev: &Self::State,
        d: &mut Self::State,
        dx: ArrayViewMut2<'_, F>,
        grad: &mut Self::Grad,
        ws: &mut Workspace<F>,
    );

    /// The gradient as the cell's own parameters, in the order and shapes its constructor
    /// takes them, each with its name.
    fn grad_tensors(&self, grad: &Self::Grad) -> Vec<(&'static str, ArrayD<F>)>;

    /// Backpropagation through a whole sequence, shapes and lengths trusted (as [`backward`]
    /// checked them): `input [T, B, I]` and `d_output [T, B, P]` time-major, `initial` the
    /// state before the first step, `d` on entry the gradient with respect to the final state
    /// and on return the one with respect to `initial`; writes the input's gradient to
    /// `d_input [T, B, I]` (zero on entry) and adds the parameters' to `grad`. `opts.layout`
    /// is ignored (everything is time-major). A `d_input` of width 0 means the caller does
    /// not need the input's gradient ([`backward_params_in`]): it may skip computing it.
    ///
    /// It is [`sequence_forward_kept`](Self::sequence_forward_kept) then
    /// [`sequence_backward_kept`](Self::sequence_backward_kept); a training step that needs
    /// the forward run's output for its loss calls the two itself, so that the sequence runs
    /// forward once.
    #[allow(clippy::too_many_arguments)]
    fn sequence_backward_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        initial: &Self::State,
        opts: &SeqOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d: &mut Self::State,
        d_input: ArrayViewMut3<'_, F>,
        grad: &mut Self::Grad,
        ws: &mut Workspace<F>,
    ) {
        let (t, b, _) = input.dim();
        let mut state = initial.clone();
        let mut none = Array3::zeros((t, b, 0));
        self.sequence_forward_kept(input, opts, none.view_mut(), &mut state, ws);
        self.sequence_backward_kept(input, initial, opts, d_output, d, d_input, grad, ws);
    }

    /// The forward half of a sequence's backpropagation, shapes and lengths trusted: runs
    /// `input [T, B, I]` (time-major; `opts.layout` is ignored) from `state` (the initial
    /// state on entry, the final one on return, as [`RecurrentCell::sequence_unchecked`]
    /// leaves it), writes every step's output to `output [T, B, P]` (zero on entry; of width
    /// 0 when the caller does not need it) and keeps in `ws` what
    /// [`sequence_backward_kept`](Self::sequence_backward_kept) reads.
    ///
    /// The default keeps the state before each step ([`stepwise_forward_kept`]); a cell may
    /// override the pair with a faster path, which the shared suite checks against finite
    /// differences.
    fn sequence_forward_kept(
        &self,
        input: ArrayView3<'_, F>,
        opts: &SeqOptions<'_>,
        output: ArrayViewMut3<'_, F>,
        state: &mut Self::State,
        ws: &mut Workspace<F>,
    ) {
        stepwise_forward_kept(self, input, opts, output, state, ws);
    }

    /// The backward half: after [`sequence_forward_kept`](Self::sequence_forward_kept) ran
    /// with the same `input`, `opts` and the initial state `initial`, with `ws` untouched
    /// since, this does what
    /// [`sequence_backward_unchecked`](Self::sequence_backward_unchecked) does.
    ///
    /// The default runs [`step_backward_unchecked`](Self::step_backward_unchecked) from the
    /// last step to the first ([`stepwise_backward_kept`]).
    #[allow(clippy::too_many_arguments)]
    fn sequence_backward_kept(
        &self,
        input: ArrayView3<'_, F>,
        initial: &Self::State,
        opts: &SeqOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d: &mut Self::State,
        d_input: ArrayViewMut3<'_, F>,
        grad: &mut Self::Grad,
        ws: &mut Workspace<F>,
    ) {
        stepwise_backward_kept(self, input, initial, opts, d_output, d, d_input, grad, ws);
    }
}

/// What [`backward`] returns.
#[derive(Clone, Debug)]
pub struct Gradients<F, S, G> {
    /// The gradient with respect to the input, in its shape and layout.
    pub input: Array3<F>,
    /// The gradient with respect to the initial state (the zero state when none was given).
    pub initial: S,
    /// The gradient with respect to the cell's parameters.
    pub params: G,
}

/// Backpropagation through time: the gradients of a loss with respect to the input, the initial
/// state and the parameters of a run of `cell` over `input` with `opts` (layout, direction,
/// lengths; tracing is ignored), given the loss's gradients `d_output` (the output's shape and
/// layout) and `d_final` (zero when `None`). See the [module docs](self).
///
/// It steps the sequence forward once, keeping each step's state, then runs the steps' products
/// ([`Backward::step_backward_unchecked`]) from the last to the first.
///
/// # Errors
/// [`LstmError::Shape`](crate::LstmError::Shape) when the input, the initial state,
/// `d_output` or `d_final` do not fit the cell and each other, and
/// [`LstmError::Invalid`](crate::LstmError::Invalid) for lengths that do not fit.
pub fn backward<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    initial: Option<&C::State>,
    opts: &SeqOptions<'_>,
    d_output: ArrayView3<'_, F>,
    d_final: Option<&C::State>,
) -> Result<Gradients<F, C::State, C::Grad>> {
    backward_in(
        cell,
        input,
        initial,
        opts,
        d_output,
        d_final,
        &mut Workspace::new(),
    )
}

/// [`backward`] with the caller's workspace, kept across calls so that a training loop
/// allocates its buffers once (the returned gradients are new arrays).
///
/// # Errors
/// As [`backward`].
pub fn backward_in<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    initial: Option<&C::State>,
    opts: &SeqOptions<'_>,
    d_output: ArrayView3<'_, F>,
    d_final: Option<&C::State>,
    ws: &mut Workspace<F>,
) -> Result<Gradients<F, C::State, C::Grad>> {
    run_backward(cell, input, initial, opts, d_output, d_final, ws, true)
}

/// [`backward_in`] without the gradient with respect to the input, which a first layer, whose
/// input is data, does not need: its product is skipped, and the returned `input` is empty
/// (`[0, 0, 0]`).
///
/// # Errors
/// As [`backward`].
pub fn backward_params_in<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    initial: Option<&C::State>,
    opts: &SeqOptions<'_>,
    d_output: ArrayView3<'_, F>,
    d_final: Option<&C::State>,
    ws: &mut Workspace<F>,
) -> Result<Gradients<F, C::State, C::Grad>> {
    run_backward(cell, input, initial, opts, d_output, d_final, ws, false)
}

#[allow(clippy::too_many_arguments)]
fn run_backward<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    input: ArrayView3<'_, F>,
    initial: Option<&C::State>,
    opts: &SeqOptions<'_>,
    d_output: ArrayView3<'_, F>,
    d_final: Option<&C::State>,
    ws: &mut Workspace<F>,
    want_input: bool,
) -> Result<Gradients<F, C::State, C::Grad>> {
    let (t_len, batch) = unroll::dims(input.shape(), opts.layout);
    let (p, h) = (cell.output_size(), cell.hidden_size());
    let zero = || C::State::zeros(batch, p, h);
    let state = initial.cloned().unwrap_or_else(zero);
    unroll::check_sequence(cell, input.shape(), &state, opts)?;
    let out_shape = match opts.layout {
        Layout::TimeMajor => [t_len, batch, p],
        Layout::BatchFirst => [batch, t_len, p],
    };
    crate::check_shape("output gradient", d_output.shape(), &out_shape)?;
    let mut d = match d_final {
        Some(s) => {
            s.check(batch, p, h)?;
            s.clone()
        }
        None => zero(),
    };
    let (x, dy) = match opts.layout {
        Layout::TimeMajor => (input, d_output),
        Layout::BatchFirst => (
            input.permuted_axes([1, 0, 2]),
            d_output.permuted_axes([1, 0, 2]),
        ),
    };
    let mut grad = cell.zero_grad();
    let width = if want_input { cell.input_size() } else { 0 };
    let mut dx = Array3::zeros((t_len, batch, width));
    cell.sequence_backward_unchecked(x, &state, opts, dy, &mut d, dx.view_mut(), &mut grad, ws);
    let input_grad = match opts.layout {
        _ if !want_input => Array3::zeros((0, 0, 0)),
        Layout::TimeMajor => dx,
        Layout::BatchFirst => dx
            .permuted_axes([1, 0, 2])
            .as_standard_layout()
            .into_owned(),
    };
    Ok(Gradients {
        input: input_grad,
        initial: d,
        params: grad,
    })
}

/// The stepwise path of [`Backward::sequence_backward_unchecked`]:
/// [`stepwise_forward_kept`] then [`stepwise_backward_kept`].
#[allow(clippy::too_many_arguments)]
pub fn stepwise_backward<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    x: ArrayView3<'_, F>,
    initial: &C::State,
    opts: &SeqOptions<'_>,
    dy: ArrayView3<'_, F>,
    d: &mut C::State,
    dx: ArrayViewMut3<'_, F>,
    grad: &mut C::Grad,
    ws: &mut Workspace<F>,
) {
    let (t, b, _) = x.dim();
    let mut state = initial.clone();
    let mut none = Array3::zeros((t, b, 0));
    stepwise_forward_kept(cell, x, opts, none.view_mut(), &mut state, ws);
    stepwise_backward_kept(cell, x, initial, opts, dy, d, dx, grad, ws);
}

/// The time index row `b` reads at step `k` of a run over `t_len` steps (or [`INACTIVE`]).
fn step_time(opts: &SeqOptions<'_>, t_len: usize, b: usize, k: usize) -> usize {
    let len = opts.lengths.map_or(t_len, |l| l[b]);
    if k >= len {
        INACTIVE
    } else {
        match opts.direction {
            Direction::Forward => k,
            Direction::Reverse => len - 1 - k,
        }
    }
}

/// The steps a run takes: the longest length.
fn step_count(opts: &SeqOptions<'_>, t_len: usize, batch: usize) -> usize {
    opts.lengths
        .map_or(t_len, |l| l.iter().copied().max().unwrap_or(0))
        .min(t_len)
        * usize::from(batch > 0)
}

/// The values one state holds, over its parts.
fn state_len<F: Scalar, S: CellState<F>>(s: &S) -> usize {
    (0..S::PARTS).map(|k| s.part(k).len()).sum()
}

/// Fills `xk [B, I]` with what each row reads at step `k` (zero for inactive rows).
fn gather_step<F: Scalar>(x: ArrayView3<'_, F>, opts: &SeqOptions<'_>, k: usize, xk: &mut [F]) {
    let (t_len, batch, i) = x.dim();
    for b in 0..batch {
        let row = &mut xk[b * i..][..i];
        match step_time(opts, t_len, b, k) {
            INACTIVE => row.fill(F::zero()),
            t => crate::workspace::copy_rows(x.slice(s![t, b, ..]), row),
        }
    }
}

/// The default of [`Backward::sequence_forward_kept`]: the sequence stepped forward with
/// [`RecurrentCell::step_unchecked`], the state before each step kept in `ws`. Inactive rows
/// (past their length) keep their state.
///
/// # Panics
/// When the shapes do not fit each other (they are trusted, as the trait method's are).
pub fn stepwise_forward_kept<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    x: ArrayView3<'_, F>,
    opts: &SeqOptions<'_>,
    mut output: ArrayViewMut3<'_, F>,
    state: &mut C::State,
    ws: &mut Workspace<F>,
) {
    let (t_len, batch, i) = x.dim();
    let steps = step_count(opts, t_len, batch);
    let per = state_len(state);
    let g = cell.gate_count() * cell.hidden_size();
    let ([kept, xk, gates], _, ws) = ws.split_reused([steps * per, batch * i, batch * g]);
    let write_output = output.dim().2 > 0;
    for k in 0..steps {
        let before = &mut kept[k * per..][..per];
        store_state(state, before);
        gather_step(x, opts, k, xk);
        let xv = ArrayView2::from_shape((batch, i), &*xk).expect("sized");
        let gv = ArrayViewMut2::from_shape((batch, g), &mut *gates).expect("sized");
        cell.step_unchecked(xv, state, gv, ws);
        let inactive = |b: usize| step_time(opts, t_len, b, k) == INACTIVE;
        load_rows(state, before, inactive);
        if write_output {
            let h = state.part(0);
            for b in (0..batch).filter(|&b| !inactive(b)) {
                output
                    .slice_mut(s![step_time(opts, t_len, b, k), b, ..])
                    .assign(&h.row(b));
            }
        }
    }
}

/// The default of [`Backward::sequence_backward_kept`]: each step's vector-Jacobian product
/// from the last step to the first, from the states [`stepwise_forward_kept`] kept. Inactive
/// rows pass their gradient through.
///
/// # Panics
/// When the shapes do not fit each other (they are trusted, as the trait method's are).
#[allow(clippy::too_many_arguments)]
pub fn stepwise_backward_kept<F: Scalar, C: Backward<F> + ?Sized>(
    cell: &C,
    x: ArrayView3<'_, F>,
    initial: &C::State,
    opts: &SeqOptions<'_>,
    dy: ArrayView3<'_, F>,
    d: &mut C::State,
    mut dx: ArrayViewMut3<'_, F>,
    grad: &mut C::Grad,
    ws: &mut Workspace<F>,
) {
    let (t_len, batch, i) = x.dim();
    let steps = step_count(opts, t_len, batch);
    let per = state_len(initial);
    let g = cell.gate_count() * cell.hidden_size();
    let ([kept, xk, _gates, kept_d, dxk], _, ws) =
        ws.split_reused([steps * per, batch * i, batch * g, per, batch * i]);
    let mut prev = initial.clone();
    for k in (0..steps).rev() {
        let inactive = |b: usize| step_time(opts, t_len, b, k) == INACTIVE;
        {
            let mut dh = d.part_mut(0);
            for b in (0..batch).filter(|&b| !inactive(b)) {
                let t = step_time(opts, t_len, b, k);
                dh.row_mut(b)
                    .zip_mut_with(&dy.slice(s![t, b, ..]), |a, &v| *a += v);
            }
        }
        // An inactive row passes its gradient through unchanged; zeroed, it adds nothing to
        // the parameters' gradient (the product is linear in it).
        store_state(d, kept_d);
        zero_rows(d, inactive);
        load_rows(&mut prev, &kept[k * per..][..per], |_| true);
        gather_step(x, opts, k, xk);
        let xv = ArrayView2::from_shape((batch, i), &*xk).expect("sized");
        let dxv = ArrayViewMut2::from_shape((batch, i), &mut *dxk).expect("sized");
        cell.step_backward_unchecked(xv, &prev, d, dxv, grad, ws);
        load_rows(d, kept_d, inactive);
        if dx.dim().2 == 0 {
            continue;
        }
        for b in (0..batch).filter(|&b| !inactive(b)) {
            let t = step_time(opts, t_len, b, k);
            crate::workspace::write_rows(dx.slice_mut(s![t, b..b + 1, ..]), &dxk[b * i..][..i]);
        }
    }
}

/// Copies every part of `s` into `out`, part after part, rows in order.
fn store_state<F: Scalar, S: CellState<F>>(s: &S, out: &mut [F]) {
    let mut at = 0;
    for part in 0..S::PARTS {
        let p = s.part(part);
        crate::workspace::copy_rows(p, &mut out[at..]);
        at += p.len();
    }
}

/// The rows `b` with `which(b)` of every part of `to`, from `from` as [`store_state`] wrote it.
fn load_rows<F: Scalar, S: CellState<F>>(to: &mut S, from: &[F], which: impl Fn(usize) -> bool) {
    let mut at = 0;
    for part in 0..S::PARTS {
        let mut dst = to.part_mut(part);
        let w = dst.ncols();
        for (b, mut row) in dst.axis_iter_mut(Axis(0)).enumerate() {
            if which(b) {
                for (v, &src) in row.iter_mut().zip(&from[at + b * w..][..w]) {
                    *v = src;
                }
            }
        }
        at += dst.len();
    }
}

/// Zeroes the rows `b` with `which(b)` of every part of `s`.
fn zero_rows<F: Scalar, S: CellState<F>>(s: &mut S, which: impl Fn(usize) -> bool) {
    for part in 0..S::PARTS {
        let mut p = s.part_mut(part);
        for (b, mut row) in p.axis_iter_mut(Axis(0)).enumerate() {
            if which(b) {
                row.fill(F::zero());
            }
        }
    }
}
