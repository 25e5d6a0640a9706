//! The GRU against its equations, its two paths against each other, and its errors.
use super::*;
use lstm_core::ndarray::Array;

/// The GRU equations one scalar at a time, in f64, for one sample.
fn reference(cell: &GruCell<f64>, x: &[Vec<f64>], h0: &[f64]) -> Vec<Vec<f64>> {
    let h = cell.hidden_size();
    let (w, r) = cell.weights();
    let (wb, rb) = cell.biases();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let mut state = h0.to_vec();
    let mut out = Vec::new();
    for xt in x {
        let wx = |row: usize| (0..xt.len()).map(|k| w[[row, k]] * xt[k]).sum::<f64>() + wb[row];
        let rv = |row: usize, v: &[f64]| (0..h).map(|k| r[[row, k]] * v[k]).sum::<f64>() + rb[row];
        let z: Vec<f64> = (0..h).map(|j| sig(wx(j) + rv(j, &state))).collect();
        let r: Vec<f64> = (0..h).map(|j| sig(wx(h + j) + rv(h + j, &state))).collect();
        let rh: Vec<f64> = (0..h).map(|j| r[j] * state[j]).collect();
        let n: Vec<f64> = (0..h)
            .map(|j| {
                let rec = if cell.linear_before_reset {
                    r[j] * rv(2 * h + j, &state)
                } else {
                    rv(2 * h + j, &rh)
                };
                (wx(2 * h + j) + rec).tanh()
            })
            .collect();
        state = (0..h)
            .map(|j| (1.0 - z[j]) * n[j] + z[j] * state[j])
            .collect();
        out.push(state.clone());
    }
    out
}

fn cell(i: usize, h: usize, lbr: bool, seed: u64) -> GruCell<f64> {
    let mut rng = lstm_engine::init::SplitMix64::new(seed);
    GruCell::new(
        rng.uniform_array((3 * h, i), 0.8),
        rng.uniform_array((3 * h, h), 0.8),
        Some(rng.uniform_array(3 * h, 0.5)),
        Some(rng.uniform_array(3 * h, 0.5)),
        lbr,
    )
    .unwrap()
}

#[test]
fn matches_the_equations_both_ways_with_lengths() {
    for lbr in [false, true] {
        let c = cell(3, 5, lbr, 7);
        let mut rng = lstm_engine::init::SplitMix64::new(11);
        let x: Array3<f64> = rng.uniform_array((6, 3, 3), 1.5);
        let h0: Array2<f64> = rng.uniform_array((3, 5), 1.0);
        let lens = [6, 2, 0];
        for reverse in [false, true] {
            let out = c
                .forward(x.view(), Some(h0.view()), Some(&lens), reverse)
                .unwrap();
            for b in 0..3 {
                let mut steps: Vec<usize> = (0..lens[b]).collect();
                if reverse {
                    steps.reverse();
                }
                let xs: Vec<Vec<f64>> = steps
                    .iter()
                    .map(|&t| x.slice(s![t, b, ..]).to_vec())
                    .collect();
                let want = reference(&c, &xs, &h0.row(b).to_vec());
                for (k, &t) in steps.iter().enumerate() {
                    for j in 0..5 {
                        assert!((out.output[[t, b, j]] - want[k][j]).abs() < 1e-12);
                    }
                }
                let last = want.last().cloned().unwrap_or_else(|| h0.row(b).to_vec());
                for j in 0..5 {
                    assert!((out.h_n[[b, j]] - last[j]).abs() < 1e-12);
                }
                for t in lens[b]..6 {
                    assert!(out.output.slice(s![t, b, ..]).iter().all(|&v| v == 0.0));
                }
            }
        }
    }
}

