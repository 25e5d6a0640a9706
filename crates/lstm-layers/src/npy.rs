//! A minimal reader and writer for NumPy's `.npy` format (versions 1 to 3).
//!
//! Reads little- and big-endian `f4`, `f8`, `i4` and `i8` arrays in C or Fortran order; writes
//! little-endian C-order `f4`, `f8`, `i4` and `i8`. Written here rather than taken from
//! `ndarray-npy` to keep the dependency tree small (it pulls in a Python-literal parser).

use std::path::Path;

use lstm_core::ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};
use lstm_core::{LstmError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A `.npy` array of one of the supported element types.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyArray {
    /// `float32`.
    F32(ArrayD<f32>),
    /// `float64`.
    F64(ArrayD<f64>),
    /// `int32`.
    I32(ArrayD<i32>),
    /// `int64`.
    I64(ArrayD<i64>),
}

impl NpyArray {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::F32(a) => a.shape(),
            NpyArray::F64(a) => a.shape(),
            NpyArray::I32(a) => a.shape(),
            NpyArray::I64(a) => a.shape(),
        }
    }

    /// NumPy's name of the element type.
    pub fn dtype(&self) -> &'static str {
        match self {
            NpyArray::F32(_) => "float32",
            NpyArray::F64(_) => "float64",
            NpyArray::I32(_) => "int32",
            NpyArray::I64(_) => "int64",
        }
    }
}

/// An element type `.npy` files can hold.
pub trait NpyElement: Copy + Default {
    /// The `descr` string, little-endian.
    const DESCR: &'static str;
    /// Little-endian bytes.
    fn to_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            fn to_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, "<f4");
element!(f64, "<f8");
element!(i32, "<i4");
element!(i64, "<i8");

/// Reads a `.npy` file.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be read, [`LstmError::Format`] when it is not a valid
/// `.npy` file of a supported type.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| LstmError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Parses the bytes of a `.npy` file; `name` is used in error messages.
///
/// # Errors
/// [`LstmError::Format`] for anything malformed, truncated or unsupported.
pub fn parse(bytes: &[u8], name: &str) -> Result<NpyArray> {
    let bad = |reason: String| LstmError::format(format!("{name} (.npy)"), reason);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (missing the \\x93NUMPY magic)".into()));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(format!("unsupported format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("truncated header".into()))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text".into()))?;
    let Header {
        descr,
        fortran,
        shape,
    } = parse_header(header).map_err(|reason| bad(format!("header {header:?}: {reason}")))?;
    let descr = descr.as_str();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape too large".into()))?;
    let data = &bytes[end..];
    let (kind, big) = match descr.as_bytes().first() {
        Some(b'<') | Some(b'|') | Some(b'=') => (&descr[1..], false),
        Some(b'>') => (&descr[1..], true),
        _ => (descr, false),
    };
    let width = match kind {
        "f4" | "i4" => 4,
        "f8" | "i8" => 8,
        _ => {
            return Err(LstmError::unsupported(format!(
                "{name}: .npy element type {descr:?} (supported: float32, float64, int32, int64)"
            )));
        }
    };
    let need = count
        .checked_mul(width)
        .ok_or_else(|| bad("shape too large".into()))?;
    if data.len() < need {
        return Err(bad(format!(
            "truncated data: shape {shape:?} needs {need} bytes, file has {}",
            data.len()
        )));
    }
    let chunks = data[..need].chunks_exact(width);
    fn build<T>(
        shape: &[usize],
        fortran: bool,
        v: Vec<T>,
        bad: impl Fn(String) -> LstmError,
    ) -> Result<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape).set_f(fortran), v).map_err(|e| bad(e.to_string()))
    }
    macro_rules! decode {
        ($t:ty, $n:expr, $variant:ident) => {{
            let v: Vec<$t> = chunks
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }
                })
                .collect();
            NpyArray::$variant(
                build(&shape, fortran, v, bad)?
                    .as_standard_layout()
                    .into_owned(),
            )
        }};
    }
    Ok(match kind {
        "f4" => decode!(f32, 4, F32),
        "f8" => decode!(f64, 8, F64),
        "i4" => decode!(i32, 4, I32),
        _ => decode!(i64, 8, I64),
    })
}

