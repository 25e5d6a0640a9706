//! Facts that relate the variants to each other and to the seeds' golden values.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::PathBuf;

use lstm_concat::ConcatCell;
use lstm_core::ndarray::{Array1, Array2, Array3, Axis, Ix1, Ix2};
use lstm_core::{LstmState, RecurrentCell, SeqOptions};
use lstm_layers::npy;
use lstm_peephole::PeepholeCell;
use lstm_split::SplitCell;
use proptest::prelude::*;

fn seed(name: &str) -> Array2<f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/lstm-cli/data/seeds")
        .join(format!("{name}.npy"));
    match npy::read(&path).unwrap() {
        npy::NpyArray::F64(a) => match a.ndim() {
            1 => a.into_dimensionality::<Ix1>().unwrap().insert_axis(Axis(0)),
            _ => a.into_dimensionality::<Ix2>().unwrap(),
        },
        other => panic!("{name}: {}", other.dtype()),
    }
}

fn seed_step(tag: &str) -> (LstmState<f64>, Array2<f64>, Array2<f64>) {
    let w = seed(&format!("{tag}_w"));
    let b = seed(&format!("{tag}_b")).row(0).to_owned();
    let cell = ConcatCell::new(w.view(), b.view()).unwrap();
    let mut state = LstmState::new(seed(&format!("{tag}_h0")), seed(&format!("{tag}_c0"))).unwrap();
    cell.step(seed(&format!("{tag}_x")).view(), &mut state)
        .unwrap();
    (state, seed(&format!("{tag}_h")), seed(&format!("{tag}_c")))
}

/// The numbers the notebooks print, to the digits they print.
#[test]
fn seed003_golden() {
    let (state, h, c) = seed_step("seed003");
    let printed_h = [0.04826596, 0.0696416];
    let printed_c = [0.09676093, 0.14079951];
    for j in 0..2 {
        assert!((state.h()[[0, j]] - printed_h[j]).abs() < 5e-9);
        assert!((state.c()[[0, j]] - printed_c[j]).abs() < 5e-9);
        assert!((state.h()[[0, j]] - h[[0, j]]).abs() < 1e-15);
        assert!((state.c()[[0, j]] - c[[0, j]]).abs() < 1e-15);
    }
}

#[test]
fn seed004_golden() {
    let (state, h, c) = seed_step("seed004");
    let printed_h = [-0.24236866, -0.47552629, -0.61342184, 0.2937933];
    let printed_c = [-2.00175213, -0.54923161, -1.26657864, 0.33225723];
    for j in 0..4 {
        assert!((state.h()[[0, j]] - printed_h[j]).abs() < 5e-9, "h[{j}]");
        assert!((state.c()[[0, j]] - printed_c[j]).abs() < 5e-9, "c[{j}]");
        assert!((state.h()[[0, j]] - h[[0, j]]).abs() < 1e-14);
        assert!((state.c()[[0, j]] - c[[0, j]]).abs() < 1e-14);
    }
}

/// The seed's formulas in the seed's own gate order (f, i, o, c), as a check on the gate
/// reordering in the fixture.
#[test]
fn seed004_gate_order() {
    let w = seed("seed004_w");
    let hx: Vec<f64> = seed("seed004_h0")
        .iter()
        .chain(seed("seed004_x").iter())
        .copied()
        .collect();
    let b = seed("seed004_b");
    let z = |r: usize| b[[0, r]] + (0..hx.len()).map(|k| w[[r, k]] * hx[k]).sum::<f64>();
    let s = |v: f64| 1.0 / (1.0 + (-v).exp());
    let c0 = seed("seed004_c0");
    let h = seed("seed004_h");
    for j in 0..4 {
        let c = s(z(4 + j)) * c0[[0, j]] + s(z(j)) * z(8 + j).tanh();
        assert!((s(z(12 + j)) * c.tanh() - h[[0, j]]).abs() < 1e-14);
    }
}

