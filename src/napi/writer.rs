//! `writeGguf(path, spec)`: the project's GGUF writer exposed to JavaScript, for tests and
//! synthetic models (including deliberately malformed and sparse > 4 GiB files).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use super::errors::invalid_option;
use super::job::Job;
use crate::ChordError;
use crate::gguf::{GgmlType, GgufArray, GgufValue, GgufValueType, GgufWriter, TensorData, TensorSpec};

fn value_type(name: &str) -> std::result::Result<GgufValueType, ChordError> {
    (0..13).filter_map(GgufValueType::from_id).find(|t| t.name() == name).ok_or_else(|| invalid_option(format!("unknown GGUF value type {name:?}")))
}

fn typed(t: GgufValueType, v: &Value, elem: Option<GgufValueType>) -> std::result::Result<GgufValue, ChordError> {
    let bad = || invalid_option(format!("value {v} is not a valid {}", t.name()));
    // JS numbers may arrive as floats; large integers may be given as decimal strings.
    let integral = |f: f64| f.is_finite() && f.fract() == 0.0;
    let i = || {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|&f| integral(f) && f.abs() < 9.2e18).map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(bad)
    };
    let u = || {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|&f| integral(f) && (0.0..1.8e19).contains(&f)).map(|f| f as u64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(bad)
    };
    Ok(match t {
        GgufValueType::U8 => GgufValue::U8(u()?.try_into().map_err(|_| bad())?),
        GgufValueType::I8 => GgufValue::I8(i()?.try_into().map_err(|_| bad())?),
        GgufValueType::U16 => GgufValue::U16(u()?.try_into().map_err(|_| bad())?),
        GgufValueType::I16 => GgufValue::I16(i()?.try_into().map_err(|_| bad())?),
        GgufValueType::U32 => GgufValue::U32(u()?.try_into().map_err(|_| bad())?),
        GgufValueType::I32 => GgufValue::I32(i()?.try_into().map_err(|_| bad())?),
        GgufValueType::U64 => GgufValue::U64(u()?),
        GgufValueType::I64 => GgufValue::I64(i()?),
        GgufValueType::F32 => GgufValue::F32(v.as_f64().ok_or_else(bad)? as f32),
        GgufValueType::F64 => GgufValue::F64(v.as_f64().ok_or_else(bad)?),
        GgufValueType::Bool => GgufValue::Bool(v.as_bool().ok_or_else(bad)?),
        GgufValueType::String => GgufValue::String(v.as_str().ok_or_else(bad)?.to_string()),
        GgufValueType::Array => {
            let items = v.as_array().ok_or_else(bad)?;
            let et = match elem {
                Some(e) => e,
                None => items.first().map_or(Ok(GgufValueType::U32), infer)?,
            };
            let vals = items.iter().map(|x| typed(et, x, None)).collect::<std::result::Result<Vec<_>, _>>()?;
            GgufValue::Array(GgufArray::new(et, vals).ok_or_else(bad)?)
        }
    })
}

fn infer(v: &Value) -> std::result::Result<GgufValueType, ChordError> {
    Ok(match v {
        Value::String(_) => GgufValueType::String,
        Value::Bool(_) => GgufValueType::Bool,
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => GgufValueType::U32,
            Some(f) if f.fract() == 0.0 && f > 0.0 => GgufValueType::U64,
            Some(f) if f.fract() == 0.0 && f >= f64::from(i32::MIN) => GgufValueType::I32,
            _ => GgufValueType::F32,
        },
        Value::Array(_) => GgufValueType::Array,
        _ => return Err(invalid_option(format!("cannot infer a GGUF type for {v}"))),
    })
}

fn meta_value(v: &Value) -> std::result::Result<GgufValue, ChordError> {
    if let Some(o) = v.as_object()
        && let Some(t) = o.get("type").and_then(Value::as_str)
    {
        let elem = o.get("elementType").and_then(Value::as_str).map(value_type).transpose()?;
        return typed(value_type(t)?, o.get("value").unwrap_or(&Value::Null), elem);
    }
    typed(infer(v)?, v, None)
}

/// A non-negative integer from JSON (JS numbers may arrive as floats).
fn num_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(f)).map(|f| f as u64))
}

fn field<'a>(o: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a Value> {
    o.get(k).filter(|v| !v.is_null())
}

fn tensor(t: &Value) -> std::result::Result<TensorSpec, ChordError> {
    let o = t.as_object().ok_or_else(|| invalid_option("each tensor must be an object"))?;
    let name = field(o, "name").and_then(Value::as_str).ok_or_else(|| invalid_option("tensor.name must be a string"))?;
    let type_id = match (field(o, "typeId").and_then(num_u64), field(o, "type").and_then(Value::as_str)) {
        (Some(id), _) => id as u32,
        (None, Some(n)) => GgmlType::all().find(|g| g.name() == n).ok_or_else(|| invalid_option(format!("unknown ggml type {n:?}")))?.id(),
        _ => return Err(invalid_option(format!("tensor {name:?} needs a type"))),
    };
    let shape = field(o, "shape")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(num_u64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| invalid_option(format!("tensor {name:?}: shape must be an array of non-negative integers")))?;
    let seed = field(o, "seed").and_then(num_u64).unwrap_or(0);
    let data = match field(o, "data").and_then(Value::as_str).unwrap_or("pattern") {
        "pattern" => TensorData::Pattern(seed),
        "sparse" => TensorData::Sparse(seed),
        other => return Err(invalid_option(format!("tensor {name:?}: data must be 'pattern' or 'sparse', got {other:?}"))),
    };
    Ok(TensorSpec { name: name.to_string(), type_id, shape, data, offset_override: field(o, "offset").and_then(num_u64) })
}

