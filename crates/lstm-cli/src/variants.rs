//! The cell variants the command line knows. A variant crate implements
//! `lstm_core::Variant` for its cell and adds its type here, one line; `lstm bench` and the
//! help find its name, its description and its constructor through the trait.

/// Calls `$m!(Type, ...)` with every registered cell type.
macro_rules! registered {
    ($m:ident) => {
        $m!(
            lstm_concat::ConcatCell<f32>,
            lstm_split::SplitCell<f32>,
            lstm_peephole::PeepholeCell<f32>,
            lstm_peephole::StateGatedCell<f32>,
            lstm_gru::GruCell<f32>,
        )
    };
}
