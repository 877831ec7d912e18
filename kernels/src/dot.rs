//! Scalar reference dot products `vec_dot_<w>_<a>`: an exact integer dot per block, then scaled
//! by the block deltas in f32. The 32-element types follow the summation order of ggml-cpu's x86
//! kernels (what llama.cpp runs on the machines we compare against, see [`blocks32`]); the others
//! follow ggml-cpu's `_generic` kernels (ggml-cpu/quants.c, vec.cpp). (The K-quant generics
//! spread the f32 sum over 8 lanes; here each block adds `d * isum` once.)

use crate::f16::{bf16_to_f32, f16_to_f32};
use crate::types::*;

/// Reference dot of weight row `w` (type `t`, `n` elements) with activation row `a`
/// (type `t.vec_dot_type()`). Lengths are checked by the caller ([`crate::vec_dot_ref`]).
pub(crate) fn vec_dot_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    match t {
        GgmlType::F32 => dot_f32(n, w, a),
        GgmlType::F16 => dot_half(n, w, a, f16_to_f32),
        GgmlType::BF16 => dot_half(n, w, a, bf16_to_f32),
        GgmlType::Q4_0 => blocks32(w, a, t, q4_0_block),
        GgmlType::Q5_0 => blocks32(w, a, t, q5_0_block),
        GgmlType::Q8_0 => blocks32(w, a, t, q8_0_block),
        GgmlType::Q4_1 => blocks32(w, a, t, q4_1_block),
        GgmlType::Q5_1 => blocks32(w, a, t, q5_1_block),
        GgmlType::Q8_1 => f32::NAN, // not a weight type of any vec_dot
        GgmlType::Q2_K => blocks_k(w, a, t, q2_k_block),
        GgmlType::Q3_K => blocks_k(w, a, t, q3_k_block),
        GgmlType::Q4_K => q4_k_x86(w, a, false),
        GgmlType::Q5_K => blocks_k(w, a, t, q5_k_block),
        GgmlType::Q6_K => q6_k_x86(w, a),
        GgmlType::Q8_K => f32::NAN,
    }
}

/// `ggml_vec_dot_f32` generic: products in f32, summed in f64 (`ggml_float`).
fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0.0f64;
    for i in 0..n {
        s += (rd_f32(w, 4 * i) * rd_f32(a, 4 * i)) as f64;
    }
    s as f32
}

