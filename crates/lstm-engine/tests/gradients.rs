//! The engine's backward on the options no variant crate's suite reaches (clip, the coupled
//! forget gate, a projection, other activations, with and without peepholes) against central
//! finite differences of its forward run, in `f64`.

use lstm_core::ndarray::{Array1, Array2, Array3, ArrayD, Ix2};
use lstm_core::{Activation, Backward, CellState, Direction, LstmState, RecurrentCell, SeqOptions};
use lstm_engine::init::SplitMix64;
use lstm_engine::{EngineSpec, LstmEngine};

/// The raw parts of a spec: `w_input`, `w_recurrent`, `bias`, then peephole and projection.
#[derive(Clone)]
struct Parts(Vec<ArrayD<f64>>);

#[derive(Clone, Copy)]
struct Options {
    peephole: bool,
    projection: bool,
    clip: Option<f64>,
    coupled: bool,
    activations: Option<[Activation<f64>; 3]>,
    open: [bool; 3],
}

fn build(p: &Parts, o: Options) -> LstmEngine<f64> {
    let m = |k: usize| p.0[k].view().into_dimensionality::<Ix2>().expect("2-D");
    let bias = p.0[2].view().into_dimensionality().expect("1-D");
    let mut spec = EngineSpec::standard(m(0), m(1));
    spec.biases.push(bias);
    let mut next = 3;
    if o.peephole {
        spec.peephole = Some(m(next));
        next += 1;
    }
    if o.projection {
        spec.projection = Some(m(next));
    }
    spec.gates.clip = o.clip;
    spec.gates.input_forget = o.coupled;
    spec.gates.open = o.open;
    if let Some([f, g, h]) = o.activations {
        spec.gates.f = f;
        spec.gates.g = g;
        spec.gates.h = h;
    }
    LstmEngine::new(spec).expect("valid spec")
}

fn loss(e: &LstmEngine<f64>, x: &Array3<f64>, s0: &LstmState<f64>, opts: &SeqOptions<'_>) -> f64 {
    let out = e.unroll(x.view(), Some(s0), opts).expect("valid run");
    let w = |k: usize| (0.9 * k as f64 + 0.4).sin();
    let y: f64 = out.output.iter().enumerate().map(|(k, v)| v * w(k)).sum();
    let c: f64 = out
        .state
        .c()
        .iter()
        .enumerate()
        .map(|(k, v)| v * w(k + 7))
        .sum();
    y + c
}

/// [`check_with`] with lengths (the stepwise path) and without (the fused path, where the
/// options allow it).
fn check(o: Options, seed: u64) {
    check_with(o, seed, true);
    check_with(o, seed, false);
}

