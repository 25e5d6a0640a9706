//! Every product level against a plain triple loop in `f64`, over shapes that hit every tile
//! height, the panel padding, `K = 0`, strides and both `init` forms.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_kernels::{
    Element, Level, NR, Packed, Panels, gemm, gemm_panels, gemm_rows, pack_rows, with_max_level,
};

mod common;

/// A small deterministic generator (no dependencies).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn check<T: Element + Into<f64>>(cast: fn(f64) -> T, tol: f64) {
    for (m, k, n) in [
        (1, 1, 1),
        (1, 7, 33),
        (1, 192, 512),
        (2, 5, 64),
        (3, 0, 40),
        (4, 50, 32),
        (5, 9, 31),
        (12, 17, 96),
        (13, 64, 70),
        (23, 40, 64),
        (25, 33, 32),
        (40, 128, 160),
        (300, 20, 64),
    ] {
        let a: Vec<T> = values(m * (k + 3), 1).into_iter().map(cast).collect();
        let w: Vec<T> = values(k * n, 2).into_iter().map(cast).collect();
        let packed = Packed::from_fn(k, n, |r, c| w[r * n + c]);
        let np = packed.padded_cols();
        assert_eq!(np % 32, 0);
        assert!(np >= n && np < n + 32);
        let bias: Vec<T> = values(np, 3).into_iter().map(cast).collect();
        let ldc = np + 5;
        let c0: Vec<T> = values(m * ldc, 4).into_iter().map(cast).collect();
        for with_init in [false, true] {
            let mut c = c0.clone();
            gemm(
                m,
                &a,
                k + 3,
                &packed,
                &mut c,
                ldc,
                with_init.then_some(&bias[..]),
            );
            for r in 0..m {
                for j in 0..n {
                    let base: f64 = if with_init {
                        bias[j].into()
                    } else {
                        c0[r * ldc + j].into()
                    };
                    let want = base
                        + (0..k)
                            .map(|q| a[r * (k + 3) + q].into() * w[q * n + j].into())
                            .sum::<f64>();
                    let got: f64 = c[r * ldc + j].into();
                    assert!(
                        (got - want).abs() <= tol * (1.0 + k as f64).sqrt(),
                        "m {m} k {k} n {n} init {with_init} at ({r}, {j}): {got} vs {want}"
                    );
                }
                // The stride gap after the padded row is never touched.
                for j in np..ldc {
                    assert_eq!(c[r * ldc + j], c0[r * ldc + j]);
                }
            }
        }
    }
}

/// Runs `f` with this thread's kernels capped at each level in turn (each level the CPU has:
/// lacking AVX-512 fails the test unless the run allows it).
fn at_every_level(f: impl Fn()) {
    for level in [Level::Portable, Level::Avx2, Level::Avx512] {
        if common::cpu_has(level, "at_every_level") {
            with_max_level(level, || {
                assert_eq!(lstm_kernels::level(), level);
                f();
            });
        }
    }
}

#[test]
fn every_level_matches_the_plain_product() {
    at_every_level(|| {
        check::<f32>(|v| v as f32, 1e-6);
        check::<f64>(|v| v, 1e-14);
    });
}

#[test]
fn packed_layout_round_trips() {
    let p = Packed::from_fn(3, 40, |k, n| (k * 100 + n) as f32);
    assert_eq!((p.rows(), p.cols(), p.padded_cols()), (3, 40, 64));
    assert_eq!(p.data().len(), 3 * 64);
    for k in 0..3 {
        for n in 0..40 {
            assert_eq!(p.get(k, n), (k * 100 + n) as f32);
        }
    }
    // Padding columns are zero.
    assert_eq!(p.data()[3 * 32 + 8], 0.0);
    // Clones land on a new allocation (possibly aligned differently) with the same values.
    for _ in 0..8 {
        let q = p.clone();
        let _spacer = [0u8; 4];
        assert_eq!(q.data(), p.data());
    }
}

