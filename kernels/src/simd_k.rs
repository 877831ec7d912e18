//! wasm32 SIMD kernels of the 256-element K-quants that the real Q4_K_M files use (Q4_K, Q5_K,
//! Q6_K): the mat-vec of one weight row with one Q8_K activation row, and a tile kernel that
//! multiplies one weight row with several activation rows at once (prompt batches), decoding
//! each weight block once for the whole tile.
//!
//! The integer arithmetic follows ggml-cpu's x86 kernels (`ggml_vec_dot_q6_K_q8_K` AVX2, the
//! repacked `ggml_gemv/gemm_q4_K_8x8_q8_K`): unsigned quants times signed activations summed in
//! pairs to i16 (`i16x8.relaxed_dot_i8x16_i7x16_s`, which Wasmtime lowers to `pmaddubsw`, exact
//! here because the quants are at most 63: |2·63·128| < 2^15), then the sub-block scale applied
//! by `i32x4.dot_i16x8_s` (`pmaddwd`), which also adds the pairs into i32 lanes of 4 products.
//! Each i32 lane therefore holds exactly what the reference ([`crate::dot`]) holds in the same
//! lane, so the float part — which is where the order matters — is unchanged:
//!
//! - Q4_K: one fused term per block (gemv) or per 64 elements (gemm), two f32 chains
//!   `acc`/`accm`, acc − accm (`q4_k_x86`); in a tile the 4 activation rows' chains are the 4
//!   lanes of one f32x4, each fused exactly as the scalar chain is.
//! - Q6_K: 8 integer lanes per block fused into 8 f32 lanes, `hsum_float_8` (`q6_k_x86`).
//! - Q5_K: the `_generic` order summed in 4 lanes (no real file here uses Q5_K).
//!
//! Callers check slice lengths first; every raw load stays inside `nb` blocks of its slice.

use core::arch::wasm32::*;

use crate::simd::{ZERO, f16x8_to_f32_int, hsum_f32, hsum_i32, hu, ldo, madd, nibbles, q8k_d, rd32};
use crate::simd_act::fma1;
use crate::types::{GgmlType, off};

/// Bytes of a Q8_K block.
pub(crate) const Q8K_BYTES: usize = GgmlType::Q8_K.type_size();
/// Bytes of a Q4_K block.
const Q4K_BYTES: usize = GgmlType::Q4_K.type_size();
/// Bytes of a Q5_K block.
const Q5K_BYTES: usize = GgmlType::Q5_K.type_size();
/// Bytes of a Q6_K block.
const Q6K_BYTES: usize = GgmlType::Q6_K.type_size();
// Q4_K's and Q5_K's `d` and `dmin` are read as the halves at bytes 0 and 2.
const _: () = assert!(off::Q4K_DMIN == 2 && off::Q5K_DMIN == 2);

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// `$body` once for each listed value of the constant `$i`: unrolled, so that lane and offset
/// arithmetic on `$i` folds into constants (LLVM keeps these loops rolled for wasm, and a
/// runtime lane index costs a broadcast and a saturating add per shuffle in Wasmtime's code).
macro_rules! unroll {
    ($i:ident in [$($n:literal),*] $body:block) => { $( { const $i: usize = $n; $body } )* };
}

/// Pair sums `lane k = a[2k]·q[2k] + a[2k+1]·q[2k+1]` (i16) of signed `a` and `q` in 0..=127:
/// `pmaddubsw`, which cannot saturate for such `q` (|2·127·128| < 2^15).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn pairs_u7(a: v128, q: v128) -> v128 {
    i16x8_relaxed_dot_i8x16_i7x16(a, q)
}

/// [`pairs_u7`] in simd128: even and odd bytes widened and multiplied separately.
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
fn pairs_u7(a: v128, q: v128) -> v128 {
    let even = i16x8_mul(i16x8_shr(i16x8_shl(a, 8), 8), v128_and(q, u16x8_splat(0xFF)));
    let odd = i16x8_mul(i16x8_shr(a, 8), u16x8_shr(q, 8));
    i16x8_add(even, odd)
}

/// i16 lane `k` of `v` in all 8 lanes (`k` is a constant after unrolling: one `pshufb`).
#[inline(always)]
fn lane16(v: v128, k: usize) -> v128 {
    let b = 2 * k as u16;
    i8x16_swizzle(v, u16x8_splat(b | ((b + 1) << 8)))
}

