//! Lossless conversions between ONNX's gate layout and this workspace's. PyTorch's (and Keras')
//! order is already ours, so it needs none; Keras' kernels are stored transposed (`[I, 4H]`),
//! which no importer here reads.
//!
//! | framework | gate order | biases |
//! |---|---|---|
//! | this workspace | i, f, g, o | any number, summed |
//! | PyTorch `nn.LSTM` | i, f, g, o | `bias_ih`, `bias_hh` |
//! | Keras `LSTM` | i, f, c, o (same as ours) | one |
//! | ONNX `LSTM` | i, o, f, c | `B = [Wb \| Rb]`; peepholes i, o, f |

use lstm_core::ndarray::{
    Array, Array1, Array2, ArrayView, ArrayView1, ArrayView2, Axis, RemoveAxis, concatenate, s,
};
use lstm_core::{LstmError, Result, check_shape};

/// For each of our gates i, f, g, o, its block index in ONNX's order i, o, f, c.
const ONNX_BLOCK_OF_OURS: [usize; 4] = [0, 2, 3, 1];
/// For each ONNX gate i, o, f, c, its block index in our order.
const OUR_BLOCK_OF_ONNX: [usize; 4] = [0, 3, 1, 2];

fn reorder<F: Clone, D: RemoveAxis>(
    a: ArrayView<'_, F, D>,
    source_of: [usize; 4],
    what: &str,
) -> Result<Array<F, D>> {
    let rows = a.len_of(Axis(0));
    if !rows.is_multiple_of(4) || rows == 0 {
        return Err(LstmError::shape(
            what,
            "4H rows (four gate blocks)",
            a.shape(),
        ));
    }
    let h = rows / 4;
    let blocks: Vec<_> = source_of
        .iter()
        .map(|&k| a.slice_axis(Axis(0), (k * h..(k + 1) * h).into()))
        .collect();
    concatenate(Axis(0), &blocks).map_err(|e| LstmError::invalid(what, e))
}

/// Reorders the gate blocks along axis 0 from ONNX's i, o, f, c to our i, f, g, o.
///
/// # Errors
/// [`LstmError::Shape`] when axis 0 is not a positive multiple of 4.
pub fn gates_from_onnx<F: Clone, D: RemoveAxis>(a: ArrayView<'_, F, D>) -> Result<Array<F, D>> {
    reorder(a, ONNX_BLOCK_OF_OURS, "ONNX gate blocks")
}

/// Reorders the gate blocks along axis 0 from our i, f, g, o to ONNX's i, o, f, c.
///
/// # Errors
/// [`LstmError::Shape`] when axis 0 is not a positive multiple of 4.
pub fn gates_to_onnx<F: Clone, D: RemoveAxis>(a: ArrayView<'_, F, D>) -> Result<Array<F, D>> {
    reorder(a, OUR_BLOCK_OF_ONNX, "gate blocks")
}

/// Splits an ONNX bias `B = [Wb | Rb]` of `8H` into `(Wb, Rb)`, each in our gate order.
///
/// # Errors
/// [`LstmError::Shape`] when the length is not a positive multiple of 8.
pub fn bias_from_onnx<F: Clone>(b: ArrayView1<'_, F>) -> Result<(Array1<F>, Array1<F>)> {
    if b.is_empty() || !b.len().is_multiple_of(8) {
        return Err(LstmError::shape("ONNX bias B", "[8H]", b.shape()));
    }
    let half = b.len() / 2;
    Ok((
        gates_from_onnx(b.slice(s![..half]))?,
        gates_from_onnx(b.slice(s![half..]))?,
    ))
}

