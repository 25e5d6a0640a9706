//! `lstm demo`: the seeds' worked examples, then every variant on "I ate cake".

use lstm_concat::ConcatCell;
use lstm_core::ndarray::{
    Array1, Array2, Array3, ArrayView1, Axis, Ix1, Ix2, concatenate, s, stack,
};
use lstm_core::{LstmError, LstmState, RecurrentCell, Result, SeqOptions};
use lstm_layers::Readout;
use lstm_layers::npy;
use lstm_peephole::{PeepholeCell, StateGatedCell};
use lstm_split::SplitCell;

use crate::CliResult;

/// The seven embedded fixtures of a seed: W, b, x, h0, c0 and the expected h and c.
macro_rules! seed_files {
    ($seed:literal) => {
        seed_files!(@ $seed; "w", "b", "x", "h0", "c0", "h", "c")
    };
    (@ $seed:literal; $($part:literal),*) => {
        [$(
            (
                concat!($seed, "_", $part, ".npy"),
                include_bytes!(concat!("../data/seeds/", $seed, "_", $part, ".npy")).as_slice(),
            ),
        )*]
    };
}

/// A float64 array of dimension `D` from embedded `.npy` bytes.
fn load<D: lstm_core::ndarray::Dimension>(
    (name, bytes): (&str, &[u8]),
) -> Result<lstm_core::ndarray::Array<f64, D>> {
    match npy::parse(bytes, name)? {
        npy::NpyArray::F64(a) => a
            .into_dimensionality()
            .map_err(|e| LstmError::format(name, e)),
        other => Err(LstmError::format(
            name,
            format!("expected float64, got {}", other.dtype()),
        )),
    }
}