fn check_with(o: Options, seed: u64, with_lengths: bool) {
    let (i, h, p, t, b) = (3, 4, if o.projection { 2 } else { 4 }, 5, 2);
    let mut rng = SplitMix64::new(seed);
    let mut parts = vec![
        rng.uniform_array((4 * h, i), 0.8).into_dyn(),
        rng.uniform_array((4 * h, p), 0.8).into_dyn(),
        rng.uniform_array(4 * h, 0.5).into_dyn(),
    ];
    if o.peephole {
        parts.push(rng.uniform_array((3, h), 0.5).into_dyn());
    }
    if o.projection {
        parts.push(rng.uniform_array((p, h), 0.8).into_dyn());
    }
    let parts = Parts(parts);
    let x: Array3<f64> = rng.uniform_array((t, b, i), 1.5);
    let s0 = LstmState::new(
        rng.uniform_array((b, p), 0.5),
        rng.uniform_array((b, h), 0.5),
    )
    .expect("shapes");
    let lens = [t, 3];
    let opts = if with_lengths {
        SeqOptions::default().lengths(&lens)
    } else {
        SeqOptions::default()
    };
    let opts = SeqOptions {
        direction: if seed.is_multiple_of(2) {
            Direction::Forward
        } else {
            Direction::Reverse
        },
        ..opts
    };
    let e = build(&parts, o);
    let out = e.unroll(x.view(), Some(&s0), &opts).expect("valid run");
    let w = |k: usize| (0.9 * k as f64 + 0.4).sin();
    let dy = Array3::from_shape_fn(out.output.raw_dim(), |(a, bb, c)| {
        let d = out.output.dim();
        w((a * d.1 + bb) * d.2 + c)
    });
    let dc = Array2::from_shape_fn((b, h), |(r, c)| w(r * h + c + 7));
    let df = LstmState::new(Array2::zeros((b, p)), dc).expect("shapes");
    let g = lstm_core::backward::backward(&e, x.view(), Some(&s0), &opts, dy.view(), Some(&df))
        .expect("valid backward");
    let eps = 1e-6;
    let tensors = e.grad_tensors(&g.params);
    assert_eq!(tensors.len(), parts.0.len());
    for (k, (name, gt)) in tensors.iter().enumerate() {
        for (idx, &a) in gt.indexed_iter() {
            let at = |d: f64| {
                let mut q = parts.clone();
                q.0[k][&idx] += d;
                loss(&build(&q, o), &x, &s0, &opts)
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (a - n).abs() <= 1e-6 * (1.0 + n.abs()),
                "seed {seed} {name}{idx:?}: backward {a}, finite differences {n}"
            );
        }
    }
    for (idx, &a) in g.input.indexed_iter() {
        let at = |d: f64| {
            let mut xp = x.clone();
            xp[idx] += d;
            loss(&e, &xp, &s0, &opts)
        };
        let n = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (a - n).abs() <= 1e-6 * (1.0 + n.abs()),
            "input {idx:?}: {a} vs {n}"
        );
    }
    for part in 0..2 {
        for (idx, &a) in g.initial.part(part).indexed_iter() {
            let at = |d: f64| {
                let mut sp = s0.clone();
                sp.part_mut(part)[idx] += d;
                loss(&e, &x, &sp, &opts)
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (a - n).abs() <= 1e-6 * (1.0 + n.abs()),
                "state {part} {idx:?}: {a} vs {n}"
            );
        }
    }
}

const PLAIN: Options = Options {
    peephole: false,
    projection: false,
    clip: None,
    coupled: false,
    activations: None,
    open: [false; 3],
};

#[test]
fn open_gates() {
    for (k, seed) in (0..3).zip(20..) {
        let mut open = [false; 3];
        open[k] = true;
        check(
            Options {
                open,
                peephole: true,
                ..PLAIN
            },
            seed,
        );
        check(Options { open, ..PLAIN }, seed + 10);
    }
}

/// An open gate is 1: with the input gate open and the forget gate's bias far negative
/// (f = 0), one step from c = 0 leaves c = tanh(z_g), whatever the input gate's weights.
#[test]
fn an_open_input_gate_passes_the_candidate_whole() {
    let (i, h) = (2, 3);
    let mut rng = SplitMix64::new(5);
    let w: Array2<f64> = rng.uniform_array((4 * h, i), 0.8);
    let r: Array2<f64> = Array2::zeros((4 * h, h));
    let mut bias = Array1::zeros(4 * h);
    for j in h..2 * h {
        bias[j] = -1e9;
    }
    let mut spec = EngineSpec::standard(w.view(), r.view());
    spec.biases.push(bias.view());
    spec.gates.open = [true, false, false];
    let e = LstmEngine::new(spec).expect("valid spec");
    let x: Array3<f64> = rng.uniform_array((1, 1, i), 1.0);
    let out = e
        .unroll(x.view(), None, &SeqOptions::default())
        .expect("valid run");
    for j in 0..h {
        let zg: f64 = (0..i).map(|k| w[[2 * h + j, k]] * x[[0, 0, k]]).sum();
        assert!((out.state.c()[[0, j]] - zg.tanh()).abs() < 1e-15);
    }
}

