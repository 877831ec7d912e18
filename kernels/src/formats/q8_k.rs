//! Q8_K (`block_q8_K`), the activation type of the K-quants: 256 8-bit quants, an f32 delta and
//! the sums of each 16. Its block, dequantizer, reference quantizer (and the grouped-row variant
//! the repacked Q4_K kernels use), and its wasm32 SIMD quantizer; no dot of its own.

use crate::quant::nearest_int;
use crate::types::{GgmlType, QK_K, off, rd_f32, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q8_K`: activation block of the K-quants, value = `d * q`.
#[repr(C)]
pub struct BlockQ8K {
    /// Scale (f32, not half).
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of the quants in each group of 16.
    pub bsums: [i16; QK_K / 16],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (256) ← block_q8_K.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = rd_f32(b, 0);
    for (yj, &q) in y.iter_mut().zip(&b[off::Q8K_QS..off::Q8K_QS + QK_K]) {
        *yj = q as i8 as f32 * d;
    }
}

/// (256) → block_q8_K as ggml-cpu x86's `ggml_quantize_mat_q8_K_4x8` quantizes the rows it
/// packs in groups of 4 for the repacked Q4_K kernels: as [`quantize`], except that when both
/// +max and −max occur the positive one sets the sign (`iscale = −127/max`).
pub fn quantize_row_q8_k_x4(x: &[f32], out: &mut [u8]) {
    if GgmlType::Q8_K.row_bytes(x.len()) != Some(out.len()) {
        debug_assert!(false, "quantize_row_q8_k_x4: bad lengths");
        return;
    }
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(GgmlType::Q8_K.type_size())) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let max = if xb.contains(&amax) { amax } else { -amax };
        q8_k_fill(xb, yb, amax, max);
    }
}

/// (256) → block_q8_K (`quantize_row_q8_K_ref`: `iscale = -127/max`, nearest_int, bsums).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let (amax, max) = {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        (amax, max)
    };
    q8_k_fill(x, y, amax, max);
}

/// Fills block_q8_K `y` from `x` given its largest magnitude `amax` and the signed value `max`
/// that sets the scale's sign.
fn q8_k_fill(x: &[f32], y: &mut [u8], amax: f32, max: f32) {
    y.fill(0);
    if amax == 0.0 {
        return;
    }
    let iscale = -127.0 / max;
    let qs = &mut y[off::Q8K_QS..off::Q8K_QS + QK_K];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8 as u8;
    }
    let mut bsums = [0i16; 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        *s = qs[16 * j..16 * j + 16]
            .iter()
            .map(|&q| q as i8 as i16)
            .sum();
    }
    for (j, s) in bsums.iter().enumerate() {
        wr_u16(y, off::Q8K_BSUMS + 2 * j, *s as u16);
    }
    y[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD form of [`quantize`], bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{hmax_f32, hsum_i32, ldf, store_i8x16};
    use crate::types::{off, wr_u16};

    /// (256) → block_q8_K as `quantize_row_q8_K_ref` (iscale = -127/max, nearest even, min 127).
    pub(crate) fn q8k_block(x: &[f32], y: &mut [u8]) {
        let (mut vmax, mut vmin) = (ldf(x, 0), ldf(x, 0));
        for k in 1..64 {
            let v = ldf(x, k);
            vmax = f32x4_max(vmax, v);
            vmin = f32x4_min(vmin, v);
        }
        let (hi, lo) = (hmax_f32(vmax), -hmax_f32(f32x4_neg(vmin)));
        let amax = if hi > -lo { hi } else { -lo };
        if amax.is_nan() || amax <= 0.0 {
            // All zero (or NaN): defer to the reference, which writes the same zero block.
            super::quantize(x, y);
            return;
        }
        let max = if hi == amax && -lo == amax {
            // Both signs reach |max|: the first such element decides, as in the reference loop.
            *x.iter().find(|v| v.abs() == amax).unwrap_or(&amax)
        } else if hi == amax {
            hi
        } else {
            lo
        };
        let iscale = -127.0 / max;
        let (vs, c127) = (f32x4_splat(iscale), i32x4_splat(127));
        for g in 0..16 {
            let q: [v128; 4] = core::array::from_fn(|k| {
                let v = f32x4_nearest(f32x4_mul(ldf(x, 4 * g + k), vs));
                i32x4_min(i32x4_trunc_sat_f32x4(v), c127)
            });
            store_i8x16(y, off::Q8K_QS + 16 * g, q);
            let s = hsum_i32(i32x4_add(i32x4_add(q[0], q[1]), i32x4_add(q[2], q[3])));
            wr_u16(y, off::Q8K_BSUMS + 2 * g, s as i16 as u16);
        }
        y[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}
