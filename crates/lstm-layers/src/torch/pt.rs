//! `torch.save` files (`.pt`, `.pth`) holding a state dict, read without Python.
//!
//! Two layouts exist. Since PyTorch 1.6 a file is a zip archive of stored (uncompressed)
//! records under one folder (`archive/` or the file's stem): `data.pkl`, the pickle of the
//! state dict, whose tensors refer to storages by key, and `data/KEY`, each storage's bytes.
//! Before, a file was a sequence of pickles (a magic number, the format version, the
//! machine's type sizes, the state dict, the list of storage keys) followed by each storage:
//! its element count as a little-endian `i64`, then its bytes.
//!
//! The pickle is read by a restricted unpickler ([`super::pickle`]) that knows only what a
//! state dict holds and never runs anything. Every size is checked against the bytes the file
//! has before anything is allocated: the zip's directory, each record, each storage against
//! the element count its pickle claims, and each tensor's view against its storage.

use std::collections::BTreeMap;

use lstm_core::ndarray::{ArrayD, Dimension, IxDyn};
use lstm_core::{LstmError, Result, Scalar};

use super::pickle::{self, Dtype, HeaderValue, TensorRef};

/// A tensor of a `.pt` file: floating point (widened or narrowed to `F`), or of another
/// element type, which a recurrent model cannot use (a `num_batches_tracked` counter, say).
#[derive(Clone, Debug, PartialEq)]
pub enum PtTensor<F> {
    /// float32, float64, float16 or bfloat16 (`dtype`, PyTorch's name), read as `F`.
    Float {
        /// The values.
        values: ArrayD<F>,
        /// The element type in the file.
        dtype: &'static str,
    },
    /// Another element type, by PyTorch's name.
    Other(&'static str),
}

/// Every tensor of a `torch.save` file's state dict, by name. `name` appears in messages.
///
/// # Errors
/// [`LstmError::Format`] for a file that is neither layout, a truncated or inconsistent zip
/// or record, a pickle that is not a state dict (a forbidden global is named), a storage
/// shorter than its pickle says, or a view past its storage; [`LstmError::Unsupported`] for a
/// compressed record or a big-endian file.
pub fn read_pt<F: Scalar>(bytes: &[u8], name: &str) -> Result<BTreeMap<String, PtTensor<F>>> {
    if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes, name)
    } else if bytes.starts_with(&LEGACY_MAGIC) {
        read_legacy(bytes, name)
    } else {
        Err(LstmError::format(
            name,
            "not a torch.save file (neither a zip archive nor the legacy pickle layout)",
        ))
    }
}

/// Whether `bytes` look like a `torch.save` file (either layout).
pub fn is_pt(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&LEGACY_MAGIC)
}

/// The first pickle of a legacy file: protocol 2, the magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

fn read_zip<F: Scalar>(bytes: &[u8], name: &str) -> Result<BTreeMap<String, PtTensor<F>>> {
    let records = zip_records(bytes, name)?;
    let pkl: Vec<&String> = records
        .keys()
        .filter(|k| k.ends_with("/data.pkl") && k.matches('/').count() == 1)
        .collect();
    let [pkl] = pkl.as_slice() else {
        return Err(LstmError::format(
            name,
            format!(
                "a torch.save archive has one FOLDER/data.pkl, found {}",
                pkl.len()
            ),
        ));
    };
    let root = pkl.trim_end_matches("data.pkl").to_string();
    if let Some(order) = records.get(&format!("{root}byteorder"))
        && order != b"little"
    {
        return Err(LstmError::unsupported(format!(
            "{name}: the storages are {:?}-endian; only little-endian files are read",
            String::from_utf8_lossy(order)
        )));
    }
    let dict = pickle::state_dict(records[*pkl], &format!("{name} ({pkl})"))?;
    let mut out = BTreeMap::new();
    for (key, t) in dict {
        let record = format!("{root}data/{}", t.key);
        let data = records.get(&record).ok_or_else(|| {
            LstmError::format(name, format!("tensor {key}: no storage record {record}"))
        })?;
        out.insert(key.clone(), tensor(&t, data, &key, name)?);
    }
    Ok(out)
}

