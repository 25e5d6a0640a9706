//! ONNX models: the whole graph, run from its declared inputs to its declared outputs.
//!
//! [`OnnxGraph`] runs `LSTM` and `GRU` nodes (opset 7 and later, every attribute of the
//! operators) and the tensor operators exporters put around them ([`ops::SUPPORTED`]: Transpose,
//! Squeeze, Unsqueeze, Reshape, Slice, Concat, Gather, Shape, Cast, Expand, ...), so that a
//! `torch.onnx.export` of `nn.LSTM` or `nn.GRU` in any layout computes what ONNX Runtime
//! computes. A graph with any other operator is refused with the names of its nodes; one
//! recurrent node can still be run alone with [`OnnxGraph::node`].
//!
//! The protobuf is decoded with `prost` message types for the subset of `onnx.proto` needed
//! here ([`proto`]), so no `protoc` is needed at build time.

mod declared;
pub mod export;
pub mod external;
mod graph;
mod gru;
mod lstm;
pub mod ops;
pub mod proto;
mod rnn;
mod tensor;

pub use declared::{Dim, GraphValue};
pub use graph::{GraphGradients, InputRole, OnnxGraph, OutputRole, RecurrentNode};
pub use gru::{OnnxGru, OnnxGruOutput};
pub use lstm::{OnnxLstm, OnnxOutput};
pub use rnn::{OnnxDirection, resolve_activations};
pub use tensor::{ElemType, Tensor, Value, decode_tensor};

use lstm_core::{LstmError, Result, Scalar};

/// Reads an `.onnx` file, with its external data (see [`external`]).
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read; otherwise as [`OnnxGraph::from_bytes`].
pub fn load<F: Scalar>(path: impl AsRef<std::path::Path>) -> Result<OnnxGraph<F>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| LstmError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let source = path.display().to_string();
    let mut model = <proto::ModelProto as prost::Message>::decode(bytes.as_slice())
        .map_err(|e| LstmError::format(format!("{source} (ONNX protobuf)"), e))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    external::resolve(&mut model, dir)?;
    OnnxGraph::from_model(model, &source)
}
