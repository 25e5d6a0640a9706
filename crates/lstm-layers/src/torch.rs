//! Import of a PyTorch `nn.LSTM` or `nn.GRU` `state_dict` saved as safetensors.
//!
//! ```python
//! from safetensors.torch import save_file
//! save_file(model.state_dict(), "model.safetensors")
//! ```
//!
//! Layers, directions, projection and biases are inferred from the tensor names
//! (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, `weight_hr_l{k}`, each
//! optionally with the suffix `_reverse`) and their shapes. A prefix selects an LSTM inside a
//! larger model (`encoder.rnn.`); without one, the prefix is found when there is exactly one LSTM.
//!
//! Variants `nn.LSTM` lacks use the same names, with their extra tensors (see
//! [`model_from_tensors`]) and, for the gate options of Greff et al.'s variants, entries in the
//! header's `__metadata__` ([`gates_from_metadata`]).

use std::collections::HashMap;

use lstm_core::ndarray::{ArrayD, ArrayView1, ArrayView2, Ix1, Ix2, IxDyn};
use lstm_core::{LstmError, Result, Scalar};
use lstm_engine::{EngineSpec, GateConfig, LstmEngine};
use safetensors::{Dtype, SafeTensors};

use lstm_gru::GruCell;

use crate::{LstmStack, Stack};

mod gradients;
mod pickle;
mod pt;

pub use gradients::{NamedTensors, TorchGradients, named_gradients, read_tensors, save};
pub use pt::{PtTensor, is_pt, read_pt};

/// The tensor names of a safetensors file and the prefix of its recurrent model: `prefix` if
/// given, else the one prefix of a `weight_ih_l0` in the file.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read, [`LstmError::Format`] for a malformed file
/// or when there is no prefix or more than one.
pub fn names_and_prefix(
    path: impl AsRef<std::path::Path>,
    prefix: Option<&str>,
) -> Result<(Vec<String>, String)> {
    let (bytes, name) = read(path.as_ref())?;
    let names: Vec<String> = if is_pt(&bytes) {
        read_pt::<f32>(&bytes, &name)?.into_keys().collect()
    } else {
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| LstmError::format(format!("{name} (safetensors)"), e))?;
        st.names().into_iter().map(|n| n.to_string()).collect()
    };
    let prefix = match prefix {
        Some(p) => p.to_string(),
        None => find_prefix(&names, &name)?,
    };
    Ok((names, prefix))
}

/// Reads a safetensors file and builds the stack at precision `F`.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read; otherwise as [`stack_from_safetensors`].
pub fn load<F: Scalar>(
    path: impl AsRef<std::path::Path>,
    prefix: Option<&str>,
) -> Result<LstmStack<F>> {
    let (bytes, name) = read(path.as_ref())?;
    stack_from_safetensors(&bytes, &name, prefix)
}

/// The bytes of a file and its name for messages.
fn read(path: &std::path::Path) -> Result<(Vec<u8>, String)> {
    let name = path.display().to_string();
    std::fs::read(path)
        .map(|bytes| (bytes, name.clone()))
        .map_err(|source| LstmError::Io { path: name, source })
}

/// A recurrent model read from a state dict: an `nn.LSTM` or an `nn.GRU`.
#[derive(Clone, Debug)]
pub enum TorchModel<F> {
    /// `nn.LSTM` (`weight_hh` of `4H` rows).
    Lstm(LstmStack<F>),
    /// `nn.GRU` (`weight_hh` of `3H` rows for `H` columns).
    Gru(GruStack<F>),
}

/// A stack of GRU layers.
pub type GruStack<F> = Stack<GruCell<F>, F>;

/// Reads a safetensors file, or a `torch.save` file (`.pt`, `.pth`; told by its bytes,
/// see [`read_pt`]), holding an `nn.LSTM` or an `nn.GRU`.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read; otherwise as [`model_from_safetensors`].
pub fn load_model<F: Scalar>(
    path: impl AsRef<std::path::Path>,
    prefix: Option<&str>,
) -> Result<TorchModel<F>> {
    let (bytes, name) = read(path.as_ref())?;
    if is_pt(&bytes) {
        return model_from_pt(&bytes, &name, prefix);
    }
    model_from_safetensors(&bytes, &name, prefix)
}

