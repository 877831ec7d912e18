//! Q8_0 (`block_q8_0`), 8-bit quants with one delta per 32 elements, also the activation type of
//! Q4_0/Q5_0/Q8_0: the block, its dequantizer and reference quantizer (the activation quantizer
//! llama.cpp runs is `quant::quantize_row_scalar`'s x86 twin), its scalar reference dot with Q8_0
//! (summed in ggml-cpu x86's order by `dot::blocks32`), and its wasm32 SIMD kernels: the form for
//! the generic 32-element mat-vec and the packed layout's.

use crate::dot::{Block32, a8s, dd};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::roundf;
use crate::types::{QK8_0, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q8_0`: 32 values = `d * q`.
#[repr(C)]
pub struct BlockQ8_0 {
    /// Scale, IEEE half.
    pub d: u16,
    /// Quants.
    pub qs: [i8; QK8_0],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (32) ← block_q8_0.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    for (yj, &q) in y.iter_mut().zip(&b[off::Q8_0_QS..off::Q8_0_QS + 32]) {
        *yj = q as i8 as f32 * d;
    }
}

/// (32) → block_q8_0 (`quantize_row_q8_0_ref`: `id = 1/d`, `roundf`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    for (j, &v) in x.iter().enumerate() {
        y[off::Q8_0_QS + j] = roundf(v * id) as i32 as i8 as u8;
    }
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q8_0_q8_0` for one block.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> Block32 {
    Block32 { qw: a8s(b, off::Q8_0_QS), qa: a8s(ba, off::Q8_0_QS), d: dd(b, ba), ms: None }
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD form of [`dot_block`] for [`crate::simd`]'s generic 32-element mat-vec,
/// bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::pack::LAYOUTS;
    use crate::simd::{Act, Fmt32, ldo, pair_split};
    use crate::simd_packed::Packed32;

    /// Q8_0 · Q8_0: signed × signed, activation split and widened once per block.
    pub(crate) struct Q8_0F;
    impl Fmt32 for Q8_0F {
        const WTS: usize = 34;
        const ATS: usize = 34;
        const M_OFF: Option<usize> = None;
        #[inline(always)]
        unsafe fn prep(a: &[u8], ba: usize) -> Act {
            // SAFETY: quants at +2 .. +34.
            let (y0, y1) = unsafe { (ldo(a, ba, 2), ldo(a, ba, 18)) };
            let ((a0, b0), (a1, b1)) = (pair_split(y0), pair_split(y1));
            [a0, b0, a1, b1]
        }
        #[inline(always)]
        unsafe fn lanes(w: &[u8], bw: usize, y: &Act) -> (v128, v128) {
            // SAFETY: quants at +2 .. +34.
            let (x0, x1) = unsafe { (ldo(w, bw, 2), ldo(w, bw, 18)) };
            let ((a0, b0), (a1, b1)) = (pair_split(x0), pair_split(x1));
            (
                i32x4_add(i32x4_dot_i16x8(a0, y[0]), i32x4_dot_i16x8(b0, y[1])),
                i32x4_add(i32x4_dot_i16x8(a1, y[2]), i32x4_dot_i16x8(b1, y[3])),
            )
        }
    }

    /// Q8_0, packed: each half-block already in the order its i16 halves are taken in.
    pub(crate) struct Q8_0P;
    impl Packed32 for Q8_0P {
        type F = Q8_0F;
        type G = ();
        type Q = [v128; 4];
        #[inline(always)]
        unsafe fn group(_: &[u8], _: usize) {}
        #[inline(always)]
        unsafe fn quants<const K: usize>(w: &[u8], g: usize, _: ()) -> [v128; 4] {
            // SAFETY: block K's quants at +QS + 32K .. +QS + 32K + 32 of the group.
            const QS: usize = LAYOUTS[4].packed_qs();
            let (x0, x1) = unsafe { (ldo(w, g, QS + 32 * K), ldo(w, g, QS + 16 + 32 * K)) };
            [i16x8_extend_low_i8x16(x0), i16x8_extend_high_i8x16(x0), i16x8_extend_low_i8x16(x1), i16x8_extend_high_i8x16(x1)]
        }
        #[inline(always)]
        fn dot(x: [v128; 4], y: &[v128; 4]) -> (v128, v128) {
            (
                i32x4_add(i32x4_dot_i16x8(x[0], y[0]), i32x4_dot_i16x8(x[1], y[1])),
                i32x4_add(i32x4_dot_i16x8(x[2], y[2]), i32x4_dot_i16x8(x[3], y[3])),
            )
        }
    }
}
