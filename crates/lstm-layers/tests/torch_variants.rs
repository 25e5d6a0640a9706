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

/// The gate options in a checkpoint's metadata: they read back as written, and anything else
/// is an error that names the entry.
#[test]
fn gate_options_in_the_metadata() {
    use lstm_core::{Activation, LstmError};
    use lstm_engine::GateConfig;
    use lstm_layers::torch::{gates_from_metadata, gates_metadata, model_from_tensors_with};
    use std::collections::HashMap;
    let identity = Activation::Affine {
        alpha: 1.0,
        beta: 0.0,
    };
    let mut g = GateConfig::<f64>::default();
    assert!(gates_metadata(&g, "lstm.").is_empty());
    g.open = [true, false, true];
    g.h = identity;
    g.input_forget = true;
    let meta: HashMap<String, String> = gates_metadata(&g, "lstm.").into_iter().collect();
    assert_eq!(meta["lstm.gates.open"], "i,o");
    assert_eq!(meta["lstm.gates.identity"], "h");
    assert_eq!(gates_from_metadata::<f64>(&meta, "lstm.", "m").unwrap(), g);
    // Another prefix's entries are not this LSTM's.
    assert_eq!(
        gates_from_metadata::<f64>(&meta, "enc.", "m").unwrap(),
        GateConfig::default()
    );
    for (k, v, named) in [
        ("lstm.gates.open", "i,x", "\"x\""),
        ("lstm.gates.identity", "f", "\"f\""),
        ("lstm.gates.input_forget", "yes", "\"yes\""),
        ("lstm.gates.clip", "3", "lstm.gates.clip"),
    ] {
        let bad: HashMap<String, String> = [(k.to_string(), v.to_string())].into();
        let e = gates_from_metadata::<f64>(&bad, "lstm.", "m").unwrap_err();
        assert!(matches!(e, LstmError::Format { .. }), "{e}");
        assert!(e.to_string().contains(named), "{e}");
    }
    // A GRU has no such options.
    let (i, h) = (2, 3);
    let mut rng = SplitMix64::new(4);
    let mut t = BTreeMap::new();
    t.insert(
        "gru.weight_ih_l0".to_string(),
        rng.uniform_array(IxDyn(&[3 * h, i]), 0.5),
    );
    t.insert(
        "gru.weight_hh_l0".to_string(),
        rng.uniform_array(IxDyn(&[3 * h, h]), 0.5),
    );
    assert!(model_from_tensors_with(&t, "m", "gru.", &GateConfig::default()).is_ok());
    let e = model_from_tensors_with(&t, "m", "gru.", &g).unwrap_err();
    assert!(matches!(e, LstmError::Invalid { .. }), "{e}");
}
