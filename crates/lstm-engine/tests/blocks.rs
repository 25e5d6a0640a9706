//! Cells that skip gate blocks (the coupled forget gate `f = 1 - i`, the state-gated cell's
//! candidate without recurrent input) against a plain `f64` loop of their formulas, for hidden
//! sizes that are and are not whole panels of the kernels (the kept blocks then carry padding
//! into the next one), on every path: the chunked sequence, the traced sequence, lengths and
//! single steps.

use lstm_core::ndarray::{Array2, Array3, s};
use lstm_core::{LstmState, RecurrentCell, SeqOptions};
use lstm_engine::init::SplitMix64;
use lstm_engine::{EngineSpec, LstmEngine, OutputMode, Recurrence};

struct Weights {
    w: Array2<f64>,
    u: Array2<f64>,
    b: Array2<f64>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `h` of every step, time-major, from the zero state.
fn reference(wt: &Weights, x: &Array3<f64>, coupled: bool, state_gated: bool) -> Array3<f64> {
    let (t_len, batch, _) = x.dim();
    let h = wt.w.nrows() / 4;
    let mut out = Array3::zeros((t_len, batch, h));
    for b in 0..batch {
        let (mut hv, mut cv) = (vec![0.0; h], vec![0.0; h]);
        for t in 0..t_len {
            let r = if state_gated { cv.clone() } else { hv.clone() };
            let z = |row: usize| {
                let mut v = wt.b[[0, row]];
                for k in 0..x.dim().2 {
                    v += wt.w[[row, k]] * x[[t, b, k]];
                }
                for k in 0..h {
                    v += wt.u[[row, k]] * r[k];
                }
                v
            };
            for j in 0..h {
                let i = sigmoid(z(j));
                let f = if coupled { 1.0 - i } else { sigmoid(z(h + j)) };
                let g = z(2 * h + j).tanh();
                let o = sigmoid(z(3 * h + j));
                cv[j] = f * cv[j] + i * g;
                hv[j] = if state_gated {
                    (o * cv[j]).tanh()
                } else {
                    o * cv[j].tanh()
                };
            }
            out.slice_mut(s![t, b, ..])
                .assign(&lstm_core::ndarray::arr1(&hv));
        }
    }
    out
}

fn engine<F: lstm_core::Scalar>(wt: &Weights, coupled: bool, state_gated: bool) -> LstmEngine<F> {
    let cast = |a: &Array2<f64>| a.mapv(F::of);
    let (w, u, b) = (cast(&wt.w), cast(&wt.u), cast(&wt.b));
    let mut spec = EngineSpec::standard(w.view(), u.view());
    spec.biases.push(b.row(0));
    spec.gates.input_forget = coupled;
    if state_gated {
        spec.recurrence = Recurrence::Cell;
        spec.output_mode = OutputMode::SquashGated;
    }
    LstmEngine::new(spec).expect("valid spec")
}

fn check<F: lstm_core::Scalar>(tol: f64) {
    for h in [20, 33, 64, 100] {
        for (coupled, state_gated) in [(true, false), (false, true), (true, true)] {
            let mut rng = SplitMix64::new(h as u64);
            let (i, t, b) = (7, 9, 3);
            let k = 1.0 / (h as f64).sqrt();
            let mut wt = Weights {
                w: rng.uniform_array((4 * h, i), k),
                u: rng.uniform_array((4 * h, h), k),
                b: rng.uniform_array((1, 4 * h), k),
            };
            if state_gated {
                wt.u.slice_mut(s![2 * h..3 * h, ..]).fill(0.0);
            }
            let x: Array3<f64> = rng.uniform_array((t, b, i), 1.0);
            let want = reference(&wt, &x, coupled, state_gated);
            let e = engine::<F>(&wt, coupled, state_gated);
            if coupled {
                assert!(
                    e.w_input()
                        .slice(s![h..2 * h, ..])
                        .iter()
                        .all(|v| *v == F::zero()),
                    "the forget block is not stored"
                );
            }
            let xf = x.mapv(F::of);
            let what = format!("H {h} coupled {coupled} state-gated {state_gated}");
            let close = |got: &Array3<F>, want: &Array3<f64>, path: &str| {
                for (g, w) in got.iter().zip(want) {
                    let d = (g.f64() - w).abs();
                    assert!(d <= tol, "{what}, {path}: {} vs {w}", g.f64());
                }
            };
            let chunked = e
                .unroll(xf.view(), None, &SeqOptions::default())
                .expect("valid shapes");
            close(&chunked.output, &want, "chunked sequence");
            let traced = e
                .unroll(xf.view(), None, &SeqOptions::default().traced())
                .expect("valid shapes");
            close(&traced.output, &want, "traced sequence");
            let lens = [t, t - 2, 1];
            let masked = e
                .unroll(xf.view(), None, &SeqOptions::default().lengths(&lens))
                .expect("valid shapes");
            for (row, &len) in lens.iter().enumerate() {
                let got = masked.output.slice(s![..len, row..=row, ..]).to_owned();
                let w = want.slice(s![..len, row..=row, ..]).to_owned();
                close(&got, &w, "sequence with lengths");
            }
            let mut state = LstmState::<F>::zeros(b, h, h);
            let mut gates = Array2::zeros((b, 4 * h));
            let mut ws = lstm_core::Workspace::new();
            for tt in 0..t {
                let xt = xf.slice(s![tt, .., ..]);
                e.step_into(xt, &mut state, gates.view_mut(), &mut ws)
                    .expect("valid shapes");
            }
            let last = state
                .h()
                .to_owned()
                .insert_axis(lstm_core::ndarray::Axis(0));
            close(&last, &want.slice(s![t - 1..t, .., ..]).to_owned(), "steps");
        }
    }
}

#[test]
fn skipped_blocks_match_the_formulas_f64() {
    check::<f64>(1e-12);
}

#[test]
fn skipped_blocks_match_the_formulas_f32() {
    check::<f32>(2e-5);
}