#[test]
fn clip_stops_the_gradient_where_it_clamps() {
    for seed in 0..4 {
        check(
            Options {
                clip: Some(0.6),
                peephole: true,
                ..PLAIN
            },
            seed,
        );
    }
}

#[test]
fn coupled_forget_gate() {
    for seed in 0..4 {
        check(
            Options {
                coupled: true,
                ..PLAIN
            },
            seed,
        );
        check(
            Options {
                coupled: true,
                peephole: true,
                ..PLAIN
            },
            seed + 10,
        );
    }
}

#[test]
fn projection() {
    for seed in 0..4 {
        check(
            Options {
                projection: true,
                ..PLAIN
            },
            seed,
        );
        check(
            Options {
                projection: true,
                peephole: true,
                clip: Some(1.0),
                ..PLAIN
            },
            seed + 10,
        );
    }
}

#[test]
fn other_activations() {
    use Activation::*;
    let sets = [
        [
            HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Softsign,
            Elu { alpha: 0.7 },
        ],
        [
            Sigmoid,
            ScaledTanh {
                alpha: 1.3,
                beta: 0.6,
            },
            Softplus,
        ],
        [
            Affine {
                alpha: 0.3,
                beta: 0.1,
            },
            LeakyRelu { alpha: 0.1 },
            Tanh,
        ],
    ];
    for (k, a) in sets.into_iter().enumerate() {
        for seed in 0..3 {
            check(
                Options {
                    activations: Some(a),
                    ..PLAIN
                },
                20 * k as u64 + seed,
            );
        }
    }
}

#[test]
fn zero_grad_has_the_parameters_shapes() {
    let mut rng = SplitMix64::new(1);
    let (w, u): (Array2<f64>, Array2<f64>) = (
        rng.uniform_array((8, 3), 1.0),
        rng.uniform_array((8, 2), 1.0),
    );
    let pr: Array2<f64> = rng.uniform_array((2, 2), 1.0);
    let mut spec = EngineSpec::standard(w.view(), u.view());
    spec.projection = Some(pr.view());
    let b: Array1<f64> = Array1::zeros(8);
    spec.biases.push(b.view());
    let e = LstmEngine::new(spec).expect("valid");
    let shapes: Vec<Vec<usize>> = e
        .grad_tensors(&e.zero_grad())
        .iter()
        .map(|(_, t)| t.shape().to_vec())
        .collect();
    assert_eq!(shapes, vec![vec![8, 3], vec![8, 2], vec![8], vec![2, 2]]);
}

/// The batch split of `backward_in_threads` (a workload big enough to split, with lengths, in
/// both layouts, with and without the input's gradient): the input's and the initial state's
/// gradients equal the one-thread ones bit for bit, the parameters' within rounding.
#[test]
fn two_threads_split_the_batch_exactly() {
    use lstm_core::backward::backward_in;
    use lstm_core::{Layout, Workspace};
    use lstm_engine::threads::backward_in_threads;
    let (t, b, i, h) = (24, 12, 48, 96);
    let mut rng = SplitMix64::new(3);
    let wx: Array2<f32> = rng.uniform_array((4 * h, i), 0.2);
    let wr: Array2<f32> = rng.uniform_array((4 * h, h), 0.2);
    let e = LstmEngine::new(EngineSpec::standard(wx.view(), wr.view())).expect("valid spec");
    let lengths: Vec<usize> = (0..b).map(|k| t - k % 5).collect();
    let s0 = LstmState::new(
        rng.uniform_array((b, h), 1.0),
        rng.uniform_array((b, h), 1.0),
    )
    .expect("matching parts");
    for layout in [Layout::TimeMajor, Layout::BatchFirst] {
        let shape = |w: usize| match layout {
            Layout::TimeMajor => (t, b, w),
            Layout::BatchFirst => (b, t, w),
        };
        let x: Array3<f32> = rng.uniform_array(shape(i), 1.0);
        let dy: Array3<f32> = rng.uniform_array(shape(h), 1.0);
        for lens in [None, Some(lengths.as_slice())] {
            let opts = SeqOptions {
                layout,
                lengths: lens,
                ..SeqOptions::default()
            };
            let one = backward_in(
                &e,
                x.view(),
                Some(&s0),
                &opts,
                dy.view(),
                Some(&s0),
                &mut Workspace::new(),
            )
            .expect("valid run");
            for want_input in [true, false] {
                let mut ws = [Workspace::new(), Workspace::new()];
                let two = backward_in_threads(
                    &e,
                    x.view(),
                    Some(&s0),
                    &opts,
                    dy.view(),
                    Some(&s0),
                    want_input,
                    2,
                    &mut ws,
                )
                .expect("valid run");
                if want_input {
                    assert_eq!(two.input, one.input, "input gradient");
                } else {
                    assert_eq!(two.input.len(), 0, "no input gradient");
                }
                assert_eq!(two.initial, one.initial, "initial state gradient");
                for (a, b) in [
                    (&two.params.w_input, &one.params.w_input),
                    (&two.params.w_recurrent, &one.params.w_recurrent),
                ] {
                    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    let err = a
                        .iter()
                        .zip(b)
                        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(err <= 1e-5 * scale, "parameter gradient differs by {err}");
                }
            }
        }
    }
}

