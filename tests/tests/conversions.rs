//! A PyTorch-layout model and its ONNX-layout conversion compute the same function.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::ndarray::{Array1, Array2, Array3};
use lstm_engine::{EngineSpec, LstmEngine};
use lstm_layers::{EmptyFinalState, LstmStack, StackOptions, convert};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pytorch_and_onnx_layouts_agree(h in 1..5usize, i in 1..5usize, t in 1..5usize, b in 1..3usize, seed in 0..10_000u64) {
        let mut rng = lstm_engine::init::SplitMix64::new(seed);
        let w: Array2<f64> = rng.uniform_array((4 * h, i), 1.0);
        let r: Array2<f64> = rng.uniform_array((4 * h, h), 1.0);
        let (bi, bh): (Array1<f64>, Array1<f64>) = (rng.uniform_array(4 * h, 1.0), rng.uniform_array(4 * h, 1.0));
        let x: Array3<f64> = rng.uniform_array((t, b, i), 2.0);
        // PyTorch layout straight in.
        let mut spec = EngineSpec::standard(w.view(), r.view());
        spec.biases = vec![bi.view(), bh.view()];
        let torch = LstmStack::new(vec![vec![LstmEngine::new(spec).unwrap()]]).unwrap();
        // Through ONNX's layout and back.
        let (wo, ro) = (convert::gates_to_onnx(w.view()).unwrap(), convert::gates_to_onnx(r.view()).unwrap());
        let bo = convert::bias_to_onnx(bi.view(), bh.view()).unwrap();
        let (w2, r2) = (convert::gates_from_onnx(wo.view()).unwrap(), convert::gates_from_onnx(ro.view()).unwrap());
        let (b2i, b2h) = convert::bias_from_onnx(bo.view()).unwrap();
        let mut spec = EngineSpec::standard(w2.view(), r2.view());
        spec.biases = vec![b2i.view(), b2h.view()];
        let onnx = LstmStack::new(vec![vec![LstmEngine::new(spec).unwrap()]]).unwrap();
        let opts = StackOptions { empty_final_state: EmptyFinalState::Zero, ..Default::default() };
        let a = torch.forward(x.view(), None, None, &opts).unwrap();
        let c = onnx.forward(x.view(), None, None, &opts).unwrap();
        prop_assert_eq!(a, c);
    }
}
