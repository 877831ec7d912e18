//! Q5_0 (`block_q5_0`), 5-bit quants with one delta per 32 elements: the block, its dequantizer
//! and reference quantizer, its scalar reference dot with Q8_0 (summed in ggml-cpu x86's order by
//! `dot::blocks32`), and its wasm32 SIMD form for the generic 32-element mat-vec (the packed
//! layout's kernel is `simd_packed`'s nibble kernel).

use crate::dot::{Block32, a8s, dd, q5};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::dequant::q5_quants;
use crate::quant::{pack_q5, signed_absmax, trunc_min};
use crate::types::{QK5_0, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q5_0`: 32 weights = `d * (q - 16)`, q = nibble | (bit j of `qh`) << 4.
#[repr(C)]
pub struct BlockQ5_0 {
    /// Scale, IEEE half.
    pub d: u16,
    /// Fifth bits, little-endian u32.
    pub qh: [u8; 4],
    /// Nibbles.
    pub qs: [u8; QK5_0 / 2],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (32) ← block_q5_0.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let q = q5_quants(qh, &b[off::Q5_0_QS..off::Q5_0_QS + 16]);
    for (yj, &qj) in y.iter_mut().zip(q.iter()) {
        *yj = (qj as i32 - 16) as f32 * d;
    }
}

/// (32) → block_q5_0 (`quantize_row_q5_0_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let (_, max) = signed_absmax(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    let mut q = [0u8; 32];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = trunc_min(v * id + 16.5, 31);
    }
    let qh = pack_q5(&q, &mut y[off::Q5_0_QS..off::Q5_0_QS + 16]);
    y[off::Q5_0_QH..off::Q5_0_QH + 4].copy_from_slice(&qh.to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q5_0_q8_0` for one block: 5-bit quants − 16.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> Block32 {
    let h = off::Q5_0_QH;
    let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
    let qs = &b[off::Q5_0_QS..off::Q5_0_QS + 16];
    Block32 { qw: core::array::from_fn(|j| q5(qh, qs, j) - 16), qa: a8s(ba, off::Q8_0_QS), d: dd(b, ba), ms: None }
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD form of [`dot_block`] for [`crate::simd`]'s generic 32-element mat-vec,
/// bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{Act, Fmt32, dot_u7, prep_q8_0_off, q5_quants};

    /// Q5_0 · Q8_0: 5-bit quant − 16.
    pub(crate) struct Q5_0F;
    impl Fmt32 for Q5_0F {
        const WTS: usize = 22;
        const ATS: usize = 34;
        const M_OFF: Option<usize> = None;
        #[inline(always)]
        unsafe fn prep(a: &[u8], ba: usize) -> Act {
            // SAFETY: forwarded.
            unsafe { prep_q8_0_off(a, ba, 16) }
        }
        #[inline(always)]
        unsafe fn lanes(w: &[u8], bw: usize, y: &Act) -> (v128, v128) {
            // SAFETY: qh at +2, qs at +6 .. +22.
            let (q0, q1) = unsafe { q5_quants(w, bw + 2, bw + 6) };
            (dot_u7(y[0], q0, y[2]), dot_u7(y[1], q1, y[3]))
        }
    }
}
