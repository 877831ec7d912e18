//! Q6_K (`block_q6_K`), the 6-bit K-quant (Q4_K_M files hold their `output` and half of their
//! `ffn_down`/`attn_v` rows in it): the block, its dequantizer and reference quantizer, its scalar
//! reference dot with Q8_K in ggml-cpu x86's order, and the wasm32 SIMD mat-vec and tile kernels
//! that compute the same bits.

use crate::dot::{bsum, fma, hsum_float_8, q8k};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::quant::{GROUP_MAX_EPS, make_qx_quants, nearest_int};
use crate::types::{GgmlType, QK_K, off, rd_f32, rd_u16, wr_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q6_K`: 16 sub-blocks of 16; weight = `d * scales[i] * (q - 32)`, q 6-bit.
#[repr(C)]
pub struct BlockQ6K {
    /// Low 4 bits.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits.
    pub qh: [u8; QK_K / 4],
    /// 8-bit signed scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, IEEE half.
    pub d: u16,
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (256) ← block_q6_K.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, off::Q6K_D));
    let ql = &b[off::Q6K_QL..off::Q6K_QL + 128];
    let qh = &b[off::Q6K_QH..off::Q6K_QH + 64];
    let sc = &b[off::Q6K_SCALES..off::Q6K_SCALES + 16];
    for n in 0..2 {
        let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
        let yo = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            yo[l] = d * sc[is] as i8 as f32 * q1 as f32;
            yo[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            yo[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            yo[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

/// (256) → block_q6_K (`quantize_row_q6_K_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    let mut li = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let s = make_qx_quants(
            32,
            &x[16 * ib..16 * ib + 16],
            &mut li[16 * ib..16 * ib + 16],
            1,
            None,
        );
        scales[ib] = s;
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = s;
        }
    }
    y.fill(0);
    if max_abs < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    wr_u16(y, off::Q6K_D, f32_to_f16(1.0 / iscale));
    for ib in 0..16 {
        y[off::Q6K_SCALES + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    let d_all = f16_to_f32(rd_u16(y, off::Q6K_D));
    for j in 0..16 {
        let d = d_all * y[off::Q6K_SCALES + j] as i8 as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            li[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    for j in (0..QK_K).step_by(128) {
        let (ql, qh) = (off::Q6K_QL + j / 2, off::Q6K_QH + j / 4);
        for i in 0..32 {
            let q = |k: usize| li[j + i + 32 * k] as u8;
            y[ql + i] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
            y[ql + i + 32] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
            y[qh + i] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot with Q8_K (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_q6_K_q8_K` as ggml-cpu's x86 (AVX2) build computes it: per block, 8 integer
/// lanes (lane L takes elements 4L..4L+3 of every 32-element chunk, times the chunk half's
/// scale, minus 32·(bsums[2L]·sc[2L] + bsums[2L+1]·sc[2L+1])), each fused into an f32 lane by
/// `d = d_a · d_w`; `hsum_float_8` at the end.
pub(crate) fn dot_ref(w: &[u8], a: &[u8]) -> f32 {
    let (ts, ats) = (GgmlType::Q6_K.type_size(), GgmlType::Q8_K.type_size());
    let mut acc = [0f32; 8];
    for (b, ba) in w.chunks_exact(ts).zip(a.chunks_exact(ats)) {
        let mut lanes = [0i32; 8];
        for e in 0..QK_K {
            let (n, k, l) = (e / 128, (e % 128) / 32, e % 32);
            let ql = b[off::Q6K_QL + 64 * n + l + 32 * (k % 2)];
            let lo = if k < 2 { ql & 0xF } else { ql >> 4 };
            let hi = (b[off::Q6K_QH + 32 * n + l] >> (2 * k)) & 3;
            let q = (lo | (hi << 4)) as i32;
            let sc = b[off::Q6K_SCALES + e / 16] as i8 as i32;
            lanes[l / 4] += sc * (q * q8k(ba, e));
        }
        let sc = |j: usize| b[off::Q6K_SCALES + j] as i8 as i32;
        let d = rd_f32(ba, 0) * f16_to_f32(rd_u16(b, off::Q6K_D));
        for (lane, (acc, &isum)) in acc.iter_mut().zip(&lanes).enumerate() {
            let corr = (bsum(ba, 2 * lane) * sc(2 * lane) + bsum(ba, 2 * lane + 1) * sc(2 * lane + 1)) << 5;
            *acc = fma(d, (isum - corr) as f32, *acc);
        }
    }
    hsum_float_8(&acc)
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD twins of [`dot_ref`] (mat-vec row and tile), bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{ZERO, hsum_f32, hu, ldo, madd, q8k_d};
    use crate::simd_k::{Q8K_BYTES, bsums, lane16, pairs_u7, unroll};
    use crate::types::{GgmlType, off};

    /// Bytes of a Q6_K block.
    const Q6K_BYTES: usize = GgmlType::Q6_K.type_size();
    /// The 6-bit quants (0..=63) of 32-element chunk `c` (0..8) of the Q6_K block at `bw`: the
    /// low 16 elements and the high 16. Chunk c is (n, k) = (c / 4, c % 4) of the reference's loop:
    /// low or high nibbles of ql at 32·(k % 2), high bits from qh at 2k.
    ///
    /// # Safety
    /// A Q6_K block at `bw` of `w`.
    #[inline(always)]
    unsafe fn q6_k_chunk(w: &[u8], bw: usize, c: usize) -> (v128, v128) {
        let (n, k) = (c / 4, c % 4);
        let (lo, ho) = (off::Q6K_QL + 64 * n + 32 * (k % 2), off::Q6K_QH + 32 * n);
        // SAFETY: 32 ql bytes and 32 qh bytes of half n.
        let (l0, l1, h0, h1) = unsafe { (ldo(w, bw, lo), ldo(w, bw, lo + 16), ldo(w, bw, ho), ldo(w, bw, ho + 16)) };
        let m30 = u8x16_splat(0x30);
        // 16-bit shifts: the bits that cross a byte boundary are masked off.
        let low = |l: v128| if k < 2 { v128_and(l, u8x16_splat(0x0F)) } else { v128_and(u16x8_shr(l, 4), u8x16_splat(0x0F)) };
        let high = |h: v128| match k {
            0 => v128_and(i16x8_shl(h, 4), m30),
            1 => v128_and(i16x8_shl(h, 2), m30),
            2 => v128_and(h, m30),
            _ => v128_and(u16x8_shr(h, 2), m30),
        };
        (v128_or(low(l0), high(h0)), v128_or(low(l1), high(h1)))
    }

    /// The 16 sub-block scales of the Q6_K block at `bw`, as i16 lanes (scales 0..8, 8..16).
    ///
    /// # Safety
    /// A Q6_K block at `bw` of `w`.
    #[inline(always)]
    unsafe fn q6_k_scales(w: &[u8], bw: usize) -> (v128, v128) {
        // SAFETY: 16 scale bytes inside the block.
        let s = unsafe { ldo(w, bw, off::Q6K_SCALES) };
        (i16x8_extend_low_i8x16(s), i16x8_extend_high_i8x16(s))
    }

    /// Scale `k` (0..16) of a Q6_K block's scales `sc` ([`q6_k_scales`]) in all 8 i16 lanes.
    #[inline(always)]
    fn q6_k_scale(sc: (v128, v128), k: usize) -> v128 {
        lane16(if k < 8 { sc.0 } else { sc.1 }, k % 8)
    }

    /// One Q6_K block (its quants chunk by chunk from `quants`, its scales `sc`, its `d_w`) times
    /// the Q8_K block at `ba` of `a`: the 8 f32 lanes fused, as ggml-cpu x86 does, into `acc`
    /// (lanes 0..4 from the low 16 elements of each chunk, 4..8 from the high 16).
    ///
    /// # Safety
    /// A Q8_K block at `ba` of `a`.
    #[inline(always)]
    unsafe fn q6_k_block(quants: impl Fn(usize) -> (v128, v128), sc: (v128, v128), d_w: f32, a: &[u8], ba: usize, acc: &mut (v128, v128)) {
        let (mut isum_lo, mut isum_hi) = (ZERO, ZERO);
        let scale = |k: usize| q6_k_scale(sc, k);
        unroll!(C in [0, 1, 2, 3, 4, 5, 6, 7] {
            let e = off::Q8K_QS + 32 * C;
            // SAFETY: activation quants of chunk C.
            let (y0, y1) = unsafe { (ldo(a, ba, e), ldo(a, ba, e + 16)) };
            let (v0, v1) = quants(C);
            // Quants are 6-bit: pairs ≤ 2·63·128 in magnitude, exact in i16.
            isum_lo = i32x4_add(isum_lo, i32x4_dot_i16x8(pairs_u7(y0, v0), scale(2 * C)));
            isum_hi = i32x4_add(isum_hi, i32x4_dot_i16x8(pairs_u7(y1, v1), scale(2 * C + 1)));
        });
        // SAFETY: forwarded.
        unsafe { q6_k_finish((isum_lo, isum_hi), sc, d_w, a, ba, acc) }
    }

    /// The float part of one Q6_K block times the Q8_K block at `ba` of `a`, from the integer sums
    /// `isum` (lanes 0..4, 4..8 of [`q6_k_block`]): the quants' offset of 32 taken off through the
    /// bsums, then `d_w · d_y` fused into `acc`.
    ///
    /// # Safety
    /// A Q8_K block at `ba` of `a`.
    #[inline(always)]
    unsafe fn q6_k_finish(isum: (v128, v128), sc: (v128, v128), d_w: f32, a: &[u8], ba: usize, acc: &mut (v128, v128)) {
        // SAFETY: Q8_K block at ba.
        let (b0, b1) = unsafe { bsums(a, ba) };
        // 32 · (bsums[2L]·sc[2L] + bsums[2L+1]·sc[2L+1]) per lane L.
        let (corr_lo, corr_hi) = (i32x4_dot_i16x8(b0, sc.0), i32x4_dot_i16x8(b1, sc.1));
        // SAFETY: forwarded.
        let d = f32x4_splat(unsafe { q8k_d(a, ba) } * d_w);
        acc.0 = madd(f32x4_convert_i32x4(i32x4_sub(isum.0, i32x4_shl(corr_lo, 5))), d, acc.0);
        acc.1 = madd(f32x4_convert_i32x4(i32x4_sub(isum.1, i32x4_shl(corr_hi, 5))), d, acc.1);
    }

    /// Q6_K · Q8_K in ggml-cpu x86's order (see [`super::dot_ref`]).
    ///
    /// # Safety
    /// `w` holds `nb` Q6_K blocks, `a` `nb` Q8_K blocks.
    pub(crate) unsafe fn dot_q6_k(nb: usize, w: &[u8], a: &[u8]) -> f32 {
        let mut acc = (f32x4_splat(0.0), f32x4_splat(0.0));
        for ib in 0..nb {
            let bw = ib * Q6K_BYTES;
            // SAFETY: block ib of w and of a.
            unsafe {
                let quants = |c: usize| q6_k_chunk(w, bw, c);
                q6_k_block(quants, q6_k_scales(w, bw), hu(w, bw + off::Q6K_D), a, ib * Q8K_BYTES, &mut acc);
            }
        }
        // hsum_float_8.
        hsum_f32(f32x4_add(acc.1, acc.0))
    }

    /// Q6_K · Q8_K for one weight row and `T` activation rows (`qrb` bytes apart), each exactly as
    /// [`dot_q6_k`]: chunk by chunk, each 32-element chunk of a weight block is decoded once, with
    /// its two scales, and multiplied with the `T` rows' activations while it is in registers (the
    /// integer sums are exact, so their order is free; the float part per row is [`q6_k_block`]'s).
    ///
    /// # Safety
    /// `w` holds `nb` Q6_K blocks; `a` holds `T` rows of `nb` Q8_K blocks, `qrb` bytes apart.
    pub(crate) unsafe fn tile_q6_k<const T: usize>(nb: usize, w: &[u8], a: &[u8], qrb: usize) -> [f32; T] {
        let mut acc = [(f32x4_splat(0.0), f32x4_splat(0.0)); T];
        for ib in 0..nb {
            let bw = ib * Q6K_BYTES;
            let ba: [usize; T] = core::array::from_fn(|t| t * qrb + ib * Q8K_BYTES);
            // SAFETY: block ib of w.
            let (sc, d_w) = unsafe { (q6_k_scales(w, bw), hu(w, bw + off::Q6K_D)) };
            let mut isum = [(ZERO, ZERO); T];
            unroll!(C in [0, 1, 2, 3, 4, 5, 6, 7] {
                // SAFETY: block ib of w.
                let (v0, v1) = unsafe { q6_k_chunk(w, bw, C) };
                let (s0, s1) = (q6_k_scale(sc, 2 * C), q6_k_scale(sc, 2 * C + 1));
                let e = off::Q8K_QS + 32 * C;
                for t in 0..T {
                    // SAFETY: activation quants of chunk C of row t's block ib.
                    let (y0, y1) = unsafe { (ldo(a, ba[t], e), ldo(a, ba[t], e + 16)) };
                    isum[t].0 = i32x4_add(isum[t].0, i32x4_dot_i16x8(pairs_u7(y0, v0), s0));
                    isum[t].1 = i32x4_add(isum[t].1, i32x4_dot_i16x8(pairs_u7(y1, v1), s1));
                }
            });
            for t in 0..T {
                // SAFETY: Q8_K block ib of row t.
                unsafe { q6_k_finish(isum[t], sc, d_w, a, ba[t], &mut acc[t]) };
            }
        }
        acc.map(|(lo, hi)| hsum_f32(f32x4_add(hi, lo)))
    }
}