/// `ggml_vec_dot_f16`/`bf16` generic: products of the widened values in f32, summed in f64.
fn dot_half(n: usize, w: &[u8], a: &[u8], cvt: fn(u16) -> f32) -> f32 {
    let mut s = 0.0f64;
    for i in 0..n {
        s += (cvt(rd_u16(w, 2 * i)) * cvt(rd_u16(a, 2 * i))) as f64;
    }
    s as f32
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
    qw: [i32; 32],
    qa: [i32; 32],
    d: f32,
    ms: Option<(f32, f32)>,
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
fn a8s(ba: &[u8], qs_off: usize) -> [i32; 32] {
    core::array::from_fn(|j| ba[qs_off + j] as i8 as i32)
}

/// Nibbles of a 16-byte `qs`: low nibbles are elements 0..16, high nibbles 16..32.
#[inline]
fn nibbles(qs: &[u8]) -> [i32; 32] {
    core::array::from_fn(|j| if j < 16 { (qs[j] & 0xF) as i32 } else { (qs[j - 16] >> 4) as i32 })
}

#[inline]
fn dd(b: &[u8], ba: &[u8]) -> f32 {
    f16_to_f32(rd_u16(b, 0)) * f16_to_f32(rd_u16(ba, 0))
}

/// `ggml_vec_dot_q4_0_q8_0` for one block: quants − 8.
pub(crate) fn q4_0_block(b: &[u8], ba: &[u8]) -> Block32 {
    let q = nibbles(&b[off::Q4_0_QS..off::Q4_0_QS + 16]);
    Block32 { qw: core::array::from_fn(|j| q[j] - 8), qa: a8s(ba, off::Q8_0_QS), d: dd(b, ba), ms: None }
}

/// `ggml_vec_dot_q4_1_q8_1` for one block: raw nibbles, plus m·s.
pub(crate) fn q4_1_block(b: &[u8], ba: &[u8]) -> Block32 {
    let ms = (f16_to_f32(rd_u16(b, off::Q4_1_M)), f16_to_f32(rd_u16(ba, off::Q8_1_S)));
    Block32 { qw: nibbles(&b[off::Q4_1_QS..off::Q4_1_QS + 16]), qa: a8s(ba, off::Q8_1_QS), d: dd(b, ba), ms: Some(ms) }
}

/// 5-bit quant j (0..32) of a Q5 block with high bits `qh` and nibbles at `qs`.
#[inline]
fn q5(qh: u32, qs: &[u8], j: usize) -> i32 {
    let nib = if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
    (nib as i32) | ((((qh >> j) & 1) as i32) << 4)
}

/// `ggml_vec_dot_q5_0_q8_0` for one block: 5-bit quants − 16.
pub(crate) fn q5_0_block(b: &[u8], ba: &[u8]) -> Block32 {
    let h = off::Q5_0_QH;
    let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
    let qs = &b[off::Q5_0_QS..off::Q5_0_QS + 16];
    Block32 { qw: core::array::from_fn(|j| q5(qh, qs, j) - 16), qa: a8s(ba, off::Q8_0_QS), d: dd(b, ba), ms: None }
}

/// `ggml_vec_dot_q5_1_q8_1` for one block: raw 5-bit quants, plus m·s.
pub(crate) fn q5_1_block(b: &[u8], ba: &[u8]) -> Block32 {
    let h = off::Q5_1_QH;
    let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
    let qs = &b[off::Q5_1_QS..off::Q5_1_QS + 16];
    let ms = (f16_to_f32(rd_u16(b, off::Q5_1_M)), f16_to_f32(rd_u16(ba, off::Q8_1_S)));
    Block32 { qw: core::array::from_fn(|j| q5(qh, qs, j)), qa: a8s(ba, off::Q8_1_QS), d: dd(b, ba), ms: Some(ms) }
}

/// `ggml_vec_dot_q8_0_q8_0` for one block.
pub(crate) fn q8_0_block(b: &[u8], ba: &[u8]) -> Block32 {
    Block32 { qw: a8s(b, off::Q8_0_QS), qa: a8s(ba, off::Q8_0_QS), d: dd(b, ba), ms: None }
}

/// Integer parts of one K-quant block dot: `(isum, summs, d_w, dmin_w)`; the block adds
/// `(d_w * d_a) * isum - (dmin_w * d_a) * summs`.
type KParts = (i32, i32, f32, f32);

/// Sums the K-quant blocks of a row.
fn blocks_k(w: &[u8], a: &[u8], t: GgmlType, f: fn(&[u8], &[u8]) -> KParts) -> f32 {
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
fn q8k(ba: &[u8], j: usize) -> i32 {
    ba[off::Q8K_QS + j] as i8 as i32
}

/// Q8_K bsum `j` (0..16) of block `ba`.
#[inline]
fn bsum(ba: &[u8], j: usize) -> i32 {
    rd_u16(ba, off::Q8K_BSUMS + 2 * j) as i16 as i32
}

/// `ggml_vec_dot_q2_K_q8_K_generic`, one block.
fn q2_k_block(b: &[u8], ba: &[u8]) -> KParts {
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

/// `ggml_vec_dot_q3_K_q8_K_generic`, one block.
fn q3_k_block(b: &[u8], ba: &[u8]) -> KParts {
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

/// Shared by Q4_K/Q5_K: integer dot given a function producing quant `e` (0..256).
fn qk_k_parts(
    b: &[u8],
    ba: &[u8],
    sc_off: usize,
    dmin_off: usize,
    q: impl Fn(usize) -> i32,
) -> KParts {
    qk_k_parts_of(b, ba, sc_off, dmin_off, q, 0..8)
}

/// [`qk_k_parts`] over the 32-element sub-blocks `sbs` only.
fn qk_k_parts_of(
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

/// `ggml_vec_dot_q5_K_q8_K_generic`, one block.
fn q5_k_block(b: &[u8], ba: &[u8]) -> KParts {
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

/// Q4_K · Q8_K as ggml-cpu's x86 build computes it: llama.cpp repacks Q4_K weights into
/// `block_q4_Kx8` and multiplies with `ggml_gemv_q4_K_8x8_q8_K` (single activation rows) or
/// `ggml_gemm_q4_K_8x8_q8_K` (groups of 4 rows, `grouped`), which take exact integer sums and
/// fuse them into two f32 chains, `acc = fma(isum, d_w·d_a, acc)` and `accm = fma(summs,
/// dmin_w·d_a, accm)`, result acc − accm. gemv adds one term per 256-element block, gemm one per
/// 64 elements (pair of sub-blocks).
pub(crate) fn q4_k_x86(w: &[u8], a: &[u8], grouped: bool) -> f32 {
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

/// `ggml_vec_dot_q6_K_q8_K` as ggml-cpu's x86 (AVX2) build computes it: per block, 8 integer
/// lanes (lane L takes elements 4L..4L+3 of every 32-element chunk, times the chunk half's
/// scale, minus 32·(bsums[2L]·sc[2L] + bsums[2L+1]·sc[2L+1])), each fused into an f32 lane by
/// `d = d_a · d_w`; `hsum_float_8` at the end.
fn q6_k_x86(w: &[u8], a: &[u8]) -> f32 {
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
