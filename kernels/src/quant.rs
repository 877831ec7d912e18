//! Reference quantizers: ports of ggml's `quantize_row_*_ref` (ggml-quants.c) for every weight
//! type and the activation types, plus the scalar twin of the x86 (AVX2) activation quantizers
//! that llama.cpp actually runs (`quantize_row_q8_0`/`q8_1` in ggml-cpu/arch/x86/quants.c).
//!
//! The K-quant helpers (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`, `nearest_int`) follow
//! ggml's operation order; a C compiler may fuse some multiply-adds, so an encoding can differ from
//! llama-quantize's in rare ties, but every output is a valid block of its type.
//!
//! Each format's block quantizer lives in its home in [`crate::formats`]; here are the
//! dispatchers and the helpers several formats share.

use crate::f16::{f16_to_f32, f32_to_bf16, f32_to_f16};
use crate::types::*;

/// ggml's `GROUP_MAX_EPS`: groups with |x| below this are all-zero.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Round to nearest (ties to even) via ggml's magic-number trick (`nearest_int`).
#[inline]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    debug_assert!(fval.is_nan() || fval.abs() <= 4_194_303.0);
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007F_FFFF) - 0x0040_0000
}

/// C `roundf`: half away from zero.
#[inline]
pub(crate) fn roundf(x: f32) -> f32 {
    // core has no f32::round in no_std; emulate with truncation (exact for |x| < 2^23).
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = x as i32 as f32;
    let r = x - t;
    if r >= 0.5 {
        t + 1.0
    } else if r <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// Round to nearest, ties to even (x86 `_mm256_round_ps(_, _MM_ROUND_NEAREST)`).
#[inline]
fn round_ties_even(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = if x >= 0.0 {
        x + 8_388_608.0 - 8_388_608.0
    } else {
        x - 8_388_608.0 + 8_388_608.0
    };
    if t == 0.0 { 0.0 * x } else { t }
}

/// `sqrtf` without std: Newton iterations in f64, then one rounding to f32 (correctly rounded for
/// f32 inputs, since f64 has more than 2·24+2 bits).
#[inline]
fn sqrtf(x: f32) -> f32 {
    // Correctly rounded: compute in f64 (exact enough: sqrt of an f32 in f64 rounds correctly to f32).
    if x.is_nan() || x <= 0.0 {
        return if x == 0.0 { x } else { f32::NAN };
    }
    let xd = x as f64;
    // Newton iterations from a bit-level estimate converge to the f64 sqrt well within 6 steps.
    let mut g = f64::from_bits((xd.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        g = 0.5 * (g + xd / g);
    }
    g as f32
}

/// Quantizes `x` (n = x.len(), a multiple of the block size) to the scalar reference encoding of
/// `t` into `out` (`t.row_bytes(n)` bytes). All 13 weight types plus Q8_1 and Q8_K.
pub fn quantize_row_ref(t: GgmlType, x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(t.row_bytes(x.len()), Some(out.len()));
    let qk = t.block_size();
    let ts = t.type_size();
    let f: fn(&[f32], &mut [u8]) = match t {
        GgmlType::F32 => |x, y| y.copy_from_slice(&x[0].to_le_bytes()),
        GgmlType::F16 => |x, y| wr_u16(y, 0, f32_to_f16(x[0])),
        GgmlType::BF16 => |x, y| wr_u16(y, 0, f32_to_bf16(x[0])),
        GgmlType::Q4_0 => crate::formats::q4_0::quantize,
        GgmlType::Q4_1 => crate::formats::q4_1::quantize,
        GgmlType::Q5_0 => crate::formats::q5_0::quantize,
        GgmlType::Q5_1 => crate::formats::q5_1::quantize,
        GgmlType::Q8_0 => crate::formats::q8_0::quantize,
        GgmlType::Q8_1 => crate::formats::q8_1::quantize,
        GgmlType::Q2_K => crate::formats::q2_k::quantize,
        GgmlType::Q3_K => crate::formats::q3_k::quantize,
        GgmlType::Q4_K => crate::formats::q4_k::quantize,
        GgmlType::Q5_K => crate::formats::q5_k::quantize,
        GgmlType::Q6_K => crate::formats::q6_k::quantize,
        GgmlType::Q8_K => crate::formats::q8_k::quantize,
    };
    for (xb, yb) in x.chunks_exact(qk).zip(out.chunks_exact_mut(ts)) {
        f(xb, yb);
    }
}

/// Scalar twin of the fast activation quantizers: Q8_0/Q8_1 as ggml-cpu's x86 AVX path
/// (`id = 127/amax`, round half to even), everything else as [`quantize_row_ref`].
pub fn quantize_row_scalar(t: GgmlType, x: &[f32], out: &mut [u8]) {
    match t {
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            debug_assert_eq!(t.row_bytes(x.len()), Some(out.len()));
            let ts = t.type_size();
            for (xb, yb) in x.chunks_exact(QK8_0).zip(out.chunks_exact_mut(ts)) {
                q8_block_x86(xb, yb, t == GgmlType::Q8_1);
            }
        }
        _ => quantize_row_ref(t, x, out),
    }
}

/// (32) → block_q8_0 / block_q8_1 as ggml-cpu's AVX2 `quantize_row_q8_0`/`q8_1`.
fn q8_block_x86(x: &[f32], y: &mut [u8], with_sum: bool) {
    let amax = x
        .iter()
        .fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m });
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    wr_u16(y, 0, f32_to_f16(d));
    let qs = if with_sum { off::Q8_1_QS } else { off::Q8_0_QS };
    let mut sum = 0i32;
    for (j, &v) in x.iter().enumerate() {
        let q = round_ties_even(v * id).clamp(-128.0, 127.0) as i32;
        sum += q;
        y[qs + j] = q as i8 as u8;
    }
    if with_sum {
        wr_u16(y, off::Q8_1_S, f32_to_f16(d * sum as f32));
    }
}

