//! The project's own GGUF writer: synthetic models for tests and benchmarks, and hostile files
//! for the malformed-file suite (every field can be set to a wrong value on purpose).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::{GgmlType, GgufValue};
use crate::error::{Result, io_err};

/// How a tensor's data bytes are produced.
#[derive(Clone, Debug)]
pub enum TensorData {
    /// These exact bytes (length must equal the tensor's byte size unless the test wants a lie).
    Bytes(Vec<u8>),
    /// A deterministic byte pattern derived from `seed` and the byte position.
    Pattern(u64),
    /// Sparse: only the first and last 4 KiB are written (pattern from `seed`); the rest is a
    /// hole in the file (reads as zeros, costs no disk). For > 4 GiB synthetic files.
    Sparse(u64),
}

/// One tensor to write.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// ggml type id as written (normally a [`GgmlType`]'s id; tests may write unknown ids).
    pub type_id: u32,
    /// ggml `ne`.
    pub shape: Vec<u64>,
    /// Data.
    pub data: TensorData,
    /// Relative offset to write instead of the computed one (hostile files).
    pub offset_override: Option<u64>,
}

impl TensorSpec {
    /// A tensor of a known type with pattern data.
    pub fn new(name: &str, ty: GgmlType, shape: &[u64], data: TensorData) -> Self {
        Self { name: name.to_string(), type_id: ty.id(), shape: shape.to_vec(), data, offset_override: None }
    }

    /// Byte size computed from type and shape (0 for unknown types or bad shapes).
    pub fn byte_size(&self) -> u64 {
        let Some(ty) = GgmlType::from_id(self.type_id) else { return 0 };
        let n = self.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(0);
        ty.bytes_for(n).unwrap_or(0)
    }
}

/// Deterministic pattern byte at position `i` for `seed` (shared by writer and tests).
pub fn pattern_byte(seed: u64, i: u64) -> u8 {
    let x = (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x >> 56) as u8
}

/// Builds a GGUF file.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    /// Magic written (normally `GGUF`).
    pub magic: [u8; 4],
    /// Version written (normally 3).
    pub version: u32,
    /// Big-endian version field (hostile files).
    pub version_big_endian: bool,
    /// Alignment used to place tensors (also write `general.alignment` to declare it).
    pub alignment: u64,
    /// Key/values in order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensors in order.
    pub tensors: Vec<TensorSpec>,
    /// Tensor count written instead of `tensors.len()` (hostile files).
    pub n_tensors_override: Option<u64>,
    /// Key/value count written instead of `metadata.len()` (hostile files).
    pub n_kv_override: Option<u64>,
    /// Write only this many bytes of the file (hostile files).
    pub truncate_to: Option<u64>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self {
            magic: *b"GGUF",
            version: 3,
            version_big_endian: false,
            alignment: 32,
            metadata: Vec::new(),
            tensors: Vec::new(),
            n_tensors_override: None,
            n_kv_override: None,
            truncate_to: None,
        }
    }
}

impl GgufWriter {
    /// An empty v3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key/value.
    pub fn kv(&mut self, key: &str, value: GgufValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor.
    pub fn tensor(&mut self, spec: TensorSpec) -> &mut Self {
        self.tensors.push(spec);
        self
    }

    /// A synthetic llama-architecture model: `n_layers` layers of the usual tensors
    /// (`blk.N.attn_norm/attn_q/attn_k/attn_v/attn_output/ffn_norm/ffn_gate/ffn_up/ffn_down`),
    /// `token_embd`, `output_norm`, `output`; matrices of type `ty`, norms F32. `data(seed)`
    /// gives each tensor's bytes (seed = tensor index).
    pub fn synthetic_llama(n_layers: u32, n_embd: u64, n_ff: u64, n_vocab: u64, ty: GgmlType, data: impl Fn(u64) -> TensorData) -> Self {
        let mut w = Self::new();
        w.kv("general.architecture", GgufValue::String("llama".into()))
            .kv("general.name", GgufValue::String(format!("synthetic-{n_layers}x{n_embd}")))
            .kv("llama.block_count", GgufValue::U32(n_layers))
            .kv("llama.context_length", GgufValue::U32(2048))
            .kv("llama.embedding_length", GgufValue::U32(n_embd as u32))
            .kv("llama.feed_forward_length", GgufValue::U32(n_ff as u32))
            .kv("llama.attention.head_count", GgufValue::U32(8))
            .kv("llama.attention.head_count_kv", GgufValue::U32(8))
            .kv("llama.vocab_size", GgufValue::U32(n_vocab as u32))
            .kv("general.file_type", GgufValue::U32(if ty == GgmlType::F32 { 0 } else { 7 }));
        let mut seed = 0u64;
        let mut add = |w: &mut Self, name: String, t: GgmlType, shape: &[u64]| {
            w.tensor(TensorSpec::new(&name, t, shape, data(seed)));
            seed += 1;
        };
        add(&mut w, "token_embd.weight".into(), ty, &[n_embd, n_vocab]);
        for l in 0..n_layers {
            add(&mut w, format!("blk.{l}.attn_norm.weight"), GgmlType::F32, &[n_embd]);
            for m in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                add(&mut w, format!("blk.{l}.{m}.weight"), ty, &[n_embd, n_embd]);
            }
            add(&mut w, format!("blk.{l}.ffn_norm.weight"), GgmlType::F32, &[n_embd]);
            add(&mut w, format!("blk.{l}.ffn_gate.weight"), ty, &[n_embd, n_ff]);
            add(&mut w, format!("blk.{l}.ffn_up.weight"), ty, &[n_embd, n_ff]);
            add(&mut w, format!("blk.{l}.ffn_down.weight"), ty, &[n_ff, n_embd]);
        }
        add(&mut w, "output_norm.weight".into(), GgmlType::F32, &[n_embd]);
        add(&mut w, "output.weight".into(), ty, &[n_embd, n_vocab]);
        w
    }

