//! Scalar reference dot products `vec_dot_<w>_<a>`: an exact integer dot per block, then scaled
//! by the block deltas in f32. The 32-element types follow the summation order of ggml-cpu's x86
//! kernels (what llama.cpp runs on the machines we compare against, see [`blocks32`]); the others
//! follow ggml-cpu's `_generic` kernels (ggml-cpu/quants.c, vec.cpp). (The K-quant generics
//! spread the f32 sum over 8 lanes; here each block adds `d * isum` once.) Each format's own
//! block dot lives in its home in [`crate::formats`]; here are the dispatcher and the row sums
//! and helpers the formats share.

use crate::f16::{bf16_to_f32, f16_to_f32};
use crate::types::*;

/// Reference dot of weight row `w` (type `t`, `n` elements) with activation row `a`
/// (type `t.vec_dot_type()`). Lengths are checked by the caller ([`crate::vec_dot_ref`]).
pub(crate) fn vec_dot_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    match t {
        GgmlType::F32 => crate::formats::float::dot_f32(n, w, a),
        GgmlType::F16 => crate::formats::float::dot_half(n, w, a, f16_to_f32),
        GgmlType::BF16 => crate::formats::float::dot_half(n, w, a, bf16_to_f32),
        GgmlType::Q4_0 => blocks32(w, a, t, crate::formats::q4_0::dot_block),
        GgmlType::Q5_0 => blocks32(w, a, t, crate::formats::q5_0::dot_block),
        GgmlType::Q8_0 => blocks32(w, a, t, crate::formats::q8_0::dot_block),
        GgmlType::Q4_1 => blocks32(w, a, t, crate::formats::q4_1::dot_block),
        GgmlType::Q5_1 => blocks32(w, a, t, crate::formats::q5_1::dot_block),
        GgmlType::Q8_1 => f32::NAN, // not a weight type of any vec_dot
        GgmlType::Q2_K => blocks_k(w, a, t, crate::formats::q2_k::dot_block),
        GgmlType::Q3_K => blocks_k(w, a, t, crate::formats::q3_k::dot_block),
        GgmlType::Q4_K => crate::formats::q4_k::dot_ref(w, a, false),
        GgmlType::Q5_K => blocks_k(w, a, t, crate::formats::q5_k::dot_block),
        GgmlType::Q6_K => crate::formats::q6_k::dot_ref(w, a),
        GgmlType::Q8_K => f32::NAN,
    }
}

/// The summation order of ggml-cpu's x86 kernels (AVX2 and the AVX-512 builds, which use the
/// same code) for the 32-element block types, mirrored so that the float rounding matches
/// llama.cpp's: per block, eight int32 lanes of four consecutive products each (lane k holds
/// elements 4k..4k+3), converted to f32 and accumulated lane-wise with a fused multiply-add by
/// `d_w·d_a` (`_mm256_fmadd_ps`); Q4_1/Q5_1 add `m_w·s_a` into a separate scalar (fused, as GCC
/// contracts it); the lanes are reduced as `hsum_float_8` does, then the scalar is added.
#[inline]
fn blocks32(w: &[u8], a: &[u8], t: GgmlType, f: impl Fn(&[u8], &[u8]) -> Block32) -> f32 {
    let (wts, ats) = (t.type_size(), t.vec_dot_type().type_size());
    let mut acc = Lanes32::default();
    for (bw, ba) in w.chunks_exact(wts).zip(a.chunks_exact(ats)) {
        acc.add(&f(bw, ba));
    }
    acc.finish()
}

/// The running sums of [`blocks32`]: 8 f32 lanes and the scalar `summs`.
#[derive(Default)]
pub(crate) struct Lanes32 {
    lanes: [f32; 8],
    summs: f32,
}

impl Lanes32 {
    /// Adds one block pair: lane k += (Σ of products 4k..4k+3) · d, fused; summs += m·s, fused.
    #[inline]
    pub(crate) fn add(&mut self, b: &Block32) {
        for (k, l) in self.lanes.iter_mut().enumerate() {
            let isum: i32 = (4 * k..4 * k + 4).map(|j| b.qw[j] * b.qa[j]).sum();
            *l = fma(b.d, isum as f32, *l);
        }
        if let Some((m, s)) = b.ms {
            self.summs = fma(m, s, self.summs);
        }
    }

    /// `hsum_float_8` of the lanes, plus the scalar.
    #[inline]
    pub(crate) fn finish(&self) -> f32 {
        hsum_float_8(&self.lanes) + self.summs
    }
}

/// One 32-element block pair, decoded: weight quants, activation quants, `d_w·d_a` (f32
/// product of the two f16 deltas), and `(m_w, s_a)` for the types with a minimum.
pub(crate) struct Block32 {
    pub(crate) qw: [i32; 32],
    pub(crate) qa: [i32; 32],
    pub(crate) d: f32,
    pub(crate) ms: Option<(f32, f32)>,
}

