//! How an engine is a [`RecurrentCell`]: the engine's own impl, and [`EngineCell`] with
//! [`engine_cell!`](crate::engine_cell) for the variant types that wrap an engine.

use lstm_core::ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3};

use lstm_core::ndarray::ArrayD;

use super::{EngineGrad, LstmEngine};
use crate::unroll::{self, INACTIVE};
use crate::{Direction, LstmState, RecurrentCell, Result, Scalar, SeqOptions, Trace, Workspace};

/// A cell whose computation is an [`LstmEngine`]. [`engine_cell!`](crate::engine_cell) makes
/// such a type a [`RecurrentCell`] with the engine's paths.
pub trait EngineCell {
    /// The element type.
    type Elem: Scalar;

    /// The engine.
    fn engine(&self) -> &LstmEngine<Self::Elem>;

    /// The engine's gradient as the cell's own parameters, in the order and shapes its
    /// constructor takes them ([`lstm_core::Backward::grad_tensors`]); by default the engine's
    /// layout ([`engine_tensors`](crate::engine::engine_tensors)).
    fn grad_tensors(
        &self,
        grad: &EngineGrad<Self::Elem>,
    ) -> Vec<(&'static str, ArrayD<Self::Elem>)> {
        super::engine_tensors(grad)
    }
}

impl<F: Scalar> EngineCell for LstmEngine<F> {
    type Elem = F;

    fn engine(&self) -> &LstmEngine<F> {
        self
    }
}

/// Registers `Cell<F>`, which implements [`EngineCell`], as a
/// [`RecurrentCell`](lstm_core::RecurrentCell): every method goes to its engine, so the cell has
/// the engine's step, its chunked whole-sequence path and its unit split. One line in the
/// variant crate:
///
/// ```
/// use lstm_engine::{EngineCell, LstmEngine, engine_cell};
/// use lstm_engine::lstm_core::Scalar;
///
/// /// A cell that is an engine under another name.
/// #[derive(Clone, Debug)]
/// pub struct Plain<F>(LstmEngine<F>);
///
/// impl<F: Scalar> EngineCell for Plain<F> {
///     type Elem = F;
///     fn engine(&self) -> &LstmEngine<F> {
///         &self.0
///     }
/// }
///
/// engine_cell!(Plain);
/// ```
///
/// With a name and a line about the cell, it also implements
/// [`Variant`](lstm_core::Variant) (the cell must have
/// `random(input, hidden, &mut lstm_engine::init::SplitMix64) -> Result<Self>`), so that the tools
/// find it: `engine_cell!(Plain, "plain-engine", "an engine under another name");`.
#[macro_export]
macro_rules! engine_cell {
    ($cell:ident, $name:literal, $about:literal) => {
        $crate::engine_cell!($cell);

        impl<F: $crate::lstm_core::Scalar> $crate::lstm_core::Variant<F> for $cell<F> {
            const NAME: &'static str = $name;
            const ABOUT: &'static str = $about;

            fn seeded(input: usize, hidden: usize, seed: u64) -> $crate::lstm_core::Result<Self> {
                Self::random(input, hidden, &mut $crate::init::SplitMix64::new(seed))
            }
        }
    };
    ($cell:ident) => {
        impl<F: $crate::lstm_core::Scalar> $crate::lstm_core::RecurrentCell<F> for $cell<F> {
            type State = $crate::lstm_core::LstmState<F>;

            fn gate_count(&self) -> usize {
                4
            }

            fn input_size(&self) -> usize {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::input_size(
                    $crate::EngineCell::engine(self),
                )
            }

            fn hidden_size(&self) -> usize {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::hidden_size(
                    $crate::EngineCell::engine(self),
                )
            }

            fn output_size(&self) -> usize {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::output_size(
                    $crate::EngineCell::engine(self),
                )
            }

            fn step_work(&self) -> usize {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::step_work(
                    $crate::EngineCell::engine(self),
                )
            }

            fn step_unchecked(
                &self,
                x: $crate::lstm_core::ndarray::ArrayView2<'_, F>,
                state: &mut $crate::lstm_core::LstmState<F>,
                gates: $crate::lstm_core::ndarray::ArrayViewMut2<'_, F>,
                ws: &mut $crate::lstm_core::Workspace<F>,
            ) {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::step_unchecked(
                    $crate::EngineCell::engine(self),
                    x, state, gates, ws)
            }

            fn sequence_split_unchecked(
                &self,
                input: $crate::lstm_core::ndarray::ArrayView3<'_, F>,
                state: &mut $crate::lstm_core::LstmState<F>,
                output: $crate::lstm_core::ndarray::ArrayViewMut3<'_, F>,
                direction: $crate::lstm_core::Direction,
                threads: usize,
                ws: &mut $crate::lstm_core::Workspace<F>,
            ) -> Option<$crate::lstm_core::Result<()>> {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::sequence_split_unchecked(
                    $crate::EngineCell::engine(self),
                    input, state, output, direction, threads, ws)
            }

            fn sequence_unchecked(
                &self,
                input: $crate::lstm_core::ndarray::ArrayView3<'_, F>,
                state: &mut $crate::lstm_core::LstmState<F>,
                output: $crate::lstm_core::ndarray::ArrayViewMut3<'_, F>,
                opts: &$crate::lstm_core::SeqOptions<'_>,
                trace: Option<&mut $crate::lstm_core::Trace<F>>,
                ws: &mut $crate::lstm_core::Workspace<F>,
            ) {
                <$crate::LstmEngine<F> as $crate::lstm_core::RecurrentCell<F>>::sequence_unchecked(
                    $crate::EngineCell::engine(self),
                    input, state, output, opts, trace, ws)
            }
        }

        impl<F: $crate::lstm_core::Scalar> $crate::lstm_core::Backward<F> for $cell<F> {
            type Grad = $crate::EngineGrad<F>;

            fn zero_grad(&self) -> $crate::EngineGrad<F> {
                $crate::EngineCell::engine(self).zero_grad()
            }

            fn step_backward_unchecked(
                &self,
                x: $crate::lstm_core::ndarray::ArrayView2<'_, F>,
                prev: &$crate::lstm_core::LstmState<F>,
                d: &mut $crate::lstm_core::LstmState<F>,
                dx: $crate::lstm_core::ndarray::ArrayViewMut2<'_, F>,
                grad: &mut $crate::EngineGrad<F>,
                ws: &mut $crate::lstm_core::Workspace<F>,
            ) {
                <$crate::LstmEngine<F> as $crate::lstm_core::Backward<F>>::step_backward_unchecked(
                    $crate::EngineCell::engine(self),
                    x, prev, d, dx, grad, ws)
            }

            fn grad_tensors(
                &self,
                grad: &$crate::EngineGrad<F>,
            ) -> Vec<(&'static str, $crate::lstm_core::ndarray::ArrayD<F>)> {
                $crate::EngineCell::grad_tensors(self, grad)
            }

            fn sequence_forward_kept(
                &self,
                input: $crate::lstm_core::ndarray::ArrayView3<'_, F>,
                opts: &$crate::lstm_core::SeqOptions<'_>,
                output: $crate::lstm_core::ndarray::ArrayViewMut3<'_, F>,
                state: &mut $crate::lstm_core::LstmState<F>,
                ws: &mut $crate::lstm_core::Workspace<F>,
            ) {
                <$crate::LstmEngine<F> as $crate::lstm_core::Backward<F>>::sequence_forward_kept(
                    $crate::EngineCell::engine(self),
                    input, opts, output, state, ws)
            }

            fn sequence_backward_kept(
                &self,
                input: $crate::lstm_core::ndarray::ArrayView3<'_, F>,
                initial: &$crate::lstm_core::LstmState<F>,
                opts: &$crate::lstm_core::SeqOptions<'_>,
                d_output: $crate::lstm_core::ndarray::ArrayView3<'_, F>,
                d: &mut $crate::lstm_core::LstmState<F>,
                d_input: $crate::lstm_core::ndarray::ArrayViewMut3<'_, F>,
                grad: &mut $crate::EngineGrad<F>,
                ws: &mut $crate::lstm_core::Workspace<F>,
            ) {
                <$crate::LstmEngine<F> as $crate::lstm_core::Backward<F>>::sequence_backward_kept(
                    $crate::EngineCell::engine(self),
                    input, initial, opts, d_output, d, d_input, grad, ws)
            }
        }
    };
}

