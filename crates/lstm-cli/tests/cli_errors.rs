//! Every kind of bad input to `lstm` exits non-zero with one clear line and no panic.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use lstm_core::ndarray::{Array1, Array3, ArrayD};
use lstm_layers::npy;

mod common;
use common::fails;

fn bad() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bad")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lstm-cli-errors-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Output that cannot be written: a closed pipe ends the command quietly and successfully (the
/// reader has all it wanted, as with `lstm bench ... | head -1`); any other write error is an
/// error. Neither panics.
/// Runs `lstm arg` with standard output going to `stdout`; its exit status and standard error.
fn with_stdout(arg: &str, stdout: impl Into<std::process::Stdio>) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lstm"))
        .arg(arg)
        .stdout(stdout)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), err)
}

#[test]
fn unwritable_output() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (code, err) = with_stdout("demo", writer);
    assert_eq!(code, Some(0), "closed pipe: {err}");
    assert!(err.is_empty(), "closed pipe: {err}");

    if let Ok(full) = std::fs::File::create("/dev/full") {
        let (code, err) = with_stdout("help", full);
        assert_eq!(code, Some(1), "full disk: {err}");
        assert!(!err.contains("panicked"), "full disk: {err}");
        assert!(
            err.starts_with("error: cannot write to standard output"),
            "{err}"
        );
    }
}

fn run_args<'a>(model: &'a str, input: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["run", "--model", model, "--input", input, "--output", out]
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn usage_errors() {
    fails(&[], &["no command"]);
    fails(&["frobnicate"], &["unknown command"]);
    fails(&["demo", "extra"], &["takes no arguments"]);
    fails(&["run", "--bogus"], &["--bogus"]);
    fails(
        &["run", "--model", "m.onnx", "--output", "y.npy"],
        &["--input"],
    );
    let x = path(&bad().join("x.npy"));
    fails(&["run", "--input", &x, "--output", "y.npy"], &["--model"]);
    fails(&["run", "--model", "m.onnx", "--input", &x], &["--output"]);
    let out = path(&scratch("usage").join("y.npy"));
    fails(&run_args("model.h5", &x, &out), &["model.h5"]);
    // A file of an unknown extension is told by its bytes; these are no model's.
    let odd = scratch("usage").join("model.h5");
    std::fs::write(&odd, b"HDF5 or anything else").unwrap();
    fails(
        &run_args(&path(&odd), &x, &out),
        &["cannot tell the model's format", "model.h5"],
    );
    let onnx = path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/interop/onnx_f32_plain/model.onnx"),
    );
    let mut a = run_args(&onnx, &x, &out);
    a.extend(["--prefix", "enc."]);
    fails(&a, &["--prefix"]);
}

#[test]
fn unreadable_and_malformed_files() {
    let dir = scratch("files");
    let x = path(&bad().join("x.npy"));
    let out = path(&dir.join("y.npy"));
    let good = path(&bad().join("good.safetensors"));
    fails(
        &run_args(&good, "/nonexistent/x.npy", &out),
        &["/nonexistent/x.npy"],
    );
    fails(
        &run_args("/nonexistent/m.safetensors", &x, &out),
        &["/nonexistent/m.safetensors"],
    );
    // Truncated input and truncated models.
    let bytes = std::fs::read(bad().join("x.npy")).unwrap();
    let short = dir.join("short.npy");
    std::fs::write(&short, &bytes[..bytes.len() - 3]).unwrap();
    fails(&run_args(&good, &path(&short), &out), &["truncated"]);
    let model = std::fs::read(bad().join("good.safetensors")).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &model[..model.len() / 2]).unwrap();
    fails(&run_args(&path(&cut), &x, &out), &["safetensors"]);
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff\xff not protobuf").unwrap();
    fails(&run_args(&path(&garbage), &x, &out), &["onnx"]);
    // Integer input.
    let ints = dir.join("ints.npy");
    npy::write(&ints, ArrayD::<i32>::zeros(vec![4, 2, 2]).view()).unwrap();
    fails(
        &run_args(&good, &path(&ints), &out),
        &["float32 or float64", "int32"],
    );
    // Unwritable output.
    fails(
        &run_args(&good, &x, "/nonexistent/dir/y.npy"),
        &["/nonexistent/dir/y.npy"],
    );
}