/// `hsum_float_8` (ggml-cpu x86): ((l4+l0) + (l6+l2)) + ((l5+l1) + (l7+l3)).
#[inline]
pub(crate) fn hsum_float_8(l: &[f32; 8]) -> f32 {
    let r = [l[4] + l[0], l[5] + l[1], l[6] + l[2], l[7] + l[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// a·b + c rounded once (a fused multiply-add, bit for bit; wasm has no scalar fma). The product
/// of two f32 is exact in f64; the f64 sum is rounded to odd (its exact error from TwoSum decides
/// whether to step one ulp towards it), and rounding that to f32 is then correct (Boldo &
/// Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using rounding to
/// odd", 2008: 53 ≥ 2·24 + 2). A plain f64 sum would double-round: about once in 2^29 sums whose
/// terms differ by more than 2^5 in magnitude it lands on an f32 tie the exact sum is not on.
#[inline]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    let (p, c) = (f64::from(a) * f64::from(b), f64::from(c));
    let s = p + c;
    // TwoSum: s + e == p + c exactly (no f64 overflow from f32 operands).
    let t = s - p;
    let e = (p - (s - t)) + (c - t);
    if e != 0.0 && s.is_finite() && s.to_bits() & 1 == 0 {
        // Inexact with an even last bit: the odd neighbour towards the exact sum.
        let bits = if (e > 0.0) == (s > 0.0) { s.to_bits() + 1 } else { s.to_bits() - 1 };
        return f64::from_bits(bits) as f32;
    }
    s as f32
}

/// Activation quants `qs[j]` of a Q8_0 (`qs_off` = 2) or Q8_1 (4) block.
#[inline]
pub(crate) fn a8s(ba: &[u8], qs_off: usize) -> [i32; 32] {
    core::array::from_fn(|j| ba[qs_off + j] as i8 as i32)
}

/// Nibbles of a 16-byte `qs`: low nibbles are elements 0..16, high nibbles 16..32.
#[inline]
pub(crate) fn nibbles(qs: &[u8]) -> [i32; 32] {
    core::array::from_fn(|j| if j < 16 { (qs[j] & 0xF) as i32 } else { (qs[j - 16] >> 4) as i32 })
}

#[inline]
pub(crate) fn dd(b: &[u8], ba: &[u8]) -> f32 {
    f16_to_f32(rd_u16(b, 0)) * f16_to_f32(rd_u16(ba, 0))
}

/// 5-bit quant j (0..32) of a Q5 block with high bits `qh` and nibbles at `qs`.
#[inline]
pub(crate) fn q5(qh: u32, qs: &[u8], j: usize) -> i32 {
    let nib = if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
    (nib as i32) | ((((qh >> j) & 1) as i32) << 4)
}

/// Integer parts of one K-quant block dot: `(isum, summs, d_w, dmin_w)`; the block adds
/// `(d_w * d_a) * isum - (dmin_w * d_a) * summs`.
pub(crate) type KParts = (i32, i32, f32, f32);

/// Sums the K-quant blocks of a row.
pub(crate) fn blocks_k(w: &[u8], a: &[u8], t: GgmlType, f: fn(&[u8], &[u8]) -> KParts) -> f32 {
    let ts = t.type_size();
    let ats = GgmlType::Q8_K.type_size();
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(ts).zip(a.chunks_exact(ats)) {
        let (isum, summs, d, dmin) = f(bw, ba);
        let dy = rd_f32(ba, 0);
        sumf += (d * dy) * isum as f32 - (dmin * dy) * summs as f32;
    }
    sumf
}

/// Q8_K quant `j` of block `ba`.
#[inline]
pub(crate) fn q8k(ba: &[u8], j: usize) -> i32 {
    ba[off::Q8K_QS + j] as i8 as i32
}

/// Q8_K bsum `j` (0..16) of block `ba`.
#[inline]
pub(crate) fn bsum(ba: &[u8], j: usize) -> i32 {
    rd_u16(ba, off::Q8K_BSUMS + 2 * j) as i16 as i32
}

/// Shared by Q4_K/Q5_K: integer dot given a function producing quant `e` (0..256).
pub(crate) fn qk_k_parts(
    b: &[u8],
    ba: &[u8],
    sc_off: usize,
    dmin_off: usize,
    q: impl Fn(usize) -> i32,
) -> KParts {
    qk_k_parts_of(b, ba, sc_off, dmin_off, q, 0..8)
}

/// [`qk_k_parts`] over the 32-element sub-blocks `sbs` only.
pub(crate) fn qk_k_parts_of(
    b: &[u8],
    ba: &[u8],
    sc_off: usize,
    dmin_off: usize,
    q: impl Fn(usize) -> i32,
    sbs: core::ops::Range<usize>,
) -> KParts {
    let scales = &b[sc_off..sc_off + K_SCALE_SIZE];
    let mut isum = 0i32;
    let mut summs = 0i32;
    for sb in sbs {
        let (s, m) = get_scale_min_k4(sb, scales);
        let mut dot = 0i32;
        for e in 32 * sb..32 * sb + 32 {
            dot += q(e) * q8k(ba, e);
        }
        isum += s as i32 * dot;
        summs += m as i32 * (bsum(ba, 2 * sb) + bsum(ba, 2 * sb + 1));
    }
    (
        isum,
        summs,
        f16_to_f32(rd_u16(b, 0)),
        f16_to_f32(rd_u16(b, dmin_off)),
    )
}

