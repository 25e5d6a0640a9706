//! Scratch memory reused across calls.

use ndarray::{ArrayView, ArrayViewMut2, Dimension};

use crate::Scalar;

/// Scratch buffers for stepping and unrolling.
///
/// A workspace grows to the largest size it has been asked for and then stays there, so a caller
/// that keeps one across calls makes the steady state free of heap allocation.
#[derive(Clone, Debug, Default)]
pub struct Workspace<F> {
    buf: Vec<F>,
    idx: Vec<usize>,
    child: Option<Box<Workspace<F>>>,
    threads: Vec<Workspace<F>>,
}

impl<F: Copy + Default> Workspace<F> {
    /// An empty workspace.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            idx: Vec::new(),
            child: None,
            threads: Vec::new(),
        }
    }

    /// `N` disjoint zero-initialised slices of the given lengths, an index buffer of `idx_len`
    /// entries, and a nested workspace for the callee of the one who splits.
    pub fn split<const N: usize>(
        &mut self,
        lens: [usize; N],
        idx_len: usize,
    ) -> ([&mut [F]; N], &mut [usize], &mut Workspace<F>) {
        self.carve(lens, idx_len, true)
    }

    /// Like [`Workspace::split`] without the index buffer and without zeroing: the slices hold
    /// whatever the previous user left, for buffers the caller overwrites anyway.
    pub fn split_reused<const N: usize>(
        &mut self,
        lens: [usize; N],
    ) -> ([&mut [F]; N], &mut [usize], &mut Workspace<F>) {
        self.carve(lens, 0, false)
    }

    /// One workspace per worker thread, `n` of them, kept across calls.
    pub fn per_thread(&mut self, n: usize) -> &mut [Workspace<F>] {
        if self.threads.len() < n {
            self.threads.resize_with(n, Workspace::new);
        }
        &mut self.threads[..n]
    }

    fn carve<const N: usize>(
        &mut self,
        lens: [usize; N],
        idx_len: usize,
        zero: bool,
    ) -> ([&mut [F]; N], &mut [usize], &mut Workspace<F>) {
        let total: usize = lens.iter().sum();
        if self.buf.len() < total {
            self.buf.resize(total, F::default());
        }
        if self.idx.len() < idx_len {
            self.idx.resize(idx_len, 0);
        }
        let mut rest: &mut [F] = &mut self.buf[..total];
        let out = lens.map(|n| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            if zero {
                head.fill(F::default());
            }
            rest = tail;
            head
        });
        let child = self.child.get_or_insert_with(|| Box::new(Workspace::new()));
        (out, &mut self.idx[..idx_len], child)
    }

    /// Elements held, nested workspaces included.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
            + self.child.as_ref().map_or(0, |c| c.capacity())
            + self.threads.iter().map(Workspace::capacity).sum::<usize>()
    }
}

/// Copies `src` into the front of `dst` in logical (row-major) order, a row of the last axis at a
/// time: a strided view (a batch block of a larger input, say) costs one `memcpy` per row
/// instead of an index computation per element. A building block of the chunked sequence paths.
///
/// # Panics
/// When `dst` holds fewer than `src.len()` values.
pub fn copy_rows<F: Scalar, D: Dimension>(src: ArrayView<'_, F, D>, dst: &mut [F]) {
    if let Some(s) = src.as_slice() {
        dst[..s.len()].copy_from_slice(s);
        return;
    }
    let n = src.shape().last().copied().unwrap_or(1).max(1);
    for (d, row) in dst.chunks_exact_mut(n).zip(src.rows()) {
        match row.as_slice() {
            Some(s) => d.copy_from_slice(s),
            None => d.iter_mut().zip(row.iter()).for_each(|(d, &v)| *d = v),
        }
    }
}

/// Writes the rows of `src` (row-major, `dst.ncols()` values each) into `dst`: one `memcpy` when
/// `dst` is contiguous, else one per row where its rows are. A building block of the chunked
/// sequence paths.
///
/// # Panics
/// When `src` holds fewer than `dst.len()` values.
pub fn write_rows<F: Scalar>(mut dst: ArrayViewMut2<'_, F>, src: &[F]) {
    if let Some(d) = dst.as_slice_mut() {
        let len = d.len();
        d.copy_from_slice(&src[..len]);
        return;
    }
    let n = dst.ncols().max(1);
    for (mut row, s) in dst.rows_mut().into_iter().zip(src.chunks_exact(n)) {
        match row.as_slice_mut() {
            Some(d) => d.copy_from_slice(s),
            None => row.iter_mut().zip(s).for_each(|(d, &v)| *d = v),
        }
    }
}
