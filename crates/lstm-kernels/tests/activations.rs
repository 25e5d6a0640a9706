//! The vectorised sigmoid and tanh against `f64` over the whole `f32` range: a dense sweep of
//! [-20, 20], a log-spaced sweep out to 1e30 both ways (saturation), and the special values.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_kernels::{GateOptions, fast_activations, lstm_gates};

mod common;

fn sweep() -> Vec<f32> {
    let mut x: Vec<f32> = (0..=4_000_000).map(|i| -20.0 + i as f32 * 1e-5).collect();
    let mut v = 1e-30f64;
    while v < 1e30 {
        x.push(v as f32);
        x.push(-v as f32);
        v *= 1.001;
    }
    x.extend([
        0.0, -0.0, 0.625, -0.625, 9.0, -9.0, 88.0, -88.0, 104.0, -104.0,
    ]);
    x.extend([
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
    ]);
    x.extend([1e-16, -1e-16, 1e-20, -3e-19, 1e-40, -1e-40]);
    x
}

#[test]
fn fast_activations_are_within_bounds_of_f64() {
    let x = sweep();
    let (mut s, mut t) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    if !fast_activations(&x, &mut s, &mut t) {
        // No vectorised version on this CPU: the exact functions are used instead.
        assert!(!common::cpu_has(
            lstm_kernels::Level::Avx512,
            "fast activations"
        ));
        return;
    }
    let (mut ds, mut dt, mut rt) = (0.0f64, 0.0f64, 0.0f64);
    for ((&x, &s), &t) in x.iter().zip(&s).zip(&t) {
        let xd = f64::from(x);
        let (es, et) = (1.0 / (1.0 + (-xd).exp()), xd.tanh());
        ds = ds.max((f64::from(s) - es).abs());
        dt = dt.max((f64::from(t) - et).abs());
        if et != 0.0 {
            rt = rt.max(((f64::from(t) - et) / et).abs());
        }
        assert!(
            (0.0..=1.0).contains(&s) && (-1.0..=1.0).contains(&t),
            "range at {x}"
        );
        // Subnormal results are slow on every later instruction: only a subnormal input may
        // give one (tanh x = x there).
        assert!(!s.is_subnormal(), "subnormal sigmoid at {x}");
        assert!(
            !t.is_subnormal() || x.is_subnormal(),
            "subnormal tanh at {x}"
        );
    }
    println!("max |sigmoid error| {ds:e}, max |tanh error| {dt:e}, max tanh relative {rt:e}");
    assert!(ds < 1.5e-7, "sigmoid error {ds:e}");
    // The rational tanh: 5.3e-8 in exact arithmetic, a few ulp more once rounded to f32.
    assert!(dt < 4e-7, "tanh error {dt:e}");
    assert!(rt < 1e-6, "tanh relative error {rt:e}");
}

#[test]
fn nan_propagates() {
    let x = [f32::NAN; 17];
    let (mut s, mut t) = ([0.0; 17], [0.0; 17]);
    if fast_activations(&x, &mut s, &mut t) {
        assert!(s.iter().chain(&t).all(|v| v.is_nan()));
    }
}