fn dims() -> impl Strategy<Value = (usize, usize, usize, usize, Vec<f64>)> {
    (1..4usize, 0..10usize, 1..7usize, 1..7usize).prop_flat_map(|(b, t, i, h)| {
        let n = 4 * h * (h + i) + 8 * h + 3 * h + t * b * i;
        (
            Just(b),
            Just(t),
            Just(i),
            Just(h),
            proptest::collection::vec(-1.5..1.5f64, n),
        )
    })
}

struct Parts {
    w: Array2<f64>,
    u: Array2<f64>,
    bw: Array1<f64>,
    bu: Array1<f64>,
    p: Array2<f64>,
    x: Array3<f64>,
}

fn parts(b: usize, t: usize, i: usize, h: usize, v: &[f64]) -> Parts {
    let mut at = 0;
    let mut take = |n: usize| {
        at += n;
        v[at - n..at].to_vec()
    };
    Parts {
        w: Array2::from_shape_vec((4 * h, i), take(4 * h * i)).unwrap(),
        u: Array2::from_shape_vec((4 * h, h), take(4 * h * h)).unwrap(),
        bw: Array1::from(take(4 * h)),
        bu: Array1::from(take(4 * h)),
        p: Array2::from_shape_vec((3, h), take(3 * h)).unwrap(),
        x: Array3::from_shape_vec((t, b, i), take(t * b * i)).unwrap(),
    }
}

fn max_diff(a: &Array3<f64>, b: &Array3<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// split -> concatenated -> concat cell, and concat weights -> split cell: same function.
    #[test]
    fn concat_equals_split_both_ways((b, t, i, h, v) in dims()) {
        let p = parts(b, t, i, h, &v);
        let split = SplitCell::new(p.w.view(), p.u.view(), Some(p.bw.view()), Some(p.bu.view())).unwrap();
        let (w_cat, b_cat) = split.to_concatenated();
        prop_assert_eq!(w_cat.shape(), &[4 * h, h + i]);
        let concat = ConcatCell::new(w_cat.view(), b_cat.view()).unwrap();
        let back = SplitCell::from_concatenated(concat.weights().view(), concat.bias().view()).unwrap();
        prop_assert_eq!(back.w(), p.w.view());
        prop_assert_eq!(back.u(), p.u.view());
        let opts = SeqOptions::default();
        let a = split.unroll(p.x.view(), None, &opts).unwrap();
        let c = concat.unroll(p.x.view(), None, &opts).unwrap();
        let d = back.unroll(p.x.view(), None, &opts).unwrap();
        prop_assert!(max_diff(&a.output, &c.output) < 1e-12);
        prop_assert!(max_diff(&a.output, &d.output) < 1e-12);
    }

    /// The classic peephole cell with zero peepholes is the standard cell.
    #[test]
    fn zero_peepholes_is_standard((b, t, i, h, v) in dims()) {
        let p = parts(b, t, i, h, &v);
        let bias = &p.bw + &p.bu;
        let peep = PeepholeCell::new(p.w.view(), p.u.view(), Some(bias.view()), Array2::zeros((3, h)).view()).unwrap();
        let split = SplitCell::new(p.w.view(), p.u.view(), Some(p.bw.view()), Some(p.bu.view())).unwrap();
        let opts = SeqOptions::default().reverse();
        let a = peep.unroll(p.x.view(), None, &opts).unwrap();
        let c = split.unroll(p.x.view(), None, &opts).unwrap();
        prop_assert!(max_diff(&a.output, &c.output) < 1e-12);
        // Nonzero peepholes change the result whenever there is a second step to see c.
        if t >= 2 {
            let peep = PeepholeCell::new(p.w.view(), p.u.view(), Some(bias.view()), p.p.view()).unwrap();
            let e = peep.unroll(p.x.view(), None, &opts).unwrap();
            prop_assert!(max_diff(&e.output, &c.output) > 0.0);
        }
    }
}
