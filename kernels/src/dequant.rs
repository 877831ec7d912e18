//! Scalar dequantizers, ports of ggml's `dequantize_row_*` (ggml-quants.c). Each float is computed
//! with the same operation order as ggml (and gguf-py's numpy port), so results are bit-exact.
//! Each format's block dequantizer lives in its home in [`crate::formats`]; here is the dispatcher.

use crate::f16::{bf16_to_f32, f16_to_f32};
use crate::types::*;

/// Dequantizes `src` (whole blocks of `t`) into `out` (one f32 per element).
/// Extra bytes/elements beyond the shorter of the two are left untouched.
pub fn dequantize_row(t: GgmlType, src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(t.row_bytes(out.len()), Some(src.len()));
    let ts = t.type_size();
    let qk = t.block_size();
    let f: fn(&[u8], &mut [f32]) = match t {
        GgmlType::F32 => |b, y| y[0] = rd_f32(b, 0),
        GgmlType::F16 => |b, y| y[0] = f16_to_f32(rd_u16(b, 0)),
        GgmlType::BF16 => |b, y| y[0] = bf16_to_f32(rd_u16(b, 0)),
        GgmlType::Q4_0 => crate::formats::q4_0::dequantize,
        GgmlType::Q4_1 => crate::formats::q4_1::dequantize,
        GgmlType::Q5_0 => crate::formats::q5_0::dequantize,
        GgmlType::Q5_1 => crate::formats::q5_1::dequantize,
        GgmlType::Q8_0 => crate::formats::q8_0::dequantize,
        GgmlType::Q8_1 => crate::formats::q8_1::dequantize,
        GgmlType::Q2_K => crate::formats::q2_k::dequantize,
        GgmlType::Q3_K => crate::formats::q3_k::dequantize,
        GgmlType::Q4_K => crate::formats::q4_k::dequantize,
        GgmlType::Q5_K => crate::formats::q5_k::dequantize,
        GgmlType::Q6_K => crate::formats::q6_k::dequantize,
        GgmlType::Q8_K => crate::formats::q8_k::dequantize,
    };
    for (b, y) in src.chunks_exact(ts).zip(out.chunks_exact_mut(qk)) {
        f(b, y);
    }
}

/// The 5-bit quants of a Q5_0/Q5_1 block: (32) in 0..=31.
#[inline]
pub(crate) fn q5_quants(qh: u32, qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        let xh0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
        q[j] = (qs[j] & 0xF) | xh0;
        q[j + 16] = (qs[j] >> 4) | xh1;
    }
    q
}

