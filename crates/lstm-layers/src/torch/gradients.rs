//! Gradients of a state dict's model under the state dict's own tensor names, and the
//! safetensors writer that saves them.

use std::collections::HashMap;
use std::path::Path;

use lstm_core::ndarray::{ArrayD, ArrayView3, Axis, concatenate};
use lstm_core::{LstmError, Result, Scalar};
use lstm_engine::EngineGrad;
use lstm_gru::GruGrad;
use safetensors::{Dtype, tensor::TensorView};

use super::TorchModel;
use crate::{StackGradients, StackOptions, StackStates, Tape};

/// The gradients [`TorchModel::backward`] returns.
#[derive(Clone, Debug)]
pub enum TorchGradients<F> {
    /// Of an `nn.LSTM`.
    Lstm(StackGradients<F, EngineGrad<F>>),
    /// Of an `nn.GRU`.
    Gru(StackGradients<F, GruGrad<F>>),
}

impl<F: Scalar> TorchGradients<F> {
    /// The gradient with respect to the input.
    pub fn input(&self) -> &lstm_core::ndarray::Array3<F> {
        match self {
            Self::Lstm(g) => &g.input,
            Self::Gru(g) => &g.input,
        }
    }

    /// The gradients with respect to the initial states, part by part (`h`, then `c` for an
    /// LSTM), each `[D * L, B, width]`.
    pub fn initial(&self) -> &[lstm_core::ndarray::Array3<F>] {
        match self {
            Self::Lstm(g) => &g.initial,
            Self::Gru(g) => &g.initial,
        }
    }
}

