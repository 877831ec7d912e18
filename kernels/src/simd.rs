//! wasm32 SIMD kernels (simd128, plus relaxed-simd's `i32x4.relaxed_dot_i8x16_i7x16_add` when the
//! target enables it). Each mirrors its format's scalar reference (`formats::<format>`):
//!
//! - the integer part of every block dot is exact and equal to the reference (the relaxed i8×i7
//!   dot is only fed a second operand in 0..=127, where it is deterministic; signed × signed
//!   products use simd128 widening `i32x4.dot_i16x8_s`);
//! - the 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), Q6_K and Q4_K compute exactly what the
//!   reference does (ggml-cpu x86's orders: 8 f32 lanes fused per block and `hsum_float_8`; for
//!   Q4_K the repacked kernels' fused chains), so they equal it bit for bit when
//!   `f32x4.relaxed_madd` is a fused multiply-add (Wasmtime on an x86-64 host with FMA, or with
//!   `relaxed_simd_deterministic`);
//! - Q2_K, Q3_K and Q5_K accumulate the per-block `d * isum` terms in 4 f32 lanes, reduced once
//!   per row, so their float sum may differ from the reference's sequential sum by rounding
//!   (~1e-6 relative).
//!
//! Callers ([`crate::vec_dot`], [`crate::quantize_row`]) check slice lengths first; every raw load
//! here stays inside `nb * type_size` bytes of its slice.
//!
//! Each format's own SIMD kernel lives in its home in [`crate::formats`] (`<format>::simd`); here
//! are the dispatchers, the generic 32-element mat-vec ([`Fmt32`] is what a 32-element format
//! implements) and the pieces several formats share.

use core::arch::wasm32::*;

use crate::f16::{f16_to_f32, f16_to_f32_fast, f32_to_f16};
use crate::formats::{q4_0::simd::Q4_0F, q4_1::simd::Q4_1F, q5_0::simd::Q5_0F, q5_1::simd::Q5_1F, q8_0::simd::Q8_0F};
use crate::simd_k::Q8K_BYTES;
use crate::types::*;

/// Unaligned 16-byte load at byte `i` of `s`.
///
/// # Safety
/// `i + 16 <= s.len()` (debug-checked).
#[inline(always)]
pub(crate) unsafe fn ld(s: &[u8], i: usize) -> v128 {
    debug_assert!(i + 16 <= s.len());
    // SAFETY: the caller guarantees 16 readable bytes at `i`; v128_load has no alignment needs.
    unsafe { v128_load(s.as_ptr().add(i) as *const v128) }
}

/// 16 bytes at byte `base + off` of `s`, the constant `off` kept apart from the variable `base`
/// so that it lands in the wasm load's offset field: one address computation per base, where
/// `ld(s, base + off)` costs one per load.
///
/// # Safety
/// `base + off + 16 <= s.len()` (debug-checked).
#[inline(always)]
pub(crate) unsafe fn ldo(s: &[u8], base: usize, off: usize) -> v128 {
    debug_assert!(base + off + 16 <= s.len());
    // SAFETY: the caller guarantees 16 readable bytes there; v128_load has no alignment needs.
    unsafe { v128_load(s.as_ptr().add(base).add(off) as *const v128) }
}

/// Little-endian u16 at byte `i` of `s`, without a bounds check.
///
/// # Safety
/// `i + 2 <= s.len()` (debug-checked).
#[inline(always)]
unsafe fn rd16(s: &[u8], i: usize) -> u16 {
    debug_assert!(i + 2 <= s.len());
    // SAFETY: the caller guarantees 2 readable bytes at `i`; read_unaligned needs no alignment.
    u16::from_le(unsafe { core::ptr::read_unaligned(s.as_ptr().add(i) as *const u16) })
}

/// Little-endian u32 at byte `i` of `s`, without a bounds check.
///
/// # Safety
/// `i + 4 <= s.len()` (debug-checked).
#[inline(always)]
pub(crate) unsafe fn rd32(s: &[u8], i: usize) -> u32 {
    debug_assert!(i + 4 <= s.len());
    // SAFETY: the caller guarantees 4 readable bytes at `i`; read_unaligned needs no alignment.
    u32::from_le(unsafe { core::ptr::read_unaligned(s.as_ptr().add(i) as *const u32) })
}

/// Half at byte `i` of `s`, as f32 (the 32-element formats' scales: rarely subnormal, so the
/// branches of [`f16_to_f32`] predict well and cost less than [`hu`]'s branch-free form).
#[inline(always)]
pub(crate) fn h(s: &[u8], i: usize) -> f32 {
    f16_to_f32(rd_u16(s, i))
}

/// Half at byte `i` of `s`, as f32, without a bounds check, branch-free (the K-quants' `d` and
/// `dmin`: Q4_K's `dmin` is often a subnormal half, which would make branches mispredict).
///
/// # Safety
/// `i + 2 <= s.len()`.
#[inline(always)]
pub(crate) unsafe fn hu(s: &[u8], i: usize) -> f32 {
    // SAFETY: forwarded.
    f16_to_f32_fast(unsafe { rd16(s, i) })
}

