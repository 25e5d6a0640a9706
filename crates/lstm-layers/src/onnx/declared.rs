//! The inputs and outputs a graph declares, and the check of a value against its declaration.

use std::collections::HashMap;

use lstm_core::{LstmError, Result, Scalar};

use super::proto::ValueInfoProto;
use super::tensor::{ElemType, Value};

/// `[2, batch, ?]`.
fn fmt_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Named(s) => s.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// One dimension of a declared input or output shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named size (`"batch"`): every dimension of that name has the same size in one run.
    Named(String),
    /// Not given.
    Unknown,
}

/// A declared graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphValue {
    /// Its name in the graph.
    pub name: String,
    /// Its element type.
    pub elem: ElemType,
    /// Its shape, when the graph declares one.
    pub dims: Option<Vec<Dim>>,
}

impl GraphValue {
    /// `name [2, batch, 4] float32`, for messages.
    pub fn describe(&self) -> String {
        let dims = self
            .dims
            .as_deref()
            .map_or_else(String::new, |d| format!(" {}", fmt_dims(d)));
        format!("{:?}{dims} {}", self.name, self.elem.name())
    }

    pub(super) fn from_proto(v: &ValueInfoProto) -> Self {
        let tensor = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        GraphValue {
            name: v.name.clone(),
            elem: ElemType::from_code(tensor.map_or(0, |t| t.elem_type)),
            dims: tensor.and_then(|t| t.shape.as_ref()).map(|s| {
                s.dim
                    .iter()
                    .map(|d| match (d.dim_value, &d.dim_param) {
                        (Some(n), _) if n >= 0 => Dim::Fixed(n as usize),
                        (_, Some(p)) if !p.is_empty() => Dim::Named(p.clone()),
                        _ => Dim::Unknown,
                    })
                    .collect()
            }),
        }
    }
}

/// Checks a value against a declared input or output: kind, precision, rank, fixed sizes and
/// named sizes (the same name, the same size, within one run).
pub(super) fn check_declared<'a, F: Scalar>(
    decl: &'a GraphValue,
    value: &Value<F>,
    sizes: &mut HashMap<&'a str, usize>,
    what: &str,
) -> Result<()> {
    let here = || format!("{what} {}", decl.describe());
    let named = || format!("{what} {:?}", decl.name);
    let precision = if F::NAME == "f32" {
        ElemType::Float32
    } else {
        ElemType::Float64
    };
    let fits = match value {
        Value::Float(_) => decl.elem == precision,
        Value::Int(_) => decl.elem.is_int(),
    };
    if !fits && decl.elem != ElemType::Other(0) {
        let given = match value {
            Value::Float(_) => precision.name(),
            Value::Int(_) => "integers".into(),
        };
        return Err(LstmError::invalid(
            here(),
            format!("got {given} (a run computes in the precision of its input)"),
        ));
    }
    let Some(dims) = &decl.dims else {
        return Ok(());
    };
    let shape = value.shape();
    let expected = || fmt_dims(dims);
    if shape.len() != dims.len() {
        return Err(LstmError::shape(named(), expected(), shape));
    }
    for (d, &n) in dims.iter().zip(shape) {
        match d {
            Dim::Fixed(m) if *m != n => return Err(LstmError::shape(named(), expected(), shape)),
            Dim::Named(s) => {
                let bound = *sizes.entry(s.as_str()).or_insert(n);
                if bound != n {
                    return Err(LstmError::shape(
                        named(),
                        format!(
                            "{} with {s} = {bound} (as another input has it)",
                            expected()
                        ),
                        shape,
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