/// Joins our `(Wb, Rb)` into an ONNX bias `[Wb | Rb]` in ONNX's gate order.
///
/// # Errors
/// [`LstmError::Shape`] when the two differ in length or are not `4H` long.
pub fn bias_to_onnx<F: Clone>(wb: ArrayView1<'_, F>, rb: ArrayView1<'_, F>) -> Result<Array1<F>> {
    check_shape("recurrent bias", rb.shape(), wb.shape())?;
    let (a, b) = (gates_to_onnx(wb)?, gates_to_onnx(rb)?);
    concatenate(Axis(0), &[a.view(), b.view()]).map_err(|e| LstmError::invalid("bias", e))
}

/// ONNX peepholes `[3H]` (i, o, f) to ours `[3, H]` (i, f, o).
///
/// # Errors
/// [`LstmError::Shape`] when the length is not a positive multiple of 3.
pub fn peephole_from_onnx<F: Clone>(p: ArrayView1<'_, F>) -> Result<Array2<F>> {
    if p.is_empty() || !p.len().is_multiple_of(3) {
        return Err(LstmError::shape("ONNX peepholes P", "[3H]", p.shape()));
    }
    let h = p.len() / 3;
    let rows = [
        p.slice(s![..h]),
        p.slice(s![2 * h..]),
        p.slice(s![h..2 * h]),
    ];
    lstm_core::ndarray::stack(Axis(0), &rows).map_err(|e| LstmError::invalid("peepholes", e))
}

/// Our peepholes `[3, H]` (i, f, o) to ONNX's `[3H]` (i, o, f).
///
/// # Errors
/// [`LstmError::Shape`] when `p` is not `[3, H]`.
pub fn peephole_to_onnx<F: Clone>(p: ArrayView2<'_, F>) -> Result<Array1<F>> {
    if p.nrows() != 3 {
        return Err(LstmError::shape("peepholes", "[3, H]", p.shape()));
    }
    concatenate(Axis(0), &[p.row(0), p.row(2), p.row(1)])
        .map_err(|e| LstmError::invalid("peepholes", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lstm_core::ndarray::{Array1, Array2};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn round_trips(h in 1..6usize, k in 1..5usize, seed in 0..1000u32) {
            let w = Array2::from_shape_fn((4 * h, k), |(r, c)| f64::from(seed) + (r * 31 + c) as f64);
            let there = gates_to_onnx(w.view()).unwrap();
            prop_assert_ne!(&there, &w);
            prop_assert_eq!(gates_from_onnx(there.view()).unwrap(), w.clone());
            let wb = Array1::from_shape_fn(4 * h, |r| r as f64);
            let rb = Array1::from_shape_fn(4 * h, |r| -(r as f64));
            let b = bias_to_onnx(wb.view(), rb.view()).unwrap();
            prop_assert_eq!(bias_from_onnx(b.view()).unwrap(), (wb, rb));
            let p = Array2::from_shape_fn((3, h), |(r, c)| (r * 10 + c) as f64);
            prop_assert_eq!(peephole_from_onnx(peephole_to_onnx(p.view()).unwrap().view()).unwrap(), p);
        }
    }

    #[test]
    fn onnx_blocks_land_where_they_belong() {
        // ONNX rows: i=0, o=1, f=2, c=3 (H = 1).
        let onnx = Array1::from(vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(
            gates_from_onnx(onnx.view()).unwrap().to_vec(),
            vec![0.0, 2.0, 3.0, 1.0]
        );
        let p = Array1::from(vec![10.0, 11.0, 12.0]); // i, o, f
        assert_eq!(
            peephole_from_onnx(p.view()).unwrap().column(0).to_vec(),
            vec![10.0, 12.0, 11.0]
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(gates_from_onnx(Array1::<f64>::zeros(6).view()).is_err());
        assert!(bias_from_onnx(Array1::<f64>::zeros(12).view()).is_err());
        assert!(peephole_from_onnx(Array1::<f64>::zeros(4).view()).is_err());
        assert!(peephole_to_onnx(Array2::<f64>::zeros((2, 4)).view()).is_err());
        assert!(
            bias_to_onnx(
                Array1::<f64>::zeros(4).view(),
                Array1::<f64>::zeros(8).view()
            )
            .is_err()
        );
    }
}
