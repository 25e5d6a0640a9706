//! Optimizer trajectories against `torch.optim`'s (`tests/fixtures/make_optim_fixtures.py`):
//! 300 steps of every optimizer, with momentum, dampening, Nesterov, both kinds of weight
//! decay, `clip_grad_norm_` and the schedules, on a problem whose gradient both sides compute
//! with the same two operations.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};

use lstm_core::ndarray::{Array2, ArrayD, Ix2, IxDyn};
use lstm_layers::npy::{self, NpyArray};
use lstm_train::{Optimizer, OptimizerState, Schedule, Scheduler, clip_grad_norm};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/optim")
}

fn read(path: &Path) -> Array2<f64> {
    match npy::read(path).unwrap() {
        NpyArray::F64(a) => a.into_dimensionality::<Ix2>().unwrap(),
        other => panic!("{}: {}", path.display(), other.dtype()),
    }
}

fn split(flat: &[f64]) -> Vec<ArrayD<f64>> {
    vec![
        ArrayD::from_shape_vec(IxDyn(&[3, 4]), flat[..12].to_vec()).unwrap(),
        ArrayD::from_shape_vec(IxDyn(&[5]), flat[12..].to_vec()).unwrap(),
    ]
}

fn flat(p: &[ArrayD<f64>]) -> Vec<f64> {
    p.iter().flat_map(|a| a.iter().copied()).collect()
}

#[test]
fn trajectories_match_torch_optim() {
    let problem = read(&root().join("problem.npy"));
    let (c, d) = (
        split(&problem.row(1).to_vec()),
        split(&problem.row(2).to_vec()),
    );
    let cases = std::fs::read_to_string(root().join("cases.txt")).unwrap();
    let mut worst = 0.0f64;
    let mut count = 0;
    for line in cases.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        let num = |k: usize| f[k].parse::<f64>().unwrap();
        let opt = match f[1] {
            "sgd" => Optimizer::Sgd {
                momentum: num(3),
                dampening: num(4),
                nesterov: f[5] == "1",
                weight_decay: num(6),
            },
            "adam" => Optimizer::Adam {
                beta1: num(7),
                beta2: num(8),
                eps: num(9),
                weight_decay: num(6),
            },
            _ => Optimizer::AdamW {
                beta1: num(7),
                beta2: num(8),
                eps: num(9),
                weight_decay: num(6),
            },
        };
        let clip = (f[10] != "-").then(|| num(10));
        let s: Vec<&str> = f[11].split(':').collect();
        let schedule = match s[0] {
            "step" => Schedule::Step {
                step_size: s[1].parse().unwrap(),
                gamma: s[2].parse().unwrap(),
            },
            "cosine" => Schedule::Cosine {
                t_max: s[1].parse().unwrap(),
                eta_min: s[2].parse().unwrap(),
            },
            _ => Schedule::Constant,
        };
        let want = read(&root().join(format!("{}.npy", f[0])));
        let mut p = split(&problem.row(0).to_vec());
        let mut state = OptimizerState::new(&p);
        let mut sched = Scheduler::new(schedule, num(2)).unwrap();
        for step in 1..=300 {
            let mut g: Vec<ArrayD<f64>> = p
                .iter()
                .zip(c.iter().zip(&d))
                .map(|(p, (c, d))| c * p + d)
                .collect();
            if let Some(m) = clip {
                clip_grad_norm(&mut g, m).unwrap();
            }
            opt.step(&mut p, &g, &mut state, sched.lr()).unwrap();
            if step % 10 == 0 {
                let row = want.row(step / 10);
                let got = flat(&p);
                for (k, (a, b)) in got.iter().zip(row).enumerate() {
                    let err = (a - b).abs() / b.abs().max(1.0);
                    worst = worst.max(err);
                    assert!(
                        err < 1e-12,
                        "{} step {step} value {k}: {a} vs torch {b}",
                        f[0]
                    );
                }
                sched.step();
            }
        }
        count += 1;
    }
    println!("optimizer trajectories: largest relative difference {worst:e}");
    assert!(count >= 12, "only {count} cases");
}

#[test]
fn bad_hyperparameters_and_shapes_are_errors() {
    use lstm_core::LstmError;
    let mut p = split(&[0.5; 17]);
    let g = split(&[0.1; 17]);
    let mut st = OptimizerState::new(&p);
    let sgd = Optimizer::<f64>::sgd();
    let invalid = |r: lstm_core::Result<()>| matches!(r, Err(LstmError::Invalid { .. }));
    assert!(invalid(sgd.step(&mut p, &g, &mut st, -1.0)));
    assert!(invalid(sgd.step(&mut p, &g, &mut st, f64::NAN)));
    let nesterov = Optimizer::Sgd {
        momentum: 0.0,
        dampening: 0.0,
        nesterov: true,
        weight_decay: 0.0,
    };
    assert!(invalid(nesterov.step(&mut p, &g, &mut st, 0.1)));
    let adam = Optimizer::Adam {
        beta1: 1.0,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    assert!(invalid(adam.step(&mut p, &g, &mut st, 0.1)));
    assert!(matches!(
        sgd.step(&mut p, &g[..1], &mut st, 0.1),
        Err(LstmError::Shape { .. })
    ));
    let wrong = vec![g[1].clone(), g[0].clone()];
    assert!(matches!(
        sgd.step(&mut p, &wrong, &mut st, 0.1),
        Err(LstmError::Shape { .. })
    ));
    assert_eq!(st.step, 0, "a refused step changes nothing");
    assert!(matches!(
        Scheduler::new(
            Schedule::Step {
                step_size: 0,
                gamma: 0.5
            },
            0.1
        ),
        Err(LstmError::Invalid { .. })
    ));
    let mut bad = split(&[f64::NAN; 17]);
    assert!(matches!(
        clip_grad_norm(&mut bad, 1.0),
        Err(LstmError::NonFinite { .. })
    ));
    assert!(invalid(
        clip_grad_norm(&mut split(&[0.0; 17]), -1.0).map(|_| ())
    ));
}

#[test]
fn weight_decay_replaces_only_the_decay() {
    let expect = Optimizer::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.05,
    };
    assert_eq!(Optimizer::<f64>::adamw().with_weight_decay(0.05), expect);
    let Optimizer::Sgd {
        weight_decay,
        momentum,
        ..
    } = Optimizer::<f64>::sgd().with_weight_decay(0.1)
    else {
        panic!("still SGD")
    };
    assert_eq!((weight_decay, momentum), (0.1, 0.0));
}
