//! The packed weight layout.

use crate::Element;

/// Columns per panel of a [`Packed`] matrix (two AVX-512 vectors of `f32`).
pub const NR: usize = 32;

/// A `K x N` matrix packed once into the order the kernels read it: panels of [`NR`] columns,
/// each panel `K` rows of `NR` contiguous values, the last panel zero-padded. Element `(k, n)`
/// is at `(n / NR) * K * NR + k * NR + n % NR`.
///
/// The panels start on a 64-byte boundary; data of 4 MiB and more, on Linux, on a 2 MiB one, in
/// transparent huge pages where the kernel provides them.
#[derive(Debug)]
pub struct Packed<T> {
    rows: usize,
    cols: usize,
    buf: Vec<T>,
    offset: usize,
}

impl<T: Element> Packed<T> {
    /// Packs the `rows x cols` matrix whose element `(k, n)` is `f(k, n)`.
    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> T) -> Self {
        let panels = cols.div_ceil(NR);
        let len = panels * rows * NR;
        let (mut buf, offset) = storage(len);
        let data = &mut buf[offset..offset + len];
        for p in 0..panels {
            let panel = &mut data[p * rows * NR..(p + 1) * rows * NR];
            for k in 0..rows {
                for q in 0..NR.min(cols - p * NR) {
                    panel[k * NR + q] = f(k, p * NR + q);
                }
            }
        }
        Self {
            rows,
            cols,
            buf,
            offset,
        }
    }

    /// `K`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `N`.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `N` rounded up to a whole number of panels: the width of the rows the products write.
    pub fn padded_cols(&self) -> usize {
        self.cols.div_ceil(NR) * NR
    }

    /// The packed values, panel after panel.
    pub fn data(&self) -> &[T] {
        &self.buf[self.offset..self.offset + self.len()]
    }

    /// Element `(k, n)`.
    ///
    /// # Panics
    /// When `k >= K` or `n >= N`.
    pub fn get(&self, k: usize, n: usize) -> T {
        assert!(k < self.rows && n < self.cols, "index out of range");
        self.data()[(n / NR) * self.rows * NR + k * NR + n % NR]
    }
}

impl<T> Packed<T> {
    /// The packed values with the padding columns: `K` times `N` rounded up to whole panels.
    fn len(&self) -> usize {
        self.rows * self.cols.div_ceil(NR) * NR
    }
}

impl<T: Clone> Clone for Packed<T> {
    /// Copies the values and moves them to the alignment of the new allocation.
    fn clone(&self) -> Self {
        let len = self.len();
        let mut buf = self.buf.clone();
        let offset = aligned_offset(&buf, len);
        if offset > self.offset {
            buf[self.offset..offset + len].rotate_right(offset - self.offset);
        } else if offset < self.offset {
            buf[offset..self.offset + len].rotate_left(self.offset - offset);
        }
        // Written already, so khugepaged, not the first write, moves these to huge pages.
        advise_huge_pages(&buf[offset..offset + len]);
        Self {
            rows: self.rows,
            cols: self.cols,
            buf,
            offset,
        }
    }
}

/// Packed data of at least this many bytes starts on a [`HUGE_PAGE`] boundary, and on Linux asks
/// for transparent huge pages. Below it the weights fit the TLB's reach either way.
const HUGE_MIN_BYTES: usize = 4 << 20;

/// The size of a transparent huge page on x86-64 (and the usual one elsewhere).
const HUGE_PAGE: usize = 2 << 20;

/// Where `len` packed values start, in bytes: a cache line, or for large data on Linux a huge
/// page. A buffer holds this many bytes of slack besides the values.
fn alignment<T>(len: usize) -> usize {
    if cfg!(target_os = "linux") && len * size_of::<T>() >= HUGE_MIN_BYTES {
        HUGE_PAGE
    } else {
        64
    }
}

