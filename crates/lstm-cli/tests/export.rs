//! `lstm export`: state dicts written as ONNX graphs compute what PyTorch computed. Every
//! PyTorch golden fixture that export can express (layers, directions, no bias, lengths,
//! initial states, a prefix, float64, GRUs, cells, `torch.save` files) is exported, run by
//! `lstm run` as ONNX, and compared with PyTorch's outputs; ONNX Runtime runs them too when
//! `LSTM_PYTHON` (default `python3`) has it, and the test says so when it does not.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use lstm_layers::npy::{self, NpyArray};

mod common;

fn fixtures(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(set)
}

fn values(p: &Path) -> Vec<f64> {
    match npy::read(p).unwrap() {
        NpyArray::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
        NpyArray::F64(a) => a.iter().copied().collect(),
        other => panic!("{}: {}", p.display(), other.dtype()),
    }
}

fn lstm(args: &[String], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lstm"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

struct Exported {
    name: String,
    onnx: PathBuf,
    /// `lstm run` arguments with the exported model.
    feeds: Vec<(String, PathBuf)>,
    expected: Vec<PathBuf>,
    double: bool,
}

/// Exports every case of `set` export can express and checks `lstm run` on the export
/// against the case's expected outputs.
fn check_set(set: &str, scratch: &Path, all: &mut Vec<Exported>) -> usize {
    let root = fixtures(set);
    let mut count = 0;
    for (name, dir, out, args) in common::cases(&root, scratch) {
        if args
            .iter()
            .any(|a| a == "--batch-first" || a.starts_with("--graph") || a == "--node")
            || !args
                .iter()
                .any(|a| a.ends_with(".safetensors") || a.ends_with(".pt"))
        {
            continue;
        }
        let flag = |f: &str| {
            args.iter()
                .position(|a| a == f)
                .map(|k| args[k + 1].clone())
        };
        let model = flag("--model").unwrap();
        let x = flag("--input").unwrap();
        let double = matches!(npy::read(dir.join(&x)).unwrap(), NpyArray::F64(_));
        let onnx = out.join("export.onnx");
        let mut export: Vec<String> = vec!["export".into(), "--model".into(), model];
        export.extend(["--output".into(), onnx.display().to_string()]);
        if let Some(p) = flag("--prefix") {
            export.extend(["--prefix".into(), p]);
        }
        if flag("--sequence-lens").is_some() {
            export.push("--lengths".into());
        }
        if flag("--initial-h").is_some() {
            export.push("--states".into());
        }
        if double {
            export.extend(["--dtype".into(), "float64".into()]);
        }
        let e = lstm(&export, &dir);
        let err = String::from_utf8_lossy(&e.stderr);
        if !e.status.success() && err.contains("a projection (proj_size)") {
            continue; // nn.LSTM(proj_size=...) has no ONNX form.
        }
        assert!(e.status.success(), "{name}: {err}");
        // The same run, on the export.
        let mut run: Vec<String> = vec!["run".into(), "--model".into(), onnx.display().to_string()];
        let mut feeds = vec![("input".to_string(), dir.join(&x))];
        run.extend(["--input".into(), x.clone()]);
        for (f, input) in [
            ("--sequence-lens", "sequence_lens"),
            ("--initial-h", "initial_h"),
            ("--initial-c", "initial_c"),
        ] {
            if let Some(p) = flag(f) {
                run.extend([f.into(), p.clone()]);
                feeds.push((input.into(), dir.join(p)));
            }
        }
        let mut expected = Vec::new();
        for (f, part) in [("--output", "y"), ("--final-h", "hn"), ("--final-c", "cn")] {
            if flag(f).is_some() {
                let got = out.join(format!("export_{part}.npy"));
                run.extend([f.into(), got.display().to_string()]);
                expected.push((got, dir.join(format!("expected_{part}.npy"))));
            }
        }
        let r = lstm(&run, &dir);
        assert!(
            r.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let tol = if double { 1e-11 } else { 1e-5 };
        for (got, want) in &expected {
            let (g, w) = (values(got), values(want));
            assert_eq!(g.len(), w.len(), "{name}: {}", want.display());
            let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let err = g
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
                / scale;
            assert!(err <= tol, "{name}: {} off by {err:e}", want.display());
        }
        all.push(Exported {
            name,
            onnx,
            feeds,
            expected: expected.into_iter().map(|(_, w)| w).collect(),
            double,
        });
        count += 1;
    }
    count
}

/// The Python of `LSTM_PYTHON` (default `python3`) when it has ONNX Runtime and NumPy.
fn ort_python() -> Option<String> {
    let python = std::env::var("LSTM_PYTHON").unwrap_or_else(|_| "python3".into());
    Command::new(&python)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(python)
}

#[test]
fn exports_compute_what_pytorch_computed() {
    let scratch = std::env::temp_dir().join(format!("lstm-export-{}", std::process::id()));
    let mut all = Vec::new();
    let n = check_set("interop", &scratch, &mut all)
        + check_set("graphs", &scratch, &mut all)
        + check_set("published", &scratch, &mut all);
    assert!(n >= 25, "only {n} exports checked");
    // ONNX Runtime, when there is one (float32: it runs LSTM and GRU in float32 only).
    if let Some(python) = ort_python() {
        let script = fixtures("export").join("run_ort.py");
        let mut ran = 0;
        for e in all.iter().filter(|e| !e.double) {
            let mut cmd = Command::new(&python);
            cmd.arg(&script).arg(&e.onnx).arg("1e-5");
            for (name, p) in &e.feeds {
                cmd.arg(format!("{name}={}", p.display()));
            }
            cmd.arg("--").args(&e.expected);
            let o = cmd.output().unwrap();
            assert!(
                o.status.success(),
                "{}: ONNX Runtime differs: {}{}",
                e.name,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            ran += 1;
        }
        eprintln!("ONNX Runtime ran {ran} exports and matched PyTorch");
    } else {
        eprintln!(
            "SKIPPED the ONNX Runtime half of exports_compute_what_pytorch_computed: no \
             onnxruntime in LSTM_PYTHON (default python3)"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn what_onnx_cannot_express_is_refused() {
    let proj = fixtures("interop").join("pt_f32_proj/model.safetensors");
    let out = std::env::temp_dir().join(format!("lstm-export-bad-{}.onnx", std::process::id()));
    let (p, o) = (proj.to_str().unwrap(), out.to_str().unwrap());
    common::fails_with(
        &[1],
        &["export", "--model", p, "--output", o],
        &["cannot be written as ONNX", "projection"],
    );
    assert!(!out.exists());
    common::fails_with(&[2], &["export", "--model", p], &["--output"]);
    common::fails_with(
        &[2],
        &["export", "--model", "m.onnx", "--output", o],
        &["takes a state dict"],
    );
    common::fails_with(
        &[2],
        &["export", "--model", p, "--output", o, "--dtype", "float16"],
        &["did you mean float32"],
    );
}

/// The committed export of `published/pt_zip_f32` (two bidirectional layers, lengths and
/// states as inputs): the exporter writes the same bytes, and they hold the standard graph
/// (checked by decoding them: one LSTM node per layer, the weights' shapes, the inputs and
/// outputs).
#[test]
fn the_committed_export_is_written_the_same() {
    use lstm_layers::onnx::proto::ModelProto;
    use prost::Message;
    let out = std::env::temp_dir().join(format!("lstm-export-golden-{}.onnx", std::process::id()));
    let model = fixtures("published").join("pt_zip_f32/model.pt");
    let args: Vec<String> = [
        "export",
        "--model",
        model.to_str().unwrap(),
        "--prefix",
        "rnn.",
        "--lengths",
        "--states",
        "--output",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let e = lstm(&args, Path::new("."));
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let golden = std::fs::read(fixtures("export").join("pt_zip_f32.onnx")).unwrap();
    assert!(bytes == golden, "the export changed");
    let _ = std::fs::remove_file(&out);
    let m = ModelProto::decode(golden.as_slice()).unwrap();
    assert_eq!(m.opset_import[0].version, 17);
    let g = m.graph.unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops.iter().filter(|o| **o == "LSTM").count(), 2, "{ops:?}");
    let names = |v: &[lstm_layers::onnx::proto::ValueInfoProto]| -> Vec<String> {
        v.iter().map(|i| i.name.clone()).collect()
    };
    assert_eq!(
        names(&g.input),
        ["input", "sequence_lens", "initial_h", "initial_c"]
    );
    assert_eq!(names(&g.output), ["output", "h_n", "c_n"]);
    let w1 = g.initializer.iter().find(|t| t.name == "W_1").unwrap();
    assert_eq!(
        w1.dims,
        [2, 12, 6],
        "layer 1 reads both directions of layer 0"
    );
    let lstm0 = g.node.iter().find(|n| n.op_type == "LSTM").unwrap();
    assert!(
        lstm0
            .attribute
            .iter()
            .any(|a| a.name == "direction" && a.s == b"bidirectional")
    );
}

/// Models `lstm train` wrote, of the variants ONNX can express (peepholes, the coupled
/// forget gate, identity activations), export and compute what `lstm run` computes on the
/// checkpoint; the others (held-open gates, the state-gated cell) are refused by name.
#[test]
fn trained_variants_export_or_are_refused() {
    use lstm_core::ndarray::{Array2, Array3};
    let dir = std::env::temp_dir().join(format!("lstm-export-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = Array3::from_shape_fn((6, 8, 3), |(t, b, i)| {
        ((t * 7 + b * 3 + i) as f32 * 0.37).sin()
    });
    let y = Array2::from_shape_fn((8, 1), |(b, _)| (b as f32 * 0.5).cos());
    npy::write(dir.join("x.npy"), x.view().into_dyn()).unwrap();
    npy::write(dir.join("y.npy"), y.view().into_dyn()).unwrap();
    let s = |v: &str| v.to_string();
    for (variant, ok) in [
        ("peephole", true),
        ("cifg", true),
        ("niaf", true),
        ("noaf", true),
        ("nfg", false),
        ("state-gated", false),
    ] {
        let ckpt = format!("{variant}.safetensors");
        let train = lstm(
            &[
                s("train"),
                s("--input"),
                s("x.npy"),
                s("--target"),
                s("y.npy"),
                s("--output"),
                ckpt.clone(),
                s("--variant"),
                s(variant),
                s("--hidden"),
                s("5"),
                s("--layers"),
                s("2"),
                s("--epochs"),
                s("2"),
            ],
            &dir,
        );
        assert!(
            train.status.success(),
            "{}",
            String::from_utf8_lossy(&train.stderr)
        );
        let onnx = format!("{variant}.onnx");
        let e = lstm(
            &[
                s("export"),
                s("--model"),
                ckpt.clone(),
                s("--output"),
                onnx.clone(),
            ],
            &dir,
        );
        if !ok {
            assert!(!e.status.success(), "{variant} exported");
            let err = String::from_utf8_lossy(&e.stderr);
            assert!(
                err.contains("cannot be written as ONNX"),
                "{variant}: {err}"
            );
            continue;
        }
        assert!(
            e.status.success(),
            "{variant}: {}",
            String::from_utf8_lossy(&e.stderr)
        );
        let mut outs = Vec::new();
        for (model, tag) in [(ckpt.clone(), "pt"), (onnx.clone(), "onnx")] {
            let y = format!("{variant}_{tag}_y.npy");
            let hn = format!("{variant}_{tag}_hn.npy");
            let r = lstm(
                &[
                    s("run"),
                    s("--model"),
                    model,
                    s("--input"),
                    s("x.npy"),
                    s("--output"),
                    y.clone(),
                    s("--final-h"),
                    hn.clone(),
                ],
                &dir,
            );
            assert!(
                r.status.success(),
                "{variant}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            outs.push((values(&dir.join(y)), values(&dir.join(hn))));
        }
        for (a, b) in [(&outs[0].0, &outs[1].0), (&outs[0].1, &outs[1].1)] {
            let err = a
                .iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5, "{variant}: the export differs by {err:e}");
        }
        if let Some(python) = ort_python() {
            let o = Command::new(&python)
                .current_dir(&dir)
                .arg(fixtures("export").join("run_ort.py"))
                .args([&onnx, "1e-5", "input=x.npy", "--"])
                .arg(format!("{variant}_pt_y.npy"))
                .arg(format!("{variant}_pt_hn.npy"))
                .output()
                .unwrap();
            assert!(o.status.success(), "{variant}: ONNX Runtime differs");
        } else {
            eprintln!("SKIPPED ONNX Runtime on the {variant} export: no onnxruntime");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
