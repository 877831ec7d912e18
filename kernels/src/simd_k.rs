//! What the wasm32 SIMD kernels of the 256-element K-quants share (the kernels themselves, the
//! mat-vec of one weight row with one Q8_K activation row and the tiles that multiply one weight
//! row with several activation rows at once, decoding each weight block once for the whole tile,
//! live in their formats' homes: `formats::q4_k`, `q5_k`, `q6_k`; Q2_K and Q3_K use the pair
//! sums and scale lanes too), and the tile dispatcher.
//!
//! The integer arithmetic follows ggml-cpu's x86 kernels (`ggml_vec_dot_q6_K_q8_K` AVX2, the
//! repacked `ggml_gemv/gemm_q4_K_8x8_q8_K`): unsigned quants times signed activations summed in
//! pairs to i16 (`i16x8.relaxed_dot_i8x16_i7x16_s`, which Wasmtime lowers to `pmaddubsw`, exact
//! here because the quants are at most 63: |2·63·128| < 2^15), then the sub-block scale applied
//! by `i32x4.dot_i16x8_s` (`pmaddwd`), which also adds the pairs into i32 lanes of 4 products.
//! Each i32 lane therefore holds exactly what the reference (each format's `dot_ref` /
//! `dot_block`) holds in the same lane, so the float part — which is where the order matters —
//! is unchanged:
//!
//! - Q4_K: one fused term per block (gemv) or per 64 elements (gemm), two f32 chains
//!   `acc`/`accm`, acc − accm (`formats::q4_k::dot_ref`); in a tile the 4 activation rows' chains are the 4
//!   lanes of one f32x4, each fused exactly as the scalar chain is.
//! - Q6_K: 8 integer lanes per block fused into 8 f32 lanes, `hsum_float_8` (`formats::q6_k::dot_ref`).
//! - Q5_K: the `_generic` order summed in 4 lanes (no real file here uses Q5_K).
//!
//! Callers check slice lengths first; every raw load stays inside `nb` blocks of its slice.

use core::arch::wasm32::*;

use crate::simd::ldo;
use crate::types::{GgmlType, off};

/// Bytes of a Q8_K block.
pub(crate) const Q8K_BYTES: usize = GgmlType::Q8_K.type_size();
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
pub(crate) use unroll;

/// Pair sums `lane k = a[2k]·q[2k] + a[2k+1]·q[2k+1]` (i16) of signed `a` and `q` in 0..=127:
/// `pmaddubsw`, which cannot saturate for such `q` (|2·127·128| < 2^15).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
pub(crate) fn pairs_u7(a: v128, q: v128) -> v128 {
    i16x8_relaxed_dot_i8x16_i7x16(a, q)
}

/// [`pairs_u7`] in simd128: even and odd bytes widened and multiplied separately.
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
pub(crate) fn pairs_u7(a: v128, q: v128) -> v128 {
    let even = i16x8_mul(i16x8_shr(i16x8_shl(a, 8), 8), v128_and(q, u16x8_splat(0xFF)));
    let odd = i16x8_mul(i16x8_shr(a, 8), u16x8_shr(q, 8));
    i16x8_add(even, odd)
}

/// i16 lane `k` of `v` in all 8 lanes (`k` is a constant after unrolling: one `pshufb`).
#[inline(always)]
pub(crate) fn lane16(v: v128, k: usize) -> v128 {
    let b = 2 * k as u16;
    i8x16_swizzle(v, u16x8_splat(b | ((b + 1) << 8)))
}

/// Bytes of `u` (8 of them) as 8 u16 lanes.
#[inline(always)]
pub(crate) fn widen8(u: u64) -> v128 {
    u16x8_extend_low_u8x16(u64x2_splat(u))
}

