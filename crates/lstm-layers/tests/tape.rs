//! The training path of the stack: [`Stack::forward_kept`] gives what
//! [`Stack::forward_states`] gives, [`Stack::backward_kept`] what [`Stack::backward`] gives, on
//! one thread and on two (the batch split), with a tape kept across runs of other shapes.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::ndarray::{Array3, ArrayView3};
use lstm_core::{Layout, LstmError};
use lstm_engine::init::SplitMix64;
use lstm_layers::{Dropout, LstmStack, StackGradients, StackOptions, Tape};

type Grads = StackGradients<f64, lstm_engine::EngineGrad<f64>>;

fn same_grads(a: &Grads, b: &Grads, exact: bool) {
    assert_eq!(a.input, b.input, "input gradient");
    assert_eq!(a.initial, b.initial, "initial-state gradients");
    for (la, lb) in a.params.iter().zip(&b.params) {
        for (ga, gb) in la.iter().zip(lb) {
            for (x, y) in [
                (&ga.w_input, &gb.w_input),
                (&ga.w_recurrent, &gb.w_recurrent),
            ] {
                if exact {
                    assert_eq!(x, y);
                } else {
                    for (u, v) in x.iter().zip(y) {
                        assert!((u - v).abs() <= 1e-12 * (1.0 + v.abs()), "{u} vs {v}");
                    }
                }
            }
        }
    }
}

#[test]
fn kept_runs_equal_the_plain_ones() {
    let mut rng = SplitMix64::new(21);
    // Big enough for the batch split on two threads: T B 4H (I + H) 3 >= 40 million.
    let (t, b, i, h) = (40, 12, 48, 64);
    let stack = LstmStack::<f64>::random(i, h, 2, 2, &mut rng).unwrap();
    let lengths: Vec<usize> = (0..b).map(|r| t - r % 3).collect();
    let mut tape = Tape::new();
    for (layout, lens, drop) in [
        (Layout::TimeMajor, None, None),
        (Layout::BatchFirst, Some(&lengths[..]), None),
        (Layout::TimeMajor, None, Some(Dropout { p: 0.3, seed: 5 })),
    ] {
        let shape = match layout {
            Layout::TimeMajor => (t, b, i),
            Layout::BatchFirst => (b, t, i),
        };
        let x: Array3<f64> = rng.uniform_array(shape, 1.0);
        let h0: Array3<f64> = rng.uniform_array((4, b, h), 0.5);
        let initial = [Some(h0.view()), None];
        let mut per_thread = Vec::new();
        for threads in [1, 2] {
            let opts = StackOptions {
                layout,
                lengths: lens,
                threads,
                dropout: drop,
                ..StackOptions::default()
            };
            let plain = stack.forward_states(x.view(), &initial, &opts).unwrap();
            let kept = stack
                .forward_kept(x.view(), &initial, &opts, &mut tape)
                .unwrap();
            assert_eq!(kept, plain, "forward, {threads} threads");
            let dy: Array3<f64> = rng.uniform_array(plain.output.raw_dim(), 1.0);
            let dc: Array3<f64> = rng.uniform_array((4, b, h), 1.0);
            let finals: [Option<ArrayView3<'_, f64>>; 2] = [None, Some(dc.view())];
            let whole = stack
                .backward(x.view(), &initial, &opts, dy.view(), &finals)
                .unwrap();
            let split = stack
                .backward_kept(&mut tape, dy.view(), &finals, true)
                .unwrap();
            same_grads(&split, &whole, true);
            // A second backward run of the same forward run gives the same again.
            let again = stack
                .backward_kept(&mut tape, dy.view(), &finals, true)
                .unwrap();
            same_grads(&again, &whole, true);
            per_thread.push((dy, dc, whole));
        }
        // Two threads: the same input and state gradients, parameters within rounding (for
        // the same loss).
        let opts1 = StackOptions {
            layout,
            lengths: lens,
            threads: 1,
            dropout: drop,
            ..StackOptions::default()
        };
        let (dy, dc, two) = &per_thread[1];
        let one = stack
            .backward(
                x.view(),
                &initial,
                &opts1,
                dy.view(),
                &[None, Some(dc.view())],
            )
            .unwrap();
        same_grads(two, &one, false);
    }
}

#[test]
fn a_tape_without_its_forward_run_is_an_error() {
    let mut rng = SplitMix64::new(3);
    let stack = LstmStack::<f64>::random(3, 4, 1, 1, &mut rng).unwrap();
    let other = LstmStack::<f64>::random(5, 4, 2, 1, &mut rng).unwrap();
    let dy = Array3::<f64>::zeros((2, 1, 4));
    let mut tape = Tape::new();
    let e = stack
        .backward_kept(&mut tape, dy.view(), &[], true)
        .unwrap_err();
    assert!(matches!(e, LstmError::Invalid { .. }), "{e}");
    // A tape of another stack's run.
    let x = Array3::<f64>::zeros((2, 1, 5));
    other
        .forward_kept(x.view(), &[], &StackOptions::default(), &mut tape)
        .unwrap();
    let e = stack
        .backward_kept(&mut tape, dy.view(), &[], true)
        .unwrap_err();
    assert!(matches!(e, LstmError::Invalid { .. }), "{e}");
    // A gradient of the wrong shape.
    let x = Array3::<f64>::zeros((2, 1, 3));
    stack
        .forward_kept(x.view(), &[], &StackOptions::default(), &mut tape)
        .unwrap();
    let e = stack
        .backward_kept(&mut tape, Array3::zeros((3, 1, 4)).view(), &[], true)
        .unwrap_err();
    assert!(matches!(e, LstmError::Shape { .. }), "{e}");
}
