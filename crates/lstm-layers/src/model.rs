//! Every model file this library reads, as one type: [`Model::load`] tells the format (by the
//! file's extension, else by its bytes) and gives what `lstm run`, `lstm grad`, `lstm export`
//! and `lstm inspect` take.

use std::path::Path;

use lstm_core::{LstmError, Result, Scalar};

use crate::onnx::{self, OnnxGraph};
use crate::torch::{self, TorchModel};

/// The format of a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A PyTorch state dict saved as safetensors.
    Safetensors,
    /// A PyTorch state dict saved by `torch.save` (zip or legacy layout).
    TorchSave,
    /// An ONNX model.
    Onnx,
}

impl Format {
    /// The format of the file at `path`: by its extension (`.safetensors`; `.pt`, `.pth`,
    /// `.bin`; `.onnx`), else by its first bytes (a zip archive or the legacy magic number is
    /// `torch.save`, a safetensors header is safetensors).
    ///
    /// # Errors
    /// [`LstmError::Io`] when a file without a known extension cannot be read, and
    /// [`LstmError::Format`] when its bytes are none of these.
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => return Ok(Format::Safetensors),
            "pt" | "pth" | "bin" => return Ok(Format::TorchSave),
            "onnx" => return Ok(Format::Onnx),
            _ => {}
        }
        let bytes = std::fs::read(path).map_err(|source| LstmError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if torch::is_pt(&bytes) {
            Ok(Format::TorchSave)
        } else if safetensors::SafeTensors::read_metadata(&bytes).is_ok() {
            Ok(Format::Safetensors)
        } else {
            Err(LstmError::format(
                path.display(),
                "cannot tell the model's format (expected .safetensors, .pt, .pth or .onnx, \
                 or a file in one of these formats)",
            ))
        }
    }

    /// Whether it is a state dict (safetensors or `torch.save`).
    pub fn is_state_dict(self) -> bool {
        self != Format::Onnx
    }
}

/// A model read from any file this library reads.
#[derive(Clone, Debug)]
pub enum Model<F> {
    /// A state dict's recurrent model (an `nn.LSTM`, `nn.GRU` or cell), with the file's
    /// tensor names and the model's prefix, which name its gradients.
    StateDict {
        /// The model.
        model: TorchModel<F>,
        /// Every tensor name of the file.
        names: Vec<String>,
        /// The model's prefix (given, or found when the file holds one recurrent model).
        prefix: String,
        /// Safetensors or `torch.save`.
        format: Format,
    },
    /// An ONNX graph, its external data read.
    Onnx(OnnxGraph<F>),
}

impl<F: Scalar> Model<F> {
    /// Reads the model at `path` at precision `F`; `prefix` picks a recurrent model in a state
    /// dict (an ONNX graph takes none).
    ///
    /// # Errors
    /// As [`Format::of`], [`torch::load_model`] and [`onnx::load`];
    /// [`LstmError::Invalid`] for a prefix with an ONNX model.
    pub fn load(path: &Path, prefix: Option<&str>) -> Result<Self> {
        let format = Format::of(path)?;
        if format == Format::Onnx {
            if prefix.is_some() {
                return Err(LstmError::invalid(
                    "prefix",
                    "a prefix picks a model in a state dict; an ONNX graph has none",
                ));
            }
            return onnx::load(path).map(Model::Onnx);
        }
        let model = torch::load_model(path, prefix)?;
        let (names, prefix) = torch::names_and_prefix(path, prefix)?;
        Ok(Model::StateDict {
            model,
            names,
            prefix,
            format,
        })
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        match self {
            Model::StateDict { format, .. } => *format,
            Model::Onnx(_) => Format::Onnx,
        }
    }
}
