//! Shared set-up of the criterion benchmarks: the variants on random weights.

use lstm_concat::ConcatCell;
use lstm_core::dev::PlainCell;
use lstm_core::{LstmState, RecurrentCell, Result, Variant};
use lstm_engine::init::SplitMix64;
use lstm_engine::workload::Workload;
use lstm_peephole::{PeepholeCell, StateGatedCell};
use lstm_split::SplitCell;

/// Calls `$m!(Type, ...)` with every LSTM variant (the cells whose state is `(h, c)`).
macro_rules! lstm_variants {
    ($m:ident) => {
        $m!(
            ConcatCell<f32>,
            SplitCell<f32>,
            PeepholeCell<f32>,
            StateGatedCell<f32>,
        )
    };
}

/// The name of the unoptimised baseline, [`PlainCell`].
pub const PLAIN: &str = "plain";

/// Variant names, from each cell's [`Variant::NAME`], then [`PLAIN`].
pub fn variants() -> Vec<&'static str> {
    macro_rules! names {
        ($($t:ty),* $(,)?) => {
            vec![$(<$t as Variant<f32>>::NAME,)* PLAIN]
        };
    }
    lstm_variants!(names)
}

/// A variant on random weights for a workload.
///
/// # Errors
/// Only for an unknown variant name.
pub fn cell(
    variant: &str,
    w: &Workload,
) -> Result<Box<dyn RecurrentCell<f32, State = LstmState<f32>>>> {
    let (i, h) = (w.input, w.hidden);
    macro_rules! by_name {
        ($($t:ty),* $(,)?) => {
            $(
                if variant == <$t as Variant<f32>>::NAME {
                    return Ok(Box::new(<$t as Variant<f32>>::seeded(i, h, 7)?));
                }
            )*
        };
    }
    lstm_variants!(by_name);
    if variant == PLAIN {
        let mut rng = SplitMix64::new(7);
        let k = 1.0 / (h as f64).sqrt();
        return Ok(Box::new(PlainCell {
            w: rng.uniform_array((4 * h, i), k),
            u: rng.uniform_array((4 * h, h), k),
            b: rng.uniform_array(4 * h, k),
        }));
    }
    Err(lstm_core::LstmError::invalid(
        "variant",
        format!("unknown variant {variant:?}"),
    ))
}

/// One bidirectional layer on random weights for a workload: the layer-stack benchmark.
///
/// # Errors
/// Never for the canonical workloads (sizes are positive).
pub fn bidirectional(w: &Workload, rng: &mut SplitMix64) -> Result<lstm_layers::LstmStack<f32>> {
    lstm_layers::LstmStack::random(w.input, w.hidden, 1, 2, rng)
}