/// The f32 `d` of the Q8_K block at byte `ba` of `a`, without a bounds check.
///
/// # Safety
/// A Q8_K block starts at `ba`.
#[inline(always)]
pub(crate) unsafe fn q8k_d(a: &[u8], ba: usize) -> f32 {
    // SAFETY: the first 4 bytes of the block.
    f32::from_bits(unsafe { rd32(a, ba) })
}

/// Sum of the 4 i32 lanes.
#[inline(always)]
pub(crate) fn hsum_i32(v: v128) -> i32 {
    let s = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let s = i32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
    i32x4_extract_lane::<0>(s)
}

/// Sum of the 4 f32 lanes ((l0 + l2) + (l1 + l3)).
#[inline(always)]
pub(crate) fn hsum_f32(v: v128) -> f32 {
    let s = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let s = f32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
    f32x4_extract_lane::<0>(s)
}

/// Signed × signed byte dot with lane k = Σ a[j]·b[j] over the consecutive bytes j = 4k..4k+3
/// (the grouping of the relaxed i8×i7 dot), in simd128: widen to i16, `i32x4.dot_i16x8_s` gives
/// sums of adjacent pairs, then adjacent pair sums are added across the two halves. Only the
/// simd128 fallbacks of [`dot_u7`] and [`dot_u7_0`] need it (Q8_0 splits its activation once
/// per block instead).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
fn dot4_i8(a: v128, b: v128) -> v128 {
    // (pairs 0..4) and (pairs 4..8): lane i holds bytes 2i, 2i+1 of its half.
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b));
    i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(lo, hi),
        i32x4_shuffle::<1, 3, 5, 7>(lo, hi),
    )
}

/// `acc + Σ a[i]·q[i]` for signed `a` and `q` in 0..=127, lane k over bytes 4k..4k+3 (relaxed
/// i8×i7 dot: deterministic there, since no pair of products can saturate an i16).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
pub(crate) fn dot_u7(a: v128, q: v128, acc: v128) -> v128 {
    i32x4_relaxed_dot_i8x16_i7x16_add(a, q, acc)
}

/// `acc + Σ a[i]·q[i]` for signed `a` and `q` in 0..=127, lane k over bytes 4k..4k+3 (simd128
/// fallback).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
pub(crate) fn dot_u7(a: v128, q: v128, acc: v128) -> v128 {
    i32x4_add(acc, dot4_i8(a, q))
}

/// `Σ a[i]·q[i]` over bytes 4k..4k+3 into lane k, for signed `a` and `q` in 0..=127: [`dot_u7`]
/// without the accumulator (Wasmtime: `pmaddubsw` and `pmaddwd`, no add or accumulator load).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
pub(crate) fn dot_u7_0(a: v128, q: v128) -> v128 {
    i32x4_extadd_pairwise_i16x8(i16x8_relaxed_dot_i8x16_i7x16(a, q))
}

/// [`dot_u7_0`] in simd128.
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
pub(crate) fn dot_u7_0(a: v128, q: v128) -> v128 {
    dot4_i8(a, q)
}

/// `a·b + c` lane-wise, fused (`f32x4.relaxed_madd`; Wasmtime emits a single-rounding FMA on
/// hosts that have one, equal to `_mm256_fmadd_ps` and to [`crate::dot::fma`]).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
pub(crate) fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_relaxed_madd(a, b, c)
}

/// `a·b + c` lane-wise, rounded twice (simd128 has no FMA: not bit-exact with the reference).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
pub(crate) fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_add(f32x4_mul(a, b), c)
}

/// `acc += f32(isum) * d` lane-wise.
#[inline(always)]
pub(crate) fn fma_block(acc: v128, isum: v128, d: f32) -> v128 {
    f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(isum), f32x4_splat(d)))
}

pub(crate) const ZERO: v128 = i32x4(0, 0, 0, 0);

/// SIMD dot of weight row `w` (type `t`, `n` elements) with activation row `a` (t.vec_dot_type()).
/// Lengths were checked by the caller.
pub(crate) fn vec_dot(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / t.block_size();
    // SAFETY (all arms): the caller checked w.len() >= t.row_bytes(n) and
    // a.len() >= t.vec_dot_type().row_bytes(n); the kernels read only inside those bytes.
    unsafe {
        match t {
            GgmlType::F32 => crate::formats::float::simd::dot_f32(n, w, a),
            GgmlType::F16 => crate::formats::float::simd::dot_half(n, w, a, false),
            GgmlType::BF16 => crate::formats::float::simd::dot_half(n, w, a, true),
            GgmlType::Q4_0 => dot32::<Q4_0F>(nb, w, a),
            GgmlType::Q4_1 => dot32::<Q4_1F>(nb, w, a),
            GgmlType::Q5_0 => dot32::<Q5_0F>(nb, w, a),
            GgmlType::Q5_1 => dot32::<Q5_1F>(nb, w, a),
            GgmlType::Q8_0 => dot32::<Q8_0F>(nb, w, a),
            GgmlType::Q2_K => crate::formats::q2_k::simd::dot_q2_k(nb, w, a),
            GgmlType::Q3_K => crate::formats::q3_k::simd::dot_q3_k(nb, w, a),
            GgmlType::Q4_K => crate::formats::q4_k::simd::dot_q4_k::<false>(nb, w, a),
            GgmlType::Q5_K => crate::formats::q5_k::simd::dot_q5_k(nb, w, a),
            GgmlType::Q6_K => crate::formats::q6_k::simd::dot_q6_k(nb, w, a),
            GgmlType::Q8_1 | GgmlType::Q8_K => f32::NAN,
        }
    }
}