/// Builds an `nn.LSTM` or `nn.GRU` (or a cell) from the bytes of a `torch.save` file of a
/// state dict ([`read_pt`]); `name` appears in error messages.
///
/// # Errors
/// As [`read_pt`] and [`stack_from_safetensors`]; [`LstmError::Unsupported`] for a tensor
/// the model needs that is not floating point.
pub fn model_from_pt<F: Scalar>(
    bytes: &[u8],
    name: &str,
    prefix: Option<&str>,
) -> Result<TorchModel<F>> {
    let tensors = read_pt::<F>(bytes, name)?;
    let names: Vec<String> = tensors.keys().cloned().collect();
    let prefix = match prefix {
        Some(p) => p.to_string(),
        None => find_prefix(&names, name)?,
    };
    model_from_lookup(
        &names,
        name,
        &prefix,
        &GateConfig::default(),
        |full: &str| match tensors.get(full) {
            Some(PtTensor::Float { values, .. }) => Ok(Some(values.clone())),
            Some(PtTensor::Other(dtype)) => Err(LstmError::unsupported(format!(
                "{name}: tensor {full} has element type {dtype} (supported: float32, float64, \
                 float16, bfloat16)"
            ))),
            None => Ok(None),
        },
    )
}

/// The tensors of one layer and direction of a state dict.
struct LayerTensors<F> {
    w_ih: ArrayD<F>,
    w_hh: ArrayD<F>,
    biases: Vec<ArrayD<F>>,
    w_hr: Option<ArrayD<F>>,
    w_peep: Option<ArrayD<F>>,
}

/// Builds an `nn.LSTM` or `nn.GRU` (told apart by `weight_hh_l0`: `3H` rows for `H` columns is
/// a GRU) from the bytes of a safetensors file; `name` appears in error messages.
///
/// # Errors
/// As [`stack_from_safetensors`].
pub fn model_from_safetensors<F: Scalar>(
    bytes: &[u8],
    name: &str,
    prefix: Option<&str>,
) -> Result<TorchModel<F>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| LstmError::format(format!("{name} (safetensors)"), e))?;
    let names: Vec<String> = st.names().into_iter().map(|n| n.to_string()).collect();
    let prefix = match prefix {
        Some(p) => p.to_string(),
        None => find_prefix(&names, name)?,
    };
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| LstmError::format(format!("{name} (safetensors)"), e))?;
    let empty = HashMap::new();
    let meta = header.metadata().as_ref().unwrap_or(&empty);
    let gates = gates_from_metadata(meta, &prefix, name)?;
    model_from_lookup(&names, name, &prefix, &gates, |full: &str| {
        match st.tensor(full) {
            Ok(t) => Ok(Some(to_array(&t, full)?)),
            Err(_) => Ok(None),
        }
    })
}

/// The metadata keys of the gate options, after the model's prefix.
const GATE_KEYS: [&str; 3] = ["gates.open", "gates.identity", "gates.input_forget"];

