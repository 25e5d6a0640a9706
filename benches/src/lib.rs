//! Shared set-up of the criterion benchmarks. The variants come from the command line's
//! registry ([`lstm_cli::variants`]), so every registered cell is benchmarked.

pub use lstm_cli::variants;
use lstm_core::Result;
use lstm_core::dev::PlainCell;
use lstm_engine::init::SplitMix64;
use lstm_engine::workload::Workload;

/// The name of the unoptimised baseline, [`PlainCell`].
pub const PLAIN: &str = "plain";

/// The unoptimised baseline on random weights for a workload.
pub fn plain(w: &Workload) -> PlainCell<f32> {
    let (i, h) = (w.input, w.hidden);
    let mut rng = SplitMix64::new(7);
    let k = 1.0 / (h as f64).sqrt();
    PlainCell {
        w: rng.uniform_array((4 * h, i), k),
        u: rng.uniform_array((4 * h, h), k),
        b: rng.uniform_array(4 * h, k),
    }
}

/// One bidirectional layer on random weights for a workload: the layer-stack benchmark.
///
/// # Errors
/// Never for the canonical workloads (sizes are positive).
pub fn bidirectional(w: &Workload, rng: &mut SplitMix64) -> Result<lstm_layers::LstmStack<f32>> {
    lstm_layers::LstmStack::random(w.input, w.hidden, 1, 2, rng)
}
