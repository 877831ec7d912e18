//! Metadata-only GGUF reader. Reads the header, the key/values and the tensor directory; never a
//! byte of tensor data. Every file is hostile: counts are checked against the bytes remaining
//! before anything is allocated, arithmetic is `checked_*`, strings and arrays have caps, and
//! each failure is a typed [`ChordError`] carrying the numbers.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::Path;

use super::file::ModelFile;
use super::{GgmlType, GgufArray, GgufValue, GgufValueType, TensorInfo};
use crate::error::{ChordError, ErrorCode as E, Result, fail, io_err};

const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The default alignment of the data section (`GGUF_DEFAULT_ALIGNMENT`).
pub const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const GGML_MAX_DIMS: u32 = 4;
/// Longest tensor name (ggml's `GGML_MAX_NAME` is 64 including the terminating NUL; we accept
/// 64 bytes, the bound, and reject anything longer).
pub const MAX_TENSOR_NAME: u64 = 64;

/// Caps applied while reading (defaults are generous for real models, tight enough that a
/// hostile file cannot make the reader allocate gigabytes).
#[derive(Clone, Copy, Debug)]
pub struct ReaderLimits {
    /// Longest string value, bytes.
    pub max_string: u64,
    /// Longest metadata key, bytes.
    pub max_key: u64,
    /// Most elements in one array.
    pub max_array: u64,
    /// Deepest array nesting (1 = arrays of scalars only).
    pub max_depth: u32,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self { max_string: 16 << 20, max_key: 64 << 10, max_array: 64 << 20, max_depth: 2 }
    }
}

