//! A restricted unpickler: it reads the pickles `torch.save` writes for a state dict, and
//! nothing else. It never runs code: a pickle names what it builds by `module.name`, and only
//! the few names a state dict holds are known here (`collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` and the typed storage
//! classes); any other is an error that names it. The opcodes are those of protocols 2 to 4
//! that such pickles use.

use lstm_core::{LstmError, Result};

/// A storage's element type, from its class (`torch.FloatStorage`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// PyTorch's name of the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::I64 => "int64",
            Dtype::I32 => "int32",
            Dtype::I16 => "int16",
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::Bool => "bool",
        }
    }

    fn of_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }
}

/// A tensor as the pickle describes it: a view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TensorRef {
    /// The storage's key (its record name in a zip file, its id in a legacy file).
    pub key: String,
    pub dtype: Dtype,
    /// Elements the storage holds, as the pickle says.
    pub numel: u64,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// The functions and classes a state dict's pickle may name.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    Storage(Dtype),
}

/// A value on the unpickler's stack.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    /// A storage, from a persistent id.
    Storage {
        key: String,
        dtype: Dtype,
        numel: u64,
    },
    Tensor(TensorRef),
    Mark,
}

impl Value {
    /// The values this one holds, itself included: what copying it costs.
    fn weight(&self) -> usize {
        1 + match self {
            Value::Tuple(v) | Value::List(v) => v.iter().map(Value::weight).sum(),
            Value::Dict(v) => v.iter().map(|(k, x)| k.weight() + x.weight()).sum(),
            Value::Tensor(t) => t.size.len(),
            _ => 0,
        }
    }
}

/// What a state dict's pickle holds: each tensor under its name, in the file's order.
pub(crate) type StateDict = Vec<(String, TensorRef)>;

/// The object of a pickle whose persistent ids are storages
/// (`('storage', class, key, location, numel[, view])`), as a state dict: a dict (or
/// `OrderedDict`) of names to tensors. `what` names the pickle in messages.
///
/// # Errors
/// [`LstmError::Format`] for a truncated or malformed pickle, an opcode or a global a state
/// dict does not use (named), or an object that is not a dict of tensors.
pub(crate) fn state_dict(data: &[u8], what: &str) -> Result<StateDict> {
    state_dict_at(data, what).map(|(d, _)| d)
}

