//! Tensors stored in a model: decoding `TensorProto` and the element types of the format.

use lstm_core::ndarray::{ArrayD, IxDyn};
use lstm_core::{LstmError, Result};

use super::proto::TensorProto;

/// An ONNX element type (`TensorProto.DataType`) this library knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// `FLOAT` (1).
    Float32,
    /// `DOUBLE` (11).
    Float64,
    /// `FLOAT16` (10).
    Float16,
    /// `INT32` (6).
    Int32,
    /// `INT64` (7).
    Int64,
    /// Any other code (`BOOL`, `STRING`, `BFLOAT16`, ...), or 0 when the model leaves it unset.
    Other(i32),
}

impl ElemType {
    /// The type of an ONNX `DataType` code.
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => ElemType::Float32,
            11 => ElemType::Float64,
            10 => ElemType::Float16,
            6 => ElemType::Int32,
            7 => ElemType::Int64,
            other => ElemType::Other(other),
        }
    }

    /// NumPy's name for it (`"float32"`, ...), or `"ONNX type N"`.
    pub fn name(self) -> String {
        match self {
            ElemType::Float32 => "float32".into(),
            ElemType::Float64 => "float64".into(),
            ElemType::Float16 => "float16".into(),
            ElemType::Int32 => "int32".into(),
            ElemType::Int64 => "int64".into(),
            ElemType::Other(9) => "bool".into(),
            ElemType::Other(16) => "bfloat16".into(),
            ElemType::Other(8) => "string".into(),
            ElemType::Other(c) => format!("ONNX type {c}"),
        }
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElemType::Float32 | ElemType::Float64 | ElemType::Float16
        )
    }

    /// Whether it is an integer type.
    pub fn is_int(self) -> bool {
        matches!(self, ElemType::Int32 | ElemType::Int64)
    }
}

/// A tensor of a graph: floating point at precision `F`, or integer.
///
/// Models store floats as FLOAT, DOUBLE or FLOAT16 and integers as INT32 or INT64; a graph runs
/// all its floats at one precision and all its integers as `i64`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<F> {
    /// Floating point.
    Float(ArrayD<F>),
    /// Integer.
    Int(ArrayD<i64>),
}

/// A tensor as the model stores it: floats widened to `f64` exactly.
pub type Tensor = Value<f64>;

impl<F> Value<F> {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Float(a) => a.shape(),
            Value::Int(a) => a.shape(),
        }
    }

    /// `"float"` or `"integer"`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Float(_) => "float",
            Value::Int(_) => "integer",
        }
    }

    /// The integers of an integer tensor, in row-major order.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] naming `what` for a float tensor.
    pub fn ints(&self, what: &str) -> Result<Vec<i64>> {
        match self {
            Value::Int(a) => Ok(a.iter().copied().collect()),
            Value::Float(_) => Err(LstmError::invalid(
                what,
                "expected an integer tensor, got floats",
            )),
        }
    }
}

impl Tensor {
    /// The same tensor with its floats rounded to `F`.
    pub fn to_precision<F: lstm_core::Scalar>(&self) -> Value<F> {
        match self {
            Value::Float(a) => Value::Float(a.mapv(F::of)),
            Value::Int(a) => Value::Int(a.clone()),
        }
    }
}

/// Decodes a `TensorProto`.
///
/// # Errors
/// [`LstmError::Format`] for inconsistent data, [`LstmError::Unsupported`] for other element
/// types and external data.
pub fn decode_tensor(t: &TensorProto) -> Result<Tensor> {
    let name = format!("tensor {:?}", t.name);
    let bad = |r: String| LstmError::format(&name, r);
    if t.data_location == 1 {
        return Err(LstmError::unsupported(format!(
            "{name} stores its data externally: load the model from its file (onnx::load), \
             beside its data"
        )));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<_>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            bad(format!(
                "shape {shape:?} has more elements than memory can hold"
            ))
        })?;
    let raw = &t.raw_data;
    let from_raw = |w: usize| -> Result<Option<std::slice::ChunksExact<'_, u8>>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if count.checked_mul(w) != Some(raw.len()) {
            return Err(bad(format!(
                "raw data has {} bytes, shape {shape:?} needs {count} values of {w} bytes",
                raw.len(),
            )));
        }
        Ok(Some(raw.chunks_exact(w)))
    };
    let float = |v: Vec<f64>| -> Result<Tensor> {
        if v.len() != count {
            return Err(bad(format!(
                "has {} values, shape {shape:?} needs {count}",
                v.len()
            )));
        }
        ArrayD::from_shape_vec(IxDyn(&shape), v)
            .map(Tensor::Float)
            .map_err(|e| bad(e.to_string()))
    };
    let int = |v: Vec<i64>| -> Result<Tensor> {
        if v.len() != count {
            return Err(bad(format!(
                "has {} values, shape {shape:?} needs {count}",
                v.len()
            )));
        }
        ArrayD::from_shape_vec(IxDyn(&shape), v)
            .map(Tensor::Int)
            .map_err(|e| bad(e.to_string()))
    };
    match t.data_type {
        1 => float(match from_raw(4)? {
            Some(c) => c
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        }),
        11 => float(match from_raw(8)? {
            Some(c) => c
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None => t.double_data.clone(),
        }),
        10 => float(match from_raw(2)? {
            Some(c) => c
                .map(|b| crate::torch::f16_to_f64(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            None => t
                .int32_data
                .iter()
                .map(|&v| crate::torch::f16_to_f64(v as u16))
                .collect(),
        }),
        6 => int(match from_raw(4)? {
            Some(c) => c
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        }),
        7 => int(match from_raw(8)? {
            Some(c) => c
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None => t.int64_data.clone(),
        }),
        // BOOL (a Loop's condition, say), held as 0 and 1.
        9 => int(match from_raw(1)? {
            Some(c) => c.map(|b| i64::from(b[0] != 0)).collect(),
            None => t.int32_data.iter().map(|&v| i64::from(v != 0)).collect(),
        }),
        other => Err(LstmError::unsupported(format!(
            "{name} has ONNX element type {other} (supported: FLOAT, DOUBLE, FLOAT16, INT32, \
             INT64, BOOL)"
        ))),
    }
}