#[test]
fn bad_models() {
    let dir = scratch("models");
    let x = path(&bad().join("x.npy"));
    let out = path(&dir.join("y.npy"));
    for (file, needles) in [
        ("direction.onnx", &["direction", "sideways"][..]),
        ("layout.onnx", &["layout 2"]),
        ("activation.onnx", &["activation", "Gelu"]),
        ("activation_count.onnx", &["activations", "3"]),
        ("attribute.onnx", &["attribute", "output_sequence"]),
        ("hidden_size.onnx", &["hidden_size"]),
        ("no_lstm.onnx", &["no LSTM or GRU node", "Relu"]),
        ("two_lstms.onnx", &["X of LSTM node", "[4, 1, 2, 3]"]),
        ("weights_not_initializers.onnx", &["initializer"]),
        (
            "missing_tensor.safetensors",
            &["missing tensor", "weight_hh_l0"],
        ),
        ("wrong_shape.safetensors", &["shape"]),
        ("int_weights.safetensors", &["element type"]),
        ("nan.safetensors", &["non-finite", "NaN"]),
    ] {
        fails(&run_args(&path(&bad().join(file)), &x, &out), needles);
    }
    let good = path(&bad().join("good.safetensors"));
    let mut a = run_args(&good, &x, &out);
    a.extend(["--prefix", "encoder."]);
    fails(&a, &["encoder.weight_ih_l0"]);
}

#[test]
fn bad_shapes_and_lengths() {
    let dir = scratch("shapes");
    let good = path(&bad().join("good.safetensors")); // I = 2, H = 3, one layer
    let out = path(&dir.join("y.npy"));
    let write3 = |name: &str, shape: (usize, usize, usize)| {
        let p = dir.join(name);
        npy::write(&p, Array3::<f32>::zeros(shape).into_dyn().view()).unwrap();
        path(&p)
    };
    let x = write3("x.npy", (4, 2, 2));
    fails(
        &run_args(&good, &write3("wide.npy", (4, 2, 5)), &out),
        &["input", "[T, B, 2]"],
    );
    let flat = dir.join("flat.npy");
    npy::write(&flat, ArrayD::<f32>::zeros(vec![4, 2]).view()).unwrap();
    fails(
        &run_args(&good, &path(&flat), &out),
        &["input", "[T, B, I]"],
    );
    let mut a = run_args(&good, &x, &out);
    let h0 = write3("h0.npy", (1, 3, 3));
    a.extend(["--initial-h", &h0]);
    fails(&a, &["initial h", "[1, 2, 3]"]);
    let lens = |name: &str, v: Vec<i64>| {
        let p = dir.join(name);
        npy::write(&p, Array1::from(v).into_dyn().view()).unwrap();
        path(&p)
    };
    for (file, v, needle) in [
        ("long.npy", vec![5, 1], "outside 0..=4"),
        ("negative.npy", vec![-1, 2], "outside 0..=4"),
        ("count.npy", vec![1, 2, 3], "one length per batch row"),
    ] {
        let l = lens(file, v);
        let mut a = run_args(&good, &x, &out);
        a.extend(["--sequence-lens", &l]);
        fails(&a, &[needle]);
    }
    let float_lens = dir.join("float_lens.npy");
    npy::write(
        &float_lens,
        Array1::from(vec![1.0f32, 2.0]).into_dyn().view(),
    )
    .unwrap();
    let mut a = run_args(&good, &x, &out);
    let fl = path(&float_lens);
    a.extend(["--sequence-lens", &fl]);
    fails(&a, &["int32 or int64"]);
    // ONNX: a batch-first flag on a layout-0 node, and a wrong initial state.
    let onnx = path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/interop/onnx_f32_plain/model.onnx"),
    );
    let mut a = run_args(&onnx, &x, &out);
    a.push("--batch-first");
    fails(&a, &["layout"]);
}