/// The fused sequence backward (its gate pass in lanes of 16, with a tail) against the
/// stepwise one, which shares none of its code, at widths that have whole lanes and a tail.
#[test]
fn fused_backward_equals_the_stepwise_one() {
    use lstm_core::Workspace;
    use lstm_core::backward::{backward_in, stepwise_backward};
    for (h, seed) in [(16, 1), (37, 2), (64, 3)] {
        let (t, b, i) = (6, 5, 7);
        let mut rng = SplitMix64::new(seed);
        let wx: Array2<f64> = rng.uniform_array((4 * h, i), 0.4);
        let wr: Array2<f64> = rng.uniform_array((4 * h, h), 0.4);
        let e = LstmEngine::new(EngineSpec::standard(wx.view(), wr.view())).expect("valid spec");
        let x: Array3<f64> = rng.uniform_array((t, b, i), 1.0);
        let dy: Array3<f64> = rng.uniform_array((t, b, h), 1.0);
        let s0 = LstmState::new(
            rng.uniform_array((b, h), 1.0),
            rng.uniform_array((b, h), 1.0),
        )
        .expect("matching parts");
        let opts = SeqOptions::default();
        let fused = backward_in(
            &e,
            x.view(),
            Some(&s0),
            &opts,
            dy.view(),
            Some(&s0),
            &mut Workspace::new(),
        )
        .expect("valid run");
        let mut d = s0.clone();
        let mut dx = Array3::zeros((t, b, i));
        let mut grad = e.zero_grad();
        stepwise_backward(
            &e,
            x.view(),
            &s0,
            &opts,
            dy.view(),
            &mut d,
            dx.view_mut(),
            &mut grad,
            &mut Workspace::new(),
        );
        let close = |a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str| {
            let err = a
                .iter()
                .zip(b)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(err < 1e-12, "H {h}, {what}: differs by {err}");
        };
        close(&fused.input.into_dyn(), &dx.into_dyn(), "input");
        close(
            &fused.initial.h().to_owned().into_dyn(),
            &d.h().to_owned().into_dyn(),
            "h0",
        );
        close(
            &fused.initial.c().to_owned().into_dyn(),
            &d.c().to_owned().into_dyn(),
            "c0",
        );
        close(
            &fused.params.w_input.into_dyn(),
            &grad.w_input.into_dyn(),
            "w_input",
        );
        close(
            &fused.params.w_recurrent.into_dyn(),
            &grad.w_recurrent.into_dyn(),
            "w_recurrent",
        );
        close(&fused.params.bias.into_dyn(), &grad.bias.into_dyn(), "bias");
    }
}