/// 4 i32 vectors → the vector of their horizontal sums (lane t = Σ lanes of `v[t]`).
#[inline(always)]
pub(crate) fn hsum4(v: [v128; 4]) -> v128 {
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

/// The integer sums of a 256-element block of 2- or 3-bit quants (Q2_K, Q3_K) with the Q8_K
/// blocks at `ba[r]` of `a` (one per activation row: 1 for the mat-vec, 4 for a tile), 32
/// elements at a time: chunk C = (n, j) = (C / 4, C % 4) reads the 32 quant bytes of half n at
/// `qs + 32n` of `w` and `quants(C, lo, hi)` makes its quants (0..=127) from them, once for all
/// the rows; quants × activation bytes summed in pairs to i16 (`pmaddubsw`, exact for quants ≤
/// 7: |2·7·128| < 2^15), times sub-block scales 2C and 2C+1 of `sc` (i16 lanes: scales 0..8,
/// 8..16) by `i32x4.dot_i16x8_s` (`pmaddwd`), so lane L holds elements 4L..4L+3 of each half, as
/// the scalar references sum them.
///
/// # Safety
/// 64 quant bytes at `qs` of `w`; a Q8_K block at each `ba[r]` of `a`.
#[inline(always)]
pub(crate) unsafe fn low_bit_sums<const R: usize>(w: &[u8], qs: usize, a: &[u8], ba: [usize; R], sc: (v128, v128), quants: impl Fn(usize, v128, v128) -> (v128, v128)) -> [v128; R] {
    let mut isum = [i32x4_splat(0); R];
    unroll!(C in [0, 1, 2, 3, 4, 5, 6, 7] {
        let (q, e) = (qs + 32 * (C / 4), off::Q8K_QS + 32 * C);
        // SAFETY: 32 quant bytes of half C / 4 (caller).
        let (q0, q1) = unsafe { (ldo(w, q, 0), ldo(w, q, 16)) };
        let (v0, v1) = quants(C, q0, q1);
        let s = if C < 4 { sc.0 } else { sc.1 };
        let (s0, s1) = (lane16(s, (2 * C) % 8), lane16(s, (2 * C + 1) % 8));
        for r in 0..R {
            // SAFETY: activation quants e .. e+32 of row r's block (caller).
            let (y0, y1) = unsafe { (ldo(a, ba[r], e), ldo(a, ba[r], e + 16)) };
            isum[r] = i32x4_add(isum[r], i32x4_dot_i16x8(pairs_u7(y0, v0), s0));
            isum[r] = i32x4_add(isum[r], i32x4_dot_i16x8(pairs_u7(y1, v1), s1));
        }
    });
    isum
}

/// The two halves of a Q8_K block's bsums (i16: groups 0..8, 8..16).
///
/// # Safety
/// `a` holds a Q8_K block at `ba`.
#[inline(always)]
pub(crate) unsafe fn bsums(a: &[u8], ba: usize) -> (v128, v128) {
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
pub(crate) unsafe fn k4_min_terms(a: &[u8], ba: usize, mins16: v128) -> (v128, v128) {
    // SAFETY: forwarded.
    let (b0, b1) = unsafe { bsums(a, ba) };
    let m_lo = i16x8_shuffle::<0, 0, 1, 1, 2, 2, 3, 3>(mins16, mins16);
    let m_hi = i16x8_shuffle::<4, 4, 5, 5, 6, 6, 7, 7>(mins16, mins16);
    (i32x4_dot_i16x8(b0, m_lo), i32x4_dot_i16x8(b1, m_hi))
}

// ---------------------------------------------------------------------------------------------
// Tiles: weight rows × activation rows
// ---------------------------------------------------------------------------------------------

/// [`crate::vec_dot_tile`] on wasm32 (lengths checked by the caller; `w` holds whole rows):
/// tiles of 4 activation rows (Q2_K, Q3_K, Q4_K grouped, Q5_K, Q6_K), the rest row by row; each weight row of a
/// tile is read while the tile's activation rows stay in L1.
#[allow(clippy::too_many_arguments)] // reason: forwarded from `vec_dot_tile`.
pub(crate) fn vec_dot_tile(t: GgmlType, n: usize, w: &[u8], a: &[u8], qrb: usize, ntok: usize, grouped: bool, out: &mut [f32], out_stride: usize) {
    let rb = t.row_bytes(n).unwrap_or(0);
    let (nb, arb) = (n / t.block_size(), t.vec_dot_type().row_bytes(n).unwrap_or(0));
    let rows = w.len() / rb.max(1);
    let tiled = match t {
        GgmlType::Q4_K => grouped,
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q5_K | GgmlType::Q6_K => true,
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
                    match t {
                        GgmlType::Q2_K => crate::formats::q2_k::simd::rows_q2_k::<4>(nb, row, at, qrb),
                        GgmlType::Q3_K => crate::formats::q3_k::simd::rows_q3_k::<4>(nb, row, at, qrb),
                        GgmlType::Q4_K => crate::formats::q4_k::simd::tile_q4_k_x4(nb, row, at, qrb),
                        GgmlType::Q5_K => crate::formats::q5_k::simd::rows_q5_k::<4>(nb, row, at, qrb),
                        _ => crate::formats::q6_k::simd::tile_q6_k::<4>(nb, row, at, qrb),
                    }
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
