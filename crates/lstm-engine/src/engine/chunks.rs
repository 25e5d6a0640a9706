//! The chunk schedule of the whole-sequence paths: a sequence's steps a chunk at a time, so
//! that a chunk's input products stay in cache until the recurrence reads them.

use ndarray::{ArrayView3, s};

use crate::{Direction, Scalar};

/// Elements of the copy buffer [`for_each_chunk`] needs: none for a contiguous time-major input.
pub(crate) fn chunk_copy_len<F: Scalar>(input: ArrayView3<'_, F>, chunk: usize) -> usize {
    let (_, b, i) = input.dim();
    if input.is_standard_layout() {
        0
    } else {
        chunk * b * i
    }
}

/// The chunk schedule of the whole-sequence paths: the steps of `input [T, B, I]` in chunks of at
/// most `chunk`, taken in reading order, each passed to `f` as its inputs (`len * B` rows of `I`,
/// copied to `xbuf` when `input` is strided) and its range of time indices. Stops when `f`
/// returns `false`.
pub(crate) fn for_each_chunk<F: Scalar>(
    input: ArrayView3<'_, F>,
    chunk: usize,
    direction: Direction,
    xbuf: &mut [F],
    mut f: impl FnMut(&[F], std::ops::Range<usize>) -> bool,
) {
    let (t, b, i) = input.dim();
    let time_major = input.to_slice();
    let mut k = 0;
    while k < t {
        let len = chunk.min(t - k);
        let (lo, hi) = match direction {
            Direction::Forward => (k, k + len),
            Direction::Reverse => (t - k - len, t - k),
        };
        let xs: &[F] = match time_major {
            Some(xs) => &xs[lo * b * i..hi * b * i],
            None => {
                let dst = &mut xbuf[..len * b * i];
                crate::copy_rows(input.slice(s![lo..hi, .., ..]), dst);
                dst
            }
        };
        if !f(xs, lo..hi) {
            return;
        }
        k += len;
    }
}

/// The time indices of `steps` in reading order.
pub(crate) fn reading_order(
    direction: Direction,
    steps: std::ops::Range<usize>,
) -> impl Iterator<Item = usize> {
    let (lo, hi) = (steps.start, steps.end);
    steps.map(move |j| match direction {
        Direction::Forward => j,
        Direction::Reverse => lo + hi - 1 - j,
    })
}

/// Pre-activation values the chunked sequence path keeps at a time (512 KiB of `f32`): with the
/// recurrent weights, a chunk stays in a core's L2 cache.
pub const CHUNK: usize = 1 << 17;
