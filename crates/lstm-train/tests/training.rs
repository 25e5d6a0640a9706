//! The head's losses against finite differences, training that learns, and checkpoints that
//! resume a run exactly.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::ndarray::{Array2, Array3, Axis};
use lstm_engine::init::SplitMix64;
use lstm_layers::StackOptions;
use lstm_layers::torch::{self, TorchModel};
use lstm_train::head::positions;
use lstm_train::{Head, Kind, Optimizer, Schedule, Target, TrainConfig, Trainer};

fn config(kind: Kind) -> TrainConfig<f64> {
    TrainConfig {
        kind,
        input: 2,
        hidden: 6,
        layers: 1,
        bidirectional: false,
        proj_size: 0,
        outputs: 1,
        batch_size: 16,
        optimizer: Optimizer::adam(),
        lr: 0.02,
        schedule: Schedule::Constant,
        clip_grad_norm: Some(5.0),
        forget_bias: None,
        seed: 3,
        threads: 1,
        tbptt: None,
        dropout: None,
    }
}

/// `x [T, N, 2]`, lengths in `2..=T`, and the sum of feature 0 over each sample's valid steps.
fn data(n: usize, t: usize, seed: u64) -> (Array3<f64>, Vec<usize>, Array2<f64>) {
    let mut rng = SplitMix64::new(seed);
    let x: Array3<f64> = rng.uniform_array((t, n, 2), 1.0);
    let lengths: Vec<usize> = (0..n).map(|k| 2 + k % (t - 1)).collect();
    let y = Array2::from_shape_fn((n, 1), |(b, _)| {
        (0..lengths[b]).map(|s| x[[s, b, 0]]).sum::<f64>() * 0.5
    });
    (x, lengths, y)
}