/// The gate options of the LSTM under `prefix`, from a checkpoint header's `__metadata__`
/// (the defaults when it has none), so that a variant of Greff et al. (2017) trained here runs
/// as it was trained:
///
/// - `{prefix}gates.open`: gates held at 1, any of `i`, `f`, `o` separated by commas (no
///   input, forget or output gate; [`GateConfig::open`]);
/// - `{prefix}gates.identity`: activations replaced by the identity, `g` (the candidate's,
///   "no input activation") and/or `h` (the cell output's, "no output activation");
/// - `{prefix}gates.input_forget`: `true` for the coupled forget gate `f = 1 - i` (CIFG).
///
/// `name` appears in error messages.
///
/// # Errors
/// [`LstmError::Format`] naming an entry whose value is not understood, or an unknown
/// `{prefix}gates.*` entry (a file from a newer version is refused rather than misread).
pub fn gates_from_metadata<F: Scalar>(
    meta: &HashMap<String, String>,
    prefix: &str,
    name: &str,
) -> Result<GateConfig<F>> {
    let mut gates = GateConfig::default();
    let key = |k: &str| format!("{prefix}{k}");
    let bad = |k: &str, v: &str, expected: &str| {
        LstmError::format(
            name,
            format!(
                "metadata {}: {v:?} is not understood (expected {expected})",
                key(k)
            ),
        )
    };
    let mut unknown: Vec<&String> = meta
        .keys()
        .filter(|k| k.strip_prefix(&key("gates.")).is_some())
        .filter(|k| !GATE_KEYS.iter().any(|g| **k == key(g)))
        .collect();
    if let Some(k) = unknown.pop() {
        return Err(LstmError::format(
            name,
            format!("unknown metadata entry {k} (known: {GATE_KEYS:?} after the prefix)"),
        ));
    }
    let list = |k: &str| -> Vec<&str> {
        meta.get(&key(k))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    for g in list("gates.open") {
        match g {
            "i" => gates.open[0] = true,
            "f" => gates.open[1] = true,
            "o" => gates.open[2] = true,
            v => return Err(bad("gates.open", v, "i, f or o, separated by commas")),
        }
    }
    let identity = lstm_core::Activation::Affine {
        alpha: F::one(),
        beta: F::zero(),
    };
    for a in list("gates.identity") {
        match a {
            "g" => gates.g = identity,
            "h" => gates.h = identity,
            v => return Err(bad("gates.identity", v, "g or h, separated by commas")),
        }
    }
    if let Some(v) = meta.get(&key("gates.input_forget")) {
        gates.input_forget = match v.as_str() {
            "true" => true,
            "false" => false,
            v => return Err(bad("gates.input_forget", v, "true or false")),
        };
    }
    Ok(gates)
}

/// The `__metadata__` entries that [`gates_from_metadata`] reads back as `gates`: held-open
/// gates, identity activations of `g` and `h`, and the coupled forget gate; nothing for the
/// defaults. Other options (clip, other activations) have no entry.
pub fn gates_metadata<F: Scalar>(gates: &GateConfig<F>, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let open: Vec<&str> = ["i", "f", "o"]
        .into_iter()
        .zip(gates.open)
        .filter_map(|(n, o)| o.then_some(n))
        .collect();
    if !open.is_empty() {
        out.push((format!("{prefix}gates.open"), open.join(",")));
    }
    let is_identity = |a: &lstm_core::Activation<F>| {
        *a == lstm_core::Activation::Affine {
            alpha: F::one(),
            beta: F::zero(),
        }
    };
    let identity: Vec<&str> = [("g", &gates.g), ("h", &gates.h)]
        .into_iter()
        .filter_map(|(n, a)| is_identity(a).then_some(n))
        .collect();
    if !identity.is_empty() {
        out.push((format!("{prefix}gates.identity"), identity.join(",")));
    }
    if gates.input_forget {
        out.push((format!("{prefix}gates.input_forget"), "true".into()));
    }
    out
}

/// Builds an `nn.LSTM` or `nn.GRU` from named tensors (PyTorch's names after `prefix`), as
/// [`model_from_safetensors`] does from a file: the model a training run keeps its weights
/// for. `name` appears in error messages.
///
/// # Errors
/// As [`stack_from_safetensors`].
pub fn model_from_tensors<F: Scalar>(
    tensors: &std::collections::BTreeMap<String, ArrayD<F>>,
    name: &str,
    prefix: &str,
) -> Result<TorchModel<F>> {
    model_from_tensors_with(tensors, name, prefix, &GateConfig::default())
}

/// [`model_from_tensors`] with the gate options `gates` on every LSTM cell (see
/// [`gates_from_metadata`]).
///
/// # Errors
/// As [`stack_from_safetensors`], and [`LstmError::Invalid`] for gate options on a GRU.
pub fn model_from_tensors_with<F: Scalar>(
    tensors: &std::collections::BTreeMap<String, ArrayD<F>>,
    name: &str,
    prefix: &str,
    gates: &GateConfig<F>,
) -> Result<TorchModel<F>> {
    let names: Vec<String> = tensors.keys().cloned().collect();
    model_from_lookup(&names, name, prefix, gates, |full: &str| {
        Ok(tensors.get(full).cloned())
    })
}

/// The model of the tensors `lookup` finds by full name (`names` are all of them).
fn model_from_lookup<F: Scalar>(
    names: &[String],
    name: &str,
    prefix: &str,
    gates: &GateConfig<F>,
    lookup: impl Fn(&str) -> Result<Option<ArrayD<F>>>,
) -> Result<TorchModel<F>> {
    // An nn.LSTMCell or nn.GRUCell (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, no layer
    // suffix) is one layer of one direction stepped over the sequence: the same arithmetic
    // as a one-layer nn.LSTM, whose names it takes here.
    let cell_form = lookup(&format!("{prefix}weight_ih_l0"))?.is_none()
        && lookup(&format!("{prefix}weight_ih"))?.is_some();
    let get = |key: &str| -> Result<Option<ArrayD<F>>> {
        if cell_form {
            return match key.strip_suffix("_l0") {
                Some(base) => lookup(&format!("{prefix}{base}")),
                None => Ok(None),
            };
        }
        lookup(&format!("{prefix}{key}"))
    };
    let need = |key: &str| -> Result<ArrayD<F>> {
        get(key)?.ok_or_else(|| LstmError::format(name, format!("missing tensor {prefix}{key}")))
    };
    if get("weight_ih_l0")?.is_none() {
        let mut found: Vec<&str> = names
            .iter()
            .filter(|n| n.contains("weight_ih_l"))
            .map(String::as_str)
            .collect();
        found.sort_unstable();
        return Err(LstmError::format(
            name,
            format!("no tensor {prefix}weight_ih_l0 (recurrent weights found: {found:?})"),
        ));
    }
    // A GRU's recurrent weights have 3H rows for H columns (an LSTM's 4H, for H or P).
    let gru =
        get("weight_hh_l0")?.is_some_and(|w| w.ndim() == 2 && w.shape()[0] == 3 * w.shape()[1]);
    let directions = if get("weight_ih_l0_reverse")?.is_some() {
        2
    } else {
        1
    };
    let has_bias = get("bias_ih_l0")?.is_some();
    let has_proj = get("weight_hr_l0")?.is_some();
    // The variants nn.LSTM lacks, in the same scheme: diagonal peepholes
    // `weight_peephole_l{k} [3, H]` (i, f, o), and the state-gated cell, whose gates read
    // `c_{t-1}` through `weight_ch_l{k} [3H, H]` (i, f, o) in place of `weight_hh_l{k}`.
    let has_peep = get("weight_peephole_l0")?.is_some();
    let state_gated = get("weight_ch_l0")?.is_some();
    let hh = if state_gated {
        "weight_ch"
    } else {
        "weight_hh"
    };
    let mut tensors = Vec::new();
    while get(&format!("weight_ih_l{}", tensors.len()))?.is_some() {
        let k = tensors.len();
        let mut dirs = Vec::new();
        for d in 0..directions {
            let sfx = if d == 0 { "" } else { "_reverse" };
            let m = |key: String| -> Result<ArrayD<F>> { need(&key) };
            dirs.push(LayerTensors {
                w_ih: m(format!("weight_ih_l{k}{sfx}"))?,
                w_hh: m(format!("{hh}_l{k}{sfx}"))?,
                biases: if has_bias {
                    vec![
                        m(format!("bias_ih_l{k}{sfx}"))?,
                        m(format!("bias_hh_l{k}{sfx}"))?,
                    ]
                } else {
                    Vec::new()
                },
                w_hr: if has_proj {
                    Some(m(format!("weight_hr_l{k}{sfx}"))?)
                } else {
                    None
                },
                w_peep: if has_peep {
                    Some(m(format!("weight_peephole_l{k}{sfx}"))?)
                } else {
                    None
                },
            });
        }
        tensors.push(dirs);
    }
    let ctx = |k: usize, d: usize| {
        move |e: LstmError| {
            let sfx = if d == 0 { "" } else { "_reverse" };
            LstmError::format(name, format!("layer {k}{sfx}: {e}"))
        }
    };
    let sfx = |d: usize| if d == 0 { "" } else { "_reverse" };
    let gru_cell = |k: usize, d: usize, t: &LayerTensors<F>| -> Result<GruCell<F>> {
        let s = sfx(d);
        if t.w_hr.is_some() {
            return Err(ctx(k, d)(LstmError::invalid(
                "weight_hr",
                "a GRU has no projection",
            )));
        }
        let w_ih = matrix(&t.w_ih, format!("weight_ih_l{k}{s}")).map_err(ctx(k, d))?;
        let w_hh = matrix(&t.w_hh, format!("weight_hh_l{k}{s}")).map_err(ctx(k, d))?;
        let bias = |i: usize| {
            t.biases
                .get(i)
                .map(|b| vector(b).map(|v| v.to_owned()))
                .transpose()
                .map_err(ctx(k, d))
        };
        GruCell::from_torch(w_ih, w_hh, bias(0)?, bias(1)?).map_err(ctx(k, d))
    };
    let lstm_engine = |k: usize, d: usize, t: &LayerTensors<F>| -> Result<LstmEngine<F>> {
        let s = sfx(d);
        let w_ih = matrix(&t.w_ih, format!("weight_ih_l{k}{s}")).map_err(ctx(k, d))?;
        let w_hh = matrix(&t.w_hh, format!("{hh}_l{k}{s}")).map_err(ctx(k, d))?;
        let full;
        let mut spec = if state_gated {
            let h = w_hh.ncols();
            lstm_core::check_shape(&format!("{hh}_l{k}{s}"), w_hh.shape(), &[3 * h, h])
                .map_err(ctx(k, d))?;
            full = lstm_core::ndarray::Array2::from_shape_fn((4 * h, h), |(r, c)| match r / h {
                0 | 1 => w_hh[[r, c]],
                2 => F::zero(),
                _ => w_hh[[r - h, c]],
            });
            let mut spec = EngineSpec::standard(w_ih, full.view());
            spec.recurrence = lstm_engine::Recurrence::Cell;
            spec.output_mode = lstm_engine::OutputMode::SquashGated;
            spec
        } else {
            EngineSpec::standard(w_ih, w_hh)
        };
        for b in &t.biases {
            spec.biases.push(vector(b).map_err(ctx(k, d))?);
        }
        if let Some(p) = &t.w_hr {
            spec.projection = Some(matrix(p, format!("weight_hr_l{k}{s}")).map_err(ctx(k, d))?);
        }
        if let Some(p) = &t.w_peep {
            spec.peephole = Some(matrix(p, format!("weight_peephole_l{k}{s}")).map_err(ctx(k, d))?);
        }
        spec.gates = *gates;
        LstmEngine::new(spec).map_err(ctx(k, d))
    };
    fn each<F, C>(
        tensors: &[Vec<LayerTensors<F>>],
        f: impl Fn(usize, usize, &LayerTensors<F>) -> Result<C>,
    ) -> Result<Vec<Vec<C>>> {
        tensors
            .iter()
            .enumerate()
            .map(|(k, dirs)| dirs.iter().enumerate().map(|(d, t)| f(k, d, t)).collect())
            .collect()
    }
    let wrap = |e| LstmError::format(name, e);
    if gru && *gates != GateConfig::default() {
        return Err(LstmError::invalid(
            "gate options",
            format!(
                "{name} holds an nn.GRU; held-open gates, identity activations and a coupled forget gate are LSTM options"
            ),
        ));
    }
    if gru {
        Stack::new(each(&tensors, gru_cell)?)
            .map(TorchModel::Gru)
            .map_err(wrap)
    } else {
        Stack::new(each(&tensors, lstm_engine)?)
            .map(TorchModel::Lstm)
            .map_err(wrap)
    }
}

fn matrix<F: Scalar>(a: &ArrayD<F>, what: String) -> Result<ArrayView2<'_, F>> {
    a.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| LstmError::shape(what, "2-D", a.shape()))
}