    /// Header, metadata and tensor directory, padded to the alignment; plus each tensor's
    /// relative offset.
    pub fn header_bytes(&self) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        if self.version_big_endian {
            out.extend_from_slice(&self.version.to_be_bytes());
        } else {
            out.extend_from_slice(&self.version.to_le_bytes());
        }
        out.extend_from_slice(&self.n_tensors_override.unwrap_or(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.n_kv_override.unwrap_or(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut out, v);
        }
        let align = self.alignment.max(1);
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut next = 0u64;
        for t in &self.tensors {
            let off = t.offset_override.unwrap_or(next);
            offsets.push(off);
            next = off.saturating_add(t.byte_size()).div_ceil(align).saturating_mul(align);
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for d in &t.shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        let padded = (out.len() as u64).div_ceil(align) * align;
        out.resize(padded as usize, 0);
        (out, offsets)
    }

    /// The whole file in memory (small files only; `Sparse` data is materialised as zeros).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (mut out, offsets) = self.header_bytes();
        let data_start = out.len() as u64;
        for (t, off) in self.tensors.iter().zip(offsets) {
            // Hostile offsets far outside any real file: the directory says so, no data is written.
            let Some(end) = data_start.checked_add(off).and_then(|a| a.checked_add(tensor_len(t))).filter(|&e| e < 1 << 32) else {
                continue;
            };
            let (at, end) = ((data_start + off) as usize, end as usize);
            if out.len() < end {
                out.resize(end, 0);
            }
            fill(&t.data, &mut out[at..end], 0, tensor_len(t));
        }
        if let Some(n) = self.truncate_to {
            out.truncate(n as usize);
        }
        out
    }

    /// Writes the file to `path`. `Sparse` tensors leave holes, so a > 4 GiB file costs only
    /// the bytes actually written.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let ctx = || format!("writing {}", path.display());
        let mut f = File::create(path).map_err(|e| io_err(ctx(), e))?;
        let (header, offsets) = self.header_bytes();
        f.write_all(&header).map_err(|e| io_err(ctx(), e))?;
        let data_start = header.len() as u64;
        let mut end = data_start;
        for (t, off) in self.tensors.iter().zip(offsets) {
            let len = tensor_len(t);
            let Some(at) = data_start.checked_add(off).filter(|a| a.checked_add(len).is_some()) else {
                continue;
            };
            end = end.max(at + len);
            let pieces: Vec<(u64, u64)> = match t.data {
                TensorData::Sparse(_) if len > 8192 => vec![(0, 4096), (len - 4096, 4096)],
                _ => vec![(0, len)],
            };
            for (start, n) in pieces {
                // Write in chunks of at most 16 MiB.
                let mut done = 0;
                while done < n {
                    let chunk = (n - done).min(16 << 20);
                    let mut buf = vec![0u8; chunk as usize];
                    fill(&t.data, &mut buf, start + done, len);
                    f.seek(SeekFrom::Start(at + start + done)).map_err(|e| io_err(ctx(), e))?;
                    f.write_all(&buf).map_err(|e| io_err(ctx(), e))?;
                    done += chunk;
                }
            }
        }
        let final_len = self.truncate_to.unwrap_or(end);
        f.set_len(final_len).map_err(|e| io_err(ctx(), e))?;
        Ok(())
    }
}

fn tensor_len(t: &TensorSpec) -> u64 {
    match &t.data {
        TensorData::Bytes(b) => b.len() as u64,
        _ => t.byte_size(),
    }
}

/// Fills `buf` with bytes `[start, start + buf.len())` of the tensor's data.
fn fill(data: &TensorData, buf: &mut [u8], start: u64, total: u64) {
    match data {
        TensorData::Bytes(b) => buf.copy_from_slice(&b[start as usize..start as usize + buf.len()]),
        TensorData::Pattern(seed) => {
            for (i, x) in buf.iter_mut().enumerate() {
                *x = pattern_byte(*seed, start + i as u64);
            }
        }
        TensorData::Sparse(seed) => {
            for (i, x) in buf.iter_mut().enumerate() {
                let p = start + i as u64;
                let written = total <= 8192 || p < 4096 || p >= total - 4096;
                *x = if written { pattern_byte(*seed, p) } else { 0 };
            }
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a scalar's little-endian bytes (strings and arrays are not scalars: ignored).
pub(crate) fn put_scalar(out: &mut Vec<u8>, v: &GgufValue) {
    if !matches!(v, GgufValue::String(_) | GgufValue::Array(_)) {
        put_value(out, v);
    }
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Array(a) => {
            out.extend_from_slice(&(a.elem_type as u32).to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for e in a.iter() {
                put_value(out, &e);
            }
        }
    }
}