impl<F: Scalar> TorchModel<F> {
    /// The gradients of a loss, given by its gradients with respect to the output (`d_output`)
    /// and the final states (`d_h`, `d_c`, `[D * L, B, width]`; zero when absent), with respect
    /// to the input, the initial states (`h0`, `c0`, zero when absent) and the weights. See
    /// [`crate::Stack::backward`].
    ///
    /// # Errors
    /// As [`crate::Stack::backward`]; [`LstmError::Invalid`] for a cell state given to a GRU.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: ArrayView3<'_, F>,
        h0: Option<ArrayView3<'_, F>>,
        c0: Option<ArrayView3<'_, F>>,
        opts: &StackOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d_h: Option<ArrayView3<'_, F>>,
        d_c: Option<ArrayView3<'_, F>>,
    ) -> Result<TorchGradients<F>> {
        self.run_backward(x, [h0, c0], opts, d_output, [d_h, d_c], true)
    }

    /// [`TorchModel::backward`] without the input's gradient (see [`crate::Stack::backward_params`]):
    /// what training needs.
    ///
    /// # Errors
    /// As [`TorchModel::backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_params(
        &self,
        x: ArrayView3<'_, F>,
        h0: Option<ArrayView3<'_, F>>,
        c0: Option<ArrayView3<'_, F>>,
        opts: &StackOptions<'_>,
        d_output: ArrayView3<'_, F>,
        d_h: Option<ArrayView3<'_, F>>,
        d_c: Option<ArrayView3<'_, F>>,
    ) -> Result<TorchGradients<F>> {
        self.run_backward(x, [h0, c0], opts, d_output, [d_h, d_c], false)
    }

    fn run_backward(
        &self,
        x: ArrayView3<'_, F>,
        [h0, c0]: [Option<ArrayView3<'_, F>>; 2],
        opts: &StackOptions<'_>,
        d_output: ArrayView3<'_, F>,
        [d_h, d_c]: [Option<ArrayView3<'_, F>>; 2],
        want_input: bool,
    ) -> Result<TorchGradients<F>> {
        match self {
            Self::Lstm(s) => {
                let (i, d) = ([h0, c0], [d_h, d_c]);
                if want_input {
                    s.backward(x, &i, opts, d_output, &d)
                } else {
                    s.backward_params(x, &i, opts, d_output, &d)
                }
                .map(TorchGradients::Lstm)
            }
            Self::Gru(s) => {
                if c0.is_some() || d_c.is_some() {
                    return Err(LstmError::invalid(
                        "cell state",
                        "an nn.GRU has no cell state",
                    ));
                }
                if want_input {
                    s.backward(x, &[h0], opts, d_output, &[d_h])
                } else {
                    s.backward_params(x, &[h0], opts, d_output, &[d_h])
                }
                .map(TorchGradients::Gru)
            }
        }
    }

    /// [`crate::Stack::forward_kept`] of the LSTM or GRU: the forward run of a training
    /// step, `initial` its state's parts (`h0`, and `c0` for an LSTM), with what
    /// [`Self::backward_kept`] needs kept in `tape`.
    ///
    /// # Errors
    /// As [`crate::Stack::forward_states`].
    pub fn forward_kept(
        &self,
        x: ArrayView3<'_, F>,
        initial: &[Option<ArrayView3<'_, F>>],
        opts: &StackOptions<'_>,
        tape: &mut Tape<F>,
    ) -> Result<StackStates<F>> {
        match self {
            Self::Lstm(s) => s.forward_kept(x, initial, opts, tape),
            Self::Gru(s) => s.forward_kept(x, initial, opts, tape),
        }
    }

    /// [`crate::Stack::backward_kept`] of the LSTM or GRU, after [`Self::forward_kept`].
    ///
    /// # Errors
    /// As [`crate::Stack::backward_kept`].
    pub fn backward_kept(
        &self,
        tape: &mut Tape<F>,
        d_output: ArrayView3<'_, F>,
        d_finals: &[Option<ArrayView3<'_, F>>],
        want_input: bool,
    ) -> Result<TorchGradients<F>> {
        Ok(match self {
            Self::Lstm(s) => {
                TorchGradients::Lstm(s.backward_kept(tape, d_output, d_finals, want_input)?)
            }
            Self::Gru(s) => {
                TorchGradients::Gru(s.backward_kept(tape, d_output, d_finals, want_input)?)
            }
        })
    }
}

/// The parameter gradients under the names of the state dict they came from: `prefix` and
/// PyTorch's names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `weight_hr_l0`,
/// each with `_reverse` for the second direction), for the tensors `names` (the file's) holds.
/// A GRU's blocks go back to PyTorch's order r, z, n.
pub fn named_gradients<F: Scalar>(
    g: &TorchGradients<F>,
    prefix: &str,
    names: &[String],
) -> Vec<(String, ArrayD<F>)> {
    let mut out = Vec::new();
    let mut push = |key: String, a: ArrayD<F>| {
        let full = format!("{prefix}{key}");
        // A cell's tensors have no layer suffix (`weight_ih` for `weight_ih_l0`).
        let cell = key
            .strip_suffix("_l0")
            .map(|base| format!("{prefix}{base}"));
        if names.contains(&full) {
            out.push((full, a));
        } else if let Some(c) = cell.filter(|c| names.contains(c)) {
            out.push((c, a));
        }
    };
    let sfx = |d: usize| if d == 0 { "" } else { "_reverse" };
    match g {
        TorchGradients::Lstm(s) => {
            for (k, dirs) in s.params.iter().enumerate() {
                for (d, e) in dirs.iter().enumerate() {
                    let sx = sfx(d);
                    push(format!("weight_ih_l{k}{sx}"), e.w_input.clone().into_dyn());
                    push(
                        format!("weight_hh_l{k}{sx}"),
                        e.w_recurrent.clone().into_dyn(),
                    );
                    push(format!("bias_ih_l{k}{sx}"), e.bias.clone().into_dyn());
                    push(format!("bias_hh_l{k}{sx}"), e.bias.clone().into_dyn());
                    if let Some(p) = &e.projection {
                        push(format!("weight_hr_l{k}{sx}"), p.clone().into_dyn());
                    }
                    if let Some(p) = &e.peephole {
                        push(format!("weight_peephole_l{k}{sx}"), p.clone().into_dyn());
                    }
                    // The state-gated cell's c-to-gates weights: blocks i, f, o.
                    let h = e.w_recurrent.ncols();
                    let rows: Vec<usize> = (0..2 * h).chain(3 * h..4 * h).collect();
                    let ifo = e.w_recurrent.select(Axis(0), &rows);
                    push(format!("weight_ch_l{k}{sx}"), ifo.into_dyn());
                }
            }
        }
        TorchGradients::Gru(s) => {
            for (k, dirs) in s.params.iter().enumerate() {
                for (d, e) in dirs.iter().enumerate() {
                    let sx = sfx(d);
                    push(
                        format!("weight_ih_l{k}{sx}"),
                        torch_order(&e.w.clone().into_dyn()),
                    );
                    push(
                        format!("weight_hh_l{k}{sx}"),
                        torch_order(&e.r.clone().into_dyn()),
                    );
                    push(
                        format!("bias_ih_l{k}{sx}"),
                        torch_order(&e.wb.clone().into_dyn()),
                    );
                    push(
                        format!("bias_hh_l{k}{sx}"),
                        torch_order(&e.rb.clone().into_dyn()),
                    );
                }
            }
        }
    }
    out
}

/// Swaps the first two of three row blocks: z, r, n to PyTorch's r, z, n (and back).
fn torch_order<F: Scalar>(a: &ArrayD<F>) -> ArrayD<F> {
    let h = a.shape()[0] / 3;
    let parts = [
        a.slice_axis(Axis(0), (h..2 * h).into()),
        a.slice_axis(Axis(0), (0..h).into()),
        a.slice_axis(Axis(0), (2 * h..3 * h).into()),
    ];
    concatenate(Axis(0), &parts).expect("three blocks of equal shape")
}

/// Writes `tensors` to a safetensors file at `F`'s precision (`F32` or `F64`), with
/// `metadata` in the header's `__metadata__`. The file is written to a temporary name in the
/// same folder and renamed, so that a failed write leaves no partial file.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be written.
pub fn save<F: Scalar>(
    path: &Path,
    tensors: &[(String, ArrayD<F>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let dtype = if F::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    };
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, a)| {
            let data = a
                .iter()
                .flat_map(|&v| {
                    if dtype == Dtype::F32 {
                        (v.f64() as f32).to_le_bytes().to_vec()
                    } else {
                        v.f64().to_le_bytes().to_vec()
                    }
                })
                .collect();
            (name.clone(), a.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| LstmError::invalid(format!("tensor {name}"), e))
        })
        .collect::<Result<_>>()?;
    let encoded = safetensors::serialize(views, metadata)
        .map_err(|e| LstmError::invalid("safetensors", e))?;
    let io = |source| LstmError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        path.file_name()
            .map_or("out".into(), |n| n.to_string_lossy())
    ));
    std::fs::write(&tmp, encoded).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Tensors by name.
pub type NamedTensors<F> = std::collections::BTreeMap<String, ArrayD<F>>;

/// Every tensor of a safetensors file at precision `F`, by name, and the header's
/// `__metadata__`.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read, [`LstmError::Format`] for a malformed file,
/// [`LstmError::Unsupported`] for an element type other than F16, BF16, F32 and F64.
pub fn read_tensors<F: Scalar>(path: &Path) -> Result<(NamedTensors<F>, HashMap<String, String>)> {
    let (bytes, name) = super::read(path)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| LstmError::format(format!("{name} (safetensors)"), e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| LstmError::format(format!("{name} (safetensors)"), e))?;
    let mut out = std::collections::BTreeMap::new();
    for (k, t) in st.tensors() {
        let a = super::to_array(&t, &k)?;
        out.insert(k, a);
    }
    Ok((out, header.metadata().clone().unwrap_or_default()))
}