fn vector<F: Scalar>(a: &ArrayD<F>) -> Result<ArrayView1<'_, F>> {
    a.view()
        .into_dimensionality::<Ix1>()
        .map_err(|_| LstmError::shape("bias", "1-D", a.shape()))
}

/// Builds the `nn.LSTM` of the bytes of a safetensors file; `name` appears in error messages.
///
/// # Errors
/// [`LstmError::Format`] for a malformed file, a missing tensor, an ambiguous prefix or a GRU;
/// [`LstmError::Shape`] for tensors that do not fit together; [`LstmError::Unsupported`] for
/// element types other than F16, BF16, F32 and F64; [`LstmError::NonFinite`] for NaN weights.
pub fn stack_from_safetensors<F: Scalar>(
    bytes: &[u8],
    name: &str,
    prefix: Option<&str>,
) -> Result<LstmStack<F>> {
    match model_from_safetensors(bytes, name, prefix)? {
        TorchModel::Lstm(s) => Ok(s),
        TorchModel::Gru(_) => Err(LstmError::format(
            name,
            "the state dict is an nn.GRU, not an nn.LSTM",
        )),
    }
}

/// The prefix of the one recurrent model among `names`: of an `nn.LSTM` or `nn.GRU`
/// (`...weight_ih_l0`) or of an `nn.LSTMCell` or `nn.GRUCell` (`...weight_ih` beside
/// `...weight_hh`).
fn find_prefix(names: &[String], file: &str) -> Result<String> {
    let prefixes = recurrent_prefixes(names);
    match prefixes.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(LstmError::format(
            file,
            "no LSTM or GRU weights (no tensor named ...weight_ih_l0, nor a cell's \
             ...weight_ih and ...weight_hh)",
        )),
        many => Err(LstmError::format(
            file,
            format!("several recurrent models found (prefixes {many:?}); choose one with --prefix"),
        )),
    }
}