/// The contract's two paths agree: traced (one step at a time) and untraced (the input
/// products of every step at once), in both directions, with lengths and a batch-first
/// input, and the trace holds three gate blocks and `h`.
#[test]
fn stepping_and_the_sequence_path_agree() {
    for lbr in [false, true] {
        let c = cell(4, 3, lbr, 5);
        let mut rng = lstm_engine::init::SplitMix64::new(3);
        let x: Array3<f64> = rng.uniform_array((3, 7, 4), 1.0); // [B, T, I]
        let h0 = GruState::new(rng.uniform_array((3, 3), 1.0));
        let lens = [7, 4, 1];
        for reverse in [false, true] {
            let mut opts = SeqOptions::default().batch_first().lengths(&lens);
            if reverse {
                opts = opts.reverse();
            }
            let fast = c.unroll(x.view(), Some(&h0), &opts).unwrap();
            let slow = c.unroll(x.view(), Some(&h0), &opts.traced()).unwrap();
            let diff = (&fast.output - &slow.output)
                .mapv(f64::abs)
                .fold(0.0, |m: f64, &v| m.max(v));
            assert!(diff < 1e-13, "{diff}");
            assert!(
                (&fast.state.h() - &slow.state.h())
                    .iter()
                    .all(|v| v.abs() < 1e-13)
            );
            let trace = slow.trace.unwrap();
            assert_eq!(trace.gates.shape(), &[7, 3, 3, 3]);
            // The trace's state is h: the output, time-major.
            for t in 0..7 {
                for b in 0..3 {
                    for j in 0..3 {
                        assert_eq!(trace.cell[[t, b, j]], slow.output[[b, t, j]]);
                    }
                }
            }
        }
        let one = c.step(x.slice(s![.., 0, ..]), &mut h0.clone()).unwrap();
        assert_eq!(one.shape(), &[3, 3, 3]);
    }
}

#[test]
fn torch_order_is_reordered() {
    let c = cell(2, 3, true, 3);
    // Back to PyTorch's r, z, n order, then through from_torch.
    let (w, r) = c.weights();
    let reorder = |a: &Array2<f64>| {
        lstm_core::ndarray::concatenate(
            Axis(0),
            &[
                a.slice(s![3..6, ..]),
                a.slice(s![0..3, ..]),
                a.slice(s![6..9, ..]),
            ],
        )
        .unwrap()
    };
    let vec = |v: &Array1<f64>| -> Array1<f64> {
        v.slice(s![3..6])
            .iter()
            .chain(v.slice(s![0..3]).iter())
            .chain(v.slice(s![6..9]).iter())
            .copied()
            .collect()
    };
    let t = GruCell::from_torch(
        reorder(&w).view(),
        reorder(&r).view(),
        Some(vec(&c.wb.to_owned())),
        Some(vec(&c.rb.to_owned())),
    )
    .unwrap();
    assert_eq!(t.weights(), c.weights());
    assert_eq!(t.wb, c.wb);
    assert_eq!(t.rb, c.rb);
}

#[test]
fn bad_arguments_are_errors() {
    let w = Array::<f64, _>::zeros((6, 2));
    assert!(matches!(
        GruCell::<f64>::new(Array::zeros((5, 2)), Array::zeros((5, 2)), None, None, true),
        Err(LstmError::Shape { .. })
    ));
    assert!(matches!(
        GruCell::new(w.clone(), Array::zeros((6, 3)), None, None, true),
        Err(LstmError::Shape { .. })
    ));
    let mut bad = w.clone();
    bad[[1, 1]] = f64::NAN;
    assert!(matches!(
        GruCell::new(bad, Array::zeros((6, 2)), None, None, true),
        Err(LstmError::NonFinite { .. })
    ));
    let c = GruCell::new(w, Array::zeros((6, 2)), None, None, true).unwrap();
    let x = Array3::<f64>::zeros((3, 2, 2));
    assert!(matches!(
        c.forward(x.view(), None, Some(&[4, 1]), false),
        Err(LstmError::Invalid { .. })
    ));
    assert!(matches!(
        c.forward(x.view(), None, Some(&[1]), false),
        Err(LstmError::Invalid { .. })
    ));
    assert!(matches!(
        c.forward(Array3::<f64>::zeros((3, 2, 5)).view(), None, None, false),
        Err(LstmError::Shape { .. })
    ));
    assert!(matches!(
        c.forward(x.view(), Some(Array2::zeros((3, 2)).view()), None, false),
        Err(LstmError::Shape { .. })
    ));
}
