//! The `torch.save` reader on damaged files: any truncation and any changed bytes give a
//! result or an error, never a panic, and never more tensor data than the file holds.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use std::path::Path;

use lstm_layers::torch::{PtTensor, read_pt};
use proptest::prelude::*;

fn fixture(case: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/published")
            .join(case)
            .join("model.pt"),
    )
    .unwrap()
}

/// Reads `bytes`; on success, the values read are no more than the file's bytes allow.
fn read_bounded(bytes: &[u8]) {
    if let Ok(t) = read_pt::<f32>(bytes, "damaged") {
        let values: usize = t
            .values()
            .map(|v| match v {
                PtTensor::Float { values, .. } => values.len(),
                PtTensor::Other(_) => 0,
            })
            .sum();
        assert!(
            values * 2 <= bytes.len(),
            "{values} values from {} bytes",
            bytes.len()
        );
    }
}

#[test]
fn the_fixtures_read_whole() {
    for case in ["pt_zip_f32", "pt_legacy_f32", "pt_zip_bf16"] {
        let t = read_pt::<f64>(&fixture(case), case).unwrap();
        assert!(t.contains_key("rnn.weight_ih_l0"), "{case}: {:?}", t.keys());
        assert!(t.contains_key("out.weight"), "{case}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn damaged_files_never_panic(
        legacy in any::<bool>(),
        cut in 0.0f64..1.0,
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
    ) {
        let mut bytes = fixture(if legacy { "pt_legacy_f32" } else { "pt_zip_f32" });
        for (at, v) in flips {
            let k = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[k] = v;
        }
        read_bounded(&bytes);
        let n = (bytes.len() as f64 * cut) as usize;
        read_bounded(&bytes[..n]);
    }
}