/// What [`tensor_list`] lists: `(name, shape, element type)` of each tensor.
pub type TensorList = Vec<(String, Vec<usize>, String)>;

/// Every tensor of a safetensors or `torch.save` file: `(name, shape, element type)`, and the
/// file's format (`safetensors`, `torch.save zip`, `torch.save legacy`).
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read; as [`read_pt`] or the safetensors reader
/// for a malformed file.
pub fn tensor_list(path: impl AsRef<std::path::Path>) -> Result<(&'static str, TensorList)> {
    let (bytes, name) = read(path.as_ref())?;
    if is_pt(&bytes) {
        let format = if bytes.starts_with(b"PK") {
            "torch.save zip"
        } else {
            "torch.save legacy"
        };
        let list = read_pt::<f32>(&bytes, &name)?
            .into_iter()
            .map(|(k, t)| match t {
                PtTensor::Float { values, dtype } => (k, values.shape().to_vec(), dtype.into()),
                PtTensor::Other(dtype) => (k, Vec::new(), dtype.into()),
            })
            .collect();
        return Ok((format, list));
    }
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| LstmError::format(format!("{name} (safetensors)"), e))?;
    let mut list: Vec<(String, Vec<usize>, String)> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| {
            let dtype = match t.dtype() {
                Dtype::F32 => "float32".to_string(),
                Dtype::F64 => "float64".into(),
                Dtype::F16 => "float16".into(),
                Dtype::BF16 => "bfloat16".into(),
                other => format!("{other:?}").to_lowercase(),
            };
            (k, t.shape().to_vec(), dtype)
        })
        .collect();
    list.sort();
    Ok(("safetensors", list))
}