#[test]
fn head_losses_match_finite_differences() {
    let mut rng = SplitMix64::new(9);
    let (t, b, w, o) = (4, 3, 5, 3);
    let out: Array3<f64> = rng.uniform_array((t, b, w), 1.0);
    let head = Head {
        weight: rng.uniform_array((o, w), 0.7),
        bias: rng.uniform_array(o, 0.3),
    };
    let lengths = [4, 2, 3];
    let targets = [
        Target::Values(rng.uniform_array((b, o), 1.0)),
        Target::StepValues(rng.uniform_array((t, b, o), 1.0)),
        Target::Classes(vec![0, 2, 1]),
        Target::StepClasses(Array2::from_shape_fn((t, b), |(i, j)| (i + j) % o)),
    ];
    let eps = 1e-6;
    for target in &targets {
        let g = head.loss(out.view(), &lengths, target).unwrap();
        for (idx, &a) in g.d_output.indexed_iter() {
            let at = |d: f64| {
                let mut o2 = out.clone();
                o2[idx] += d;
                head.loss(o2.view(), &lengths, target).unwrap().loss
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (a - n).abs() < 1e-8,
                "{target:?} output {idx:?}: {a} vs {n}"
            );
        }
        for (idx, &a) in g.weight.indexed_iter() {
            let at = |d: f64| {
                let mut h2 = head.clone();
                h2.weight[idx] += d;
                h2.loss(out.view(), &lengths, target).unwrap().loss
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (a - n).abs() < 1e-8,
                "{target:?} weight {idx:?}: {a} vs {n}"
            );
        }
        for (j, &a) in g.bias.iter().enumerate() {
            let at = |d: f64| {
                let mut h2 = head.clone();
                h2.bias[j] += d;
                h2.loss(out.view(), &lengths, target).unwrap().loss
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!((a - n).abs() < 1e-8, "{target:?} bias {j}: {a} vs {n}");
        }
    }
    // Padded steps get no gradient.
    let g = head.loss(out.view(), &lengths, &targets[1]).unwrap();
    assert!(
        g.d_output
            .slice(lstm_core::ndarray::s![2.., 1, ..])
            .iter()
            .all(|&v| v == 0.0)
    );
    assert_eq!(positions(4, &lengths, false), vec![(3, 0), (1, 1), (2, 2)]);
}

#[test]
fn bad_targets_are_errors() {
    let head = Head {
        weight: Array2::<f64>::zeros((2, 3)),
        bias: lstm_core::ndarray::Array1::zeros(2),
    };
    let out = Array3::<f64>::zeros((2, 2, 3));
    let invalid = |t: Target<f64>, l: &[usize]| head.loss(out.view(), l, &t).is_err();
    assert!(
        invalid(Target::Classes(vec![0, 2]), &[2, 2]),
        "class id past the outputs"
    );
    assert!(
        invalid(Target::Classes(vec![0]), &[2, 2]),
        "one target for two rows"
    );
    assert!(
        invalid(Target::Values(Array2::zeros((2, 3))), &[2, 2]),
        "wrong width"
    );
    assert!(
        invalid(Target::Classes(vec![0, 1]), &[0, 0]),
        "nothing to read"
    );
}

#[test]
fn training_learns_a_sum() {
    for kind in Kind::ALL {
        let (x, lengths, y) = data(128, 6, 1);
        let target = Target::Values(y);
        let mut run = Trainer::new(config(kind)).unwrap();
        let first = run.evaluate(x.view(), &lengths, &target).unwrap().loss;
        for _ in 0..40 {
            run.epoch_on(x.view(), &lengths, &target).unwrap();
        }
        let last = run.evaluate(x.view(), &lengths, &target).unwrap().loss;
        assert!(last < 0.1 * first, "{kind:?}: loss {first} -> {last}");
        // A checkpoint of any kind loads back, the architecture from its metadata.
        let dir = std::env::temp_dir().join(format!("lstm-train-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.safetensors", kind.name()));
        run.save(&path).unwrap();
        let (back, _) = Trainer::<f64>::load(&path).unwrap();
        assert_eq!(back.config().kind, kind);
        assert_eq!(back.tensors(), run.tensors());
        // The importer `lstm run` uses reads the gate options from the metadata: the file
        // computes what the trained model computes.
        let opts = StackOptions::default();
        let of = |m: TorchModel<f64>| match m {
            TorchModel::Lstm(s) => s.forward_states(x.view(), &[], &opts).unwrap().output,
            TorchModel::Gru(s) => s.forward_states(x.view(), &[], &opts).unwrap().output,
        };
        let imported = of(torch::load_model::<f64>(&path, None).unwrap());
        assert_eq!(imported, of(run.model().unwrap()), "{kind:?}");
        if kind.gates::<f64>() != lstm_engine::GateConfig::default() {
            // ... which a plain nn.LSTM of the same tensors does not.
            let plain = torch::model_from_tensors(run.tensors(), "plain", "lstm.").unwrap();
            assert_ne!(of(plain), imported, "{kind:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn classification_learns_the_sign_of_a_sum() {
    let (x, lengths, y) = data(128, 5, 2);
    let classes: Vec<usize> = y.column(0).iter().map(|&v| usize::from(v > 0.0)).collect();
    let target = Target::Classes(classes);
    let mut c = config(Kind::Lstm);
    c.outputs = 2;
    c.bidirectional = true;
    let mut run = Trainer::new(c).unwrap();
    for _ in 0..40 {
        run.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    let acc = run
        .evaluate(x.view(), &lengths, &target)
        .unwrap()
        .accuracy
        .unwrap();
    assert!(acc > 0.9, "accuracy {acc}");
    let p = run.predict(x.view(), &lengths, false, true).unwrap();
    for row in p.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12, "probabilities sum to 1");
    }
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let dir = std::env::temp_dir().join(format!("lstm-train-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let (x, lengths, y) = data(40, 5, 4);
    let target = Target::Values(y);
    let mut c = config(Kind::Lstm);
    c.layers = 2;
    c.proj_size = 3;
    c.schedule = Schedule::Step {
        step_size: 1,
        gamma: 0.7,
    };
    let mut straight = Trainer::new(c.clone()).unwrap();
    for _ in 0..4 {
        straight.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    let mut first = Trainer::new(c.clone()).unwrap();
    for _ in 0..2 {
        first.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    first.save(&path).unwrap();
    let mut resumed = Trainer::resume(c, &path).unwrap();
    assert_eq!(resumed.epoch(), 2);
    for _ in 0..2 {
        resumed.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    assert_eq!(resumed.tensors(), straight.tensors(), "bit for bit");
    let names: Vec<&String> = straight.tensors().keys().collect();
    for n in [
        "lstm.weight_ih_l0",
        "lstm.weight_hr_l1",
        "head.weight",
        "head.bias",
    ] {
        assert!(names.iter().any(|k| *k == n), "{n} in {names:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = x.len_of(Axis(0));
}

/// Truncated backpropagation: chunks as long as the sequence are the whole batch, bit for bit;
/// shorter chunks carry the state, so a target that needs the whole history is still learnt.
#[test]
fn truncated_backpropagation_carries_the_state() {
    let mut rng = SplitMix64::new(8);
    let (t, n) = (12, 64);
    let x: Array3<f64> = rng.uniform_array((t, n, 2), 1.0);
    // The running mean of feature 0: every step needs the steps before it.
    let y = Array3::from_shape_fn((t, n, 1), |(s, b, _)| {
        (0..=s).map(|k| x[[k, b, 0]]).sum::<f64>() / (s + 1) as f64
    });
    let target = Target::StepValues(y);
    let lengths: Vec<usize> = (0..n).map(|k| t - k % 4).collect();
    let mut c = config(Kind::Lstm);
    c.tbptt = Some(t);
    let mut whole = Trainer::new(config(Kind::Lstm)).unwrap();
    let mut same = Trainer::new(c.clone()).unwrap();
    for _ in 0..2 {
        whole.epoch_on(x.view(), &lengths, &target).unwrap();
        same.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    assert_eq!(whole.tensors(), same.tensors(), "K = T is no truncation");
    c.tbptt = Some(4);
    let mut run = Trainer::new(c.clone()).unwrap();
    let first = run.evaluate(x.view(), &lengths, &target).unwrap().loss;
    for _ in 0..30 {
        run.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    let last = run.evaluate(x.view(), &lengths, &target).unwrap().loss;
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    assert_ne!(run.tensors(), whole.tensors());
    // Truncation needs targets at every step and one direction.
    let mut bi = c.clone();
    bi.bidirectional = true;
    let mut r = Trainer::new(bi).unwrap();
    assert!(r.epoch_on(x.view(), &lengths, &target).is_err());
    let last_step = Target::Values(Array2::zeros((n, 1)));
    let mut r = Trainer::new(c).unwrap();
    assert!(r.epoch_on(x.view(), &lengths, &last_step).is_err());
}

/// Dropout between layers while training: a different run from the same seed, still learning;
/// evaluation runs without it (deterministic); a probability outside `[0, 1)` is refused.
#[test]
fn dropout_trains_and_evaluates_without_masks() {
    let (x, lengths, y) = data(96, 5, 6);
    let target = Target::Values(y);
    let mut c = config(Kind::Lstm);
    c.layers = 2;
    let mut plain = Trainer::new(c.clone()).unwrap();
    c.dropout = Some(0.2);
    let mut dropped = Trainer::new(c.clone()).unwrap();
    let first = dropped.evaluate(x.view(), &lengths, &target).unwrap().loss;
    for _ in 0..40 {
        plain.epoch_on(x.view(), &lengths, &target).unwrap();
        dropped.epoch_on(x.view(), &lengths, &target).unwrap();
    }
    assert_ne!(plain.tensors(), dropped.tensors());
    let a = dropped.evaluate(x.view(), &lengths, &target).unwrap().loss;
    let b = dropped.evaluate(x.view(), &lengths, &target).unwrap().loss;
    assert_eq!(a, b, "evaluation has no dropout");
    assert!(a < 0.2 * first, "loss {first} -> {a}");
    c.dropout = Some(1.0);
    assert!(Trainer::new(c).is_err());
}

/// The tasks are what they say: two markers, one per half, and their sum; the copy targets
/// recall the symbols after the delimiter and are blank elsewhere.
#[test]
fn tasks_hold_what_they_say() {
    use lstm_train::tasks::{adding, copy};
    let d = adding::<f64>(50, 10, 1).unwrap();
    let Target::Values(y) = &d.target else {
        panic!()
    };
    for b in 0..50 {
        let marked: Vec<usize> = (0..10).filter(|&t| d.x[[t, b, 1]] == 1.0).collect();
        assert_eq!(marked.len(), 2);
        assert!(marked[0] < 5 && marked[1] >= 5);
        let sum = d.x[[marked[0], b, 0]] + d.x[[marked[1], b, 0]];
        assert!((y[[b, 0]] - sum).abs() < 1e-12);
    }
    let (symbols, length, delay) = (4, 3, 2);
    let d = copy::<f64>(20, symbols, length, delay, 2).unwrap();
    let Target::StepClasses(y) = &d.target else {
        panic!()
    };
    assert_eq!(d.x.dim(), (2 * length + delay + 1, 20, symbols + 2));
    for b in 0..20 {
        for k in 0..length {
            let s = (0..symbols).find(|&s| d.x[[k, b, s]] == 1.0).unwrap();
            assert_eq!(y[[length + delay + 1 + k, b]], 1 + s);
        }
        assert_eq!(d.x[[length + delay, b, symbols + 1]], 1.0, "the delimiter");
        assert!((0..=length + delay).all(|t| y[[t, b]] == 0));
    }
    assert!(adding::<f64>(5, 1, 0).is_err());
    assert!(copy::<f64>(5, 0, 3, 1, 0).is_err());
}

/// The classification head's predictions are the seeds' softmax read-out,
/// `softmax(W_y h + b_y)`, at the positions read; regression ones are `W_y h + b_y`.
#[test]
fn predictions_are_the_softmax_read_out() {
    let mut rng = SplitMix64::new(11);
    let (t, b, w, o) = (3, 2, 4, 3);
    let out: Array3<f64> = rng.uniform_array((t, b, w), 1.0);
    let head = Head {
        weight: rng.uniform_array((o, w), 0.9),
        bias: rng.uniform_array(o, 0.4),
    };
    let at = positions(t, &[3, 2], false);
    let probs = head.predict(out.view(), &at, true).unwrap();
    let values = head.predict(out.view(), &at, false).unwrap();
    for (n, &(tt, bb)) in at.iter().enumerate() {
        let logit = |k: usize| {
            head.bias[k]
                + (0..w)
                    .map(|j| head.weight[[k, j]] * out[[tt, bb, j]])
                    .sum::<f64>()
        };
        let z: f64 = (0..o).map(|k| logit(k).exp()).sum();
        for k in 0..o {
            assert!((probs[[n, k]] - logit(k).exp() / z).abs() < 1e-15);
            assert!((values[[n, k]] - logit(k)).abs() < 1e-15);
        }
    }
    assert_eq!(
        head.readout(true).unwrap().outputs(),
        o,
        "the read-out has the head's outputs"
    );
}
