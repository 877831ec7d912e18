//! Q2_K (`block_q2_K`), the 2-bit K-quant (no real file here uses it; tested on written files):
//! the block, its dequantizer and reference quantizer, its scalar reference dot with Q8_K in
//! ggml's `_generic` order, and the wasm32 SIMD mat-vec (the same integer sums, its float terms
//! summed in 4 lanes).

use crate::dot::{KParts, bsum, q8k};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::{Qkx2, make_qkx2_quants, nearest_int, pack_2bit};
use crate::types::{QK_K, off, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q2_K`: 16 sub-blocks of 16; weight = `d * (scales[i] & 0xF) * q - dmin * (scales[i] >> 4)`.
#[repr(C)]
pub struct BlockQ2K {
    /// 4-bit scale (low) and min (high) per sub-block.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for scales, IEEE half.
    pub d: u16,
    /// Super-block scale for mins, IEEE half.
    pub dmin: u16,
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (256) ← block_q2_K.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, off::Q2K_D));
    let min = f16_to_f32(rd_u16(b, off::Q2K_DMIN));
    let sc = &b[off::Q2K_SCALES..off::Q2K_SCALES + 16];
    let qs = &b[off::Q2K_QS..off::Q2K_QS + 64];
    let mut is = 0;
    let mut o = 0;
    for q in qs.chunks_exact(32) {
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let s = sc[is];
                is += 1;
                let dl = d * (s & 0xF) as f32;
                let ml = min * (s >> 4) as f32;
                for l in 0..16 {
                    y[o] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                    o += 1;
                }
            }
        }
    }
}

/// (256) → block_q2_K (`quantize_row_q2_K_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
    let p = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut w = [0f32; 16];
        for (wi, &xi) in w.iter_mut().zip(xs) {
            *wi = xi.abs();
        }
        let (s, m) = make_qkx2_quants(&p, xs, &w, &mut l[16 * j..16 * j + 16]);
        scales[j] = s;
        mins[j] = m;
        max_scale = if s > max_scale { s } else { max_scale };
        max_min = if m > max_min { m } else { max_min };
    }
    y.fill(0);
    let sc = off::Q2K_SCALES;
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..16 {
            y[sc + j] = nearest_int(iscale * scales[j]) as u8;
        }
        wr_u16(y, off::Q2K_D, f32_to_f16(max_scale / 15.0));
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..16 {
            y[sc + j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        wr_u16(y, off::Q2K_DMIN, f32_to_f16(max_min / 15.0));
    }
    let dall = f16_to_f32(rd_u16(y, off::Q2K_D));
    let dmin = f16_to_f32(rd_u16(y, off::Q2K_DMIN));
    for j in 0..16 {
        let d = dall * (y[sc + j] & 0xF) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin * (y[sc + j] >> 4) as f32;
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3) as u8;
        }
    }
    pack_2bit(&l, &mut y[off::Q2K_QS..off::Q2K_QS + 64]);
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q2_K_q8_K_generic`, one block.
pub(crate) fn dot_block(b: &[u8], ba: &[u8]) -> KParts {
    let sc = &b[off::Q2K_SCALES..off::Q2K_SCALES + 16];
    let summs: i32 = (0..16).map(|j| bsum(ba, j) * (sc[j] >> 4) as i32).sum();
    let mut isum = 0i32;
    for e in 0..QK_K {
        let (n, j, l) = (e / 128, (e % 128) / 32, e % 32);
        let q = (b[off::Q2K_QS + 32 * n + l] >> (2 * j)) & 3;
        isum += (sc[e / 16] & 0xF) as i32 * (q as i32 * q8k(ba, e));
    }
    (
        isum,
        summs,
        f16_to_f32(rd_u16(b, off::Q2K_D)),
        f16_to_f32(rd_u16(b, off::Q2K_DMIN)),
    )
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD twin of [`dot_block`] summed over a row: the same integer sums, the float terms
/// `d·isum` in 4 lanes (within rounding of the reference's sequential sum).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{bsums_dot, fma_block, hsum_f32, hsum_i32, hu, ldo, q8k_d};
    use crate::simd_k::{Q8K_BYTES, low_bit_sums};
    use crate::types::off;

    /// Q2_K · Q8_K: the 2-bit quants of chunk C = (n, j) are bits 2j of qs bytes 32n..32n+32,
    /// summed with their scales by [`low_bit_sums`]; minus dmin · Σ min·bsum.
    ///
    /// # Safety
    /// `w` holds `nb` blocks of 84 bytes, `a` `nb` Q8_K blocks.
    pub(crate) unsafe fn dot_q2_k(nb: usize, w: &[u8], a: &[u8]) -> f32 {
        // SAFETY: forwarded (one activation row).
        unsafe { rows_q2_k::<1>(nb, w, a, 0)[0] }
    }

    /// [`dot_q2_k`] for `R` activation rows `qrb` bytes apart in `a` (a prompt tile for R = 4):
    /// each weight block decoded once, each row's sums and float terms exactly as [`dot_q2_k`]'s.
    ///
    /// # Safety
    /// `w` holds `nb` blocks of 84 bytes; `a` holds `R` rows of `nb` Q8_K blocks, `qrb` bytes apart.
    #[inline(always)]
    pub(crate) unsafe fn rows_q2_k<const R: usize>(nb: usize, w: &[u8], a: &[u8], qrb: usize) -> [f32; R] {
        let (mut acc, mut accm) = ([f32x4_splat(0.0); R], [0.0f32; R]);
        let three = u8x16_splat(3);
        for ib in 0..nb {
            let bw = ib * 84;
            let ba: [usize; R] = core::array::from_fn(|r| r * qrb + ib * Q8K_BYTES);
            // SAFETY: scales are 16 bytes at the block start.
            let scv = unsafe { ldo(w, bw, off::Q2K_SCALES) };
            let mins = u8x16_shr(scv, 4);
            // SAFETY: Q8_K block ib of each row.
            let summs: [i32; R] = core::array::from_fn(|r| hsum_i32(unsafe { bsums_dot(a, ba[r], mins) }));
            let s4 = v128_and(scv, u8x16_splat(0xF));
            let (sc_lo, sc_hi) = (u16x8_extend_low_u8x16(s4), u16x8_extend_high_u8x16(s4));
            // SAFETY: qs are 64 bytes of block ib; Q8_K block ib of each row.
            let isum = unsafe {
                low_bit_sums(w, bw + off::Q2K_QS, a, ba, (sc_lo, sc_hi), |c, q0, q1| {
                    // 16-bit shifts: the bits that cross into a byte are masked off.
                    let sh = 2 * (c % 4) as u32;
                    (v128_and(u16x8_shr(q0, sh), three), v128_and(u16x8_shr(q1, sh), three))
                })
            };
            // SAFETY: the scale fields lie inside weight block ib.
            let (d, dmin) = unsafe { (hu(w, bw + off::Q2K_D), hu(w, bw + off::Q2K_DMIN)) };
            for r in 0..R {
                // SAFETY: Q8_K block ib of row r.
                let dy = unsafe { q8k_d(a, ba[r]) };
                acc[r] = fma_block(acc[r], isum[r], d * dy);
                accm[r] += (dmin * dy) * summs[r] as f32;
            }
        }
        core::array::from_fn(|r| hsum_f32(acc[r]) - accm[r])
    }
}