/// 8 halves (u16 lanes) → two f32x4 (exact; subnormals, inf and NaN included), for data (K/V
/// values, F16 weights): the bits moved into f32 position and rebiased by one multiplication by
/// 2^112. Fast for normal halves; a subnormal half makes that operand a denormal f32, for which
/// x86 takes a slow assist — rare in data, common in block scales (see [`f16x8_to_f32_int`]).
#[inline(always)]
pub(crate) fn f16x8_to_f32(v: v128) -> (v128, v128) {
    let cvt = |u: v128| {
        let sign = i32x4_shl(v128_and(u, u32x4_splat(0x8000)), 16);
        let em = v128_and(u, u32x4_splat(0x7FFF));
        let f = f32x4_mul(i32x4_shl(em, 13), f32x4_splat(f32::from_bits(0x7780_0000)));
        let infnan = i32x4_eq(v128_and(u, u32x4_splat(0x7C00)), u32x4_splat(0x7C00));
        let f = v128_or(f, v128_and(infnan, u32x4_splat(0x7F80_0000)));
        v128_or(f, sign)
    };
    (cvt(u32x4_extend_low_u16x8(v)), cvt(u32x4_extend_high_u16x8(v)))
}

/// [`f16x8_to_f32`] for block scales (`d`, `dmin`, `m` of the quant blocks; Q4_K's `dmin` is
/// often a subnormal half), with no denormal f32 as an operand: a normal half is rebiased in
/// the integer bits, a subnormal one is its mantissa times 2^-24 (as `f16_to_f32_fast`).
#[inline(always)]
pub(crate) fn f16x8_to_f32_int(v: v128) -> (v128, v128) {
    let cvt = |u: v128| {
        let sign = i32x4_shl(v128_and(u, u32x4_splat(0x8000)), 16);
        let em = v128_and(u, u32x4_splat(0x7FFF));
        let normal = i32x4_add(i32x4_shl(em, 13), u32x4_splat(112 << 23));
        let sub = f32x4_mul(f32x4_convert_i32x4(v128_and(u, u32x4_splat(0x3FF))), f32x4_splat(1.0 / 16_777_216.0));
        let is_sub = u32x4_lt(em, u32x4_splat(0x0400));
        let infnan = v128_and(u32x4_ge(em, u32x4_splat(0x7C00)), u32x4_splat(0x7F80_0000));
        v128_or(v128_bitselect(sub, v128_or(normal, infnan), is_sub), sign)
    };
    (cvt(u32x4_extend_low_u16x8(v)), cvt(u32x4_extend_high_u16x8(v)))
}

