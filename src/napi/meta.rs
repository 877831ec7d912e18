//! GGUF metadata as JS values. Arrays longer than [`INLINE_ARRAY_MAX`] are not materialised: they
//! appear as `{ type: 'array', elementType, length }`, and `model.getMetadataArray(key, start,
//! end)` returns a slice. Integers beyond 2^53 become BigInt.

use serde_json::{Map, Number, Value};

use crate::gguf::{GgufArray, GgufFile, GgufValue};

/// Arrays up to this length are returned inline by `model.metadata`.
pub const INLINE_ARRAY_MAX: usize = 1024;

const MAX_SAFE: u64 = (1 << 53) - 1;

fn int(v: i128) -> Value {
    if v.unsigned_abs() <= u128::from(MAX_SAFE) {
        Value::Number(Number::from(v as i64))
    } else if v >= 0 {
        Value::Number(Number::from(v as u64))
    } else {
        Value::Number(Number::from(v as i64))
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// One value as JSON (arrays inline only when short).
pub fn value_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(x) => int((*x).into()),
        GgufValue::I8(x) => int((*x).into()),
        GgufValue::U16(x) => int((*x).into()),
        GgufValue::I16(x) => int((*x).into()),
        GgufValue::U32(x) => int((*x).into()),
        GgufValue::I32(x) => int((*x).into()),
        GgufValue::U64(x) => int((*x).into()),
        GgufValue::I64(x) => int((*x).into()),
        GgufValue::F32(x) => float((*x).into()),
        GgufValue::F64(x) => float(*x),
        GgufValue::Bool(b) => Value::Bool(*b),
        GgufValue::String(s) => Value::String(s.clone()),
        GgufValue::Array(a) if a.len() <= INLINE_ARRAY_MAX => array_slice(a, 0, a.len()),
        GgufValue::Array(a) => {
            let mut m = Map::new();
            m.insert("type".into(), Value::String("array".into()));
            m.insert("elementType".into(), Value::String(a.elem_type().name().into()));
            m.insert("length".into(), int(a.len() as i128));
            Value::Object(m)
        }
    }
}

/// Elements `[start, end)` of an array.
pub fn array_slice(a: &GgufArray, start: usize, end: usize) -> Value {
    let end = end.min(a.len());
    Value::Array((start.min(end)..end).filter_map(|i| a.get(i)).map(|v| value_json(&v)).collect())
}

/// All key/values as one object.
pub fn metadata_json(g: &GgufFile) -> Value {
    Value::Object(g.metadata.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}
