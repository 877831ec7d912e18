//! Q5_1 (`block_q5_1`), 5-bit quants with a delta and a minimum per 32 elements: the block, its
//! dequantizer and reference quantizer, its scalar reference dot with Q8_1 (summed in ggml-cpu
//! x86's order by `dot::blocks32`), and its wasm32 SIMD form for the generic 32-element mat-vec
//! (the packed layout's kernel is `simd_packed`'s nibble kernel).

use crate::dot::{Block32, a8s, dd, q5};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::dequant::q5_quants;
use crate::quant::{min_max, pack_q5};
use crate::types::{QK5_1, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q5_1`: 32 weights = `d * q + m`, q 5-bit.
#[repr(C)]
pub struct BlockQ5_1 {
    /// Scale, IEEE half.
    pub d: u16,
    /// Minimum, IEEE half.
    pub m: u16,
    /// Fifth bits, little-endian u32.
    pub qh: [u8; 4],
    /// Nibbles.
    pub qs: [u8; QK5_1 / 2],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (32) ← block_q5_1.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let m = f16_to_f32(rd_u16(b, off::Q5_1_M));
    let h = off::Q5_1_QH;
    let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
    let q = q5_quants(qh, &b[off::Q5_1_QS..off::Q5_1_QS + 16]);
    for (yj, &qj) in y.iter_mut().zip(q.iter()) {
        *yj = qj as f32 * d + m;
    }
}

/// (32) → block_q5_1 (`quantize_row_q5_1_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    wr_u16(y, off::Q5_1_M, f32_to_f16(min));
    let mut q = [0u8; 32];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = ((v - min) * id + 0.5) as i32 as u8; // C: (uint8_t)(x0 + 0.5f)
    }
    let qh = pack_q5(&q, &mut y[off::Q5_1_QS..off::Q5_1_QS + 16]);
    y[off::Q5_1_QH..off::Q5_1_QH + 4].copy_from_slice(&qh.to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q5_1_q8_1` for one block: raw 5-bit quants, plus m·s.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> Block32 {
    let h = off::Q5_1_QH;
    let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
    let qs = &b[off::Q5_1_QS..off::Q5_1_QS + 16];
    let ms = (f16_to_f32(rd_u16(b, off::Q5_1_M)), f16_to_f32(rd_u16(ba, off::Q8_1_S)));
    Block32 { qw: core::array::from_fn(|j| q5(qh, qs, j)), qa: a8s(ba, off::Q8_1_QS), d: dd(b, ba), ms: Some(ms) }
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD form of [`dot_block`] for [`crate::simd`]'s generic 32-element mat-vec,
/// bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{Act, Fmt32, dot_u7_0, prep_q8_1, q5_quants};

    /// Q5_1 · Q8_1: raw 5-bit quants, plus m·s.
    pub(crate) struct Q5_1F;
    impl Fmt32 for Q5_1F {
        const WTS: usize = 24;
        const ATS: usize = 36;
        const M_OFF: Option<usize> = Some(2);
        #[inline(always)]
        unsafe fn prep(a: &[u8], ba: usize) -> Act {
            // SAFETY: forwarded.
            unsafe { prep_q8_1(a, ba) }
        }
        #[inline(always)]
        unsafe fn lanes(w: &[u8], bw: usize, y: &Act) -> (v128, v128) {
            // SAFETY: qh at +4, qs at +8 .. +24.
            let (q0, q1) = unsafe { q5_quants(w, bw + 4, bw + 8) };
            (dot_u7_0(y[0], q0), dot_u7_0(y[1], q1))
        }
    }
}
