//! Q4_1 (`block_q4_1`), 4-bit quants with a delta and a minimum per 32 elements: the block, its
//! dequantizer and reference quantizer, its scalar reference dot with Q8_1 (summed in ggml-cpu
//! x86's order by `dot::blocks32`), and its wasm32 SIMD form for the generic 32-element mat-vec
//! (the packed layout's kernel is `simd_packed`'s nibble kernel).

use crate::dot::{Block32, a8s, dd, nibbles};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::{min_max, trunc_min};
use crate::types::{QK4_1, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q4_1`: 32 weights = `d * q + m`.
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale, IEEE half.
    pub d: u16,
    /// Minimum, IEEE half.
    pub m: u16,
    /// Nibbles.
    pub qs: [u8; QK4_1 / 2],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (32) ← block_q4_1.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let m = f16_to_f32(rd_u16(b, off::Q4_1_M));
    let qs = &b[off::Q4_1_QS..off::Q4_1_QS + 16];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// (32) → block_q4_1 (`quantize_row_q4_1_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    wr_u16(y, off::Q4_1_M, f32_to_f16(min));
    for j in 0..16 {
        let a = trunc_min((x[j] - min) * id + 0.5, 15);
        let b = trunc_min((x[j + 16] - min) * id + 0.5, 15);
        y[off::Q4_1_QS + j] = a | (b << 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q4_1_q8_1` for one block: raw nibbles, plus m·s.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> Block32 {
    let ms = (f16_to_f32(rd_u16(b, off::Q4_1_M)), f16_to_f32(rd_u16(ba, off::Q8_1_S)));
    Block32 { qw: nibbles(&b[off::Q4_1_QS..off::Q4_1_QS + 16]), qa: a8s(ba, off::Q8_1_QS), d: dd(b, ba), ms: Some(ms) }
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD form of [`dot_block`] for [`crate::simd`]'s generic 32-element mat-vec,
/// bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{Act, Fmt32, dot_u7_0, ldo, nibbles, prep_q8_1};

    /// Q4_1 · Q8_1: raw nibbles, plus m·s.
    pub(crate) struct Q4_1F;
    impl Fmt32 for Q4_1F {
        const WTS: usize = 20;
        const ATS: usize = 36;
        const M_OFF: Option<usize> = Some(2);
        #[inline(always)]
        unsafe fn prep(a: &[u8], ba: usize) -> Act {
            // SAFETY: forwarded.
            unsafe { prep_q8_1(a, ba) }
        }
        #[inline(always)]
        unsafe fn lanes(w: &[u8], bw: usize, y: &Act) -> (v128, v128) {
            // SAFETY: qs at +4 .. +20.
            let (lo, hi) = nibbles(unsafe { ldo(w, bw, 4) });
            (dot_u7_0(y[0], lo), dot_u7_0(y[1], hi))
        }
    }
}
