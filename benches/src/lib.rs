//! Shared set-up of the criterion benchmarks: the variants on random weights.

use lstm_concat::ConcatCell;
use lstm_core::dev::PlainCell;
use lstm_core::{LstmState, RecurrentCell, Result};
use lstm_engine::init::SplitMix64;
use lstm_engine::workload::Workload;
use lstm_peephole::{PeepholeCell, StateGatedCell};
use lstm_split::SplitCell;

/// Variant names, as the crates are named (`peephole` is the classic peephole cell,
/// `state-gated` the cell-state-gated one), and `plain`, the unoptimised baseline.
pub const VARIANTS: [&str; 5] = ["concat", "split", "peephole", "state-gated", "plain"];

/// A variant on random weights for a workload.
///
/// # Errors
/// Only for an unknown variant name.
pub fn cell(
    variant: &str,
    w: &Workload,
) -> Result<Box<dyn RecurrentCell<f32, State = LstmState<f32>>>> {
    let mut rng = SplitMix64::new(7);
    let (i, h) = (w.input, w.hidden);
    Ok(match variant {
        "concat" => Box::new(ConcatCell::random(i, h, &mut rng)?),
        "split" => Box::new(SplitCell::random(i, h, &mut rng)?),
        "peephole" => Box::new(PeepholeCell::random(i, h, &mut rng)?),
        "state-gated" => Box::new(StateGatedCell::random(i, h, &mut rng)?),
        "plain" => {
            let k = 1.0 / (h as f64).sqrt();
            Box::new(PlainCell {
                w: rng.uniform_array((4 * h, i), k),
                u: rng.uniform_array((4 * h, h), k),
                b: rng.uniform_array(4 * h, k),
            })
        }
        other => {
            return Err(lstm_core::LstmError::invalid(
                "variant",
                format!("unknown variant {other:?}"),
            ));
        }
    })
}

/// One bidirectional layer on random weights for a workload: the layer-stack benchmark.
///
/// # Errors
/// Never for the canonical workloads (sizes are positive).
pub fn bidirectional(w: &Workload, rng: &mut SplitMix64) -> Result<lstm_layers::LstmStack<f32>> {
    lstm_layers::LstmStack::random(w.input, w.hidden, 1, 2, rng)
}
