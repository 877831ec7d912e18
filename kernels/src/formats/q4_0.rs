//! Q4_0 (`block_q4_0`), 4-bit quants with one delta per 32 elements: the block, its dequantizer
//! and reference quantizer, its scalar reference dot with Q8_0 (one block's integer and float
//! parts, summed in ggml-cpu x86's order by `dot::blocks32`), and its wasm32 SIMD form for the
//! generic 32-element mat-vec (the packed layout's kernel is `simd_packed`'s nibble kernel).

use crate::dot::{Block32, a8s, dd, nibbles};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::{signed_absmax, trunc_min};
use crate::types::{QK4_0, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q4_0`: 32 weights = `d * (q - 8)`, q a nibble; `qs[j]` holds elements j (low) and j+16 (high).
#[repr(C)]
pub struct BlockQ4_0 {
    /// Scale, IEEE half.
    pub d: u16,
    /// Nibbles.
    pub qs: [u8; QK4_0 / 2],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (32) ← block_q4_0.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let qs = &b[off::Q4_0_QS..off::Q4_0_QS + 16];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// (32) → block_q4_0 (`quantize_row_q4_0_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let (_, max) = signed_absmax(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    for j in 0..16 {
        let a = trunc_min(x[j] * id + 8.5, 15);
        let b = trunc_min(x[j + 16] * id + 8.5, 15);
        y[off::Q4_0_QS + j] = a | (b << 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q4_0_q8_0` for one block: quants − 8.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> Block32 {
    let q = nibbles(&b[off::Q4_0_QS..off::Q4_0_QS + 16]);
    Block32 { qw: core::array::from_fn(|j| q[j] - 8), qa: a8s(ba, off::Q8_0_QS), d: dd(b, ba), ms: None }
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD form of [`dot_block`] for [`crate::simd`]'s generic 32-element mat-vec,
/// bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{Act, Fmt32, dot_u7, ldo, nibbles, prep_q8_0_off};

    /// Q4_0 · Q8_0: nibble − 8; low nibbles are elements 0..16, high 16..32.
    pub(crate) struct Q4_0F;
    impl Fmt32 for Q4_0F {
        const WTS: usize = 18;
        const ATS: usize = 34;
        const M_OFF: Option<usize> = None;
        #[inline(always)]
        unsafe fn prep(a: &[u8], ba: usize) -> Act {
            // SAFETY: forwarded.
            unsafe { prep_q8_0_off(a, ba, 8) }
        }
        #[inline(always)]
        unsafe fn lanes(w: &[u8], bw: usize, y: &Act) -> (v128, v128) {
            // SAFETY: qs at +2 .. +18.
            let (lo, hi) = nibbles(unsafe { ldo(w, bw, 2) });
            (dot_u7(y[0], lo, y[2]), dot_u7(y[1], hi, y[3]))
        }
    }
}
