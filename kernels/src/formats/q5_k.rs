//! Q5_K (`block_q5_K`), the 5-bit K-quant (no real file here uses it; tested on written files):
//! the block, its dequantizer and reference quantizer, its scalar reference dot with Q8_K in
//! ggml's `_generic` order, and the wasm32 SIMD mat-vec (the same integer sums, its float terms
//! summed in 4 lanes) and prompt tile (the mat-vec's sums for 4 activation rows).

use crate::dot::{KParts, qk_k_parts};
use crate::f16::f16_to_f32;
use crate::quant::{Qkx2, qk_k_levels};
use crate::types::{K_SCALE_SIZE, QK_K, get_scale_min_k4, off, rd_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q5_K`: like Q4_K with a fifth bit per quant in `qh`.
#[repr(C)]
pub struct BlockQ5K {
    /// Super-block scale for scales, IEEE half.
    pub d: u16,
    /// Super-block scale for mins, IEEE half.
    pub dmin: u16,
    /// 6-bit scales and mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits.
    pub qh: [u8; QK_K / 8],
    /// Low nibbles.
    pub qs: [u8; QK_K / 2],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (256) ← block_q5_K.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let min = f16_to_f32(rd_u16(b, off::Q5K_DMIN));
    let sc = &b[off::Q5K_SCALES..off::Q5K_SCALES + K_SCALE_SIZE];
    let qh = &b[off::Q5K_QH..off::Q5K_QH + 32];
    let qs = &b[off::Q5K_QS..off::Q5K_QS + 128];
    for (j, ql) in qs.chunks_exact(32).enumerate() {
        let (s1, m1) = get_scale_min_k4(2 * j, sc);
        let (s2, m2) = get_scale_min_k4(2 * j + 1, sc);
        let (d1, m1) = (d * s1 as f32, min * m1 as f32);
        let (d2, m2) = (d * s2 as f32, min * m2 as f32);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let yo = &mut y[64 * j..64 * j + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            yo[l] = d1 * ((ql[l] & 0xF) + h1) as f32 - m1;
            yo[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// (256) → block_q5_K (`quantize_row_q5_K_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    y.fill(0);
    let p = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let l = qk_k_levels(x, y, 31, &p, off::Q5K_SCALES, off::Q5K_DMIN);
    let (mut m1, mut m2) = (1u8, 2u8);
    for n in 0..4 {
        for j in 0..32 {
            let (mut l1, mut l2) = (l[64 * n + j], l[64 * n + j + 32]);
            if l1 > 15 {
                l1 -= 16;
                y[off::Q5K_QH + j] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                y[off::Q5K_QH + j] |= m2;
            }
            y[off::Q5K_QS + 32 * n + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q5_K_q8_K_generic`, one block.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> KParts {
    qk_k_parts(b, ba, off::Q5K_SCALES, off::Q5K_DMIN, |e| {
        let byte = b[off::Q5K_QS + 32 * (e / 64) + e % 32];
        let lo = if (e / 32) % 2 == 0 {
            byte & 0xF
        } else {
            byte >> 4
        };
        let hi = (b[off::Q5K_QH + e % 32] >> (e / 32)) & 1;
        (lo | (hi << 4)) as i32
    })
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD twin of [`dot_block`] summed over a row: the same integer sums, the float terms
/// in 4 lanes (within rounding of the reference's sequential sum).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{ZERO, hsum_f32, hsum_i32, hu, ldo, nibbles, q8k_d};
    use crate::simd_k::{Q8K_BYTES, k4_min_terms, k4_scales_mins, lane16, pairs_u7, unroll, widen8};
    use crate::types::{GgmlType, off};

    /// Bytes of a Q5_K block.
    const Q5K_BYTES: usize = GgmlType::Q5_K.type_size();
    /// Q5_K · Q8_K: block terms `d · isum` in 4 f32 lanes, reduced once per row, minus the mins.
    ///
    /// # Safety
    /// `w` holds `nb` Q5_K blocks, `a` `nb` Q8_K blocks.
    pub(crate) unsafe fn dot_q5_k(nb: usize, w: &[u8], a: &[u8]) -> f32 {
        // SAFETY: forwarded (one activation row).
        unsafe { rows_q5_k::<1>(nb, w, a, 0)[0] }
    }

    /// The 32 quants of chunk `J` (elements 64J .. 64J+64) of the block at `bw`, fifth bits
    /// placed: (low nibbles 0..16, 16..32, high nibbles 0..16, 16..32) with `qh` = (qh0, qh1).
    ///
    /// # Safety
    /// A Q5_K block starts at `bw`.
    #[inline(always)]
    unsafe fn chunk<const J: usize>(w: &[u8], bw: usize, qh0: v128, qh1: v128) -> [v128; 4] {
        let b4 = u8x16_splat(0x10);
        // SAFETY: 32 qs bytes of chunk J.
        let (q0, q1) = unsafe { (ldo(w, bw, off::Q5K_QS + 32 * J), ldo(w, bw, off::Q5K_QS + 32 * J + 16)) };
        let ((l0, h0), (l1, h1)) = (nibbles(q0), nibbles(q1));
        let sh = 2 * J as u32;
        let (s0, s1) = (u8x16_shr(qh0, sh), u8x16_shr(qh1, sh));
        [
            v128_or(l0, v128_and(i8x16_shl(s0, 4), b4)),
            v128_or(l1, v128_and(i8x16_shl(s1, 4), b4)),
            v128_or(h0, v128_and(i8x16_shl(s0, 3), b4)),
            v128_or(h1, v128_and(i8x16_shl(s1, 3), b4)),
        ]
    }

    /// [`dot_q5_k`] for `R` activation rows `qrb` bytes apart in `a` (a prompt tile for R = 4):
    /// each 64-element chunk of a weight block is decoded once and dotted with the `R` rows
    /// while in registers; each row's sums and float terms are [`dot_q5_k`]'s.
    ///
    /// # Safety
    /// `w` holds `nb` Q5_K blocks; `a` holds `R` rows of `nb` Q8_K blocks, `qrb` bytes apart.
    #[inline(always)]
    pub(crate) unsafe fn rows_q5_k<const R: usize>(nb: usize, w: &[u8], a: &[u8], qrb: usize) -> [f32; R] {
        let (mut acc, mut accm) = ([f32x4_splat(0.0); R], [0.0f32; R]);
        for ib in 0..nb {
            let bw = ib * Q5K_BYTES;
            let ba: [usize; R] = core::array::from_fn(|r| r * qrb + ib * Q8K_BYTES);
            let (scales, mins) = k4_scales_mins(&w[bw + off::Q5K_SCALES..bw + off::Q5K_SCALES + 12]);
            let (sc16, mins16) = (widen8(scales), widen8(mins));
            // SAFETY: Q8_K block ib of each row.
            let summs: [i32; R] = core::array::from_fn(|r| {
                let (m01, m23) = unsafe { k4_min_terms(a, ba[r], mins16) };
                hsum_i32(i32x4_add(m01, m23))
            });
            // SAFETY: qh is 32 bytes inside block ib.
            let (qh0, qh1) = unsafe { (ldo(w, bw, off::Q5K_QH), ldo(w, bw, off::Q5K_QH + 16)) };
            let mut isum = [ZERO; R];
            unroll!(J in [0, 1, 2, 3] {
                // SAFETY: block ib starts at bw.
                let q = unsafe { chunk::<J>(w, bw, qh0, qh1) };
                let (s_lo, s_hi) = (lane16(sc16, 2 * J), lane16(sc16, 2 * J + 1));
                let e = off::Q8K_QS + 64 * J;
                for r in 0..R {
                    // SAFETY: 64 activation quants of chunk J of row r's block ib.
                    let (y0, y1, y2, y3) = unsafe { (ldo(a, ba[r], e), ldo(a, ba[r], e + 16), ldo(a, ba[r], e + 32), ldo(a, ba[r], e + 48)) };
                    // Pairs of 4 products ≤ 4·31·128 in magnitude: i16 sums are exact.
                    let pl = i16x8_add(pairs_u7(y0, q[0]), pairs_u7(y1, q[1]));
                    let ph = i16x8_add(pairs_u7(y2, q[2]), pairs_u7(y3, q[3]));
                    isum[r] = i32x4_add(isum[r], i32x4_dot_i16x8(pl, s_lo));
                    isum[r] = i32x4_add(isum[r], i32x4_dot_i16x8(ph, s_hi));
                }
            });
            // SAFETY: the scale fields lie inside weight block ib.
            let (d, dmin) = unsafe { (hu(w, bw), hu(w, bw + 2)) };
            for r in 0..R {
                // SAFETY: Q8_K block ib of row r.
                let dy = unsafe { q8k_d(a, ba[r]) };
                acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_convert_i32x4(isum[r]), f32x4_splat(d * dy)));
                accm[r] += (dmin * dy) * summs[r] as f32;
            }
        }
        core::array::from_fn(|r| hsum_f32(acc[r]) - accm[r])
    }
}