/// The three entries of a `.npy` header.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran: bool,
    shape: Vec<usize>,
}

/// Parses the header as the Python literal it is, as `numpy.lib.format` reads it: a dict with
/// exactly the keys `descr` (a string), `fortran_order` (`True` or `False`) and `shape` (a tuple
/// of non-negative integers), in any order, an optional trailing comma, then only whitespace.
/// Anything else (another key, a key twice, another type, trailing text) is rejected, so no
/// value can be read from the wrong place.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Literal {
        s: text.as_bytes(),
        at: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_space();
        p.expect(b':')?;
        p.skip_space();
        let fresh = match key.as_str() {
            "descr" => descr.replace(p.string()?).is_none(),
            "fortran_order" => fortran.replace(p.boolean()?).is_none(),
            "shape" => shape.replace(p.tuple()?).is_none(),
            other => return Err(format!("unexpected key {other:?}")),
        };
        if !fresh {
            return Err(format!("key {key:?} given twice"));
        }
        p.skip_space();
        if !p.eat(b',') {
            p.skip_space();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_space();
    if p.at != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.at));
    }
    Ok(Header {
        descr: descr.ok_or("no 'descr'")?,
        fortran: fortran.ok_or("no 'fortran_order'")?,
        shape: shape.ok_or("no 'shape'")?,
    })
}

/// A cursor over the header's Python literal.
struct Literal<'a> {
    s: &'a [u8],
    at: usize,
}

impl Literal<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", char::from(c), self.at))
        }
    }

    /// A quoted string without escapes (no `descr` of a supported type has one).
    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = match self.s.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.at)),
        };
        let start = self.at + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote || c == b'\\' || c == b'\n')
            .filter(|&n| self.s[start + n] == quote)
            .ok_or_else(|| format!("unterminated or escaped string at byte {}", self.at))?;
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.at))
    }

    /// `()`, `(n,)` or `(n, m, ...)` with an optional trailing comma; integers may carry
    /// Python 2's `L` suffix.
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_space();
            if self.eat(b')') {
                break;
            }
            let start = self.at;
            while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                self.at += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
            let dim = digits
                .parse::<usize>()
                .map_err(|_| format!("expected a dimension at byte {start}"))?;
            self.eat(b'L');
            dims.push(dim);
            self.skip_space();
            if !self.eat(b',') {
                self.expect(b')')?;
                if dims.len() == 1 {
                    // `(n)` is an integer in Python, not a tuple.
                    return Err("a shape of one dimension needs a trailing comma: (n,)".into());
                }
                break;
            }
        }
        Ok(dims)
    }
}

/// The bytes of a version-1 `.npy` file holding `a` (C order, little-endian).
pub fn to_bytes<T: NpyElement>(a: ArrayViewD<'_, T>) -> Vec<u8> {
    let shape: Vec<String> = a.shape().iter().map(ToString::to_string).collect();
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        T::DESCR
    );
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + a.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in a.iter() {
        v.to_le(&mut out);
    }
    out
}

