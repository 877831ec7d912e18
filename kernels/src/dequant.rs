//! Scalar dequantizers, ports of ggml's `dequantize_row_*` (ggml-quants.c). Each float is computed
//! with the same operation order as ggml (and gguf-py's numpy port), so results are bit-exact.

use crate::f16::{bf16_to_f32, f16_to_f32};
use crate::types::*;

/// Dequantizes `src` (whole blocks of `t`) into `out` (one f32 per element).
/// Extra bytes/elements beyond the shorter of the two are left untouched.
pub fn dequantize_row(t: GgmlType, src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(t.row_bytes(out.len()), Some(src.len()));
    let ts = t.type_size();
    let qk = t.block_size();
    let f: fn(&[u8], &mut [f32]) = match t {
        GgmlType::F32 => |b, y| y[0] = rd_f32(b, 0),
        GgmlType::F16 => |b, y| y[0] = f16_to_f32(rd_u16(b, 0)),
        GgmlType::BF16 => |b, y| y[0] = bf16_to_f32(rd_u16(b, 0)),
        GgmlType::Q4_0 => dq_q4_0,
        GgmlType::Q4_1 => dq_q4_1,
        GgmlType::Q5_0 => dq_q5_0,
        GgmlType::Q5_1 => dq_q5_1,
        GgmlType::Q8_0 => dq_q8_0,
        GgmlType::Q8_1 => dq_q8_1,
        GgmlType::Q2_K => dq_q2_k,
        GgmlType::Q3_K => dq_q3_k,
        GgmlType::Q4_K => dq_q4_k,
        GgmlType::Q5_K => dq_q5_k,
        GgmlType::Q6_K => dq_q6_k,
        GgmlType::Q8_K => dq_q8_k,
    };
    for (b, y) in src.chunks_exact(ts).zip(out.chunks_exact_mut(qk)) {
        f(b, y);
    }
}

/// (32) ← block_q4_0.
fn dq_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let qs = &b[off::Q4_0_QS..off::Q4_0_QS + 16];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// (32) ← block_q4_1.
fn dq_q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let m = f16_to_f32(rd_u16(b, off::Q4_1_M));
    let qs = &b[off::Q4_1_QS..off::Q4_1_QS + 16];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// The 5-bit quants of a Q5_0/Q5_1 block: (32) in 0..=31.
#[inline]
fn q5_quants(qh: u32, qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        let xh0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
        q[j] = (qs[j] & 0xF) | xh0;
        q[j + 16] = (qs[j] >> 4) | xh1;
    }
    q
}

/// (32) ← block_q5_0.
fn dq_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let q = q5_quants(qh, &b[off::Q5_0_QS..off::Q5_0_QS + 16]);
    for (yj, &qj) in y.iter_mut().zip(q.iter()) {
        *yj = (qj as i32 - 16) as f32 * d;
    }
}

/// (32) ← block_q5_1.
fn dq_q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let m = f16_to_f32(rd_u16(b, off::Q5_1_M));
    let h = off::Q5_1_QH;
    let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
    let q = q5_quants(qh, &b[off::Q5_1_QS..off::Q5_1_QS + 16]);
    for (yj, &qj) in y.iter_mut().zip(q.iter()) {
        *yj = qj as f32 * d + m;
    }
}

/// (32) ← block_q8_0.
fn dq_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    for (yj, &q) in y.iter_mut().zip(&b[off::Q8_0_QS..off::Q8_0_QS + 32]) {
        *yj = q as i8 as f32 * d;
    }
}

/// (32) ← block_q8_1.
fn dq_q8_1(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    for (yj, &q) in y.iter_mut().zip(&b[off::Q8_1_QS..off::Q8_1_QS + 32]) {
        *yj = q as i8 as f32 * d;
    }
}

/// (256) ← block_q8_K.
fn dq_q8_k(b: &[u8], y: &mut [f32]) {
    let d = rd_f32(b, 0);
    for (yj, &q) in y.iter_mut().zip(&b[off::Q8K_QS..off::Q8K_QS + QK_K]) {
        *yj = q as i8 as f32 * d;
    }
}

/// (256) ← block_q2_K.
fn dq_q2_k(b: &[u8], y: &mut [f32]) {
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

/// (256) ← block_q3_K.
fn dq_q3_k(b: &[u8], y: &mut [f32]) {
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

/// (256) ← block_q4_K.
fn dq_q4_k(b: &[u8], y: &mut [f32]) {
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

/// (256) ← block_q5_K.
fn dq_q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(rd_u16(b, 0));
    let min = f16_to_f32(rd_u16(b, off::Q5K_DMIN));
    let sc = &b[off::Q5K_SCALES..off::Q5K_SCALES + K_SCALE_SIZE];
    let qh = &b[off::Q5K_QH..off::Q5K_QH + 32];
    let qs = &b[off::Q5K_QS..off::Q5K_QS + 128];
    for (j, ql) in qs.chunks_exact(32).enumerate() {
        let (s1, m1) = get_scale_min_k4(2 * j, sc);
        let (s2, m2) = get_scale_min_k4(2 * j + 1, sc);
        let (d1, m1) = (d * s1 as f32, min * m1 as f32);
        let (d2, m2) = (d * s2 as f32, min * m2 as f32);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let yo = &mut y[64 * j..64 * j + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            yo[l] = d1 * ((ql[l] & 0xF) + h1) as f32 - m1;
            yo[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// (256) ← block_q6_K.
fn dq_q6_k(b: &[u8], y: &mut [f32]) {
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
