//! The portable products: plain Rust over the packed layout, written so the compiler can
//! vectorise the inner loops (and compiled a second time for AVX2 in `x86`).

use crate::{Element, NR, sealed::GemmArgs};

/// See [`crate::gemm`]. Panel by panel, so a panel stays in cache across the rows.
#[inline(always)]
pub(crate) fn gemm<T: Element>(p: GemmArgs<'_, T>) {
    let GemmArgs {
        m,
        a,
        lda,
        b,
        c,
        ldc,
        init,
        panels,
        packed: _,
    } = p;
    let k = b.rows();
    let data = b.data();
    for q in 0..panels.count() {
        let panel = &data[panels.panel(q) * k * NR..][..k * NR];
        let col = q * NR;
        for r in 0..m {
            let arow = &a[r * lda..r * lda + k];
            let crow = &mut c[r * ldc + col..r * ldc + col + NR];
            let mut acc = [T::default(); NR];
            acc.copy_from_slice(match init {
                Some(i) => &i[col..col + NR],
                None => crow,
            });
            for (&av, bk) in arow.iter().zip(panel.chunks_exact(NR)) {
                for q in 0..NR {
                    acc[q] = acc[q] + av * bk[q];
                }
            }
            crow.copy_from_slice(&acc);
        }
    }
}

/// See [`crate::pack_rows`]: the portable products read `A` row-major, so packed rows are the
/// rows side by side (`lda = K`).
pub(crate) fn pack_rows<T: Element>(m: usize, k: usize, a: &[T], lda: usize, dst: &mut [T]) {
    for (r, d) in dst.chunks_exact_mut(k).take(m).enumerate() {
        d.copy_from_slice(&a[r * lda..r * lda + k]);
    }
}