/// [`state_dict`] of the pickle at the start of `data`, and the bytes it took.
///
/// # Errors
/// As [`state_dict`].
pub(crate) fn state_dict_at(data: &[u8], what: &str) -> Result<(StateDict, usize)> {
    let mut u = Unpickler::new(data, what);
    let value = u.run()?;
    let used = u.pos;
    let bad = |m: String| LstmError::format(what, m);
    let Value::Dict(items) = value else {
        return Err(bad(format!(
            "the pickle holds {}, not a state dict (a dict of tensors)",
            kind(&value)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        match (k, v) {
            (Value::Str(name), Value::Tensor(t)) => out.push((name, t)),
            // Entries that are not tensors (a nested dict of metadata, a step count) are not
            // weights; a state dict of modules holds none, other checkpoints may.
            (Value::Str(_), _) => {}
            (k, _) => return Err(bad(format!("a state dict key is {}, not a name", kind(&k)))),
        }
    }
    Ok((out, used))
}

/// The small integer of a legacy file's header pickles (magic number, protocol version), or
/// the list of strings that follows the object (the storage keys); with the bytes read.
pub(crate) fn header_value(data: &[u8], what: &str) -> Result<(HeaderValue, usize)> {
    let mut u = Unpickler::new(data, what);
    let v = u.run()?;
    let v = match v {
        Value::Int(i) => HeaderValue::Int(i),
        Value::List(items) => HeaderValue::Keys(
            items
                .into_iter()
                .map(|k| match k {
                    Value::Str(s) => Ok(s),
                    other => Err(LstmError::format(
                        what,
                        format!("a storage key is {}, not a string", kind(&other)),
                    )),
                })
                .collect::<Result<_>>()?,
        ),
        Value::Dict(_) => HeaderValue::Info,
        other => {
            return Err(LstmError::format(
                what,
                format!("unexpected {} in the file's header", kind(&other)),
            ));
        }
    };
    Ok((v, u.pos))
}

/// A legacy file's header values.
#[derive(Debug)]
pub(crate) enum HeaderValue {
    Int(i64),
    Keys(Vec<String>),
    Info,
}

/// What kind of value `v` is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Tuple(_) => "a tuple",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dict",
        Value::Global(_) => "a class or function",
        Value::Storage { .. } => "a storage",
        Value::Tensor(_) => "a tensor",
        Value::Mark => "a mark",
    }
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'a str,
    stack: Vec<Value>,
    memo: std::collections::HashMap<u32, Value>,
    /// Values the pickle may still create by copying memo entries: a bound on memory that a
    /// hostile pickle (a list fetched from the memo again and again) cannot exceed.
    budget: usize,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], what: &'a str) -> Self {
        Self {
            data,
            pos: 0,
            what,
            stack: Vec::new(),
            memo: std::collections::HashMap::new(),
            budget: 16 * data.len() + 4096,
        }
    }

    fn err(&self, m: impl std::fmt::Display) -> LstmError {
        LstmError::format(self.what, format!("pickle at byte {}: {m}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(format!("truncated: {n} more bytes expected")))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("truncated: a line without its end"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("a line is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("a string is not UTF-8"))?;
        Ok(Value::Str(s.to_string()))
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(self.err("the stack is empty")),
            Some(v) => Ok(v),
        }
    }

    /// The values down to the last mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| self.err("no mark on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value> {
        let pos = self.pos;
        match self.stack.last_mut() {
            Some(Value::Mark) | None => Err(LstmError::format(
                self.what,
                format!("pickle at byte {pos}: the stack is empty"),
            )),
            Some(v) => Ok(v),
        }
    }

    fn put(&mut self, k: u32) -> Result<()> {
        let v = self
            .stack
            .last()
            .ok_or_else(|| self.err("memo of an empty stack"))?;
        let v = v.clone();
        self.memo.insert(k, v);
        Ok(())
    }

    fn get(&mut self, k: u32) -> Result<()> {
        let v = self
            .memo
            .get(&k)
            .ok_or_else(|| self.err(format!("memo entry {k} is not set")))?
            .clone();
        self.budget = self
            .budget
            .checked_sub(v.weight())
            .ok_or_else(|| self.err("the pickle expands past what its size allows"))?;
        self.stack.push(v);
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<Global> {
        let storage = (module == "torch")
            .then(|| Dtype::of_storage(name))
            .flatten();
        Ok(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            _ => match storage {
                Some(d) => Global::Storage(d),
                None => {
                    return Err(self.err(format!(
                        "forbidden global {module}.{name}: a state dict holds only tensors, \
                         and nothing in a pickle is run"
                    )));
                }
            },
        })
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("pickle protocol {p} is unknown")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: the frame's length, not needed here.
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
                }
                b'J' => {
                    let v = self.u32()?;
                    self.stack.push(Value::Int(i64::from(v as i32)));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    self.stack.push(Value::Int(long(b).ok_or_else(|| {
                        self.err(format!("an integer of {n} bytes does not fit in 64 bits"))
                    })?));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    let n = usize::try_from(u64::from_le_bytes(a))
                        .map_err(|_| self.err("a string longer than memory"))?;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'q' => {
                    let k = u32::from(self.u8()?);
                    self.put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.put(k)?;
                }
                b'h' => {
                    let k = u32::from(self.u8()?);
                    self.get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.stack.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(self.err("STACK_GLOBAL of values that are not strings"));
                    };
                    let g = self.global(&module, &name)?;
                    self.stack.push(Value::Global(g));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.err("the stack is empty"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    if items.contains(&Value::Mark) {
                        return Err(self.err("a tuple of a mark"));
                    }
                    self.stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        _ => return Err(self.err("APPEND to something that is not a list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => return Err(self.err("APPENDS to something that is not a list")),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.push((k, v)),
                        _ => return Err(self.err("SETITEM on something that is not a dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("SETITEMS with an odd count"));
                    }
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top()? {
                        Value::Dict(d) => d.extend(pairs),
                        _ => return Err(self.err("SETITEMS on something that is not a dict")),
                    }
                }
                b'b' => {
                    // BUILD: the state of an OrderedDict is its `_metadata`, not weights.
                    let _state = self.pop()?;
                    if !matches!(self.top()?, Value::Dict(_)) {
                        return Err(self.err("BUILD of something that is not a dict"));
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.storage(pid)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.stack.push(v);
                }
                other => {
                    return Err(self.err(format!(
                        "opcode 0x{other:02x} is not one a state dict's pickle uses"
                    )));
                }
            }
        }
    }

    /// A persistent id: `('storage', class, key, location, numel[, view metadata])`.
    fn storage(&self, pid: Value) -> Result<Value> {
        let Value::Tuple(items) = pid else {
            return Err(self.err("a persistent id that is not a tuple"));
        };
        match items.as_slice() {
            [
                Value::Str(tag),
                Value::Global(Global::Storage(dtype)),
                Value::Str(key),
                _,
                Value::Int(n),
                ..,
            ] if tag == "storage" => {
                let numel = u64::try_from(*n)
                    .map_err(|_| self.err(format!("storage {key} has {n} elements")))?;
                Ok(Value::Storage {
                    key: key.clone(),
                    dtype: *dtype,
                    numel,
                })
            }
            _ => Err(self.err("a persistent id that is not a typed storage")),
        }
    }

    fn reduce(&self, f: Value, args: Value) -> Result<Value> {
        let Value::Tuple(args) = args else {
            return Err(self.err("REDUCE with arguments that are not a tuple"));
        };
        let Value::Global(g) = f else {
            return Err(self.err(format!("REDUCE of {}", kind(&f))));
        };
        let dims = |v: &Value, what: &str| -> Result<Vec<u64>> {
            let Value::Tuple(items) = v else {
                return Err(self.err(format!("a tensor's {what} is not a tuple")));
            };
            items
                .iter()
                .map(|d| match d {
                    Value::Int(i) => u64::try_from(*i)
                        .map_err(|_| self.err(format!("a tensor's {what} holds {i}"))),
                    _ => Err(self.err(format!("a tensor's {what} holds a non-integer"))),
                })
                .collect()
        };
        match g {
            Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Vec::new())),
            Global::RebuildTensor => match args.as_slice() {
                [
                    Value::Storage { key, dtype, numel },
                    Value::Int(offset),
                    size,
                    stride,
                    ..,
                ] if (6..=7).contains(&args.len()) => {
                    let offset = u64::try_from(*offset)
                        .map_err(|_| self.err(format!("a tensor's offset is {offset}")))?;
                    let (size, stride) = (dims(size, "size")?, dims(stride, "stride")?);
                    if size.len() != stride.len() {
                        return Err(self.err("a tensor's size and stride differ in length"));
                    }
                    Ok(Value::Tensor(TensorRef {
                        key: key.clone(),
                        dtype: *dtype,
                        numel: *numel,
                        offset,
                        size,
                        stride,
                    }))
                }
                _ => Err(self.err("_rebuild_tensor_v2 with arguments it does not take")),
            },
            Global::RebuildParameter => match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => Err(self.err("_rebuild_parameter of something that is not a tensor")),
            },
            _ => Err(self.err(format!("{g:?} called with arguments it does not take"))),
        }
    }
}

