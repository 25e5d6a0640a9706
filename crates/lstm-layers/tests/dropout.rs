//! Inter-layer dropout: a seeded mask between layers (not after the last), the same in the
//! forward run and in the backward one, checked against finite differences of the input and
//! the initial states.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::ndarray::Array3;
use lstm_engine::init::SplitMix64;
use lstm_layers::{Dropout, LstmStack, StackOptions};

fn loss(s: &LstmStack<f64>, x: &Array3<f64>, h0: &Array3<f64>, opts: &StackOptions<'_>) -> f64 {
    let out = s.forward(x.view(), Some(h0.view()), None, opts).unwrap();
    out.output
        .iter()
        .enumerate()
        .map(|(k, v)| v * (0.7 * k as f64).sin())
        .sum()
}

#[test]
fn dropout_gradients_match_finite_differences() {
    for (layers, dirs) in [(2, 1), (3, 2)] {
        let mut rng = SplitMix64::new(layers as u64);
        let s = LstmStack::<f64>::random(3, 4, layers, dirs, &mut rng).unwrap();
        let x: Array3<f64> = rng.uniform_array((5, 2, 3), 1.0);
        let h0: Array3<f64> = rng.uniform_array((layers * dirs, 2, 4), 0.5);
        let opts = StackOptions {
            dropout: Some(Dropout { p: 0.4, seed: 9 }),
            ..StackOptions::default()
        };
        let out = s.forward(x.view(), Some(h0.view()), None, &opts).unwrap();
        let dy = Array3::from_shape_fn(out.output.raw_dim(), |(a, b, c)| {
            let d = out.output.dim();
            (0.7 * ((a * d.1 + b) * d.2 + c) as f64).sin()
        });
        let g = s
            .backward(x.view(), &[Some(h0.view())], &opts, dy.view(), &[])
            .unwrap();
        let eps = 1e-6;
        for (idx, &a) in g.input.indexed_iter() {
            let at = |d: f64| {
                let mut xp = x.clone();
                xp[idx] += d;
                loss(&s, &xp, &h0, &opts)
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (a - n).abs() < 1e-7 * (1.0 + n.abs()),
                "input {idx:?}: {a} vs {n}"
            );
        }
        for (idx, &a) in g.initial[0].indexed_iter() {
            let at = |d: f64| {
                let mut hp = h0.clone();
                hp[idx] += d;
                loss(&s, &x, &hp, &opts)
            };
            let n = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (a - n).abs() < 1e-7 * (1.0 + n.abs()),
                "h0 {idx:?}: {a} vs {n}"
            );
        }
        // Dropout changes the run, p = 0 does not, and a bad p is an error.
        let plain = s
            .forward(x.view(), Some(h0.view()), None, &StackOptions::default())
            .unwrap();
        assert_ne!(plain.output, out.output);
        let zero = StackOptions {
            dropout: Some(Dropout { p: 0.0, seed: 9 }),
            ..StackOptions::default()
        };
        assert_eq!(
            s.forward(x.view(), Some(h0.view()), None, &zero).unwrap(),
            plain
        );
        let bad = StackOptions {
            dropout: Some(Dropout { p: 1.0, seed: 9 }),
            ..StackOptions::default()
        };
        assert!(s.forward(x.view(), None, None, &bad).is_err());
    }
}

/// One layer: nothing to drop (dropout applies between layers only).
#[test]
fn one_layer_is_untouched() {
    let mut rng = SplitMix64::new(3);
    let s = LstmStack::<f64>::random(3, 4, 1, 2, &mut rng).unwrap();
    let x: Array3<f64> = rng.uniform_array((4, 3, 3), 1.0);
    let drop = StackOptions {
        dropout: Some(Dropout { p: 0.5, seed: 1 }),
        ..StackOptions::default()
    };
    assert_eq!(
        s.forward(x.view(), None, None, &drop).unwrap(),
        s.forward(x.view(), None, None, &StackOptions::default())
            .unwrap()
    );
}