/// Large packed data starts on a 2 MiB boundary and, where the kernel has transparent huge
/// pages, its mapping carries the huge-page advice (`hg` in `/proc/self/smaps`); small data
/// starts on a cache line. Values and clones are unaffected.
#[test]
fn large_packed_data_is_aligned_for_huge_pages() {
    let small = Packed::from_fn(16, 64, |k, n| (k + n) as f32);
    assert_eq!(small.data().as_ptr() as usize % 64, 0);
    // 1024 x 1120 f32 is 4.4 MiB.
    let (rows, cols) = (1024, 1100);
    let big = Packed::from_fn(rows, cols, |k, n| (k * cols + n) as f32);
    for p in [&big, &big.clone()] {
        assert_eq!(
            (p.get(0, 0), p.get(rows - 1, cols - 1)),
            (0.0, (rows * cols - 1) as f32)
        );
        assert_eq!(p.data(), big.data());
        let at = p.data().as_ptr() as usize;
        if cfg!(target_os = "linux") {
            assert_eq!(at % (2 << 20), 0);
            if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
                assert!(
                    mapping_flags(at).split_whitespace().any(|f| f == "hg"),
                    "no huge-page advice at {at:#x}"
                );
            }
        } else {
            assert_eq!(at % 64, 0);
        }
    }
}

/// The `VmFlags` of the mapping holding address `at`, from `/proc/self/smaps`.
fn mapping_flags(at: usize) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut inside = false;
    for line in smaps.lines() {
        // A mapping's header starts with its range, `lo-hi` in hex; its fields with `Name:`.
        let range = line
            .split_whitespace()
            .next()
            .and_then(|r| r.split_once('-'));
        if let Some((Ok(lo), Ok(hi))) =
            range.map(|(lo, hi)| (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)))
        {
            inside = (lo..hi).contains(&at);
        } else if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
            return flags.to_string();
        }
    }
    panic!("no mapping holds {at:#x}");
}

#[test]
#[should_panic(expected = "C too short")]
fn short_output_is_refused() {
    let p = Packed::from_fn(2, 3, |_, _| 1.0f32);
    let mut c = vec![0.0f32; 3];
    gemm(1, &[1.0, 1.0], 2, &p, &mut c, 32, None);
}

#[test]
#[should_panic(expected = "A too short")]
fn short_input_is_refused() {
    let p = Packed::from_fn(4, 3, |_, _| 1.0f32);
    let mut c = vec![0.0f32; 64];
    gemm(2, &[1.0; 5], 4, &p, &mut c, 32, None);
}

/// A selection of panels is the product with only those columns of `B`, in selection order,
/// and equals the full product's columns bit for bit (the same sums in the same order).
fn check_panels<T: Element + Into<f64>>(cast: fn(f64) -> T) {
    let (k, n) = (37, 8 * NR);
    let w: Vec<T> = values(k * n, 5).into_iter().map(cast).collect();
    let packed = Packed::from_fn(k, n, |r, c| w[r * n + c]);
    let bias: Vec<T> = values(n, 6).into_iter().map(cast).collect();
    for m in [1, 3, 12, 29] {
        let a: Vec<T> = values(m * k, 7).into_iter().map(cast).collect();
        let mut full = vec![T::default(); m * n];
        gemm(m, &a, k, &packed, &mut full, n, Some(&bias));
        for sel in [
            Panels {
                first: 0,
                len: 8,
                runs: 1,
                stride: 0,
            },
            Panels {
                first: 1,
                len: 1,
                runs: 4,
                stride: 2,
            },
            Panels {
                first: 2,
                len: 2,
                runs: 2,
                stride: 4,
            },
            Panels {
                first: 7,
                len: 1,
                runs: 1,
                stride: 0,
            },
            Panels {
                first: 0,
                len: 3,
                runs: 2,
                stride: 5,
            },
        ] {
            let cols: Vec<usize> = (0..sel.count())
                .flat_map(|q| (0..NR).map(move |j| sel.panel(q) * NR + j))
                .collect();
            let init: Vec<T> = cols.iter().map(|&j| bias[j]).collect();
            let width = sel.width();
            let mut c = vec![T::default(); m * width];
            gemm_panels(m, &a, k, &packed, sel, &mut c, width, Some(&init));
            for r in 0..m {
                for (q, &j) in cols.iter().enumerate() {
                    assert_eq!(
                        c[r * width + q],
                        full[r * n + j],
                        "m {m} {sel:?} ({r}, {j})"
                    );
                }
            }
        }
    }
}