/// [`crate::f16_to_f32_lanes`] on wasm32: the whole groups of 8; returns how many were converted.
pub(crate) fn f16_to_f32_lanes(halves: &[u16], out: &mut [f32], scales: bool) -> usize {
    let n8 = halves.len().min(out.len()) / 8 * 8;
    for (h, o) in halves[..n8].chunks_exact(8).zip(out[..n8].chunks_exact_mut(8)) {
        let v = u16x8(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
        let (lo, hi) = if scales { f16x8_to_f32_int(v) } else { f16x8_to_f32(v) };
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` has 32 writable bytes; v128_store has no alignment needs.
        unsafe {
            v128_store(lanes.as_mut_ptr() as *mut v128, lo);
            v128_store(lanes.as_mut_ptr().add(4) as *mut v128, hi);
        }
        o.copy_from_slice(&lanes);
    }
    n8
}

/// The halves at byte `base + (ib + k)·ts + off` for k = 0..4 (one field of 4 consecutive
/// blocks of stride `ts`), as f32x4.
///
/// # Safety
/// Blocks `ib .. ib+4` exist at `base` and `off + 2 <= ts`.
#[inline(always)]
unsafe fn h4(s: &[u8], base: usize, ts: usize, off: usize, ib: usize) -> v128 {
    // SAFETY: inside blocks ib .. ib+4 (caller).
    let r = |k: usize| unsafe { rd16(s, base + (ib + k) * ts + off) };
    f16x8_to_f32(u16x8(r(0), r(1), r(2), r(3), 0, 0, 0, 0)).0
}

/// The activation side of one 32-element block, prepared once and shared by every weight row
/// dotted with it (loaded quants, and what the format derives from them).
pub(crate) type Act = [v128; 4];

/// A 32-element block format (ggml-cpu x86 `ggml_vec_dot_q{4,5,8}_{0,1}_q8_{0,1}`): sizes, the
/// activation preparation and the 8 exact integer lane sums of a block pair (lane k = Σ of the
/// products of elements 4k..4k+3).
pub(crate) trait Fmt32 {
    /// Bytes per weight block.
    const WTS: usize;
    /// Bytes per activation block (34 for Q8_0, 36 for Q8_1).
    const ATS: usize;
    /// Byte offset of the weight minimum `m` (Q4_1/Q5_1); the activation `s` is at byte 2.
    const M_OFF: Option<usize>;
    /// Prepares the activation block at byte `ba` of `a`.
    ///
    /// # Safety
    /// A block of `ATS` bytes starts at `ba`.
    unsafe fn prep(a: &[u8], ba: usize) -> Act;
    /// The lane sums of the weight block at byte `bw` of `w` with a prepared activation block:
    /// (lanes 0..4, lanes 4..8).
    ///
    /// # Safety
    /// A block of `WTS` bytes starts at `bw`.
    unsafe fn lanes(w: &[u8], bw: usize, y: &Act) -> (v128, v128);
}

/// Byte order that makes `i32x4.dot_i16x8_s` of the low and high halves add up to sums of 4
/// consecutive products: low = bytes {0,1,4,5,8,9,12,13}, high = {2,3,6,7,10,11,14,15}.
#[inline(always)]
pub(crate) fn pair_split(v: v128) -> (v128, v128) {
    let p = i8x16_shuffle::<0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15>(v, v);
    (i16x8_extend_low_i8x16(p), i16x8_extend_high_i8x16(p))
}

/// Low and high nibbles of 16 bytes.
#[inline(always)]
pub(crate) fn nibbles(q: v128) -> (v128, v128) {
    // The high nibbles by a 16-bit shift and the same mask: Wasmtime lowers `i8x16.shr_u` to
    // that shift plus an `and` with a constant loaded from memory each time, where the mask is
    // already in a register here (measured: Q4_K mat-vec +3 % in L2).
    let m = u8x16_splat(0x0F);
    (v128_and(q, m), v128_and(u16x8_shr(q, 4), m))
}

/// `−off · Σ y` per lane of 4 bytes: the correction that turns dots with unsigned quants into
/// dots with quants − `off`.
#[inline(always)]
pub(crate) fn minus_off_sums(y: v128, off: u8) -> v128 {
    i32x4_sub(ZERO, dot_u7_0(y, u8x16_splat(off)))
}

/// Q8_1 activation: quants at +4, no correction.
///
/// # Safety
/// A 36-byte block at `ba`.
#[inline(always)]
pub(crate) unsafe fn prep_q8_1(a: &[u8], ba: usize) -> Act {
    // SAFETY: quants at +4 .. +36.
    unsafe { [ldo(a, ba, 4), ldo(a, ba, 20), ZERO, ZERO] }
}

/// Q8_0 activation with the correction for weights stored as quant + `off`.
///
/// # Safety
/// A 34-byte block at `ba`.
#[inline(always)]
pub(crate) unsafe fn prep_q8_0_off(a: &[u8], ba: usize, off: u8) -> Act {
    // SAFETY: quants at +2 .. +34.
    let (y0, y1) = unsafe { (ldo(a, ba, 2), ldo(a, ba, 18)) };
    [y0, y1, minus_off_sums(y0, off), minus_off_sums(y1, off)]
}

/// 0x10 in the lanes of 32 elements whose bit is set in the 4 bytes of `qh` (the low 4 bytes of
/// the vector): (elements 0..16, 16..32).
#[inline(always)]
pub(crate) fn q5_high(v: v128) -> (v128, v128) {
    let lo = i8x16_shuffle::<0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1>(v, v);
    let hi = i8x16_shuffle::<2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3>(v, v);
    let bits = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    // 0x10 and-not (bit clear): one `pandn` (an `==`-bits test becomes `!= 0` plus a NOT).
    let f = |x: v128| v128_andnot(u8x16_splat(0x10), i8x16_eq(v128_and(x, bits), ZERO));
    (f(lo), f(hi))
}

/// The two 16-lane vectors of 5-bit quants (0..=31) of a Q5 block.
///
/// # Safety
/// `b` holds 4 bytes of `qh` at `qh_off` and 16 of `qs` at `qs_off`.
#[inline(always)]
pub(crate) unsafe fn q5_quants(b: &[u8], qh_off: usize, qs_off: usize) -> (v128, v128) {
    debug_assert!(qh_off + 4 <= b.len());
    // SAFETY: 4 bytes at qh_off (caller); v128_load32_zero needs no alignment.
    let (h0, h1) = q5_high(unsafe { v128_load32_zero(b.as_ptr().add(qh_off) as *const u32) });
    // SAFETY: 16 bytes at qs_off (caller).
    let (lo, hi) = nibbles(unsafe { ld(b, qs_off) });
    (v128_or(lo, h0), v128_or(hi, h1))
}

/// The running state of one row in [`matvec32`]: the 8 f32 lanes of ggml-cpu's `acc`
/// (`__m256`) as two f32x4, and the scalar `summs` of the types with a minimum, in every lane.
#[derive(Clone, Copy)]
pub(crate) struct Acc32 {
    lo: v128,
    hi: v128,
    summs: v128,
}

impl Acc32 {
    /// All zero.
    pub(crate) const ZERO: Self = Self { lo: ZERO, hi: ZERO, summs: ZERO };

    /// Block `K` of a group of 4: `lane = fma(f32(isum), d, lane)` for the 8 lane sums `s0`, `s1`
    /// with `d_w·d_a` = lane K of `d4`; with a minimum (`min`), `summs = fma(m_w, s_a, summs)`
    /// (lane K of `m4`, `s4`) — one term at a time, as the reference does. A lone block passes
    /// splats and K = 0.
    #[inline(always)]
    pub(crate) fn add<const K: usize>(&mut self, (s0, s1): (v128, v128), d4: v128, min: bool, m4: v128, s4: v128) {
        let d = i32x4_shuffle::<K, K, K, K>(d4, d4);
        self.lo = madd(f32x4_convert_i32x4(s0), d, self.lo);
        self.hi = madd(f32x4_convert_i32x4(s1), d, self.hi);
        if min {
            let t = madd(m4, s4, self.summs);
            self.summs = i32x4_shuffle::<K, K, K, K>(t, t);
        }
    }

    /// `hsum_float_8` of the lanes ((l4+l0, l5+l1, l6+l2, l7+l3), then ((r0+r2) + (r1+r3))),
    /// plus the scalar (zero for the types without a minimum).
    #[inline(always)]
    pub(crate) fn finish(&self) -> f32 {
        hsum_f32(f32x4_add(self.hi, self.lo)) + f32x4_extract_lane::<0>(self.summs)
    }
}

/// Where [`matvec32`] takes the activation side of a block from: prepared on the fly ([`Raw`])
/// or from a table prepared once per mat-vec ([`Prepared`]).
pub(crate) trait ActSrc {
    /// The prepared activation block `ib`. # Safety: block `ib` exists.
    unsafe fn act(&self, ib: usize) -> Act;
    /// The f32 `d` of blocks `ib .. ib+4`. # Safety: those blocks exist.
    unsafe fn d4(&self, ib: usize) -> v128;
    /// The f32 `s` (Q8_1) of blocks `ib .. ib+4`. # Safety: those blocks exist.
    unsafe fn s4(&self, ib: usize) -> v128;
    /// `d` and `s` of block `ib`. # Safety: block `ib` exists.
    unsafe fn ds1(&self, ib: usize) -> (f32, f32);
}

/// The activation row itself (format `F`), prepared block by block as it is used.
pub(crate) struct Raw<'a, F>(pub(crate) &'a [u8], pub(crate) core::marker::PhantomData<F>);

impl<F: Fmt32> ActSrc for Raw<'_, F> {
    #[inline(always)]
    unsafe fn act(&self, ib: usize) -> Act {
        // SAFETY: forwarded.
        unsafe { F::prep(self.0, ib * F::ATS) }
    }
    #[inline(always)]
    unsafe fn d4(&self, ib: usize) -> v128 {
        // SAFETY: forwarded; d is at byte 0.
        unsafe { h4(self.0, 0, F::ATS, 0, ib) }
    }
    #[inline(always)]
    unsafe fn s4(&self, ib: usize) -> v128 {
        // SAFETY: forwarded; s is at byte 2 of a Q8_1 block.
        unsafe { h4(self.0, 0, F::ATS, 2, ib) }
    }
    #[inline(always)]
    unsafe fn ds1(&self, ib: usize) -> (f32, f32) {
        (h(self.0, ib * F::ATS), h(self.0, ib * F::ATS + 2))
    }
}

/// Activation blocks prepared once for all the rows of a mat-vec (at most [`MAX_PREP`] blocks).
pub(crate) struct Prepared<'a> {
    acts: &'a [Act],
    d: &'a [f32],
    s: &'a [f32],
}

impl ActSrc for Prepared<'_> {
    #[inline(always)]
    unsafe fn act(&self, ib: usize) -> Act {
        debug_assert!(ib < self.acts.len());
        // SAFETY: block ib exists (caller), and `acts` holds every block.
        unsafe { *self.acts.get_unchecked(ib) }
    }
    #[inline(always)]
    unsafe fn d4(&self, ib: usize) -> v128 {
        debug_assert!(ib + 4 <= self.d.len());
        // SAFETY: blocks ib .. ib+4 exist (caller); f32 needs no v128 alignment.
        unsafe { v128_load(self.d.as_ptr().add(ib) as *const v128) }
    }
    #[inline(always)]
    unsafe fn s4(&self, ib: usize) -> v128 {
        debug_assert!(ib + 4 <= self.s.len());
        // SAFETY: as above.
        unsafe { v128_load(self.s.as_ptr().add(ib) as *const v128) }
    }
    #[inline(always)]
    unsafe fn ds1(&self, ib: usize) -> (f32, f32) {
        (self.d[ib], self.s[ib])
    }
}

/// Block `ib + K` of a group of 4 for the `R` rows: `lane = fma(d, f32(isum), lane)` with the
/// row's `d_w·d_a` (lane K of `d4[r]`); for types with a minimum, `summs = fma(m_w, s_a, summs)`
/// (lane K of `m4[r]`, `s4`), one term at a time as the reference does.
///
/// # Safety
/// Block `ib + K` exists in `src` and in each row `r` at byte `r·rb` of `w`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // reason: the unrolled inner step of one kernel.
unsafe fn step32<F: Fmt32, A: ActSrc, const R: usize, const K: usize>(
    w: &[u8],
    rb: usize,
    src: &A,
    ib: usize,
    d4: &[v128; R],
    m4: &[v128; R],
    s4: v128,
    acc: &mut [Acc32; R],
) {
    // SAFETY: block ib + K exists (caller).
    let y = unsafe { src.act(ib + K) };
    for r in 0..R {
        // SAFETY: as above, in row r.
        let lanes = unsafe { F::lanes(w, r * rb + (ib + K) * F::WTS, &y) };
        acc[r].add::<K>(lanes, d4[r], F::M_OFF.is_some(), m4[r], s4);
    }
}

/// `R` rows (at bytes `r·rb` of `w`, `nb` blocks each) dotted with one activation row, in the
/// order of [`crate::dot`]'s `blocks32` (ggml-cpu x86), bit for bit per row: one block at a
/// time, its 8 integer lane sums converted to f32 and fused into 8 f32 lanes by `d_w·d_a`,
/// `m_w·s_a` fused into a scalar; at the end `hsum_float_8` of the lanes plus the scalar. The
/// activation side of each block is prepared once for the `R` rows (or taken from a table); the
/// f16 deltas of 4 blocks are converted together (the f32 products are the same as one at a
/// time).
///
/// # Safety
/// `w` holds `R` rows of `nb` blocks at stride `rb`, `src` holds `nb` activation blocks.
#[inline(always)]
unsafe fn matvec32<F: Fmt32, A: ActSrc, const R: usize>(nb: usize, w: &[u8], rb: usize, src: &A) -> [f32; R] {
    let zero = f32x4_splat(0.0);
    let mut acc = [Acc32::ZERO; R];
    let nb4 = nb / 4 * 4;
    let mut ib = 0;
    while ib < nb4 {
        // SAFETY (this block): blocks ib .. ib+4 exist in src and in every row; d is at byte 0,
        // m at M_OFF of the weights.
        let (d4, m4, s4) = unsafe {
            let da = src.d4(ib);
            let d4: [v128; R] = core::array::from_fn(|r| f32x4_mul(h4(w, r * rb, F::WTS, 0, ib), da));
            match F::M_OFF {
                Some(mo) => (d4, core::array::from_fn(|r| h4(w, r * rb, F::WTS, mo, ib)), src.s4(ib)),
                None => (d4, [zero; R], zero),
            }
        };
        // SAFETY: blocks ib .. ib+4 exist.
        unsafe {
            step32::<F, A, R, 0>(w, rb, src, ib, &d4, &m4, s4, &mut acc);
            step32::<F, A, R, 1>(w, rb, src, ib, &d4, &m4, s4, &mut acc);
            step32::<F, A, R, 2>(w, rb, src, ib, &d4, &m4, s4, &mut acc);
            step32::<F, A, R, 3>(w, rb, src, ib, &d4, &m4, s4, &mut acc);
        }
        ib += 4;
    }
    for ib in nb4..nb {
        // SAFETY: block ib exists.
        let (da, sa) = unsafe { src.ds1(ib) };
        let d4: [v128; R] = core::array::from_fn(|r| f32x4_splat(h(w, r * rb + ib * F::WTS) * da));
        let m4: [v128; R] = core::array::from_fn(|r| F::M_OFF.map_or(zero, |mo| f32x4_splat(h(w, r * rb + ib * F::WTS + mo))));
        // SAFETY: block ib exists (lane 0 of the splats is the block's own).
        unsafe { step32::<F, A, R, 0>(w, rb, src, ib, &d4, &m4, f32x4_splat(sa), &mut acc) };
    }
    core::array::from_fn(|r| acc[r].finish())
}

/// Most activation blocks [`rows32`] prepares up front (on the stack: 16 KiB of [`Act`]).
pub(crate) const MAX_PREP: usize = 256;

/// `out[i] = ` dot of row `i` of `w` (stride `rb`) with `a`, `R` rows per pass (4 is fastest
/// for the 4- and 5-bit formats here, 6 for Q8_0). Rows of at most [`MAX_PREP`] blocks take the
/// activation from a table prepared once; longer rows prepare each activation block once per
/// pass.
///
/// # Safety
/// `w` holds `out.len()` rows of `nb` blocks at stride `rb`; `a` holds `nb` activation blocks.
unsafe fn rows32<F: Fmt32, const R: usize>(nb: usize, w: &[u8], rb: usize, a: &[u8], out: &mut [f32]) {
    let raw = Raw::<F>(a, core::marker::PhantomData);
    if nb <= MAX_PREP {
        let each = |p: &Prepared<'_>| {
            let full = out.len() / R * R;
            for (i, o) in out[..full].chunks_exact_mut(R).enumerate() {
                // SAFETY: rows i·R .. i·R + R exist (caller); `p` holds the nb blocks.
                o.copy_from_slice(&unsafe { matvec32::<F, Prepared<'_>, R>(nb, &w[i * R * rb..], rb, p) });
            }
            for (i, o) in out.iter_mut().enumerate().skip(full) {
                // SAFETY: row i exists (caller); `p` holds the nb blocks.
                *o = unsafe { matvec32::<F, Prepared<'_>, 1>(nb, &w[i * rb..], rb, p) }[0];
            }
        };
        // SAFETY: `a` holds nb blocks (caller).
        return unsafe { with_prepared::<F>(nb, a, each) };
    }
    let full = out.len() / R * R;
    for (i, o) in out[..full].chunks_exact_mut(R).enumerate() {
        // SAFETY: rows i·R .. i·R + R exist (caller).
        o.copy_from_slice(&unsafe { matvec32::<F, Raw<'_, F>, R>(nb, &w[i * R * rb..], rb, &raw) });
    }
    for (i, o) in out.iter_mut().enumerate().skip(full) {
        // SAFETY: row i exists.
        *o = unsafe { matvec32::<F, Raw<'_, F>, 1>(nb, &w[i * rb..], rb, &raw) }[0];
    }
}

/// Runs `f` with the `nb` (≤ [`MAX_PREP`]) activation blocks of `a` (format `F`) prepared in a
/// table on the stack.
///
/// # Safety
/// `a` holds `nb` activation blocks.
#[inline(always)]
pub(crate) unsafe fn with_prepared<F: Fmt32>(nb: usize, a: &[u8], f: impl FnOnce(&Prepared<'_>)) {
    use core::mem::MaybeUninit;
    debug_assert!(nb <= MAX_PREP);
    let nb = nb.min(MAX_PREP);
    let raw = Raw::<F>(a, core::marker::PhantomData);
    // Not zeroed: a prompt batch builds a table per token and chunk of rows.
    let mut acts = [const { MaybeUninit::<Act>::uninit() }; MAX_PREP];
    let (mut d, mut s) = ([const { MaybeUninit::<f32>::uninit() }; MAX_PREP], [const { MaybeUninit::<f32>::uninit() }; MAX_PREP]);
    for ib in 0..nb {
        // SAFETY: block ib exists (caller).
        let (act, (di, si)) = unsafe { (raw.act(ib), raw.ds1(ib)) };
        acts[ib].write(act);
        d[ib].write(di);
        s[ib].write(si);
    }
    // SAFETY: entries 0..nb of the three tables were written just above; MaybeUninit<T> has
    // T's layout.
    let (acts, d, s) = unsafe {
        (
            core::slice::from_raw_parts(acts.as_ptr() as *const Act, nb),
            core::slice::from_raw_parts(d.as_ptr() as *const f32, nb),
            core::slice::from_raw_parts(s.as_ptr() as *const f32, nb),
        )
    };
    f(&Prepared { acts, d, s });
}

/// SIMD dots of the `out.len()` rows of `w` (type `t`, `n` elements, `rb` bytes each) with the
/// activation row `a`; `grouped`: `a` is one of a group of 4 rows (llama.cpp's repacked gemm
/// order for Q4_K). Lengths were checked by the caller.
pub(crate) fn vec_dot_rows(t: GgmlType, n: usize, w: &[u8], rb: usize, a: &[u8], out: &mut [f32], grouped: bool) {
    let nb = n / t.block_size();
    if t == GgmlType::Q4_K {
        let mut quads = out.chunks_exact_mut(4);
        let mut r = 0;
        if !grouped {
            for o in &mut quads {
                // SAFETY: the caller checked the lengths (rows r .. r+4 hold nb blocks each, `a`
                // nb Q8_K blocks).
                o.copy_from_slice(&unsafe { crate::formats::q4_k::simd::rows4_q4_k(nb, &w[r * rb..], rb, a) });
                r += 4;
            }
        }
        for (o, row) in out[r..].iter_mut().zip(w[r * rb..].chunks(rb)) {
            // SAFETY: as above, one row.
            *o = unsafe { if grouped { crate::formats::q4_k::simd::dot_q4_k::<true>(nb, row, a) } else { crate::formats::q4_k::simd::dot_q4_k::<false>(nb, row, a) } };
        }
        return;
    }
    // SAFETY (the 32-element arms): the caller checked w.len() >= out.len() · rb,
    // rb >= t.row_bytes(n) and a.len() >= t.vec_dot_type().row_bytes(n).
    unsafe {
        match t {
            GgmlType::Q4_0 => rows32::<Q4_0F, 4>(nb, w, rb, a, out),
            GgmlType::Q4_1 => rows32::<Q4_1F, 4>(nb, w, rb, a, out),
            GgmlType::Q5_0 => rows32::<Q5_0F, 4>(nb, w, rb, a, out),
            GgmlType::Q5_1 => rows32::<Q5_1F, 4>(nb, w, rb, a, out),
            GgmlType::Q8_0 => rows32::<Q8_0F, 6>(nb, w, rb, a, out),
            _ => {
                for (o, row) in out.iter_mut().zip(w.chunks(rb)) {
                    *o = vec_dot(t, n, row, a);
                }
            }
        }
    }
}

/// One row of a 32-element type. # Safety: `nb` blocks in `w` and in `a`.
unsafe fn dot32<F: Fmt32>(nb: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: forwarded (one row: the stride is never used).
    unsafe { matvec32::<F, Raw<'_, F>, 1>(nb, w, 0, &Raw(a, core::marker::PhantomData))[0] }
}

/// Σ bsums[j] · c[j] over the 16 groups of a Q8_K block, as i32x4 partial sums; `c` are 16 i8.
///
/// # Safety
/// `a` holds a Q8_K block at `ba`.
#[inline(always)]
pub(crate) unsafe fn bsums_dot(a: &[u8], ba: usize, c: v128) -> v128 {
    // SAFETY: forwarded.
    let (lo, hi) = unsafe { bsums_dot_halves(a, ba, c) };
    i32x4_add(lo, hi)
}

/// [`bsums_dot`] kept in halves: lane k of the first holds bsums[2k]·c[2k] + bsums[2k+1]·c[2k+1]
/// (groups 0..8), of the second the same for groups 8..16.
///
/// # Safety
/// `a` holds a Q8_K block at `ba`.
#[inline(always)]
unsafe fn bsums_dot_halves(a: &[u8], ba: usize, c: v128) -> (v128, v128) {
    // SAFETY: bsums are 32 bytes at ba + 260 .. ba + 292.
    let (b0, b1) = unsafe { (ldo(a, ba, off::Q8K_BSUMS), ldo(a, ba, off::Q8K_BSUMS + 16)) };
    (
        i32x4_dot_i16x8(b0, i16x8_extend_low_i8x16(c)),
        i32x4_dot_i16x8(b1, i16x8_extend_high_i8x16(c)),
    )
}

/// SIMD activation quantizer for Q8_0 / Q8_1 (x86 numerics, see [`crate::quant::quantize_row_scalar`])
/// and Q8_K (`quantize_row_q8_K_ref` numerics). Lengths were checked by the caller.
pub(crate) fn quantize_row(t: GgmlType, x: &[f32], out: &mut [u8]) -> bool {
    match t {
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            let ts = t.type_size();
            for (xb, yb) in x.chunks_exact(32).zip(out.chunks_exact_mut(ts)) {
                q8_block(xb, yb, t == GgmlType::Q8_1);
            }
            true
        }
        GgmlType::Q8_K => {
            for (xb, yb) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(Q8K_BYTES)) {
                crate::formats::q8_k::simd::q8k_block(xb, yb);
            }
            true
        }
        _ => false,
    }
}

/// Loads f32 lanes `4k .. 4k+4` of `x`.
#[inline(always)]
pub(crate) fn ldf(x: &[f32], k: usize) -> v128 {
    let c = &x[4 * k..4 * k + 4];
    // SAFETY: `c` is 4 valid f32 (16 bytes); v128_load has no alignment needs.
    unsafe { v128_load(c.as_ptr() as *const v128) }
}

/// Max of the 4 f32 lanes.
#[inline(always)]
pub(crate) fn hmax_f32(v: v128) -> f32 {
    let m = f32x4_max(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let m = f32x4_max(m, i32x4_shuffle::<1, 0, 3, 2>(m, m));
    f32x4_extract_lane::<0>(m)
}

/// Stores 16 i32 lanes (4 vectors, values in i8 range) as 16 i8 at `out[o..o+16]`.
#[inline(always)]
pub(crate) fn store_i8x16(out: &mut [u8], o: usize, q: [v128; 4]) {
    let a = i16x8_narrow_i32x4(q[0], q[1]);
    let b = i16x8_narrow_i32x4(q[2], q[3]);
    let dst = &mut out[o..o + 16];
    // SAFETY: `dst` is 16 writable bytes; v128_store has no alignment needs.
    unsafe { v128_store(dst.as_mut_ptr() as *mut v128, i8x16_narrow_i16x8(a, b)) }
}

/// (32) → block_q8_0 / block_q8_1 with ggml-cpu x86 numerics (`id = 127/amax`, round half even).
fn q8_block(x: &[f32], y: &mut [u8], with_sum: bool) {
    let v: [v128; 8] = core::array::from_fn(|k| ldf(x, k));
    let mut m = f32x4_abs(v[0]);
    for vk in &v[1..] {
        m = f32x4_max(m, f32x4_abs(*vk));
    }
    let amax = hmax_f32(m);
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    let q: [v128; 8] = core::array::from_fn(|k| {
        i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v[k], f32x4_splat(id))))
    });
    let qs = if with_sum { off::Q8_1_QS } else { off::Q8_0_QS };
    store_i8x16(y, qs, [q[0], q[1], q[2], q[3]]);
    store_i8x16(y, qs + 16, [q[4], q[5], q[6], q[7]]);
    if with_sum {
        let s = q.iter().fold(ZERO, |s, v| i32x4_add(s, *v));
        wr_u16(y, off::Q8_1_S, f32_to_f16(d * hsum_i32(s) as f32));
    }
}

