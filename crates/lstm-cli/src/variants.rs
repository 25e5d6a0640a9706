//! The cell variants the command line and the benchmarks know.
//!
//! A variant crate implements [`lstm_core::Variant`] for its cell; registering it is one line
//! in the list below (with the crate in this crate's dependencies). `lstm bench`, its help and
//! the criterion benchmarks find every registered cell's name, description and constructor
//! through [`each`], and run it through [`lstm_core::RecurrentCell`], whatever its state.

use lstm_core::{Backward, Variant};

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

/// What a caller does with each registered cell type.
pub trait Visit {
    /// Called once for every registered type, in the order of the list.
    fn visit<C: Variant<f32> + Backward<f32> + Sync + 'static>(&mut self);
}

/// Calls [`Visit::visit`] with every registered cell type, in order.
pub fn each(v: &mut impl Visit) {
    macro_rules! visit_all {
        ($($t:ty),* $(,)?) => {
            $(v.visit::<$t>();)*
        };
    }
    registered!(visit_all);
}

/// The registered cells' names and descriptions ([`Variant::NAME`], [`Variant::ABOUT`]), in
/// order.
pub fn names() -> Vec<(&'static str, &'static str)> {
    struct Names(Vec<(&'static str, &'static str)>);
    impl Visit for Names {
        fn visit<C: Variant<f32> + Backward<f32> + Sync + 'static>(&mut self) {
            self.0.push((C::NAME, C::ABOUT));
        }
    }
    let mut n = Names(Vec::new());
    each(&mut n);
    n.0
}
