//! Q4_K (`block_q4_K`), the 4-bit K-quant most of a Q4_K_M file's rows are in: the block, its
//! dequantizer and reference quantizer, its scalar reference dot with Q8_K in the order of
//! llama.cpp's repacked x86 kernels (gemv for single rows, gemm for groups of 4), and the wasm32
//! SIMD mat-vec (1 and 4 rows per pass) and tile kernels that compute the same bits.

use crate::dot::{KParts, fma, qk_k_parts_of};
use crate::f16::f16_to_f32;
use crate::quant::{Qkx2, qk_k_levels};
use crate::types::{GgmlType, K_SCALE_SIZE, QK_K, get_scale_min_k4, off, rd_f32, rd_u16};

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

/// `block_q4_K`: 8 sub-blocks of 32; weight = `d * sc * q - dmin * m` (6-bit sc, m).
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale for scales, IEEE half.
    pub d: u16,
    /// Super-block scale for mins, IEEE half.
    pub dmin: u16,
    /// 6-bit scales and mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// Nibbles: for each 64 elements, 32 bytes (low = first 32, high = next 32).
    pub qs: [u8; QK_K / 2],
}

// ---------------------------------------------------------------------------------------------
// Dequantize and quantize (scalar references)
// ---------------------------------------------------------------------------------------------

