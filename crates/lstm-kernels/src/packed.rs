//! The packed weight layout.

use crate::Element;

/// Columns per panel of a [`Packed`] matrix (two AVX-512 vectors of `f32`).
pub const NR: usize = 32;

/// A `K x N` matrix packed once into the order the kernels read it: panels of [`NR`] columns,
/// each panel `K` rows of `NR` contiguous values, the last panel zero-padded. Element `(k, n)`
/// is at `(n / NR) * K * NR + k * NR + n % NR`.
///
/// The panels start on a 64-byte boundary where the allocator allows it.
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
        let slack = 64 / size_of::<T>();
        let mut buf = vec![T::default(); len + slack];
        let misalign = (buf.as_ptr() as usize % 64) / size_of::<T>();
        let offset = if misalign == 0 { 0 } else { slack - misalign };
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
        &self.buf[self.offset..self.offset + self.rows * self.padded_cols()]
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

impl<T: Clone> Clone for Packed<T> {
    /// Copies the values and moves them to the alignment of the new allocation.
    fn clone(&self) -> Self {
        let mut buf = self.buf.clone();
        let slack = 64 / size_of::<T>().max(1);
        let misalign = (buf.as_ptr() as usize % 64) / size_of::<T>().max(1);
        let offset = if misalign == 0 { 0 } else { slack - misalign };
        let len = buf.len() - slack;
        if offset > self.offset {
            buf[self.offset..offset + len].rotate_right(offset - self.offset);
        } else if offset < self.offset {
            buf[offset..self.offset + len].rotate_left(self.offset - offset);
        }
        Self {
            rows: self.rows,
            cols: self.cols,
            buf,
            offset,
        }
    }
}