/// Index and value of the element with the largest |x| (first on ties), as ggml's loops.
#[inline]
pub(crate) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

/// min and max of `x` starting from ±FLT_MAX (as `quantize_row_q4_1_ref`).
#[inline]
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// C `MIN(hi, (int8_t)(v))` then stored as `uint8_t` (the cast truncates toward zero).
#[inline]
pub(crate) fn trunc_min(v: f32, hi: i32) -> u8 {
    ((v as i32 as i8 as i32).min(hi)) as u8
}

/// Packs 32 5-bit quants into (qh as u32, 16 nibble bytes).
pub(crate) fn pack_q5(q: &[u8; 32], qs: &mut [u8]) -> u32 {
    let mut qh = 0u32;
    for j in 0..16 {
        qs[j] = (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4);
        qh |= (((q[j] & 0x10) >> 4) as u32) << j;
        qh |= (((q[j + 16] & 0x10) >> 4) as u32) << (j + 16);
    }
    qh
}

/// ggml's `make_qx_quants` (signed levels -nmax..nmax-1 stored +nmax in `l`); returns the scale.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8], rmse_type: i32, qw: Option<&[f32]>) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let weight = |i: usize| -> f32 {
        match qw {
            Some(w) => w[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => x[i].abs(),
                _ => sqrtf(x[i].abs()),
            },
        }
    };
    let mut iscale = -(nmax as f32) / max;
    if rmse_type == 0 {
        for (li, &xi) in l.iter_mut().zip(x) {
            let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
            *li = (nmax + q) as i8;
        }
        return 1.0 / iscale;
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..x.len() {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
        let w = weight(i);
        sumlx += w * x[i] * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for (i, &xi) in x.iter().enumerate() {
            let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
            let w = weight(i);
            sumlx += w * xi * q as f32;
            suml2 += w * q as f32 * q as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..x.len() {
                let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
                l[i] = (nmax + q) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse = true` (levels stored +nmax in `l`); returns the scale.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..x.len() {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = q as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..x.len() {
            let w = x[i] * x[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l[i] as i32 {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for li in l.iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Parameters of one `make_qkx2_quants` search.
pub(crate) struct Qkx2 {
    pub(crate) nmax: i32,
    pub(crate) rmin: f32,
    pub(crate) rdelta: f32,
    pub(crate) nstep: i32,
    pub(crate) use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric levels 0..=nmax in `l`; returns (scale, -min).
pub(crate) fn make_qkx2_quants(p: &Qkx2, x: &[f32], weights: &[f32], l: &mut [u8]) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        min = if x[i] < min { x[i] } else { min };
        max = if x[i] > max { x[i] } else { max };
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let nmax = p.nmax as f32;
    let mut iscale = nmax / (max - min);
    let mut scale = 1.0 / iscale;
    let err = |d: f32, w: f32| if p.use_mad { w * d.abs() } else { w * (d * d) };
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
        l[i] = q as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        best_error += err(diff, weights[i]);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let lf = q as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += err(diff, weights[i]);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 256 2-bit levels as ggml's Q2_K/Q3_K `qs` (each 128 elements → 32 bytes, 4 per byte).
pub(crate) fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// Packs 8 6-bit scales and mins into the 12-byte Q4_K/Q5_K `scales` (as `quantize_row_q4_K_ref`).
pub(crate) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8], s: &mut [u8]) {
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
}

/// Shared front half of Q4_K/Q5_K: per-32 scales/mins → packed header; returns levels (0..=nmax).
pub(crate) fn qk_k_levels(
    x: &[f32],
    y: &mut [u8],
    nmax: i32,
    p: &Qkx2,
    sc_off: usize,
    dmin_off: usize,
) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2: f32 = xs.iter().fold(0.0, |s, &v| s + v * v);
        let av_x = sqrtf(sum_x2 / 32.0);
        let mut w = [0f32; 32];
        for (wi, &xi) in w.iter_mut().zip(xs) {
            *wi = av_x + xi.abs();
        }
        let (s, m) = make_qkx2_quants(p, xs, &w, &mut l[32 * j..32 * j + 32]);
        scales[j] = s;
        mins[j] = m;
        max_scale = if s > max_scale { s } else { max_scale };
        max_min = if m > max_min { m } else { max_min };
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    pack_scale_min_k4(&ls, &lm, &mut y[sc_off..sc_off + K_SCALE_SIZE]);
    wr_u16(y, 0, f32_to_f16(max_scale / 63.0));
    wr_u16(y, dmin_off, f32_to_f16(max_min / 63.0));
    let d_all = f16_to_f32(rd_u16(y, 0));
    let m_all = f16_to_f32(rd_u16(y, dmin_off));
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, &y[sc_off..sc_off + K_SCALE_SIZE]);
        let d = d_all * s as f32;
        if d == 0.0 {
            continue;
        }
        let dm = m_all * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    l
}