impl<F: Scalar> RecurrentCell<F> for LstmEngine<F> {
    type State = LstmState<F>;

    fn gate_count(&self) -> usize {
        4
    }

    /// The multiply-adds of the gate products of one step of one row, counting only the
    /// blocks the cell reads (see [`crate::GateConfig::input_forget`] and
    /// [`crate::Recurrence::Cell`]).
    fn step_work(&self) -> usize {
        let h = self.hidden;
        let x = self.wx.kept() * h * self.input;
        x.saturating_add(self.wr.kept() * h * self.wr.rows())
    }

    fn input_size(&self) -> usize {
        self.input
    }

    fn hidden_size(&self) -> usize {
        self.hidden
    }

    fn output_size(&self) -> usize {
        self.output
    }

    fn step_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        state: &mut LstmState<F>,
        mut gates: ArrayViewMut2<'_, F>,
        ws: &mut Workspace<F>,
    ) {
        let e = self;
        let (b, i, g4, gp) = (state.batch(), e.input, 4 * e.hidden, e.gate_stride());
        let direct = gp == g4 && gates.is_standard_layout();
        let x_contig = x.to_slice();
        let ([zbuf, xbuf], _, ws) = ws.split_reused([
            if direct { 0 } else { b * gp },
            if x_contig.is_some() { 0 } else { b * i },
        ]);
        let xs: &[F] = match x_contig {
            Some(xs) => xs,
            None => {
                crate::copy_rows(x, xbuf);
                xbuf
            }
        };
        if direct {
            let z = gates.as_slice_mut().expect("standard layout");
            e.wx.apply(b, xs, i, z, gp, true);
            e.update(z, gp, state, false, ws);
        } else {
            e.wx.apply(b, xs, i, zbuf, gp, true);
            e.update(zbuf, gp, state, false, ws);
            for (row, mut dst) in gates.rows_mut().into_iter().enumerate() {
                for (d, &v) in dst.iter_mut().zip(&zbuf[row * gp..row * gp + g4]) {
                    *d = v;
                }
            }
        }
    }

    fn sequence_split_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        output: ArrayViewMut3<'_, F>,
        direction: Direction,
        threads: usize,
        ws: &mut Workspace<F>,
    ) -> Option<Result<()>> {
        let e = self;
        match e.unit_split_threads(threads, state.batch()) {
            n @ 2.. => Some(e.sequence_units(input, state, output, direction, n, ws)),
            _ => None,
        }
    }

    fn sequence_unchecked(
        &self,
        input: ArrayView3<'_, F>,
        state: &mut LstmState<F>,
        output: ArrayViewMut3<'_, F>,
        opts: &SeqOptions<'_>,
        trace: Option<&mut Trace<F>>,
        ws: &mut Workspace<F>,
    ) {
        let e = self;
        let (t, b, i) = input.dim();
        let (g4, gp) = (4 * e.hidden, e.gate_stride());
        let masked = opts.lengths.is_some_and(|l| l.iter().any(|&l| l < t));
        if !masked && trace.is_none() {
            return e.sequence_chunked(input, state, output, opts.direction, ws);
        }
        // Rows of the input in memory order: time-major (`t * B + b`) or batch-major
        // (`b * T + t`); anything else is copied to time-major first.
        let time_major = input.to_slice();
        let batch_major = match time_major {
            Some(_) => None,
            None => input.permuted_axes([1, 0, 2]).to_slice(),
        };
        let ([pre, xbuf], _, ws) = ws.split_reused([
            t * b * gp,
            if time_major.is_some() || batch_major.is_some() {
                0
            } else {
                t * b * i
            },
        ]);
        let (xs, is_batch_major) = match (time_major, batch_major) {
            (Some(xs), _) => (xs, false),
            (None, Some(xs)) => (xs, true),
            (None, None) => {
                crate::copy_rows(input, xbuf);
                (&*xbuf, false)
            }
        };
        // The input projection of every step at once: `pre[row] = x[row] W_x + bias`.
        e.wx.apply(t * b, xs, i, pre, gp, true);
        let row_of = |tt: usize, bb: usize| {
            if is_batch_major {
                bb * t + tt
            } else {
                tt * b + bb
            }
        };
        let pre = &*pre;
        unroll::drive(
            t,
            4,
            e.hidden,
            opts,
            state,
            output,
            trace,
            ws,
            b * gp,
            |times, state, mut z, zpad, ws| {
                for (bb, &tt) in times.iter().enumerate() {
                    let dst = &mut zpad[bb * gp..(bb + 1) * gp];
                    if tt == INACTIVE {
                        dst.fill(F::zero());
                    } else {
                        let r = row_of(tt, bb);
                        dst.copy_from_slice(&pre[r * gp..(r + 1) * gp]);
                    }
                }
                e.update(zpad, gp, state, false, ws);
                for (bb, mut dst) in z.rows_mut().into_iter().enumerate() {
                    for (d, &v) in dst.iter_mut().zip(&zpad[bb * gp..bb * gp + g4]) {
                        *d = v;
                    }
                }
            },
        );
    }
}

