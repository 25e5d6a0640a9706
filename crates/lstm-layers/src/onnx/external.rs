//! ONNX external data: tensors whose bytes live in a file beside the model
//! (`data_location = EXTERNAL`, with `location`, `offset` and `length` entries), read safely.
//!
//! A location must be a relative path inside the model's folder: no absolute path, no `..`,
//! and after symbolic links are followed the file must still be inside the folder and a
//! regular file. The offset and length are checked against the file's size before anything
//! is read or allocated.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use lstm_core::{LstmError, Result};

use super::proto::{GraphProto, ModelProto, TensorProto};

/// Replaces the external data of every tensor of `model` (initializers, `Constant` nodes,
/// subgraphs) with its bytes, read from the files beside the model in `dir`.
///
/// # Errors
/// [`LstmError::Format`] for a location outside `dir`, a missing or malformed entry, or an
/// offset and length past the file's end; [`LstmError::Io`] for a file that cannot be read.
pub fn resolve(model: &mut ModelProto, dir: &Path) -> Result<()> {
    let root = dir.canonicalize().map_err(|source| LstmError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    if let Some(g) = &mut model.graph {
        graph(g, &root)?;
    }
    Ok(())
}

fn graph(g: &mut GraphProto, root: &Path) -> Result<()> {
    for t in &mut g.initializer {
        tensor(t, root)?;
    }
    for node in &mut g.node {
        for a in &mut node.attribute {
            if let Some(t) = &mut a.t {
                tensor(t, root)?;
            }
            if let Some(sub) = &mut a.g {
                graph(sub, root)?;
            }
            for sub in &mut a.graphs {
                graph(sub, root)?;
            }
        }
    }
    Ok(())
}

fn tensor(t: &mut TensorProto, root: &Path) -> Result<()> {
    if t.data_location != 1 {
        return Ok(());
    }
    let what = format!("tensor {:?} (external data)", t.name);
    let bad = |m: String| LstmError::format(&what, m);
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or_else(|| bad("no location entry".into()))?;
    let number = |key: &str| -> Result<Option<u64>> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{key} {v:?} is not a non-negative integer")))
            })
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let rel = Path::new(location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad(format!(
            "location {location:?} is not a relative path inside the model's folder"
        )));
    }
    let path = root.join(rel);
    let io = |source| LstmError::Io {
        path: path.display().to_string(),
        source,
    };
    let real = path.canonicalize().map_err(io)?;
    if !real.starts_with(root) {
        return Err(bad(format!(
            "location {location:?} leads outside the model's folder (to {})",
            real.display()
        )));
    }
    let meta = std::fs::metadata(&real).map_err(io)?;
    if !meta.is_file() {
        return Err(bad(format!("location {location:?} is not a regular file")));
    }
    let size = meta.len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(bad(format!(
            "offset {offset} and length {length} reach past the end of {location:?} ({size} \
             bytes)"
        )));
    }
    let n = usize::try_from(length).map_err(|_| bad(format!("length {length}")))?;
    let mut file = std::fs::File::open(&real).map_err(io)?;
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut bytes = vec![0u8; n];
    file.read_exact(&mut bytes).map_err(io)?;
    t.raw_data = bytes;
    t.data_location = 0;
    t.external_data.clear();
    Ok(())
}