/// (256) ← block_q4_K.
pub(crate) fn dequantize(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let min = f16_to_f32(rd_u16(b, off::Q4K_DMIN));
    let sc = &b[off::Q4K_SCALES..off::Q4K_SCALES + K_SCALE_SIZE];
    let qs = &b[off::Q4K_QS..off::Q4K_QS + 128];
    for (j, q) in qs.chunks_exact(32).enumerate() {
        let (s1, m1) = get_scale_min_k4(2 * j, sc);
        let (s2, m2) = get_scale_min_k4(2 * j + 1, sc);
        let (d1, m1) = (d * s1 as f32, min * m1 as f32);
        let (d2, m2) = (d * s2 as f32, min * m2 as f32);
        let yo = &mut y[64 * j..64 * j + 64];
        for l in 0..32 {
            yo[l] = d1 * (q[l] & 0xF) as f32 - m1;
            yo[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// (256) → block_q4_K (`quantize_row_q4_K_ref`).
pub(crate) fn quantize(x: &[f32], y: &mut [u8]) {
    y.fill(0);
    let p = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let l = qk_k_levels(x, y, 15, &p, off::Q4K_SCALES, off::Q4K_DMIN);
    let qs = &mut y[off::Q4K_QS..off::Q4K_QS + 128];
    for j in 0..4 {
        for i in 0..32 {
            qs[32 * j + i] = l[64 * j + i] | (l[64 * j + i + 32] << 4);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// The Q4_K parts of sub-blocks `sbs`.
fn q4_k_parts(b: &[u8], ba: &[u8], sbs: core::ops::Range<usize>) -> KParts {
    qk_k_parts_of(b, ba, off::Q4K_SCALES, off::Q4K_DMIN, |e| {
        let byte = b[off::Q4K_QS + 32 * (e / 64) + e % 32];
        (if (e / 32) % 2 == 0 {
            byte & 0xF
        } else {
            byte >> 4
        }) as i32
    }, sbs)
}

/// Q4_K · Q8_K as ggml-cpu's x86 build computes it: llama.cpp repacks Q4_K weights into
/// `block_q4_Kx8` and multiplies with `ggml_gemv_q4_K_8x8_q8_K` (single activation rows) or
/// `ggml_gemm_q4_K_8x8_q8_K` (groups of 4 rows, `grouped`), which take exact integer sums and
/// fuse them into two f32 chains, `acc = fma(isum, d_w·d_a, acc)` and `accm = fma(summs,
/// dmin_w·d_a, accm)`, result acc − accm. gemv adds one term per 256-element block, gemm one per
/// 64 elements (pair of sub-blocks).
pub(crate) fn dot_ref(w: &[u8], a: &[u8], grouped: bool) -> f32 {
    let (ts, ats) = (GgmlType::Q4_K.type_size(), GgmlType::Q8_K.type_size());
    let (mut acc, mut accm) = (0f32, 0f32);
    let (step, steps) = if grouped { (2, 4) } else { (8, 1) };
    for (b, ba) in w.chunks_exact(ts).zip(a.chunks_exact(ats)) {
        let dy = rd_f32(ba, 0);
        for k in 0..steps {
            let (isum, summs, d, dmin) = q4_k_parts(b, ba, step * k..step * (k + 1));
            acc = fma(isum as f32, d * dy, acc);
            accm = fma(summs as f32, dmin * dy, accm);
        }
    }
    acc - accm
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD twins of [`dot_ref`] (mat-vec, 4-row mat-vec, tile), bit-identical to it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::simd::{ZERO, f16x8_to_f32_int, hsum_i32, hu, ldo, madd, nibbles, q8k_d, rd32};
    use crate::simd_act::fma1;
    use crate::simd_k::{Q8K_BYTES, bsums, hsum4, k4_min_terms, k4_scales_mins, lane16, pairs_u7, unroll, widen8};
    use crate::types::{GgmlType, off};

    /// Bytes of a Q4_K block.
    const Q4K_BYTES: usize = GgmlType::Q4_K.type_size();
    /// The exact integer sum of 64-element chunk `j` of a Q4_K block with its activation (4 lanes):
    /// Σ scale · q · y over the chunk's two 32-element sub-blocks.
    ///
    /// # Safety
    /// A Q4_K block at `bw` of `w`, a Q8_K block at `ba` of `a`.
    #[inline(always)]
    unsafe fn q4_k_chunk(w: &[u8], bw: usize, a: &[u8], ba: usize, j: usize, sc16: v128) -> v128 {
        let (qo, e) = (off::Q4K_QS + 32 * j, off::Q8K_QS + 64 * j);
        // SAFETY: 32 qs bytes of chunk j; 64 activation quants of chunk j.
        let (q0, q1, y0, y1, y2, y3) = unsafe {
            (ldo(w, bw, qo), ldo(w, bw, qo + 16), ldo(a, ba, e), ldo(a, ba, e + 16), ldo(a, ba, e + 32), ldo(a, ba, e + 48))
        };
        let ((l0, h0), (l1, h1)) = (nibbles(q0), nibbles(q1));
        // Pairs of 4 products ≤ 4·15·128 in magnitude: i16 sums are exact.
        let pl = i16x8_add(pairs_u7(y0, l0), pairs_u7(y1, l1));
        let ph = i16x8_add(pairs_u7(y2, h0), pairs_u7(y3, h1));
        i32x4_add(i32x4_dot_i16x8(pl, lane16(sc16, 2 * j)), i32x4_dot_i16x8(ph, lane16(sc16, 2 * j + 1)))
    }

    /// Q4_K · Q8_K, one row: exact integer sums, two fused f32 chains, acc − accm; one term per
    /// block (gemv), or per 64 elements when `GROUPED` (gemm: the order llama.cpp uses for a row
    /// that is one of a group of 4 activation rows).
    ///
    /// # Safety
    /// `w` holds `nb` Q4_K blocks, `a` `nb` Q8_K blocks.
    pub(crate) unsafe fn dot_q4_k<const GROUPED: bool>(nb: usize, w: &[u8], a: &[u8]) -> f32 {
        let (mut acc, mut accm) = (0.0f32, 0.0f32);
        for ib in 0..nb {
            let (bw, ba) = (ib * Q4K_BYTES, ib * Q8K_BYTES);
            let (scales, mins) = k4_scales_mins(&w[bw + off::Q4K_SCALES..bw + off::Q4K_SCALES + 12]);
            // SAFETY: Q8_K block ib; the scale fields lie inside weight block ib.
            let (dy, d, dmin) = unsafe { (q8k_d(a, ba), hu(w, bw), hu(w, bw + 2)) };
            let (dd, ddmin) = (d * dy, dmin * dy);
            let sc16 = widen8(scales);
            // SAFETY: Q8_K block ib.
            let (m01, m23) = unsafe { k4_min_terms(a, ba, widen8(mins)) };
            if GROUPED {
                unroll!(J in [0, 1, 2, 3] {
                    // SAFETY: blocks ib of w and a.
                    let isum = unsafe { q4_k_chunk(w, bw, a, ba, J, sc16) };
                    let m = if J < 2 { m01 } else { m23 };
                    let summs = if J % 2 == 0 {
                        i32x4_extract_lane::<0>(m) + i32x4_extract_lane::<1>(m)
                    } else {
                        i32x4_extract_lane::<2>(m) + i32x4_extract_lane::<3>(m)
                    };
                    acc = fma1(hsum_i32(isum) as f32, dd, acc);
                    accm = fma1(summs as f32, ddmin, accm);
                });
            } else {
                let mut isum = ZERO;
                unroll!(J in [0, 1, 2, 3] {
                    // SAFETY: blocks ib of w and a.
                    isum = i32x4_add(isum, unsafe { q4_k_chunk(w, bw, a, ba, J, sc16) });
                });
                acc = fma1(hsum_i32(isum) as f32, dd, acc);
                accm = fma1(hsum_i32(i32x4_add(m01, m23)) as f32, ddmin, accm);
            }
        }
        acc - accm
    }

    /// i16 lanes `(k, k, k+1, k+1, k+2, k+2, k+3, k+3)` of `v` (`k` a constant after unrolling).
    #[inline(always)]
    fn dup4(v: v128, k: usize) -> v128 {
        let p = |l: usize| (2 * l as u16) | ((2 * l as u16 + 1) << 8);
        i8x16_swizzle(v, u16x8(p(k), p(k), p(k + 1), p(k + 1), p(k + 2), p(k + 2), p(k + 3), p(k + 3)))
    }

    /// Q4_K · Q8_K for the 4 weight rows at `w`, `rb` bytes apart, with one activation row, each
    /// row exactly as [`dot_q4_k`]`::<false>`: the rows' two f32 chains are the lanes of two f32x4,
    /// and the block header work (the halves, the 6-bit scales and mins, the min terms) is done for
    /// the 4 rows at once in vector lanes; the activation chunk is loaded once for the 4 rows.
    ///
    /// # Safety
    /// `w` holds 4 rows of `nb` Q4_K blocks `rb` bytes apart; `a` holds `nb` Q8_K blocks.
    pub(crate) unsafe fn rows4_q4_k(nb: usize, w: &[u8], rb: usize, a: &[u8]) -> [f32; 4] {
        let (mut acc, mut accm) = (f32x4_splat(0.0), f32x4_splat(0.0));
        let (m3f, m0f, m03) = (u32x4_splat(0x3F3F_3F3F), u32x4_splat(0x0F0F_0F0F), u32x4_splat(0x0303_0303));
        for ib in 0..nb {
            let ba = ib * Q8K_BYTES;
            let bw = [ib * Q4K_BYTES, rb + ib * Q4K_BYTES, 2 * rb + ib * Q4K_BYTES, 3 * rb + ib * Q4K_BYTES];
            // Word k of each row's header, lane = row: 0 = (d, dmin), 1..4 = the packed scales.
            // SAFETY: 16 header bytes at the start of block ib of each row.
            let word = |k: usize| unsafe { u32x4(rd32(w, bw[0] + 4 * k), rd32(w, bw[1] + 4 * k), rd32(w, bw[2] + 4 * k), rd32(w, bw[3] + 4 * k)) };
            let (lo, hi) = f16x8_to_f32_int(word(0)); // (d0, dmin0, d1, dmin1), (d2, dmin2, d3, dmin3)
            let (d, dmin) = (i32x4_shuffle::<0, 2, 4, 6>(lo, hi), i32x4_shuffle::<1, 3, 5, 7>(lo, hi));
            // SAFETY: Q8_K block ib.
            let dy = f32x4_splat(unsafe { q8k_d(a, ba) });
            let (dd, ddmin) = (f32x4_mul(d, dy), f32x4_mul(dmin, dy));
            // get_scale_min_k4 in lanes: bytes 4r..4r+4 of each vector are row r's.
            let (u0, u1, u2) = (word(1), word(2), word(3));
            let sc_lo = v128_and(u0, m3f);
            let sc_hi = v128_or(v128_and(u2, m0f), i32x4_shl(v128_and(u32x4_shr(u0, 6), m03), 4));
            let mn_lo = v128_and(u1, m3f);
            let mn_hi = v128_or(v128_and(u32x4_shr(u2, 4), m0f), i32x4_shl(v128_and(u32x4_shr(u1, 6), m03), 4));
            // As u16 lanes: [rows 0-1 of sc_lo, rows 2-3 of sc_lo, rows 0-1 of sc_hi, rows 2-3 of sc_hi].
            let ext = |v: v128| (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
            let ((s0, s1), (s2, s3)) = (ext(sc_lo), ext(sc_hi));
            let ((n0, n1), (n2, n3)) = (ext(mn_lo), ext(mn_hi));
            let scv = [s0, s1, s2, s3];
            let mnv = [n0, n1, n2, n3];
            // Scale (or min) k of row r, in all 8 lanes.
            let scale = |r: usize, k: usize| lane16(scv[(k / 4) * 2 + r / 2], (r % 2) * 4 + k % 4);
            // SAFETY: Q8_K block ib.
            let (b0, b1) = unsafe { bsums(a, ba) };
            let min_terms = |r: usize| {
                let (lo, hi) = (dup4(mnv[r / 2], (r % 2) * 4), dup4(mnv[2 + r / 2], (r % 2) * 4));
                i32x4_add(i32x4_dot_i16x8(b0, lo), i32x4_dot_i16x8(b1, hi))
            };
            let summs = hsum4([min_terms(0), min_terms(1), min_terms(2), min_terms(3)]);
            // Row by row, chunk by chunk: the activation chunks are loaded again for each row (from
            // L1), which keeps few vectors live (Wasmtime would spill the 4 rows' working set).
            let mut isum = [ZERO; 4];
            unroll!(R in [0, 1, 2, 3] {
                unroll!(J in [0, 1, 2, 3] {
                    let (qo, e) = (off::Q4K_QS + 32 * J, off::Q8K_QS + 64 * J);
                    // SAFETY: 32 qs bytes of chunk J of row R's block ib; 64 activation quants of
                    // chunk J of block ib.
                    let (q0, q1, y0, y1, y2, y3) = unsafe {
                        (ldo(w, bw[R], qo), ldo(w, bw[R], qo + 16), ldo(a, ba, e), ldo(a, ba, e + 16), ldo(a, ba, e + 32), ldo(a, ba, e + 48))
                    };
                    let ((l0, h0), (l1, h1)) = (nibbles(q0), nibbles(q1));
                    let pl = i16x8_add(pairs_u7(y0, l0), pairs_u7(y1, l1));
                    let ph = i16x8_add(pairs_u7(y2, h0), pairs_u7(y3, h1));
                    isum[R] = i32x4_add(isum[R], i32x4_add(i32x4_dot_i16x8(pl, scale(R, 2 * J)), i32x4_dot_i16x8(ph, scale(R, 2 * J + 1))));
                });
            });
            acc = madd(f32x4_convert_i32x4(hsum4(isum)), dd, acc);
            accm = madd(f32x4_convert_i32x4(summs), ddmin, accm);
        }
        let r = f32x4_sub(acc, accm);
        [f32x4_extract_lane::<0>(r), f32x4_extract_lane::<1>(r), f32x4_extract_lane::<2>(r), f32x4_extract_lane::<3>(r)]
    }

    /// Q4_K · Q8_K for one weight row and the 4 activation rows of a group (llama.cpp's gemm order,
    /// as [`dot_q4_k`]`::<true>` for each): the weight chunk is decoded once for the 4 rows, whose
    /// chains are the lanes of one f32x4. `a` holds the 4 rows `qrb` bytes apart.
    ///
    /// # Safety
    /// `w` holds `nb` Q4_K blocks; `a` holds 4 rows of `nb` Q8_K blocks, `qrb` bytes apart.
    pub(crate) unsafe fn tile_q4_k_x4(nb: usize, w: &[u8], a: &[u8], qrb: usize) -> [f32; 4] {
        let (mut acc, mut accm) = (f32x4_splat(0.0), f32x4_splat(0.0));
        for ib in 0..nb {
            let bw = ib * Q4K_BYTES;
            let ba = [ib * Q8K_BYTES, qrb + ib * Q8K_BYTES, 2 * qrb + ib * Q8K_BYTES, 3 * qrb + ib * Q8K_BYTES];
            let (scales, mins) = k4_scales_mins(&w[bw + off::Q4K_SCALES..bw + off::Q4K_SCALES + 12]);
            // SAFETY: Q8_K block ib of each row; the scale fields lie inside weight block ib.
            let (dy, (d, dmin)) = unsafe {
                (f32x4(q8k_d(a, ba[0]), q8k_d(a, ba[1]), q8k_d(a, ba[2]), q8k_d(a, ba[3])), (hu(w, bw), hu(w, bw + 2)))
            };
            let (dd, ddmin) = (f32x4_mul(f32x4_splat(d), dy), f32x4_mul(f32x4_splat(dmin), dy));
            let (sc16, mins16) = (widen8(scales), widen8(mins));
            // Per row, the min terms of chunks (0, 0, 1, 1) and (2, 2, 3, 3); then per chunk the
            // vector of the 4 rows' sums.
            // SAFETY: Q8_K block ib of each row.
            let mt = unsafe { [k4_min_terms(a, ba[0], mins16), k4_min_terms(a, ba[1], mins16), k4_min_terms(a, ba[2], mins16), k4_min_terms(a, ba[3], mins16)] };
            let pair = |x: v128, y: v128| i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(x, y), i32x4_shuffle::<1, 3, 5, 7>(x, y));
            // (row0 c0, row0 c1, row1 c0, row1 c1) and the same for rows 2, 3; chunks 2, 3 likewise.
            let (u01, u23) = (pair(mt[0].0, mt[1].0), pair(mt[2].0, mt[3].0));
            let (v01, v23) = (pair(mt[0].1, mt[1].1), pair(mt[2].1, mt[3].1));
            let summs = [
                i32x4_shuffle::<0, 2, 4, 6>(u01, u23),
                i32x4_shuffle::<1, 3, 5, 7>(u01, u23),
                i32x4_shuffle::<0, 2, 4, 6>(v01, v23),
                i32x4_shuffle::<1, 3, 5, 7>(v01, v23),
            ];
            unroll!(J in [0, 1, 2, 3] {
                let qo = off::Q4K_QS + 32 * J;
                // SAFETY: 32 qs bytes of chunk J.
                let (q0, q1) = unsafe { (ldo(w, bw, qo), ldo(w, bw, qo + 16)) };
                let ((l0, h0), (l1, h1)) = (nibbles(q0), nibbles(q1));
                let (s_lo, s_hi) = (lane16(sc16, 2 * J), lane16(sc16, 2 * J + 1));
                let row = |ba: usize| {
                    let e = off::Q8K_QS + 64 * J;
                    // SAFETY: 64 activation quants of chunk J of this row's block ib.
                    let (y0, y1, y2, y3) = unsafe { (ldo(a, ba, e), ldo(a, ba, e + 16), ldo(a, ba, e + 32), ldo(a, ba, e + 48)) };
                    let pl = i16x8_add(pairs_u7(y0, l0), pairs_u7(y1, l1));
                    let ph = i16x8_add(pairs_u7(y2, h0), pairs_u7(y3, h1));
                    i32x4_add(i32x4_dot_i16x8(pl, s_lo), i32x4_dot_i16x8(ph, s_hi))
                };
                let isum = [row(ba[0]), row(ba[1]), row(ba[2]), row(ba[3])];
                acc = madd(f32x4_convert_i32x4(hsum4(isum)), dd, acc);
                accm = madd(f32x4_convert_i32x4(summs[J]), ddmin, accm);
            });
        }
        let r = f32x4_sub(acc, accm);
        [f32x4_extract_lane::<0>(r), f32x4_extract_lane::<1>(r), f32x4_extract_lane::<2>(r), f32x4_extract_lane::<3>(r)]
    }
}