/// Bytes of `u` (8 of them) as 8 u16 lanes.
#[inline(always)]
fn widen8(u: u64) -> v128 {
    u16x8_extend_low_u8x16(u64x2_splat(u))
}

/// 4 i32 vectors → the vector of their horizontal sums (lane t = Σ lanes of `v[t]`).
#[inline(always)]
fn hsum4(v: [v128; 4]) -> v128 {
    let s01 = i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(v[0], v[1]), i32x4_shuffle::<2, 3, 6, 7>(v[0], v[1]));
    let s23 = i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(v[2], v[3]), i32x4_shuffle::<2, 3, 6, 7>(v[2], v[3]));
    i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(s01, s23), i32x4_shuffle::<1, 3, 5, 7>(s01, s23))
}

/// The 8 scales and 8 mins (6-bit) of a Q4_K/Q5_K header, as two little-endian u64 of bytes
/// (`get_scale_min_k4`).
#[inline(always)]
pub(crate) fn k4_scales_mins(s: &[u8]) -> (u64, u64) {
    let u = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (u0, u1, u2) = (u(0), u(4), u(8));
    let sc_lo = u0 & 0x3F3F_3F3F;
    let sc_hi = (u2 & 0x0F0F_0F0F) | (((u0 >> 6) & 0x0303_0303) << 4);
    let mn_lo = u1 & 0x3F3F_3F3F;
    let mn_hi = ((u2 >> 4) & 0x0F0F_0F0F) | (((u1 >> 6) & 0x0303_0303) << 4);
    (
        (sc_lo as u64) | ((sc_hi as u64) << 32),
        (mn_lo as u64) | ((mn_hi as u64) << 32),
    )
}

/// The two halves of a Q8_K block's bsums (i16: groups 0..8, 8..16).
///
/// # Safety
/// `a` holds a Q8_K block at `ba`.
#[inline(always)]
unsafe fn bsums(a: &[u8], ba: usize) -> (v128, v128) {
    // SAFETY: bsums are 32 bytes at ba + 260 .. ba + 292.
    unsafe { (ldo(a, ba, off::Q8K_BSUMS), ldo(a, ba, off::Q8K_BSUMS + 16)) }
}

/// `Σ_j bsums[j] · mins[j/2]` of a Q4_K/Q5_K block, per 64-element chunk: lanes
/// (chunk 0 as two terms, chunk 1 as two terms) for the first vector, chunks 2 and 3 the second.
/// `mins16`: the 8 mins as u16 lanes.
///
/// # Safety
/// `a` holds a Q8_K block at `ba`.
#[inline(always)]
unsafe fn k4_min_terms(a: &[u8], ba: usize, mins16: v128) -> (v128, v128) {
    // SAFETY: forwarded.
    let (b0, b1) = unsafe { bsums(a, ba) };
    let m_lo = i16x8_shuffle::<0, 0, 1, 1, 2, 2, 3, 3>(mins16, mins16);
    let m_hi = i16x8_shuffle::<4, 4, 5, 5, 6, 6, 7, 7>(mins16, mins16);
    (i32x4_dot_i16x8(b0, m_lo), i32x4_dot_i16x8(b1, m_hi))
}

// ---------------------------------------------------------------------------------------------
// Q4_K (scalar reference: `dot::q4_k_x86`)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Q5_K (scalar reference: `dot::vec_dot_ref`'s `_generic` order)
// ---------------------------------------------------------------------------------------------