/// A parsed GGUF file: header, metadata, tensor directory. No tensor data.
#[derive(Clone, Debug)]
pub struct GgufFile {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Key/values in file order.
    pub metadata: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
    /// Tensor directory in file order.
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment` (default 32).
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// File size in bytes.
    pub file_size: u64,
}

impl GgufFile {
    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// String value of `key`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }

    /// Non-negative integer value of `key`.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(GgufValue::as_u64)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// `{arch}.{suffix}` as an integer (e.g. `llama.block_count`).
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_u64(&format!("{arch}.{suffix}"))
    }

    /// Sum of all tensor data bytes.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }
}

/// Reads the metadata of the GGUF file at `path` with default limits.
pub fn read_gguf(path: &Path) -> Result<GgufFile> {
    read_gguf_with_limits(path, ReaderLimits::default())
}

/// Reads the metadata of the GGUF file at `path`.
pub fn read_gguf_with_limits(path: &Path, limits: ReaderLimits) -> Result<GgufFile> {
    read_gguf_file(&ModelFile::open(path)?, limits)
}

/// Reads the metadata of an opened model file (the loader's: the same descriptor then serves
/// the tensor bytes), then checks that the file did not change while it was read.
pub fn read_gguf_file(file: &ModelFile, limits: ReaderLimits) -> Result<GgufFile> {
    let mut r = Cursor { inner: BufReader::with_capacity(1 << 20, file.reader()), pos: 0, len: file.len() };
    let gguf = parse(&mut r, limits)?;
    file.check()?;
    Ok(gguf)
}

/// Reads GGUF metadata from an in-memory byte string (tests, fuzzing).
pub fn read_gguf_bytes(bytes: &[u8], limits: ReaderLimits) -> Result<GgufFile> {
    let mut r = Cursor { inner: bytes, pos: 0, len: bytes.len() as u64 };
    parse(&mut r, limits)
}

struct Cursor<R: Read> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.remaining() {
            return fail(
                E::GgufTruncated,
                format!("{what} needs {n} bytes at offset {}, file has {} left", self.pos, self.remaining()),
            );
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| io_err(format!("reading {what} at offset {}", self.pos), e))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let v = self.bytes(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, cap: u64, what: &str) -> Result<String> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n > cap {
            let code = if what == "tensor name" { E::GgufTensorNameTooLong } else { E::GgufStringTooLong };
            return fail(code, format!("{what} at offset {at} is {n} bytes long, limit is {cap}"));
        }
        let raw = self.bytes(n, what)?;
        String::from_utf8(raw)
            .map_err(|e| ChordError::new(E::GgufBadUtf8, format!("{what} at offset {at} is not UTF-8: {e}")))
    }
}

fn parse<R: Read>(r: &mut Cursor<R>, limits: ReaderLimits) -> Result<GgufFile> {
    let version = read_header(r)?;
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;
    // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
    // 8 + 1 + 4 + 8 + 4 + 8 bytes. Counts that cannot fit in the file are rejected before any
    // allocation.
    check_count(n_kv, 13, r.remaining(), "metadata key/values")?;
    check_count(n_tensors, 33, r.remaining(), "tensors")?;

    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut index = HashMap::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = r.string(limits.max_key, "metadata key")?;
        if key.is_empty() {
            return fail(E::GgufBadMetadata, format!("metadata key #{i} is empty"));
        }
        let type_id = r.u32("value type")?;
        let value = read_value(r, type_id, &limits, 0, &key)?;
        if index.insert(key.clone(), i as usize).is_some() {
            return fail(E::GgufDuplicateKey, format!("metadata key {key:?} appears twice"));
        }
        metadata.push((key, value));
    }

    let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => GGUF_DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) if *a != 0 && a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            return fail(
                E::GgufBadAlignment,
                format!("general.alignment must be a non-zero power of two u32, found {other}"),
            );
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let t = read_tensor_info(r)?;
        if !names.insert(t.0.clone()) {
            return fail(E::GgufDuplicateTensor, format!("tensor {:?} appears twice", t.0));
        }
        tensors.push(t);
    }

    let data_offset = align_up(r.pos, alignment)
        .ok_or_else(|| ChordError::new(E::GgufTruncated, "data section offset overflows"))?;
    let tensors = resolve_tensors(tensors, data_offset, alignment, r.len)?;
    Ok(GgufFile { version, metadata, index, tensors, alignment, data_offset, file_size: r.len })
}

fn read_header<R: Read>(r: &mut Cursor<R>) -> Result<u32> {
    let magic: [u8; 4] = r.array("magic").map_err(|e| {
        if e.code == E::GgufTruncated { ChordError::new(E::GgufBadMagic, format!("not a GGUF file: {}", e.message)) } else { e }
    })?;
    if magic != GGUF_MAGIC {
        return fail(E::GgufBadMagic, format!("not a GGUF file: magic is {magic:02x?}, expected \"GGUF\""));
    }
    let raw = r.array::<4>("version")?;
    let version = u32::from_le_bytes(raw);
    let swapped = u32::from_be_bytes(raw);
    if (version & 0xFFFF) == 0 && (2..=3).contains(&swapped) {
        return fail(E::GgufBigEndian, format!("big-endian GGUF (version {swapped} byte-swapped); only little-endian files are supported"));
    }
    match version {
        2 | 3 => Ok(version),
        1 => fail(E::GgufUnsupportedVersion, "GGUF version 1 is not supported (32-bit counts); convert the file to v3"),
        v => fail(E::GgufUnsupportedVersion, format!("GGUF version {v} is not supported (supported: 2, 3)")),
    }
}

fn check_count(count: u64, min_each: u64, remaining: u64, what: &str) -> Result<()> {
    match count.checked_mul(min_each) {
        Some(need) if need <= remaining => Ok(()),
        _ => fail(
            E::GgufTooManyEntries,
            format!("file claims {count} {what}, needing at least {} bytes, but only {remaining} bytes remain", count.saturating_mul(min_each)),
        ),
    }
}

fn read_value<R: Read>(r: &mut Cursor<R>, type_id: u32, limits: &ReaderLimits, depth: u32, key: &str) -> Result<GgufValue> {
    let Some(ty) = GgufValueType::from_id(type_id) else {
        return fail(E::GgufBadValueType, format!("metadata {key:?}: value type {type_id} is not a GGUF type (0..=12)"));
    };
    Ok(match ty {
        GgufValueType::U8 => GgufValue::U8(r.array::<1>(key)?[0]),
        GgufValueType::I8 => GgufValue::I8(r.array::<1>(key)?[0] as i8),
        GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(r.array(key)?)),
        GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(r.array(key)?)),
        GgufValueType::U32 => GgufValue::U32(r.u32(key)?),
        GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(r.array(key)?)),
        GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(r.array(key)?)),
        GgufValueType::U64 => GgufValue::U64(r.u64(key)?),
        GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(r.array(key)?)),
        GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(r.array(key)?)),
        GgufValueType::Bool => match r.array::<1>(key)?[0] {
            0 => GgufValue::Bool(false),
            1 => GgufValue::Bool(true),
            b => return fail(E::GgufBadMetadata, format!("metadata {key:?}: bool byte is {b}, expected 0 or 1")),
        },
        GgufValueType::String => GgufValue::String(r.string(limits.max_string, "string value")?),
        GgufValueType::Array => {
            if depth >= limits.max_depth {
                return fail(E::GgufNestingTooDeep, format!("metadata {key:?}: arrays nested deeper than {}", limits.max_depth));
            }
            let elem_id = r.u32(key)?;
            let Some(elem_type) = GgufValueType::from_id(elem_id) else {
                return fail(E::GgufBadValueType, format!("metadata {key:?}: array element type {elem_id} is not a GGUF type"));
            };
            let n = r.u64(key)?;
            let need = n.checked_mul(elem_type.min_size());
            if n > limits.max_array || need.is_none_or(|need| need > r.remaining()) {
                return fail(
                    E::GgufArrayTooLong,
                    format!("metadata {key:?}: array of {n} {} elements (limit {}, {} bytes left in file)", elem_type.name(), limits.max_array, r.remaining()),
                );
            }
            let mut arr = GgufArray::empty(elem_type);
            match elem_type {
                GgufValueType::String => {
                    for _ in 0..n {
                        arr.push_str(&r.string(limits.max_string, "string value")?);
                    }
                }
                GgufValueType::Array => {
                    for _ in 0..n {
                        let GgufValue::Array(inner) = read_value(r, elem_id, limits, depth + 1, key)? else {
                            return fail(E::Internal, "array element is not an array");
                        };
                        arr.push(GgufValue::Array(inner));
                    }
                }
                scalar => {
                    // `need` was checked against the bytes left, so this read is bounded.
                    let raw = r.bytes(n * scalar.min_size(), key)?;
                    if scalar == GgufValueType::Bool && raw.iter().any(|&b| b > 1) {
                        return fail(E::GgufBadMetadata, format!("metadata {key:?}: bool array holds a byte other than 0 or 1"));
                    }
                    arr.push_raw(&raw);
                }
            }
            GgufValue::Array(arr)
        }
    })
}

type RawTensor = (String, GgmlType, Vec<u64>, u64);

fn read_tensor_info<R: Read>(r: &mut Cursor<R>) -> Result<RawTensor> {
    let name = r.string(MAX_TENSOR_NAME, "tensor name")?;
    if name.is_empty() {
        return fail(E::GgufTensorNameTooLong, "tensor name is empty");
    }
    let n_dims = r.u32("tensor n_dims")?;
    if n_dims == 0 || n_dims > GGML_MAX_DIMS {
        return fail(E::GgufBadDims, format!("tensor {name:?} has n_dims = {n_dims}, expected 1..={GGML_MAX_DIMS}"));
    }
    let mut shape = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let ne = r.u64("tensor dimension")?;
        if ne > i64::MAX as u64 {
            return fail(E::GgufBadShape, format!("tensor {name:?} has a negative dimension ({})", ne as i64));
        }
        if ne == 0 {
            return fail(E::GgufBadShape, format!("tensor {name:?} has a dimension of 0 (dimension {} of {n_dims}): it holds no elements", shape.len()));
        }
        shape.push(ne);
    }
    let type_id = r.u32("tensor type")?;
    let Some(ty) = GgmlType::from_id(type_id) else {
        return fail(E::GgufUnknownType, format!("tensor {name:?} has unknown ggml type id {type_id}"));
    };
    let offset = r.u64("tensor offset")?;
    Ok((name, ty, shape, offset))
}

fn resolve_tensors(raw: Vec<RawTensor>, data_offset: u64, alignment: u64, file_size: u64) -> Result<Vec<TensorInfo>> {
    let mut out = Vec::with_capacity(raw.len());
    for (name, ggml_type, shape, relative_offset) in raw {
        let n_elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| ChordError::new(E::GgufBadShape, format!("tensor {name:?}: element count of {shape:?} overflows")))?;
        if shape[0] % ggml_type.block_size() != 0 {
            return fail(
                E::GgufBadShape,
                format!("tensor {name:?}: row length {} is not a multiple of {}'s block size {}", shape[0], ggml_type, ggml_type.block_size()),
            );
        }
        let bytes = ggml_type
            .bytes_for(n_elements)
            .ok_or_else(|| ChordError::new(E::GgufBadShape, format!("tensor {name:?}: byte size overflows")))?;
        if relative_offset % alignment != 0 {
            return fail(E::GgufMisalignedTensor, format!("tensor {name:?}: offset {relative_offset} is not a multiple of the alignment {alignment}"));
        }
        let file_offset = data_offset.checked_add(relative_offset);
        let end = file_offset.and_then(|o| o.checked_add(bytes));
        let (Some(file_offset), Some(end)) = (file_offset, end) else {
            return fail(E::GgufTensorOutOfBounds, format!("tensor {name:?}: offset {relative_offset} + {bytes} bytes overflows"));
        };
        if end > file_size {
            return fail(
                E::GgufTensorOutOfBounds,
                format!("tensor {name:?} needs {bytes} bytes at offset {file_offset}, file has {file_size}"),
            );
        }
        out.push(TensorInfo { name, ggml_type, shape, relative_offset, file_offset, bytes });
    }
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| out[i].file_offset);
    for w in order.windows(2) {
        let (a, b) = (&out[w[0]], &out[w[1]]);
        if b.bytes > 0 && a.file_offset + a.bytes > b.file_offset {
            return fail(
                E::GgufTensorOverlap,
                format!("tensor {:?} [{}, {}) overlaps tensor {:?} starting at {}", a.name, a.file_offset, a.file_offset + a.bytes, b.name, b.file_offset),
            );
        }
    }
    Ok(out)
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v / a * a)
}

/// Decodes one little-endian scalar of type `t` from `b` (exactly its size).
pub(crate) fn decode_scalar(t: GgufValueType, b: &[u8]) -> Option<GgufValue> {
    let a = |n: usize| -> Option<[u8; 8]> {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(b.get(..n)?);
        Some(x)
    };
    Some(match t {
        GgufValueType::U8 => GgufValue::U8(*b.first()?),
        GgufValueType::I8 => GgufValue::I8(*b.first()? as i8),
        GgufValueType::Bool => GgufValue::Bool(*b.first()? != 0),
        GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(a(2)?[..2].try_into().ok()?)),
        GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(a(2)?[..2].try_into().ok()?)),
        GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(a(4)?[..4].try_into().ok()?)),
        GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(a(4)?[..4].try_into().ok()?)),
        GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(a(4)?[..4].try_into().ok()?)),
        GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(a(8)?)),
        GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(a(8)?)),
        GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(a(8)?)),
        GgufValueType::String | GgufValueType::Array => return None,
    })
}