fn read_legacy<F: Scalar>(bytes: &[u8], name: &str) -> Result<BTreeMap<String, PtTensor<F>>> {
    let mut at = LEGACY_MAGIC.len();
    let next = |at: &mut usize, what: &str| -> Result<HeaderValue> {
        let (v, n) = pickle::header_value(&bytes[*at..], &format!("{name} ({what})"))?;
        *at += n;
        Ok(v)
    };
    match next(&mut at, "format version")? {
        HeaderValue::Int(1001) => {}
        other => {
            return Err(LstmError::format(
                name,
                format!("legacy format version {other:?}, expected 1001"),
            ));
        }
    }
    next(&mut at, "system information")?;
    let (dict, len) = pickle::state_dict_at(&bytes[at..], name)?;
    at += len;
    let HeaderValue::Keys(keys) = next(&mut at, "storage keys")? else {
        return Err(LstmError::format(name, "the storage keys are not a list"));
    };
    // Each storage: its element count (i64, little-endian), then its bytes.
    let dtypes: BTreeMap<&str, Dtype> = dict
        .iter()
        .map(|(_, t)| (t.key.as_str(), t.dtype))
        .collect();
    let mut storages: BTreeMap<String, &[u8]> = BTreeMap::new();
    for key in &keys {
        let dtype = *dtypes.get(key.as_str()).ok_or_else(|| {
            LstmError::format(
                name,
                format!("storage {key} is listed but no tensor uses it"),
            )
        })?;
        let count = bytes
            .get(at..at + 8)
            .ok_or_else(|| LstmError::format(name, format!("truncated before storage {key}")))?;
        let mut c = [0u8; 8];
        c.copy_from_slice(count);
        let n = u64::from_le_bytes(c);
        let len = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .filter(|&l| l <= bytes.len() - at - 8)
            .ok_or_else(|| {
                LstmError::format(
                    name,
                    format!(
                        "storage {key} claims {n} elements of {} bytes, more than the {} bytes \
                         left in the file",
                        dtype.size(),
                        bytes.len() - at - 8
                    ),
                )
            })?;
        storages.insert(key.clone(), &bytes[at + 8..at + 8 + len]);
        at += 8 + len;
    }
    let mut out = BTreeMap::new();
    for (key, t) in dict {
        let data = storages.get(&t.key).ok_or_else(|| {
            LstmError::format(name, format!("tensor {key}: storage {} is missing", t.key))
        })?;
        out.insert(key.clone(), tensor(&t, data, &key, name)?);
    }
    Ok(out)
}

/// The tensor `t` views in the storage bytes `data`, after checking the view fits.
fn tensor<F: Scalar>(t: &TensorRef, data: &[u8], key: &str, file: &str) -> Result<PtTensor<F>> {
    let bad = |m: String| LstmError::format(file, format!("tensor {key}: {m}"));
    let es = t.dtype.size();
    let have = (data.len() / es) as u64;
    if !data.len().is_multiple_of(es) || have < t.numel {
        return Err(bad(format!(
            "its storage holds {} bytes, {} elements of {} claimed ({} bytes each)",
            data.len(),
            t.numel,
            t.dtype.name(),
            es
        )));
    }
    // The elements the view has, and the last one it reads: both within the storage.
    let mut count: u64 = 1;
    let mut last = t.offset;
    for (&n, &s) in t.size.iter().zip(&t.stride) {
        count = count
            .checked_mul(n)
            .ok_or_else(|| bad("its size overflows".into()))?;
        if n > 0 {
            last = (n - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| bad("its strides overflow".into()))?;
        }
    }
    if count > 0 && last >= t.numel {
        return Err(bad(format!(
            "its view reads element {last} of a storage of {}",
            t.numel
        )));
    }
    if count > t.numel {
        return Err(bad(format!(
            "it has {count} elements, more than its storage's {}",
            t.numel
        )));
    }
    let read = |k: usize| -> f64 {
        let b = &data[k * es..(k + 1) * es];
        match t.dtype {
            Dtype::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            Dtype::F16 => super::f16_to_f64(u16::from_le_bytes([b[0], b[1]])),
            _ => f64::from(f32::from_bits(
                u32::from(u16::from_le_bytes([b[0], b[1]])) << 16,
            )),
        }
    };
    if !matches!(t.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16) {
        return Ok(PtTensor::Other(t.dtype.name()));
    }
    let shape: Vec<usize> = t.size.iter().map(|&n| n as usize).collect();
    let strides: Vec<usize> = t.stride.iter().map(|&s| s as usize).collect();
    let offset = t.offset as usize;
    let a = ArrayD::from_shape_fn(IxDyn(&shape), |idx| {
        let k = offset
            + idx
                .slice()
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        F::of(read(k))
    });
    Ok(PtTensor::Float {
        values: a,
        dtype: t.dtype.name(),
    })
}

