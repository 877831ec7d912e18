//! GGUF: the file format of ggml/llama.cpp models. Reader (metadata-only, hostile-file safe) and
//! writer (for tests and synthetic models).
//!
//! Layout (GGUF v2/v3, little-endian), as specified in ggml's `docs/gguf.md`:
//! `magic "GGUF" · version u32 · n_tensors u64 · n_kv u64 · n_kv × (key string, type u32, value)
//!  · n_tensors × (name string, n_dims u32, ne[n_dims] u64, type u32, offset u64)
//!  · padding to general.alignment · tensor data`.

mod file;
mod ggml_type;
mod reader;
mod writer;

pub use file::ModelFile;
pub use ggml_type::{GgmlType, QK_K};
pub use reader::{GgufFile, ReaderLimits, read_gguf, read_gguf_bytes, read_gguf_file, read_gguf_with_limits};
pub use writer::{GgufWriter, TensorData, TensorSpec, pattern_byte};

/// GGUF metadata value type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum GgufValueType {
    /// `GGUF_TYPE_UINT8`
    U8 = 0,
    /// `GGUF_TYPE_INT8`
    I8 = 1,
    /// `GGUF_TYPE_UINT16`
    U16 = 2,
    /// `GGUF_TYPE_INT16`
    I16 = 3,
    /// `GGUF_TYPE_UINT32`
    U32 = 4,
    /// `GGUF_TYPE_INT32`
    I32 = 5,
    /// `GGUF_TYPE_FLOAT32`
    F32 = 6,
    /// `GGUF_TYPE_BOOL`
    Bool = 7,
    /// `GGUF_TYPE_STRING`
    String = 8,
    /// `GGUF_TYPE_ARRAY`
    Array = 9,
    /// `GGUF_TYPE_UINT64`
    U64 = 10,
    /// `GGUF_TYPE_INT64`
    I64 = 11,
    /// `GGUF_TYPE_FLOAT64`
    F64 = 12,
}