/// A little-endian two's-complement integer of `b.len()` bytes, if it fits in `i64`.
fn long(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return Some(0);
    }
    let negative = b[b.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    if b.len() > 8 && b[8..].iter().any(|&x| x != fill) {
        return None;
    }
    let mut a = [fill; 8];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    let v = i64::from_le_bytes(a);
    // A value past 8 bytes must keep the sign its 8 bytes give.
    (b.len() <= 8 || (v < 0) == negative).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(long(&[]), Some(0));
        assert_eq!(long(&[0xff]), Some(-1));
        assert_eq!(long(&[0x00, 0x01]), Some(256));
        assert_eq!(long(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(long(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn a_forbidden_global_is_named() {
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.";
        let e = state_dict(p, "evil").unwrap_err().to_string();
        assert!(e.contains("forbidden global posix.system"), "{e}");
    }

    #[test]
    fn a_memo_bomb_stops() {
        // A list of 100 items fetched from the memo again and again.
        let mut p = b"\x80\x02](".to_vec();
        p.extend(std::iter::repeat_n(b"K\x01".as_slice(), 100).flatten());
        p.extend(b"eq\x00(");
        p.extend(std::iter::repeat_n(b"h\x00".as_slice(), 10_000).flatten());
        p.extend(b"l.");
        let e = state_dict(&p, "bomb").unwrap_err().to_string();
        assert!(e.contains("expands"), "{e}");
    }

    #[test]
    fn truncated_pickles_are_errors() {
        for p in [
            &b""[..],
            b"\x80",
            b"\x80\x02X\x05\x00\x00\x00ab",
            b"\x80\x02}(",
        ] {
            assert!(state_dict(p, "t").is_err());
        }
    }
}