/// Q5_K · Q8_K: block terms `d · isum` in 4 f32 lanes, reduced once per row, minus the mins.
///
/// # Safety
/// `w` holds `nb` Q5_K blocks, `a` `nb` Q8_K blocks.
pub(crate) unsafe fn dot_q5_k(nb: usize, w: &[u8], a: &[u8]) -> f32 {
    let (mut acc, mut accm) = (f32x4_splat(0.0), 0.0f32);
    let b4 = u8x16_splat(0x10);
    for ib in 0..nb {
        let (bw, ba) = (ib * Q5K_BYTES, ib * Q8K_BYTES);
        let (scales, mins) = k4_scales_mins(&w[bw + off::Q5K_SCALES..bw + off::Q5K_SCALES + 12]);
        // SAFETY: Q8_K block ib.
        let (m01, m23) = unsafe { k4_min_terms(a, ba, widen8(mins)) };
        let summs = hsum_i32(i32x4_add(m01, m23));
        let sc16 = widen8(scales);
        // SAFETY: qh is 32 bytes inside block ib.
        let (qh0, qh1) = unsafe { (ldo(w, bw, off::Q5K_QH), ldo(w, bw, off::Q5K_QH + 16)) };
        let mut isum = ZERO;
        unroll!(J in [0, 1, 2, 3] {
            let (qo, e) = (off::Q5K_QS + 32 * J, off::Q8K_QS + 64 * J);
            // SAFETY: 32 qs bytes of chunk J; 64 activation quants of chunk J.
            let (q0, q1, y0, y1, y2, y3) = unsafe {
                (ldo(w, bw, qo), ldo(w, bw, qo + 16), ldo(a, ba, e), ldo(a, ba, e + 16), ldo(a, ba, e + 32), ldo(a, ba, e + 48))
            };
            let ((l0, h0), (l1, h1)) = (nibbles(q0), nibbles(q1));
            let sh = 2 * J as u32;
            let (s0, s1) = (u8x16_shr(qh0, sh), u8x16_shr(qh1, sh));
            let l0 = v128_or(l0, v128_and(i8x16_shl(s0, 4), b4));
            let l1 = v128_or(l1, v128_and(i8x16_shl(s1, 4), b4));
            let h0 = v128_or(h0, v128_and(i8x16_shl(s0, 3), b4));
            let h1 = v128_or(h1, v128_and(i8x16_shl(s1, 3), b4));
            // Pairs of 4 products ≤ 4·31·128 in magnitude: i16 sums are exact.
            let pl = i16x8_add(pairs_u7(y0, l0), pairs_u7(y1, l1));
            let ph = i16x8_add(pairs_u7(y2, h0), pairs_u7(y3, h1));
            isum = i32x4_add(isum, i32x4_dot_i16x8(pl, lane16(sc16, 2 * J)));
            isum = i32x4_add(isum, i32x4_dot_i16x8(ph, lane16(sc16, 2 * J + 1)));
        });
        // SAFETY: Q8_K block ib; the scale fields lie inside weight block ib.
        let (dy, d, dmin) = unsafe { (q8k_d(a, ba), hu(w, bw), hu(w, bw + 2)) };
        acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(isum), f32x4_splat(d * dy)));
        accm += (dmin * dy) * summs as f32;
    }
    hsum_f32(acc) - accm
}

// ---------------------------------------------------------------------------------------------
// Q6_K (scalar reference: `dot::q6_k_x86`)
// ---------------------------------------------------------------------------------------------

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

/// Q6_K · Q8_K in ggml-cpu x86's order (see [`crate::dot`]'s `q6_k_x86`).
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

// ---------------------------------------------------------------------------------------------
// Tiles: weight rows × activation rows
// ---------------------------------------------------------------------------------------------

/// [`crate::vec_dot_tile`] on wasm32 (lengths checked by the caller; `w` holds whole rows):
/// tiles of 4 activation rows (Q4_K grouped, Q6_K), the rest row by row; each weight row of a
/// tile is read while the tile's activation rows stay in L1.
#[allow(clippy::too_many_arguments)] // reason: forwarded from `vec_dot_tile`.
pub(crate) fn vec_dot_tile(t: GgmlType, n: usize, w: &[u8], a: &[u8], qrb: usize, ntok: usize, grouped: bool, out: &mut [f32], out_stride: usize) {
    let rb = t.row_bytes(n).unwrap_or(0);
    let (nb, arb) = (n / t.block_size(), t.vec_dot_type().row_bytes(n).unwrap_or(0));
    let rows = w.len() / rb.max(1);
    let tiled = match t {
        GgmlType::Q4_K => grouped,
        GgmlType::Q6_K => true,
        _ => false,
    };
    let mut tok = 0;
    if tiled {
        while tok + 4 <= ntok {
            let at = &a[tok * qrb..];
            for (r, row) in w.chunks_exact(rb).enumerate() {
                // SAFETY: the row holds nb blocks; `at` holds 4 activation rows qrb apart (checked
                // by the caller: (ntok − 1)·qrb + arb bytes from the first).
                let v = unsafe {
                    if t == GgmlType::Q4_K { tile_q4_k_x4(nb, row, at, qrb) } else { tile_q6_k::<4>(nb, row, at, qrb) }
                };
                for (k, &v) in v.iter().enumerate() {
                    out[(tok + k) * out_stride + r] = v;
                }
            }
            tok += 4;
        }
    }
    for tok in tok..ntok {
        let o = &mut out[tok * out_stride..tok * out_stride + rows];
        crate::dot_rows(t, n, w, &a[tok * qrb..tok * qrb + arb], o, grouped);
    }
}