/// The prefixes of every recurrent model among the tensor names `names`, sorted: of each
/// `nn.LSTM` or `nn.GRU` (`...weight_ih_l0`) and each `nn.LSTMCell` or `nn.GRUCell`
/// (`...weight_ih` beside `...weight_hh`).
pub fn recurrent_prefixes(names: &[String]) -> Vec<String> {
    let has = |n: String| names.contains(&n);
    let mut prefixes: Vec<String> = names
        .iter()
        .filter_map(|n| {
            n.strip_suffix("weight_ih_l0").or_else(|| {
                n.strip_suffix("weight_ih")
                    .filter(|p| has(format!("{p}weight_hh")))
            })
        })
        .map(str::to_string)
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
}

/// What the recurrent model under `prefix` among `names` is, for messages: `nn.LSTM` (or
/// `nn.GRU`, told by the caller) with its layers, or a cell.
pub fn describe(names: &[String], prefix: &str) -> &'static str {
    if names.iter().any(|n| *n == format!("{prefix}weight_ih_l0")) {
        "a stack (weight_ih_l0, ...)"
    } else {
        "a cell (weight_ih, weight_hh), run as one layer stepped over the sequence"
    }
}

fn to_array<F: Scalar>(t: &safetensors::tensor::TensorView<'_>, name: &str) -> Result<ArrayD<F>> {
    let data = t.data();
    let values: Vec<F> = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| F::of(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| {
                F::of(f64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]))
            })
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| {
                F::of(f64::from(f32::from_bits(
                    u32::from(u16::from_le_bytes([c[0], c[1]])) << 16,
                )))
            })
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| F::of(f16_to_f64(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        other => {
            return Err(LstmError::unsupported(format!(
                "tensor {name} has element type {other:?} (supported: F16, BF16, F32, F64)"
            )));
        }
    };
    ArrayD::from_shape_vec(IxDyn(t.shape()), values).map_err(|e| LstmError::format(name, e))
}

/// IEEE half precision to double, exactly.
pub(crate) fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 => {
            if frac == 0.0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            }
        }
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert!(f16_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn garbage_is_a_format_error() {
        assert!(matches!(
            stack_from_safetensors::<f32>(b"not a safetensors file", "x", None),
            Err(LstmError::Format { .. })
        ));
        assert!(matches!(
            stack_from_safetensors::<f32>(&[], "x", None),
            Err(LstmError::Format { .. })
        ));
    }
}