fn build(spec: &Value) -> std::result::Result<GgufWriter, ChordError> {
    let o = spec.as_object().ok_or_else(|| invalid_option("spec must be an object"))?;
    let mut w = GgufWriter::new();
    if let Some(v) = field(o, "version").and_then(num_u64) {
        w.version = v as u32;
    }
    if let Some(m) = field(o, "magic").and_then(Value::as_str) {
        let b = m.as_bytes();
        if b.len() != 4 {
            return Err(invalid_option("magic must be 4 ASCII characters"));
        }
        w.magic.copy_from_slice(b);
    }
    w.version_big_endian = field(o, "bigEndian").and_then(Value::as_bool).unwrap_or(false);
    if let Some(a) = field(o, "alignment").and_then(num_u64) {
        w.alignment = a;
    }
    w.n_tensors_override = field(o, "tensorCount").and_then(num_u64);
    w.n_kv_override = field(o, "kvCount").and_then(num_u64);
    w.truncate_to = field(o, "truncateTo").and_then(num_u64);
    if let Some(m) = field(o, "metadata") {
        let m = m.as_object().ok_or_else(|| invalid_option("metadata must be an object"))?;
        for (k, v) in m {
            w.kv(k, meta_value(v)?);
        }
    }
    if let Some(ts) = field(o, "tensors") {
        for t in ts.as_array().ok_or_else(|| invalid_option("tensors must be an array"))? {
            w.tensor(tensor(t)?);
        }
    }
    Ok(w)
}

/// Writes a GGUF file with the project's writer (tests, synthetic models, hostile files).
///
/// `spec`: `{ metadata?: Record<string, value | { type, value, elementType? }>, tensors?: Array<{
/// name, type (ggml name) | typeId, shape, data?: 'pattern' | 'sparse', seed?, offset? }>,
/// version? (3), alignment? (32), magic?, bigEndian?, tensorCount?, kvCount?, truncateTo? }`.
/// Untyped metadata numbers become u32 (u64 when large, i32 when negative, f32 when fractional).
/// `'sparse'` tensors write only their first and last 4 KiB, leaving a hole (no disk cost).
/// Resolves to the number of bytes of the file.
///
/// Exported as `writeGguf` by `wasm-chord/testing` (`testing.js`), not by the main entry.
#[napi(js_name = "_writeGguf", skip_typescript)]
pub fn write_gguf(path: String, spec: Value) -> AsyncTask<Job<f64>> {
    Job::task(move || {
        let w = build(&spec)?;
        let p = std::path::Path::new(&path);
        w.write_to(p)?;
        Ok(std::fs::metadata(p).map_err(|e| crate::error::io_err(format!("stat {path}"), e))?.len() as f64)
    })
}

/// Shape of `writeGguf`'s spec (see `writeGguf`).
#[allow(dead_code)] // reason: declares the TypeScript shape of the spec; the value itself is read as JSON
#[napi(object)]
pub struct GgufSpec {
    /// Key/values: plain values (strings, booleans, numbers, arrays) or `{ type, value, elementType? }`.
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// Tensors in file order.
    pub tensors: Option<Vec<GgufTensorSpec>>,
    /// GGUF version to write (default 3).
    pub version: Option<u32>,
    /// Data alignment (default 32; declare a different one with `general.alignment`).
    pub alignment: Option<u32>,
    /// Magic to write (default `GGUF`).
    pub magic: Option<String>,
    /// Write the version big-endian (hostile files).
    pub big_endian: Option<bool>,
    /// Tensor count to write instead of the real one (hostile files).
    pub tensor_count: Option<f64>,
    /// Key/value count to write instead of the real one (hostile files).
    pub kv_count: Option<f64>,
    /// Truncate the file to this many bytes (hostile files).
    pub truncate_to: Option<f64>,
}

/// One tensor of a [`GgufSpec`].
#[allow(dead_code)] // reason: TypeScript shape only, as for `GgufSpec`
#[napi(object)]
pub struct GgufTensorSpec {
    /// Name.
    pub name: String,
    /// ggml type name (`F32`, `Q8_0`, `Q4_K`, …).
    pub r#type: Option<String>,
    /// Raw ggml type id (overrides `type`; hostile files).
    pub type_id: Option<u32>,
    /// ggml `ne`.
    pub shape: Vec<f64>,
    /// `'pattern'` (default) or `'sparse'`.
    pub data: Option<String>,
    /// Pattern seed.
    pub seed: Option<u32>,
    /// Relative offset to write instead of the computed one (hostile files).
    pub offset: Option<f64>,
}