#[test]
fn panel_selections_match_the_full_product() {
    at_every_level(|| {
        check_panels::<f32>(|v| v as f32);
        check_panels::<f64>(|v| v);
    });
}

#[test]
#[should_panic(expected = "panel selection past the matrix")]
fn selection_past_the_matrix_is_refused() {
    let p = Packed::from_fn(2, 64, |_, _| 1.0f32);
    let mut c = vec![0.0f32; 64];
    let sel = Panels {
        first: 1,
        len: 1,
        runs: 2,
        stride: 1,
    };
    gemm_panels(1, &[1.0, 1.0], 2, &p, sel, &mut c, 64, None);
}

/// Rows packed once ([`pack_rows`]) give every selection's product bit for bit as
/// [`gemm_panels`] does, over shapes with one and several tiles and blocks, both `init` forms,
/// and a packing buffer reused with stale values in it.
fn check_packed_rows<T: Element + Into<f64>>(cast: fn(f64) -> T) {
    let n = 6 * NR;
    let sels = [
        Panels {
            first: 0,
            len: 6,
            runs: 1,
            stride: 0,
        },
        Panels {
            first: 1,
            len: 1,
            runs: 3,
            stride: 2,
        },
        Panels {
            first: 4,
            len: 2,
            runs: 1,
            stride: 0,
        },
    ];
    let mut buf = vec![cast(f64::NAN); 1];
    for (m, k) in [
        (1, 7),
        (2, 1),
        (5, 37),
        (13, 64),
        (29, 300),
        (300, 1000),
        (4, 0),
        (0, 9),
    ] {
        let lda = k + 2;
        let a: Vec<T> = values(m * lda, 7).into_iter().map(cast).collect();
        let w: Vec<T> = values(k * n, 8).into_iter().map(cast).collect();
        let packed = Packed::from_fn(k, n, |r, c| w[r * n + c]);
        let bias: Vec<T> = values(n, 9).into_iter().map(cast).collect();
        if buf.len() < m * k {
            buf.resize(m * k, cast(f64::NAN));
        }
        let rows = pack_rows(m, k, &a, lda, &mut buf);
        assert_eq!((rows.rows(), rows.cols()), (m, k));
        for sel in sels {
            let ldc = sel.width() + 3;
            let c0: Vec<T> = values(m * ldc, 10).into_iter().map(cast).collect();
            for init in [None, Some(&bias[..])] {
                let mut want = c0.clone();
                gemm_panels(m, &a, lda, &packed, sel, &mut want, ldc, init);
                let mut got = c0.clone();
                gemm_rows(&rows, &packed, sel, &mut got, ldc, init);
                assert!(got == want, "m {m} k {k} {sel:?} init {}", init.is_some());
            }
        }
    }
}

#[test]
fn packed_rows_match_the_unpacked_product() {
    at_every_level(|| {
        check_packed_rows::<f32>(|v| v as f32);
        check_packed_rows::<f64>(|v| v);
    });
}

#[test]
#[should_panic(expected = "packed rows of the wrong length")]
fn packed_rows_of_another_length_are_refused() {
    let p = Packed::from_fn(3, 32, |_, _| 1.0f32);
    let mut buf = [0.0f32; 4];
    let rows = pack_rows(2, 2, &[1.0; 4], 2, &mut buf);
    let mut c = vec![0.0f32; 64];
    gemm_rows(&rows, &p, Panels::all(&p), &mut c, 32, None);
}

#[test]
#[should_panic(expected = "packing buffer too short")]
fn short_packing_buffer_is_refused() {
    let mut buf = [0.0f32; 3];
    pack_rows(2, 2, &[1.0; 4], 2, &mut buf);
}
