//! Q8_1 (`block_q8_1`), the activation type of Q4_1/Q5_1: 8-bit quants with a delta and the
//! delta times their sum. Its block, dequantizer and reference quantizer (the quantizer llama.cpp
//! runs is `quant::quantize_row_scalar`'s x86 twin, with a SIMD form in `simd`); no dot of its own.

use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::roundf;
use crate::types::{QK8_1, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q8_1`: like Q8_0 plus `s = d * sum(qs)`.
#[repr(C)]
pub struct BlockQ8_1 {
    /// Scale, IEEE half.
    pub d: u16,
    /// `d * sum(qs)`, IEEE half.
    pub s: u16,
    /// Quants.
    pub qs: [i8; QK8_1],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (32) ← block_q8_1.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    for (yj, &q) in y.iter_mut().zip(&b[off::Q8_1_QS..off::Q8_1_QS + 32]) {
        *yj = q as i8 as f32 * d;
    }
}

/// (32) → block_q8_1 (`quantize_row_q8_1_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    let mut sum = 0i32;
    for (j, &v) in x.iter().enumerate() {
        let q = roundf(v * id) as i32 as i8;
        sum += q as i32;
        y[off::Q8_1_QS + j] = q as u8;
    }
    wr_u16(y, off::Q8_1_S, f32_to_f16(sum as f32 * d));
}

