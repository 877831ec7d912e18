//! The malformed-file suite: each case is written by the project's GGUF writer (then, where a
//! field cannot be expressed, patched), and must fail with its own typed code — never a panic,
//! never a huge allocation.

use wasm_chord::ErrorCode as E;
use wasm_chord::gguf::{GgmlType, GgufArray, GgufValue, GgufValueType, GgufWriter, ReaderLimits, TensorData, TensorSpec, read_gguf_bytes};

fn base() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", GgufValue::String("llama".into()));
    w.tensor(TensorSpec::new("a.weight", GgmlType::F32, &[32, 2], TensorData::Pattern(1)));
    w.tensor(TensorSpec::new("b.weight", GgmlType::Q8_0, &[64, 2], TensorData::Pattern(2)));
    w
}

fn code_of(bytes: &[u8]) -> E {
    match read_gguf_bytes(bytes, ReaderLimits::default()) {
        Ok(_) => panic!("file was accepted"),
        Err(e) => {
            assert!(!e.message.is_empty());
            e.code
        }
    }
}

fn code(w: &GgufWriter) -> E {
    code_of(&w.to_bytes())
}

#[test]
fn valid_base_file_parses() {
    let g = read_gguf_bytes(&base().to_bytes(), ReaderLimits::default()).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.tensors.len(), 2);
    assert_eq!(g.tensors[1].bytes, 4 * 34);
    assert_eq!(g.data_offset % 32, 0);
    let mut v2 = base();
    v2.version = 2;
    assert_eq!(read_gguf_bytes(&v2.to_bytes(), ReaderLimits::default()).unwrap().version, 2);
}

#[test]
fn all_value_types_round_trip() {
    let mut w = GgufWriter::new();
    let vals = [
        GgufValue::U8(1), GgufValue::I8(-2), GgufValue::U16(3), GgufValue::I16(-4), GgufValue::U32(5), GgufValue::I32(-6),
        GgufValue::F32(7.5), GgufValue::Bool(true), GgufValue::String("héllo".into()), GgufValue::U64(1 << 40),
        GgufValue::I64(-(1 << 40)), GgufValue::F64(0.25),
        GgufValue::Array(GgufArray::new(GgufValueType::String, vec![GgufValue::String("x".into()), GgufValue::String("".into())]).unwrap()),
        GgufValue::Array(
            GgufArray::new(GgufValueType::Array, vec![GgufValue::Array(GgufArray::new(GgufValueType::I32, vec![GgufValue::I32(9)]).unwrap())]).unwrap(),
        ),
        GgufValue::Array(GgufArray::new(GgufValueType::F32, vec![GgufValue::F32(1.5), GgufValue::F32(-2.0)]).unwrap()),
    ];
    for (i, v) in vals.iter().enumerate() {
        w.kv(&format!("k{i}"), v.clone());
    }
    let g = read_gguf_bytes(&w.to_bytes(), ReaderLimits::default()).unwrap();
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(g.get(&format!("k{i}")), Some(v));
    }
}

#[test]
fn c01_bad_magic() {
    let mut w = base();
    w.magic = *b"GGML";
    assert_eq!(code(&w), E::GgufBadMagic);
    assert_eq!(code_of(b"GG"), E::GgufBadMagic);
    assert_eq!(code_of(b""), E::GgufBadMagic);
}

#[test]
fn c02_version_1() {
    let mut w = base();
    w.version = 1;
    assert_eq!(code(&w), E::GgufUnsupportedVersion);
}

#[test]
fn c03_future_version() {
    let mut w = base();
    w.version = 4;
    assert_eq!(code(&w), E::GgufUnsupportedVersion);
}

#[test]
fn c04_big_endian() {
    let mut w = base();
    w.version_big_endian = true;
    assert_eq!(code(&w), E::GgufBigEndian);
}

#[test]
fn c05_truncated_header() {
    let mut w = base();
    w.truncate_to = Some(12);
    assert_eq!(code(&w), E::GgufTruncated);
}