/// The fused pass against the formulas, with every option, for widths that are and are not
/// multiples of the vector width, and that take every block size of the pass (4, 2 and 1
/// vectors at a time, whole and masked).
#[test]
fn gate_pass_matches_the_formulas() {
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for n in [1usize, 15, 16, 17, 40, 64, 100, 147] {
        for (peep, clip, coupled, squash, open) in [
            (false, None, false, false, [false; 3]),
            (true, Some(0.5f32), true, true, [false; 3]),
            (true, None, false, true, [false; 3]),
            (false, Some(3.0), true, false, [false; 3]),
            (true, None, false, false, [true, false, false]),
            (true, Some(2.0), false, false, [false, true, false]),
            (true, None, false, true, [false, false, true]),
            (false, None, true, false, [true, false, true]),
        ] {
            let z0: Vec<f32> = (0..4 * n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4)
                .collect();
            let c0: Vec<f32> = (0..n).map(|i| (i as f32 - 7.0) * 0.3).collect();
            let p: Vec<f32> = (0..3 * n).map(|i| ((i % 5) as f32 - 2.0) * 0.2).collect();
            let opts = GateOptions {
                peephole: peep.then_some(&p[..]),
                clip,
                input_forget: coupled,
                squash_gated: squash,
                open,
            };
            let (mut z, mut c, mut h) = (z0.clone(), c0.clone(), vec![0.0f32; n]);
            if !lstm_gates(n, &mut z, &mut c, &mut h, &opts) {
                assert!(!common::cpu_has(
                    lstm_kernels::Level::Avx512,
                    "the vectorised gate pass"
                ));
                return;
            }
            for j in 0..n {
                let cl = |v: f64| clip.map_or(v, |k| v.clamp(-f64::from(k), f64::from(k)));
                let pv = |g: usize| if peep { f64::from(p[g * n + j]) } else { 0.0 };
                let cp = f64::from(c0[j]);
                let gate = |k: usize, v: f64| if open[k] { 1.0 } else { sig(cl(v)) };
                let i = gate(0, f64::from(z0[j]) + pv(0) * cp);
                let f = if coupled {
                    1.0 - i
                } else {
                    gate(1, f64::from(z0[n + j]) + pv(1) * cp)
                };
                let g = cl(f64::from(z0[2 * n + j])).tanh();
                let cn = f * cp + i * g;
                let o = gate(2, f64::from(z0[3 * n + j]) + pv(2) * cn);
                let hv = if squash {
                    (o * cn).tanh()
                } else {
                    o * cn.tanh()
                };
                for (got, want) in [
                    (c[j], cn),
                    (h[j], hv),
                    (z[j], i),
                    (z[n + j], f),
                    (z[2 * n + j], g),
                    (z[3 * n + j], o),
                ] {
                    // Relative above 1: the cell state of the wider rows grows past 10.
                    assert!(
                        (f64::from(got) - want).abs() < 1e-6 * want.abs().max(1.0),
                        "n {n} j {j}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// `squash` applies the same fast functions in place, bit for bit, on lengths that are not a
/// whole number of vectors; `f64` has no vectorised version.
#[test]
fn squash_is_the_gate_pass_functions_in_place() {
    use lstm_kernels::{Squash, squash};
    for n in [0, 1, 15, 16, 17, 100] {
        let x: Vec<f32> = (0..n).map(|i| (i as f32 - 50.0) * 0.37).collect();
        let (mut s, mut t) = (vec![0.0; n], vec![0.0; n]);
        let (mut vs, mut vt) = (x.clone(), x.clone());
        let fast = fast_activations(&x, &mut s, &mut t);
        assert_eq!(squash(Squash::Sigmoid, &mut vs), fast);
        assert_eq!(squash(Squash::Tanh, &mut vt), fast);
        if !fast {
            assert!(!common::cpu_has(lstm_kernels::Level::Avx512, "squash"));
            assert_eq!(vs, x, "touched nothing");
            continue;
        }
        assert_eq!(vs, s);
        assert_eq!(vt, t);
    }
    assert!(!squash(Squash::Tanh, &mut [0.5f64; 4]));
}

/// The GRU passes against the formulas, both forms (the reset after the product in one pass;
/// before it, in two with the product between), with and without clip, for widths that take
/// both block sizes, whole and masked. `f64` has no vectorised version.
#[test]
fn gru_passes_match_the_formulas() {
    use lstm_kernels::{gru_gates, gru_reset};
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for n in [1usize, 15, 16, 17, 32, 40, 100] {
        for (after, clip) in [
            (true, None),
            (false, None),
            (true, Some(0.7f32)),
            (false, Some(2.0)),
        ] {
            let x: Vec<f32> = (0..3 * n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4)
                .collect();
            let rec0: Vec<f32> = (0..3 * n)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) * 0.3)
                .collect();
            let h0: Vec<f32> = (0..n).map(|i| (i as f32 - 7.0) * 0.1).collect();
            // The other form's product, any values: the kernel only adds it.
            let rp: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.5).collect();
            let (mut rec, mut h, mut cand, mut rh) =
                (rec0.clone(), h0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
            let ran = if after {
                gru_gates(n, &x, &mut rec, None, &mut h, &mut cand, clip)
            } else {
                gru_reset(n, &x, &mut rec[..2 * n], &h0, &mut rh, clip)
                    && gru_gates(n, &x, &mut rec[..2 * n], Some(&rp), &mut h, &mut cand, clip)
            };
            if !ran {
                assert!(!common::cpu_has(
                    lstm_kernels::Level::Avx512,
                    "the GRU passes"
                ));
                assert_eq!((&rec, &h), (&rec0, &h0), "touched nothing");
                return;
            }
            for j in 0..n {
                let cl = |v: f64| clip.map_or(v, |k| v.clamp(-f64::from(k), f64::from(k)));
                let at = |v: &[f32], k: usize| f64::from(v[k]);
                let z = sig(cl(at(&x, j) + at(&rec0, j)));
                let r = sig(cl(at(&x, n + j) + at(&rec0, n + j)));
                let rec_n = if after {
                    r * at(&rec0, 2 * n + j)
                } else {
                    at(&rp, j)
                };
                let c = cl(at(&x, 2 * n + j) + rec_n).tanh();
                let hv = (1.0 - z) * c + z * at(&h0, j);
                let mut pairs = vec![(rec[j], z), (rec[n + j], r), (cand[j], c), (h[j], hv)];
                if !after {
                    pairs.push((rh[j], r * at(&h0, j)));
                }
                for (got, want) in pairs {
                    assert!(
                        (f64::from(got) - want).abs() < 1e-6,
                        "n {n} after {after} clip {clip:?} j {j}: {got} vs {want}"
                    );
                }
            }
        }
    }
    let mut v = [0.5f64; 6];
    assert!(!gru_gates(
        2,
        &[0.0; 6],
        &mut v,
        None,
        &mut [0.0; 2],
        &mut [0.0; 2],
        None
    ));
}