/// Writes `a` to a `.npy` file.
///
/// # Errors
/// [`LstmError::Io`] when the file cannot be written.
pub fn write<T: NpyElement>(path: impl AsRef<Path>, a: ArrayViewD<'_, T>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(a)).map_err(|source| LstmError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lstm_core::ndarray::{Array, Array2};

    #[test]
    fn round_trip_every_type() {
        let a = Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as f64 - 5.5)
            .into_dyn();
        assert_eq!(
            parse(&to_bytes(a.view()), "t").unwrap(),
            NpyArray::F64(a.clone())
        );
        let b = a.mapv(|v| v as f32);
        assert_eq!(parse(&to_bytes(b.view()), "t").unwrap(), NpyArray::F32(b));
        let c = a.mapv(|v| v as i64);
        assert_eq!(parse(&to_bytes(c.view()), "t").unwrap(), NpyArray::I64(c));
        let d = a.mapv(|v| v as i32);
        assert_eq!(parse(&to_bytes(d.view()), "t").unwrap(), NpyArray::I32(d));
        let s = ArrayD::from_elem(IxDyn(&[]), 2.5f64);
        assert_eq!(parse(&to_bytes(s.view()), "t").unwrap(), NpyArray::F64(s));
        let v = Array::from_vec(vec![1.0f32, 2.0]).into_dyn();
        assert_eq!(parse(&to_bytes(v.view()), "t").unwrap().shape(), &[2]);
    }

    /// A version-1 file with `header` and `count` little-endian f8 zeros.
    fn with_header(header: &str, count: usize) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.push(b'\n');
        bytes.resize(bytes.len() + 8 * count, 0);
        bytes
    }

    #[test]
    fn headers_as_numpy_writes_them() {
        for (header, shape) in [
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), }",
                vec![3, 3],
            ),
            (
                "{'shape': (9,), 'fortran_order': False, 'descr': '<f8'}",
                vec![9],
            ),
            (
                "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(1,9,)}  ",
                vec![1, 9],
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (9L,), }",
                vec![9],
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                vec![],
            ),
        ] {
            let a = parse(&with_header(header, 9), "t").unwrap();
            assert_eq!(a.shape(), &shape[..], "{header}");
        }
    }

    #[test]
    fn fortran_order_and_big_endian() {
        // [[1, 2, 3], [4, 5, 6]] stored column-major, big-endian f8.
        let mut bytes = Vec::new();
        let header = "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }\n";
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let want = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap()
            .into_dyn();
        assert_eq!(parse(&bytes, "t").unwrap(), NpyArray::F64(want));
    }

    #[test]
    fn malformed_files_are_errors() {
        let good = to_bytes(Array2::<f64>::ones((3, 3)).into_dyn().view());
        assert!(matches!(
            parse(b"hello world", "t"),
            Err(LstmError::Format { .. })
        ));
        assert!(matches!(
            parse(&good[..good.len() - 1], "t"),
            Err(LstmError::Format { .. })
        ));
        assert!(matches!(
            parse(&good[..20], "t"),
            Err(LstmError::Format { .. })
        ));
        let mut v9 = good.clone();
        v9[6] = 9;
        assert!(matches!(parse(&v9, "t"), Err(LstmError::Format { .. })));
        let patch = |from: &[u8], to: &[u8]| {
            let mut b = good.clone();
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            b[at..at + from.len()].copy_from_slice(to);
            b
        };
        assert!(matches!(
            parse(&patch(b"<f8", b"<c8"), "t"),
            Err(LstmError::Unsupported(_))
        ));
        assert!(matches!(
            parse(&patch(b"(3, 3)", b"(3, x)"), "t"),
            Err(LstmError::Format { .. })
        ));
        assert!(matches!(
            parse(&patch(b"False", b"Maybe"), "t"),
            Err(LstmError::Format { .. })
        ));
        // The header is a Python dict literal, read as one: a decoy inside a string value, an
        // unknown or repeated key, a one-element "tuple" without its comma, or trailing text
        // are all errors, as numpy.load makes them.
        for header in [
            "{'descr': '<f8', 'fortran_order': False, 'x': \"'shape': (9, 1),\", 'shape': (3, 3), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), 'shape': (9,), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (9), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), } x",
            "{'descr': '<f8', 'fortran_order': False, }",
            "{'descr': '<f8', 'fortran_order': 0, 'shape': (3, 3), }",
            "{'descr': '<f8' 'fortran_order': False, 'shape': (3, 3), }",
            "{'descr': '<f\\8', 'fortran_order': False, 'shape': (3, 3), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3, -3), }",
        ] {
            assert!(
                matches!(
                    parse(&with_header(header, 9), "t"),
                    Err(LstmError::Format { .. })
                ),
                "{header}"
            );
        }
        assert!(matches!(
            read("/nonexistent/file.npy"),
            Err(LstmError::Io { .. })
        ));
    }
}