#[test]
fn c06_truncated_metadata() {
    let mut w = base();
    w.kv("general.name", GgufValue::String("n".repeat(300)));
    let full = w.to_bytes();
    // Cut inside the long string value of the second key/value.
    let cut = full.windows(10).position(|x| x == b"nnnnnnnnnn").unwrap() + 150;
    assert_eq!(code_of(&full[..cut]), E::GgufTruncated);
}

#[test]
fn c07_bad_value_type() {
    let mut bytes = base().to_bytes();
    // The first value type sits after magic, version, counts and the key.
    let at = 24 + 8 + "general.architecture".len();
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    assert_eq!(code_of(&bytes), E::GgufBadValueType);
}

#[test]
fn c08_string_too_long() {
    let mut bytes = base().to_bytes();
    let at = 24; // length of the first key
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(code_of(&bytes), E::GgufStringTooLong);
}

#[test]
fn c09_array_longer_than_file() {
    let mut w = base();
    w.kv("tokenizer.ggml.scores", GgufValue::Array(GgufArray::new(GgufValueType::F32, vec![GgufValue::F32(0.0); 4]).unwrap()));
    let mut bytes = w.to_bytes();
    let needle = b"tokenizer.ggml.scores";
    let at = bytes.windows(needle.len()).position(|x| x == needle).unwrap() + needle.len() + 4 + 4;
    bytes[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_eq!(code_of(&bytes), E::GgufArrayTooLong);
}

#[test]
fn c10_array_over_cap() {
    let mut w = base();
    w.kv("arr", GgufValue::Array(GgufArray::new(GgufValueType::U8, vec![GgufValue::U8(0); 100]).unwrap()));
    let limits = ReaderLimits { max_array: 10, ..Default::default() };
    assert_eq!(read_gguf_bytes(&w.to_bytes(), limits).unwrap_err().code, E::GgufArrayTooLong);
}

#[test]
fn c11_nesting_too_deep() {
    let mut v = GgufValue::Array(GgufArray::new(GgufValueType::U8, vec![GgufValue::U8(1)]).unwrap());
    for _ in 0..3 {
        v = GgufValue::Array(GgufArray::new(GgufValueType::Array, vec![v]).unwrap());
    }
    let mut w = base();
    w.kv("deep", v);
    assert_eq!(code(&w), E::GgufNestingTooDeep);
}

#[test]
fn c12_bad_utf8() {
    let mut w = base();
    w.kv("general.name", GgufValue::String("abc".into()));
    let mut bytes = w.to_bytes();
    let needle = b"abc";
    let at = bytes.windows(3).rposition(|x| x == needle).unwrap();
    bytes[at] = 0xFF;
    assert_eq!(code_of(&bytes), E::GgufBadUtf8);
}

#[test]
fn c13_duplicate_key() {
    let mut w = base();
    w.kv("general.architecture", GgufValue::String("llama".into()));
    assert_eq!(code(&w), E::GgufDuplicateKey);
}

#[test]
fn c14_too_many_kv() {
    let mut w = base();
    w.n_kv_override = Some(u64::MAX / 4);
    assert_eq!(code(&w), E::GgufTooManyEntries);
}

#[test]
fn c15_too_many_tensors() {
    let mut w = base();
    w.n_tensors_override = Some(1 << 40);
    assert_eq!(code(&w), E::GgufTooManyEntries);
}

#[test]
fn c16_bad_alignment() {
    for (a, says) in [(GgufValue::U32(0), "found u32 0"), (GgufValue::U32(48), "found u32 48"), (GgufValue::String("32".into()), "found string \"32\"")] {
        let mut w = base();
        w.kv("general.alignment", a);
        let e = read_gguf_bytes(&w.to_bytes(), ReaderLimits::default()).unwrap_err();
        assert_eq!(e.code, E::GgufBadAlignment);
        // The value as the file has it, not Rust's Debug form (`U32(0)`).
        assert!(e.message.ends_with(says), "{e}");
    }
}

#[test]
fn c17_tensor_name_too_long() {
    let mut w = base();
    w.tensors[0].name = "x".repeat(65);
    assert_eq!(code(&w), E::GgufTensorNameTooLong);
    w.tensors[0].name = "x".repeat(64);
    assert!(read_gguf_bytes(&w.to_bytes(), ReaderLimits::default()).is_ok());
}

#[test]
fn c18_duplicate_tensor() {
    let mut w = base();
    w.tensors[1].name = "a.weight".into();
    assert_eq!(code(&w), E::GgufDuplicateTensor);
}

#[test]
fn c19_too_many_dims() {
    let mut w = base();
    w.tensors[0].shape = vec![32, 1, 1, 1, 2];
    assert_eq!(code(&w), E::GgufBadDims);
    w.tensors[0].shape = vec![];
    assert_eq!(code(&w), E::GgufBadDims);
}

#[test]
fn c20_unknown_type() {
    let mut w = base();
    w.tensors[0].type_id = 4; // Q4_2, removed from ggml
    assert_eq!(code(&w), E::GgufUnknownType);
    w.tensors[0].type_id = 1000;
    assert_eq!(code(&w), E::GgufUnknownType);
}

#[test]
fn c21_row_not_multiple_of_block() {
    let mut w = base();
    w.tensors[1].shape = vec![48, 2]; // Q8_0 blocks are 32 elements
    assert_eq!(code(&w), E::GgufBadShape);
}

#[test]
fn c22_element_count_overflow() {
    let mut w = base();
    w.tensors[0].shape = vec![1 << 32, 1 << 32, 4];
    assert_eq!(code(&w), E::GgufBadShape);
    w.tensors[0].shape = vec![u64::MAX];
    assert_eq!(code(&w), E::GgufBadShape); // negative as i64
}

#[test]
fn c23_misaligned_tensor() {
    let mut w = base();
    w.tensors[1].offset_override = Some(264);
    assert_eq!(code(&w), E::GgufMisalignedTensor);
}

#[test]
fn c24_tensor_past_end_of_file() {
    let mut w = base();
    let full = w.to_bytes().len() as u64;
    w.truncate_to = Some(full - 10);
    assert_eq!(code(&w), E::GgufTensorOutOfBounds);
    let mut w = base();
    w.tensors[1].offset_override = Some(u64::MAX - 31);
    assert_eq!(code(&w), E::GgufTensorOutOfBounds);
}

#[test]
fn c25_overlapping_tensors() {
    let mut w = base();
    w.tensors[1].offset_override = Some(128); // a.weight occupies [0, 256)
    assert_eq!(code(&w), E::GgufTensorOverlap);
}

#[test]
fn c26_bad_bool() {
    let mut w = base();
    w.kv("flag", GgufValue::Bool(true));
    let mut bytes = w.to_bytes();
    let needle = b"flag";
    let at = bytes.windows(4).position(|x| x == needle).unwrap() + 4 + 4;
    bytes[at] = 7;
    assert_eq!(code_of(&bytes), E::GgufBadMetadata);
}

#[test]
fn c27_dimension_of_zero() {
    let mut w = base();
    w.tensors[0].shape = vec![32, 0];
    let e = read_gguf_bytes(&w.to_bytes(), ReaderLimits::default()).unwrap_err();
    assert_eq!(e.code, E::GgufBadShape);
    assert!(e.message.contains("\"a.weight\" has a dimension of 0"), "{}", e.message);
}

#[test]
fn c28_empty_metadata_key() {
    let mut w = base();
    w.kv("", GgufValue::U32(1));
    let e = read_gguf_bytes(&w.to_bytes(), ReaderLimits::default()).unwrap_err();
    assert_eq!(e.code, E::GgufBadMetadata);
    assert!(e.message.contains("metadata key #1 is empty"), "{}", e.message);
}

#[test]
fn random_corruption_never_panics() {
    let good = base().to_bytes();
    let mut state = 0x1234_5678_9ABC_DEF0u64;
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % b.len();
            b[i] = (state >> 32) as u8;
        }
        let cut = (state >> 40) as usize % (b.len() + 1);
        let _ = read_gguf_bytes(&b[..cut], ReaderLimits::default());
        let _ = read_gguf_bytes(&b, ReaderLimits::default());
    }
}