/// The offset in `buf` (`len` values plus the slack) at which the values are aligned.
fn aligned_offset<T>(buf: &[T], len: usize) -> usize {
    let (size, align) = (size_of::<T>().max(1), alignment::<T>(len));
    let misalign = (buf.as_ptr() as usize % align) / size;
    if misalign == 0 {
        0
    } else {
        align / size - misalign
    }
}

/// A zeroed buffer for `len` values and the offset at which they are aligned. The slack in
/// front of the values is never written: where the allocator hands out fresh pages (large
/// allocations, usually), it takes no memory.
fn storage<T: Clone + Default>(len: usize) -> (Vec<T>, usize) {
    let buf = vec![T::default(); len + alignment::<T>(len) / size_of::<T>().max(1)];
    let offset = aligned_offset(&buf, len);
    advise_huge_pages(&buf[offset..offset + len]);
    (buf, offset)
}

/// For large `data` (see [`alignment`]), which then starts on a page boundary: asks the kernel
/// to back it with transparent huge pages as it is first written. Streaming batch-large's
/// 16 MiB of recurrent weights every step then needs 8 address translations instead of 4096,
/// which measured 2.5% faster end to end on one thread (CHANGELOG, performance history). Only advice:
/// where the kernel has them switched off, the data stays on ordinary pages, and memory the
/// allocator had handed out before moves to huge pages later, by the kernel's background scan.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(data: &[T]) {
    if alignment::<T>(data.len()) < HUGE_PAGE {
        return;
    }
    // Whole pages only, so that the advice never reaches memory outside `data`.
    let bytes = size_of_val(data) & !4095;
    // SAFETY: `MADV_HUGEPAGE` changes how the kernel backs the range, never its contents or
    // whether it is mapped; the range lies inside `data`.
    let _ = unsafe {
        libc::madvise(
            data.as_ptr() as *mut libc::c_void,
            bytes,
            libc::MADV_HUGEPAGE,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_: &[T]) {}

/// A selection of the panels of a [`Packed`] matrix, for [`crate::gemm_panels`]: `runs` runs of
/// `len` consecutive panels, run `r` starting at panel `first + r * stride`.
///
/// Selected panel `q` (counting through the runs in order) is packed panel
/// [`panel(q)`](Self::panel) and fills columns `q * NR..(q + 1) * NR` of the product.
///
/// ```
/// use lstm_kernels::{NR, Packed, Panels};
///
/// // Four gate blocks of 128 columns; the second half of each block's columns.
/// let w = Packed::from_fn(8, 4 * 128, |k, n| (k + n) as f32);
/// let sel = Panels { first: 2, len: 2, runs: 4, stride: 4 };
/// assert_eq!(sel.width(), 4 * 64);
/// assert_eq!((0..sel.count()).map(|q| sel.panel(q)).collect::<Vec<_>>(), [2, 3, 6, 7, 10, 11, 14, 15]);
/// assert!(sel.end() * NR <= w.padded_cols());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Panels {
    /// The first panel of the first run.
    pub first: usize,
    /// Panels per run.
    pub len: usize,
    /// Number of runs.
    pub runs: usize,
    /// Panels from the start of one run to the start of the next.
    pub stride: usize,
}

impl Panels {
    /// Every panel of `b`, in order.
    pub fn all<T: Element>(b: &Packed<T>) -> Self {
        Self {
            first: 0,
            len: b.padded_cols() / NR,
            runs: 1,
            stride: 0,
        }
    }

    /// Panels selected.
    pub fn count(&self) -> usize {
        self.len * self.runs
    }

    /// Columns of the product: [`count`](Self::count) times [`NR`].
    pub fn width(&self) -> usize {
        self.count() * NR
    }

    /// The packed panel that selected panel `q` reads.
    #[inline]
    pub fn panel(&self, q: usize) -> usize {
        self.first + (q / self.len) * self.stride + q % self.len
    }

    /// One past the last packed panel the selection reads (0 when it selects none).
    pub fn end(&self) -> usize {
        match self.count() {
            0 => 0,
            _ => self.first + (self.runs - 1) * self.stride + self.len,
        }
    }
}