/// Malformed `torch.save` files: each is a typed error that names what is wrong, and nothing
/// in a pickle is ever run.
#[test]
fn malformed_torch_save_files() {
    let dir = scratch("pt");
    let x = path(&bad().join("x.npy"));
    let out = path(&dir.join("y.npy"));
    let run = |model: &Path, needles: &[&str]| {
        let model = path(model);
        let mut args = run_args(&model, &x, &out);
        args.extend(["--prefix", "rnn."]);
        fails(&args, needles);
    };
    run(
        &bad().join("truncated.pt"),
        &["zip", "end of central directory"],
    );
    run(&bad().join("evil.pt"), &["forbidden global posix.system"]);
    run(
        &bad().join("evil_legacy.pt"),
        &["forbidden global posix.system"],
    );
    run(
        &bad().join("short_storage.pt"),
        &["storage holds 96 bytes", "48 elements"],
    );
    let good = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/published/pt_zip_f32/model.pt");
    let bytes = std::fs::read(&good).unwrap();
    // A flipped byte in a storage record: its CRC-32 no longer matches.
    let data = bytes
        .windows(12)
        .position(|w| w == b"model/data/0")
        .unwrap();
    let mut corrupt = bytes.clone();
    let at = data + 200;
    corrupt[at] ^= 0x5a;
    let f = dir.join("corrupt.pt");
    std::fs::write(&f, &corrupt).unwrap();
    run(&f, &["zip archive"]);
    // A directory that claims more entries than it can hold.
    let eocd = bytes.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let mut lying = bytes.clone();
    lying[eocd + 10..eocd + 12].copy_from_slice(&0xfff0u16.to_le_bytes());
    let f = dir.join("lying.pt");
    std::fs::write(&f, &lying).unwrap();
    run(&f, &["entries claimed"]);
    // The legacy magic alone.
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/published/pt_legacy_f32/model.pt");
    let bytes = std::fs::read(&legacy).unwrap();
    let f = dir.join("legacy_cut.pt");
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    run(&f, &["storage", "left in the file"]);
    assert!(!dir.join("y.npy").exists(), "an output was written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// External data that escapes the model's folder or claims more bytes than its file has, and
/// a node that is not there: typed errors that name the cause.
#[test]
fn external_data_and_nested_nodes() {
    let dir = scratch("external");
    let nested = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/nested");
    let x = path(&nested.join("external_data/X.npy"));
    let out = path(&dir.join("y.npy"));
    for (model, needle) in [
        (
            "external_escape.onnx",
            "\"../outside.bin\" is not a relative path inside",
        ),
        (
            "external_absolute.onnx",
            "\"/etc/passwd\" is not a relative path inside",
        ),
        (
            "external_too_long.onnx",
            "reach past the end of \"weights.bin\" (576 bytes)",
        ),
    ] {
        fails(&run_args(&path(&bad().join(model)), &x, &out), &[needle]);
    }
    let model = path(&nested.join("lstm_in_if/model.onnx"));
    let mut args = run_args(&model, &x, &out);
    args.extend(["--node", "switch/else_branch/inner_lstm"]);
    fails(
        &args,
        &["no LSTM or GRU node", "switch/then_branch/inner_lstm"],
    );
    // Weights the subgraph reads from a graph input: the node cannot run alone, and says why.
    let model = path(&bad().join("nested_computed_weights.onnx"));
    let mut args = run_args(&model, &x, &out);
    args.extend(["--node", "runtime_w"]);
    fails(
        &args,
        &["\"switch/then_branch/runtime_w\" cannot run alone", "cw_W"],
    );
    assert!(!dir.join("y.npy").exists(), "an output was written");
    let _ = std::fs::remove_dir_all(&dir);
}
