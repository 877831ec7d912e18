//! Q3_K (`block_q3_K`), the 3-bit K-quant (no real file here uses it; tested on written files):
//! the block and its 6-bit scale unpacking, its dequantizer and reference quantizer, its scalar
//! reference dot with Q8_K in ggml's `_generic` order, and the wasm32 SIMD mat-vec (the same
//! integer sums, its float terms summed in 4 lanes).

use crate::dot::{KParts, q8k};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::{make_q3_quants, nearest_int, pack_2bit};
use crate::types::{QK_K, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q3_K`: 16 sub-blocks of 16; weight = `d * (scale - 32) * (q2 - (hbit ? 0 : 4))`.
#[repr(C)]
pub struct BlockQ3K {
    /// High bits of the quants.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the quants.
    pub qs: [u8; QK_K / 4],
    /// 6-bit scales, packed.
    pub scales: [u8; 12],
    /// Super-block scale, IEEE half.
    pub d: u16,
}

/// The 16 signed 6-bit scales of a Q3_K block, minus 32 (unpacking as ggml's `dequantize_row_q3_K`).
#[inline(always)]
pub(crate) fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let lo = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((lo | (hi << 4)) as i8).wrapping_sub(32);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (256) ← block_q3_K.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d_all = f16_to_f32(rd_u16(b, off::Q3K_D));
    let scales = q3k_scales(&b[off::Q3K_SCALES..off::Q3K_SCALES + 12]);
    let hm = &b[off::Q3K_HMASK..off::Q3K_HMASK + 32];
    let qs = &b[off::Q3K_QS..off::Q3K_QS + 64];
    let mut is = 0;
    let mut o = 0;
    let mut m: u8 = 1;
    for q in qs.chunks_exact(32) {
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * scales[is] as f32;
                is += 1;
                for l in 16 * half..16 * half + 16 {
                    let lo = ((q[l] >> shift) & 3) as i32;
                    let v = lo - if hm[l] & m != 0 { 0 } else { 4 };
                    y[o] = dl * v as f32;
                    o += 1;
                }
            }
            m = m.wrapping_shl(1);
        }
    }
}

/// (256) → block_q3_K (`quantize_row_q3_K_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let mut li = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut li[16 * j..16 * j + 16]);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    y.fill(0);
    let sc = off::Q3K_SCALES;
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            let q = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) as i32 + 32;
            if j < 8 {
                y[sc + j] = (q & 0xF) as u8;
            } else {
                y[sc + j - 8] |= ((q & 0xF) << 4) as u8;
            }
            y[sc + 8 + j % 4] |= ((q >> 4) << (2 * (j / 4))) as u8;
        }
        wr_u16(y, off::Q3K_D, f32_to_f16(1.0 / iscale));
    }
    let d_all = f16_to_f32(rd_u16(y, off::Q3K_D));
    let s = q3k_scales(&y[sc..sc + 12]);
    for j in 0..16 {
        let d = d_all * s[j] as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            li[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-4, 3) + 4) as i8;
        }
    }
    let mut l = [0u8; QK_K];
    let hm = off::Q3K_HMASK;
    for j in 0..QK_K {
        let mut v = li[j] as u8;
        if v > 3 {
            y[hm + j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        l[j] = v;
    }
    pack_2bit(&l, &mut y[off::Q3K_QS..off::Q3K_QS + 64]);
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q3_K_q8_K_generic`, one block.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> KParts {
    let sc = q3k_scales(&b[off::Q3K_SCALES..off::Q3K_SCALES + 12]);
    let mut isum = 0i32;
    for e in 0..QK_K {
        let (n, j, l) = (e / 128, (e % 128) / 32, e % 32);
        let lo = ((b[off::Q3K_QS + 32 * n + l] >> (2 * j)) & 3) as i32;
        let hbit = (b[off::Q3K_HMASK + l] >> (4 * n + j)) & 1;
        let q = lo - if hbit != 0 { 0 } else { 4 };
        isum += sc[e / 16] as i32 * (q * q8k(ba, e));
    }
    (isum, 0, f16_to_f32(rd_u16(b, off::Q3K_D)), 0.0)
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD twin of [`dot_block`] summed over a row: the same integer sums, the float terms
/// `d·isum` in 4 lanes (within rounding of the reference's sequential sum).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{bsums_dot, fma_block, hsum_f32, hu, ldo, q8k_d};
    use crate::simd_k::{Q8K_BYTES, low_bit_sums};
    use crate::types::off;

    /// The 16 scales of the Q3_K block at `bw`, as [`super::q3k_scales`] unpacks them, in i8
    /// lanes: low nibbles from bytes 0..8 (scales 0..8 their low, 8..16 their high nibbles),
    /// 2 high bits from bytes 8..12 (scale j: byte 8 + j % 4, bits 2·(j / 4)), minus 32.
    ///
    /// # Safety
    /// A Q3_K block at `bw` of `w`.
    #[inline(always)]
    unsafe fn scales(w: &[u8], bw: usize) -> v128 {
        debug_assert!(bw + off::Q3K_SCALES + 12 <= w.len());
        // SAFETY: the 12 scale bytes of the block (8 + 4; no read past them).
        let (lo8, hi4) = unsafe {
            let p = w.as_ptr().add(bw + off::Q3K_SCALES);
            (v128_load64_zero(p as *const u64), v128_load32_zero(p.add(8) as *const u32))
        };
        let m = u8x16_splat(0xF);
        let (l, h) = (v128_and(lo8, m), v128_and(u16x8_shr(lo8, 4), m));
        let low = i8x16_shuffle::<0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23>(l, h);
        // Bytes 8..12 repeated four times, each copy shifted by its 2·(j / 4); 16-bit shifts,
        // the bits that cross into a byte are masked off.
        let r = i8x16_shuffle::<0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3>(hi4, hi4);
        let (s0, s2, s4, s6) = (r, u16x8_shr(r, 2), u16x8_shr(r, 4), u16x8_shr(r, 6));
        let t0 = i8x16_shuffle::<0, 1, 2, 3, 20, 21, 22, 23, 0, 0, 0, 0, 0, 0, 0, 0>(s0, s2);
        let t1 = i8x16_shuffle::<0, 0, 0, 0, 0, 0, 0, 0, 8, 9, 10, 11, 28, 29, 30, 31>(s4, s6);
        let high = v128_and(i8x16_shuffle::<0, 1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31>(t0, t1), u8x16_splat(3));
        i8x16_sub(v128_or(low, i16x8_shl(high, 4)), u8x16_splat(32))
    }

    /// Q3_K · Q8_K: the quants 0..=7 of chunk C = (n, j) are bits 2j of qs bytes 32n..32n+32
    /// with high bit 4n + j of the hmask bytes at bit 2, summed with their scales by
    /// [`low_bit_sums`]; minus 4·Σ scale·bsum (the quants' offset of 4).
    ///
    /// # Safety
    /// `w` holds `nb` blocks of 110 bytes, `a` `nb` Q8_K blocks.
    pub(crate) unsafe fn dot_q3_k(nb: usize, w: &[u8], a: &[u8]) -> f32 {
        // SAFETY: forwarded (one activation row).
        unsafe { rows_q3_k::<1>(nb, w, a, 0)[0] }
    }

    /// [`dot_q3_k`] for `R` activation rows `qrb` bytes apart in `a` (a prompt tile for R = 4):
    /// each weight block (scales, high bits, quants) decoded once, each row's sums and float
    /// terms exactly as [`dot_q3_k`]'s.
    ///
    /// # Safety
    /// `w` holds `nb` blocks of 110 bytes; `a` holds `R` rows of `nb` Q8_K blocks, `qrb` bytes
    /// apart.
    #[inline(always)]
    pub(crate) unsafe fn rows_q3_k<const R: usize>(nb: usize, w: &[u8], a: &[u8], qrb: usize) -> [f32; R] {
        let mut acc = [f32x4_splat(0.0); R];
        let (three, four) = (u8x16_splat(3), u8x16_splat(4));
        for ib in 0..nb {
            let bw = ib * 110;
            let ba: [usize; R] = core::array::from_fn(|r| r * qrb + ib * Q8K_BYTES);
            // SAFETY: block ib of w.
            let scv = unsafe { scales(w, bw) };
            // SAFETY: Q8_K block ib of each row.
            let corr: [v128; R] = core::array::from_fn(|r| unsafe { bsums_dot(a, ba[r], scv) });
            let (sc_lo, sc_hi) = (i16x8_extend_low_i8x16(scv), i16x8_extend_high_i8x16(scv));
            // SAFETY: hmask is 32 bytes at the block start.
            let (m0, m1) = unsafe { (ldo(w, bw, off::Q3K_HMASK), ldo(w, bw, off::Q3K_HMASK + 16)) };
            // SAFETY: qs are 64 bytes of block ib; Q8_K block ib of each row.
            let isum = unsafe {
                low_bit_sums(w, bw + off::Q3K_QS, a, ba, (sc_lo, sc_hi), |c, q0, q1| {
                    // Bits 2j of the qs bytes, and bit hb = 4n + j of each hmask byte moved to
                    // bit 2; 16-bit shifts, the bits that cross into a byte are masked off.
                    let (sh, hb) = (2 * (c % 4) as u32, (4 * (c / 4) + c % 4) as u32);
                    let high = |m: v128| v128_and(if hb >= 2 { u16x8_shr(m, hb - 2) } else { i16x8_shl(m, 2 - hb) }, four);
                    (v128_or(v128_and(u16x8_shr(q0, sh), three), high(m0)), v128_or(v128_and(u16x8_shr(q1, sh), three), high(m1)))
                })
            };
            // SAFETY: the scale fields lie inside weight block ib.
            let d = unsafe { hu(w, bw + off::Q3K_D) };
            for r in 0..R {
                let isum = i32x4_sub(isum[r], i32x4_shl(corr[r], 2));
                // SAFETY: Q8_K block ib of row r.
                acc[r] = fma_block(acc[r], isum, d * unsafe { q8k_d(a, ba[r]) });
            }
        }
        core::array::from_fn(|r| hsum_f32(acc[r]))
    }
}