impl<F: Scalar> lstm_core::Backward<F> for LstmEngine<F> {
    type Grad = EngineGrad<F>;

    fn zero_grad(&self) -> EngineGrad<F> {
        LstmEngine::zero_grad(self)
    }

    fn step_backward_unchecked(
        &self,
        x: ArrayView2<'_, F>,
        prev: &LstmState<F>,
        d: &mut LstmState<F>,
        dx: ArrayViewMut2<'_, F>,
        grad: &mut EngineGrad<F>,
        _ws: &mut Workspace<F>,
    ) {
        self.step_backward_rows(x, prev, d, dx, grad);
    }

    fn grad_tensors(&self, grad: &EngineGrad<F>) -> Vec<(&'static str, ArrayD<F>)> {
        EngineCell::grad_tensors(self, grad)
    }

    fn sequence_forward_kept(
        &self,
        input: ArrayView3<'_, F>,
        opts: &SeqOptions<'_>,
        output: ArrayViewMut3<'_, F>,
        state: &mut LstmState<F>,
        ws: &mut Workspace<F>,
    ) {
        self.sequence_forward_rows(input, opts, output, state, ws);
    }

    fn sequence_backward_kept(
        &self,
        input: ArrayView3<'_, F>,
        initial: &LstmState<F>,
        opts: &SeqOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d: &mut LstmState<F>,
        d_input: ArrayViewMut3<'_, F>,
        grad: &mut EngineGrad<F>,
        ws: &mut Workspace<F>,
    ) {
        self.sequence_backward_rows(input, initial, opts, d_output, d, d_input, grad, ws);
    }
}