/// Formats numbers as NumPy prints them: 8 decimals, trailing zeros dropped.
pub fn numpy_style(v: ArrayView1<'_, f64>) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|x| {
            let s = format!("{x:.8}");
            let s = s.trim_end_matches('0');
            if s.ends_with('.') {
                format!("{s}0")
            } else {
                s.to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn seed_step(title: &str, files: [(&str, &[u8]); 7]) -> CliResult {
    let [w, b, x, h0, c0, h, c] = files;
    let cell = ConcatCell::new(load::<Ix2>(w)?.view(), load::<Ix1>(b)?.view())?;
    let row = |a: Array1<f64>| a.insert_axis(Axis(0));
    let mut state = LstmState::new(row(load(h0)?), row(load(c0)?))?;
    cell.step(row(load(x)?).view(), &mut state)?;
    let (want_h, want_c): (Array1<f64>, Array1<f64>) = (load(h)?, load(c)?);
    outln!("{title}");
    outln!(
        "  h = {}   (notebook: {})",
        numpy_style(state.h().row(0)),
        numpy_style(want_h.view())
    );
    outln!(
        "  c = {}   (notebook: {})",
        numpy_style(state.c().row(0)),
        numpy_style(want_c.view())
    );
    Ok(())
}

/// The circulant matrix of `v`: row `j` is `v` rotated right by `j`, so row 0 is `v` itself.
fn circulant(v: &[f64]) -> Array2<f64> {
    let n = v.len();
    Array2::from_shape_fn((n, n), |(j, k)| v[(k + n - j) % n])
}

fn four(m: &Array2<f64>) -> Array2<f64> {
    concatenate(Axis(0), &[m.view(), m.view(), m.view(), m.view()]).unwrap_or_else(|_| m.clone())
}

fn print_trace(
    name: &str,
    cell: &dyn RecurrentCell<f64, State = LstmState<f64>>,
    readout: &Readout<f64>,
) -> CliResult {
    let words = ["I", "ate", "cake"];
    let x = Array3::from_shape_fn((3, 1, 3), |(t, _, k)| if t == k { 1.0 } else { 0.0 });
    let out = cell.unroll(x.view(), None, &SeqOptions::default().traced())?;
    let trace = out
        .trace
        .ok_or_else(|| LstmError::invalid("trace", "missing"))?;
    let y = readout.apply_sequence(out.output.view())?;
    outln!("\n{name}");
    outln!(
        "  {:<10} {:<1}  {:>10} {:>10} {:>10}",
        "step",
        "",
        "unit 0",
        "unit 1",
        "unit 2"
    );
    for (t, word) in words.iter().enumerate() {
        let rows = [
            ("i", trace.gates.slice(s![t, 0, 0, ..]).to_owned()),
            ("f", trace.gates.slice(s![t, 0, 1, ..]).to_owned()),
            ("g", trace.gates.slice(s![t, 0, 2, ..]).to_owned()),
            ("o", trace.gates.slice(s![t, 0, 3, ..]).to_owned()),
            ("c", trace.cell.slice(s![t, 0, ..]).to_owned()),
            ("h", out.output.slice(s![t, 0, ..]).to_owned()),
            ("y", y.slice(s![t, 0, ..]).to_owned()),
        ];
        for (k, (label, v)) in rows.iter().enumerate() {
            let head = if k == 0 {
                format!("{t:<5} {word:<4}")
            } else {
                " ".repeat(10)
            };
            let nums: Vec<String> = v.iter().map(|x| format!("{x:>10.6}")).collect();
            outln!("  {head} {label}  {}", nums.join(" "));
        }
    }
    Ok(())
}

/// Prints everything; see the module docs.
pub fn run() -> CliResult {
    seed_step(
        "Seed 003: one step of the concatenated cell (seed 1010, H = 2, I = 3)",
        seed_files!("seed003"),
    )?;
    seed_step(
        "Seed 004: lstm_step (seed 42, H = 4, I = 10)",
        seed_files!("seed004"),
    )?;

    outln!("\nSeed 000: \"I ate cake\" as one-hot vectors, H = 3, every gate with the seed's");
    outln!("x-side weights u = [0.1, 0.2, 0.3], h-side weights v = [0.4, 0.5, 0.6] and bias");
    outln!(
        "b = [0.1, 0.2, 0.3], each vector made a circulant matrix; read-out softmax(C(Wy) h + by)."
    );
    let u = circulant(&[0.1, 0.2, 0.3]);
    let v = circulant(&[0.4, 0.5, 0.6]);
    let b1 = Array1::from(vec![0.1, 0.2, 0.3]);
    let b = concatenate(Axis(0), &[b1.view(), b1.view(), b1.view(), b1.view()])
        .map_err(|e| LstmError::invalid("bias", e))?;
    let (w4, u4) = (four(&u), four(&v));
    let w_cat = concatenate(Axis(1), &[u4.view(), w4.view()])
        .map_err(|e| LstmError::invalid("weights", e))?;
    let readout = Readout::new(circulant(&[0.1, 0.2, 0.3]), b1.clone(), true)?;
    let v3 = stack(Axis(0), &[v.row(0), v.row(0), v.row(0)])
        .map_err(|e| LstmError::invalid("peepholes", e))?;
    let u3 = concatenate(Axis(0), &[v.view(), v.view(), v.view()])
        .map_err(|e| LstmError::invalid("weights", e))?;
    print_trace(
        "concat: ConcatCell, W = [U | W] on [h; x]",
        &ConcatCell::new(w_cat.view(), b.view())?,
        &readout,
    )?;
    print_trace(
        "split: SplitCell, W x + b + U h (same function as concat)",
        &SplitCell::new(w4.view(), u4.view(), Some(b.view()), None)?,
        &readout,
    )?;
    print_trace(
        "peephole: StateGatedCell, gates on [x; c_(t-1)], h = tanh(o c)",
        &StateGatedCell::new(w4.view(), u3.view(), b.view())?,
        &readout,
    )?;
    print_trace(
        "peephole: PeepholeCell, split cell plus peepholes p_i = p_f = p_o = v",
        &PeepholeCell::new(w4.view(), u4.view(), Some(b.view()), v3.view())?,
        &readout,
    )?;
    Ok(())
}
