//! What graph inputs feed and graph outputs hold: found by following values through the tensor
//! operators to the inputs and outputs of recurrent nodes, so that command-line flags can name
//! them by meaning (`--initial-h`) rather than by the exporter's names.

use lstm_core::Scalar;

use super::{Kind, OnnxGraph, RecurrentNode};

/// What a graph input feeds, found by following it through the tensor operators to the input
/// of a recurrent node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRole {
    /// `X`.
    Sequence,
    /// `sequence_lens`.
    Lengths,
    /// `initial_h`.
    InitialH,
    /// `initial_c`.
    InitialC,
}

/// What a graph output holds, found by following it back to the output of recurrent nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputRole {
    /// `Y`.
    Sequence,
    /// `Y_h`.
    FinalH,
    /// `Y_c`.
    FinalC,
}

impl<F: Scalar> OnnxGraph<F> {
    /// What input `name` feeds, when it feeds one kind of recurrent input only.
    pub fn input_role(&self, name: &str) -> Option<InputRole> {
        let mut roles = Vec::new();
        let mut todo = vec![name.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(v) = todo.pop() {
            if !seen.insert(v.clone()) {
                continue;
            }
            for s in &self.steps {
                for (k, _) in s.inputs.iter().enumerate().filter(|(_, n)| **n == v) {
                    match &s.kind {
                        Kind::Recurrent(r) => roles.push(match (k, r) {
                            (0, _) => Some(InputRole::Sequence),
                            (4, _) => Some(InputRole::Lengths),
                            (5, _) => Some(InputRole::InitialH),
                            (6, RecurrentNode::Lstm(_)) => Some(InputRole::InitialC),
                            _ => None,
                        }),
                        _ if s.passes(k) => todo.extend(s.outputs.iter().cloned()),
                        _ => {}
                    }
                }
            }
        }
        roles.dedup();
        match roles.as_slice() {
            [Some(r)] => Some(*r),
            _ => None,
        }
    }

    /// What output `name` holds, when it comes from one kind of recurrent output only.
    pub fn output_role(&self, name: &str) -> Option<OutputRole> {
        let mut roles = Vec::new();
        let mut todo = vec![name.to_string()];
        while let Some(v) = todo.pop() {
            let Some(s) = self.steps.iter().find(|s| s.outputs.contains(&v)) else {
                roles.push(None);
                continue;
            };
            let k = s.outputs.iter().position(|o| *o == v).unwrap_or(0);
            match &s.kind {
                Kind::Recurrent(_) => roles.push(match k {
                    0 => Some(OutputRole::Sequence),
                    1 => Some(OutputRole::FinalH),
                    _ => Some(OutputRole::FinalC),
                }),
                Kind::Tensor(_) => todo.extend(
                    s.inputs
                        .iter()
                        .enumerate()
                        .filter(|(j, n)| s.passes(*j) && !n.is_empty())
                        .map(|(_, n)| n.clone()),
                ),
                Kind::Unsupported => roles.push(None),
            }
        }
        roles.sort_by_key(|r| r.map(|r| r as u8));
        roles.dedup();
        match roles.as_slice() {
            [Some(r)] => Some(*r),
            _ => None,
        }
    }
}