/// The stored records of a zip archive by name, checked: the end-of-directory record, each
/// directory entry, each local header, the bounds and the CRC-32 of each record.
fn zip_records<'a>(bytes: &'a [u8], name: &str) -> Result<BTreeMap<String, &'a [u8]>> {
    let bad = |m: String| LstmError::format(name, format!("zip archive: {m}"));
    let u16_at = |at: usize| -> Result<u16> {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| bad(format!("truncated at byte {at}")))
    };
    let u32_at = |at: usize| -> Result<u32> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad(format!("truncated at byte {at}")))
    };
    let u64_at = |at: usize| -> Result<u64> {
        bytes
            .get(at..at + 8)
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a)
            })
            .ok_or_else(|| bad(format!("truncated at byte {at}")))
    };
    // The end of central directory record: in the last 64 KiB + 22 bytes.
    let min = bytes.len().saturating_sub(22 + 65535);
    let eocd = (min..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&at| bytes[at..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| bad("no end of central directory (truncated?)".into()))?;
    let (mut entries, mut cd_size, mut cd_at) = (
        u64::from(u16_at(eocd + 10)?),
        u64::from(u32_at(eocd + 12)?),
        u64::from(u32_at(eocd + 16)?),
    );
    if entries == 0xffff || cd_size == 0xffff_ffff || cd_at == 0xffff_ffff {
        // Zip64: the locator sits right before the record and points at the zip64 record.
        let loc = eocd
            .checked_sub(20)
            .filter(|&l| bytes[l..].starts_with(b"PK\x06\x07"))
            .ok_or_else(|| bad("a zip64 archive without its locator".into()))?;
        let rec = usize::try_from(u64_at(loc + 8)?).map_err(|_| bad("zip64 offset".into()))?;
        if !bytes
            .get(rec..)
            .is_some_and(|b| b.starts_with(b"PK\x06\x06"))
        {
            return Err(bad("the zip64 record is not where its locator says".into()));
        }
        entries = u64_at(rec + 32)?;
        cd_size = u64_at(rec + 40)?;
        cd_at = u64_at(rec + 48)?;
    }
    let cd_end = cd_at
        .checked_add(cd_size)
        .filter(|&e| e <= eocd as u64)
        .ok_or_else(|| bad("the central directory lies outside the file".into()))?;
    // Every directory entry is at least 46 bytes: a count past that is a lie.
    if entries > cd_size / 46 {
        return Err(bad(format!(
            "{entries} entries claimed in a directory of {cd_size} bytes"
        )));
    }
    let mut out = BTreeMap::new();
    let mut at = cd_at as usize;
    for _ in 0..entries {
        if u32_at(at)? != 0x0201_4b50 {
            return Err(bad(format!("no directory entry at byte {at}")));
        }
        let method = u16_at(at + 10)?;
        let crc = u32_at(at + 16)?;
        let mut csize = u64::from(u32_at(at + 20)?);
        let mut usize_ = u64::from(u32_at(at + 24)?);
        let (nlen, xlen, clen) = (
            usize::from(u16_at(at + 28)?),
            usize::from(u16_at(at + 30)?),
            usize::from(u16_at(at + 32)?),
        );
        let mut local = u64::from(u32_at(at + 42)?);
        let fname = bytes
            .get(at + 46..at + 46 + nlen)
            .ok_or_else(|| bad("truncated directory entry".into()))?;
        let fname = String::from_utf8_lossy(fname).into_owned();
        // Zip64 sizes and offset, in that order, for the fields that overflowed.
        let extra = bytes
            .get(at + 46 + nlen..at + 46 + nlen + xlen)
            .ok_or_else(|| bad("truncated directory entry".into()))?;
        let mut x = 0;
        while x + 4 <= extra.len() {
            let id = u16::from_le_bytes([extra[x], extra[x + 1]]);
            let len = usize::from(u16::from_le_bytes([extra[x + 2], extra[x + 3]]));
            let body = extra
                .get(x + 4..x + 4 + len)
                .ok_or_else(|| bad(format!("{fname}: truncated extra field")))?;
            if id == 1 {
                let mut fields = body.chunks_exact(8).map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_le_bytes(a)
                });
                for slot in [&mut usize_, &mut csize, &mut local] {
                    if *slot == 0xffff_ffff {
                        *slot = fields
                            .next()
                            .ok_or_else(|| bad(format!("{fname}: short zip64 field")))?;
                    }
                }
            }
            x += 4 + len;
        }
        at += 46 + nlen + xlen + clen;
        if at as u64 > cd_end {
            return Err(bad("a directory entry runs past the directory".into()));
        }
        if method != 0 {
            return Err(LstmError::unsupported(format!(
                "{name}: record {fname} is compressed (method {method}); torch.save stores \
                 records uncompressed"
            )));
        }
        if csize != usize_ {
            return Err(bad(format!("{fname}: a stored record of two sizes")));
        }
        let lh = usize::try_from(local).map_err(|_| bad(format!("{fname}: offset")))?;
        if u32_at(lh)? != 0x0403_4b50 {
            return Err(bad(format!("{fname}: no local header at byte {lh}")));
        }
        let start = lh + 30 + usize::from(u16_at(lh + 26)?) + usize::from(u16_at(lh + 28)?);
        let data = usize::try_from(csize)
            .ok()
            .and_then(|n| start.checked_add(n))
            .and_then(|end| bytes.get(start..end))
            .ok_or_else(|| {
                bad(format!(
                    "{fname}: {csize} bytes from byte {start}, past the end of the file ({} \
                     bytes)",
                    bytes.len()
                ))
            })?;
        if crc32(data) != crc {
            return Err(bad(format!("{fname}: CRC-32 mismatch (a corrupt record)")));
        }
        out.insert(fname, data);
    }
    Ok(out)
}

/// The CRC-32 (IEEE) of `data`, as zip records it.
fn crc32(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    const TABLE: [u32; 256] = table();
    !data.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn not_a_pt_file() {
        assert!(read_pt::<f32>(b"hello", "x").is_err());
        assert!(read_pt::<f32>(b"PK\x03\x04", "x").is_err());
        assert!(read_pt::<f32>(&LEGACY_MAGIC, "x").is_err());
    }
}