impl GgufValueType {
    /// From the on-disk id.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Lower-case name (`"u32"`, `"string"`, …).
    pub fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Minimum encoded size of one value of this type (strings: the u64 length; arrays: type +
    /// count). Used to bound counts by the bytes left in the file.
    pub fn min_size(self) -> u64 {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// UTF-8 string
    String(String),
    /// Array of values of one element type.
    Array(GgufArray),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

/// An array value: one element type, stored compactly (scalars as their little-endian bytes,
/// strings in one buffer), so a 150 000-token vocabulary costs about its size in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufArray {
    elem_type: GgufValueType,
    data: ArrayData,
}

#[derive(Clone, Debug, PartialEq)]
enum ArrayData {
    /// Scalars: `len * scalar_size` bytes, little-endian.
    Raw(Vec<u8>),
    /// Strings: concatenated text and the end offset of each string.
    Strings { text: String, ends: Vec<usize> },
    /// Nested arrays.
    Arrays(Vec<GgufArray>),
}

/// Bytes of one scalar of type `t` (0 for strings and arrays).
fn scalar_size(t: GgufValueType) -> usize {
    match t {
        GgufValueType::String | GgufValueType::Array => 0,
        other => other.min_size() as usize,
    }
}

impl GgufArray {
    /// An array of `values`, all of type `elem_type` (`None` when one is not).
    pub fn new(elem_type: GgufValueType, values: Vec<GgufValue>) -> Option<Self> {
        let mut a = Self::empty(elem_type);
        for v in values {
            a.push(v)?;
        }
        Some(a)
    }

    /// An empty array of `elem_type`.
    pub fn empty(elem_type: GgufValueType) -> Self {
        let data = match elem_type {
            GgufValueType::String => ArrayData::Strings { text: String::new(), ends: Vec::new() },
            GgufValueType::Array => ArrayData::Arrays(Vec::new()),
            _ => ArrayData::Raw(Vec::new()),
        };
        Self { elem_type, data }
    }

    /// Appends `v` (`None` when its type is not the element type).
    pub fn push(&mut self, v: GgufValue) -> Option<()> {
        if v.value_type() != self.elem_type {
            return None;
        }
        match (&mut self.data, v) {
            (ArrayData::Strings { text, ends }, GgufValue::String(s)) => {
                text.push_str(&s);
                ends.push(text.len());
            }
            (ArrayData::Arrays(items), GgufValue::Array(a)) => items.push(a),
            (ArrayData::Raw(raw), v) => writer::put_scalar(raw, &v),
            _ => return None,
        }
        Some(())
    }

    pub(crate) fn push_raw(&mut self, bytes: &[u8]) {
        if let ArrayData::Raw(raw) = &mut self.data {
            raw.extend_from_slice(bytes);
        }
    }

    pub(crate) fn push_str(&mut self, s: &str) {
        if let ArrayData::Strings { text, ends } = &mut self.data {
            text.push_str(s);
            ends.push(text.len());
        }
    }

    /// Element type.
    pub fn elem_type(&self) -> GgufValueType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::Raw(raw) => raw.len() / scalar_size(self.elem_type).max(1),
            ArrayData::Strings { ends, .. } => ends.len(),
            ArrayData::Arrays(items) => items.len(),
        }
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// String element `i` without copying.
    pub fn str_at(&self, i: usize) -> Option<&str> {
        match &self.data {
            ArrayData::Strings { text, ends } => {
                let end = *ends.get(i)?;
                let start = if i == 0 { 0 } else { ends[i - 1] };
                text.get(start..end)
            }
            _ => None,
        }
    }

    /// Element `i` as an owned value.
    pub fn get(&self, i: usize) -> Option<GgufValue> {
        match &self.data {
            ArrayData::Strings { .. } => self.str_at(i).map(|s| GgufValue::String(s.to_string())),
            ArrayData::Arrays(items) => items.get(i).cloned().map(GgufValue::Array),
            ArrayData::Raw(raw) => {
                let n = scalar_size(self.elem_type);
                let b = raw.get(i * n..i * n + n)?;
                reader::decode_scalar(self.elem_type, b)
            }
        }
    }

    /// All elements as owned values.
    pub fn iter(&self) -> impl Iterator<Item = GgufValue> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// For messages: the GGUF type name and the value, e.g. `u32 0`, `string "32"`,
/// `array of 151936 string`.
impl std::fmt::Display for GgufValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.value_type().name();
        match self {
            GgufValue::U8(v) => write!(f, "{t} {v}"),
            GgufValue::I8(v) => write!(f, "{t} {v}"),
            GgufValue::U16(v) => write!(f, "{t} {v}"),
            GgufValue::I16(v) => write!(f, "{t} {v}"),
            GgufValue::U32(v) => write!(f, "{t} {v}"),
            GgufValue::I32(v) => write!(f, "{t} {v}"),
            GgufValue::F32(v) => write!(f, "{t} {v}"),
            GgufValue::Bool(v) => write!(f, "{t} {v}"),
            GgufValue::String(v) => write!(f, "{t} {:?}", v.chars().take(64).collect::<String>()),
            GgufValue::Array(a) => write!(f, "array of {} {}", a.len(), a.elem_type.name()),
            GgufValue::U64(v) => write!(f, "{t} {v}"),
            GgufValue::I64(v) => write!(f, "{t} {v}"),
            GgufValue::F64(v) => write!(f, "{t} {v}"),
        }
    }
}

impl GgufValue {
    /// The value's type.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(_) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// Integer value as u64 when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Float value of a float or integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// String value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// One entry of the tensor directory, with its absolute file offset resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name, verbatim from the file (`blk.0.attn_q.weight`).
    pub name: String,
    /// ggml type.
    pub ggml_type: GgmlType,
    /// ggml `ne` (ne[0] is the contiguous dimension); `n_dims` entries.
    pub shape: Vec<u64>,
    /// Offset relative to the start of the data section, as stored.
    pub relative_offset: u64,
    /// Absolute offset of the tensor's data in the file.
    pub file_offset: u64,
    /// Bytes of data.
    pub bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}
