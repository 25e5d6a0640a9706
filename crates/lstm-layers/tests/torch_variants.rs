//! The variants nn.LSTM lacks, in the state-dict scheme (`weight_peephole_l{k}`,
//! `weight_ch_l{k}`): they build the engines of their cells, and `named_gradients` gives each
//! tensor's gradient, checked against finite differences of the model built from the tensors.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::collections::BTreeMap;

use lstm_core::ndarray::{Array3, ArrayD, IxDyn};
use lstm_engine::init::SplitMix64;
use lstm_layers::StackOptions;
use lstm_layers::torch::{TorchModel, model_from_tensors, named_gradients};

fn tensors(peephole: bool, state_gated: bool, layers: usize) -> BTreeMap<String, ArrayD<f64>> {
    let (i, h) = (3, 4);
    let mut rng = SplitMix64::new(u64::from(peephole) + 2 * u64::from(state_gated));
    let mut t = BTreeMap::new();
    for k in 0..layers {
        let w = if k == 0 { i } else { h };
        let mut put = |n: &str, shape: &[usize]| {
            t.insert(
                format!("lstm.{n}_l{k}"),
                rng.uniform_array(IxDyn(shape), 0.6),
            );
        };
        put("weight_ih", &[4 * h, w]);
        if state_gated {
            put("weight_ch", &[3 * h, h]);
        } else {
            put("weight_hh", &[4 * h, h]);
        }
        put("bias_ih", &[4 * h]);
        put("bias_hh", &[4 * h]);
        if peephole {
            put("weight_peephole", &[3, h]);
        }
    }
    t
}

fn loss(t: &BTreeMap<String, ArrayD<f64>>, x: &Array3<f64>) -> f64 {
    let TorchModel::Lstm(s) = model_from_tensors(t, "test", "lstm.").unwrap() else {
        panic!("an LSTM")
    };
    let out = s
        .forward(x.view(), None, None, &StackOptions::default())
        .unwrap();
    let w = |k: usize| (0.3 * k as f64 + 0.1).cos();
    let y: f64 = out.output.iter().enumerate().map(|(k, v)| v * w(k)).sum();
    y + out
        .c_n
        .iter()
        .enumerate()
        .map(|(k, v)| v * w(k + 5))
        .sum::<f64>()
}

#[test]
fn variant_gradients_under_their_names_match_finite_differences() {
    for (peephole, state_gated) in [(true, false), (false, true), (true, true)] {
        let t = tensors(peephole, state_gated, 2);
        let x: Array3<f64> = SplitMix64::new(5).uniform_array((4, 2, 3), 1.0);
        let model = model_from_tensors(&t, "test", "lstm.").unwrap();
        let TorchModel::Lstm(s) = &model else {
            panic!("an LSTM")
        };
        assert_eq!(s.layers()[0][0].peephole().is_some(), peephole);
        let out = s
            .forward(x.view(), None, None, &StackOptions::default())
            .unwrap();
        let w = |k: usize| (0.3 * k as f64 + 0.1).cos();
        let dy = Array3::from_shape_fn(out.output.raw_dim(), |(a, b, c)| {
            let d = out.output.dim();
            w((a * d.1 + b) * d.2 + c)
        });
        let dc = Array3::from_shape_fn(out.c_n.raw_dim(), |(a, b, c)| {
            let d = out.c_n.dim();
            w((a * d.1 + b) * d.2 + c + 5)
        });
        let g = model
            .backward(
                x.view(),
                None,
                None,
                &StackOptions::default(),
                dy.view(),
                None,
                Some(dc.view()),
            )
            .unwrap();
        let names: Vec<String> = t.keys().cloned().collect();
        let named: BTreeMap<String, ArrayD<f64>> =
            named_gradients(&g, "lstm.", &names).into_iter().collect();
        assert_eq!(
            named.keys().collect::<Vec<_>>(),
            t.keys().collect::<Vec<_>>()
        );
        let eps = 1e-6;
        for (name, grad) in &named {
            assert_eq!(grad.shape(), t[name].shape(), "{name}");
            for (idx, &a) in grad.indexed_iter() {
                let at = |d: f64| {
                    let mut p = t.clone();
                    p.get_mut(name).unwrap()[&idx] += d;
                    loss(&p, &x)
                };
                let n = (at(eps) - at(-eps)) / (2.0 * eps);
                assert!(
                    (a - n).abs() < 1e-7 * (1.0 + n.abs()),
                    "peephole {peephole} state-gated {state_gated} {name}{idx:?}: {a} vs {n}"
                );
            }
        }
    }
}
