//! wasm32 SIMD twins of [`crate::act`]: the same operations in the same order, four lanes at a
//! time. Fused steps use `f32x4.relaxed_madd` (a single-rounding FMA in Wasmtime on x86-64 hosts
//! with FMA), so on those hosts every result equals the scalar reference bit for bit.

use core::arch::wasm32::*;

use crate::act::{C1, C2, C3, C4, C5, INV_LN2, LN2_HI, LN2_LO, SHIFT, dot_f16_tail};
use crate::f16::f16_to_f32;
use crate::simd::{f16x8_to_f32, hsum_f32, madd};

/// `a·b + c` on one f32 with the vector fused multiply-add.
#[inline(always)]
pub(crate) fn fma1(a: f32, b: f32, c: f32) -> f32 {
    f32x4_extract_lane::<0>(madd(f32x4_splat(a), f32x4_splat(b), f32x4_splat(c)))
}

/// 8 halves at `k[i..i + 8]`. # Safety: `i + 8 <= k.len()`.
#[inline(always)]
unsafe fn ld_h8(k: &[u16], i: usize) -> (v128, v128) {
    debug_assert!(i + 8 <= k.len());
    // SAFETY: 16 readable bytes at element i (caller); v128_load needs no alignment.
    f16x8_to_f32(unsafe { v128_load(k.as_ptr().add(i) as *const v128) })
}

/// 4 floats at `x[i..i + 4]`. # Safety: `i + 4 <= x.len()`.
#[inline(always)]
unsafe fn ld_f4(x: &[f32], i: usize) -> v128 {
    debug_assert!(i + 4 <= x.len());
    // SAFETY: as above.
    unsafe { v128_load(x.as_ptr().add(i) as *const v128) }
}

/// Stores 4 floats at `x[i..i + 4]`. # Safety: `i + 4 <= x.len()`.
#[inline(always)]
unsafe fn st_f4(x: &mut [f32], i: usize, v: v128) {
    debug_assert!(i + 4 <= x.len());
    // SAFETY: as above, and `x` is borrowed mutably.
    unsafe { v128_store(x.as_mut_ptr().add(i) as *mut v128, v) }
}

/// Lane-wise [`crate::act::f16_round`]: round to the nearest f16 (ties to even) and back. Normal
/// halves by integer rounding of the bits at 13 dropped bits; subnormal halves (|x| < 2^-14) by
/// adding and removing 0.5 (whose ulp is the subnormal half step 2^-24); overflow to ±inf; NaN
/// quietened with its payload truncated, as the F16C round trip does.
#[inline(always)]
fn f16_round4(x: v128) -> v128 {
    let sign = v128_and(x, u32x4_splat(0x8000_0000));
    let abs = v128_and(x, u32x4_splat(0x7FFF_FFFF));
    let lsb = v128_and(u32x4_shr(abs, 13), u32x4_splat(1));
    let normal = v128_and(i32x4_add(abs, i32x4_add(u32x4_splat(0xFFF), lsb)), u32x4_splat(!0x1FFF));
    let normal = v128_bitselect(u32x4_splat(0x7F80_0000), normal, i32x4_gt(normal, u32x4_splat(0x477F_E000)));
    let sub = f32x4_sub(f32x4_add(abs, f32x4_splat(0.5)), f32x4_splat(0.5));
    let r = v128_bitselect(sub, normal, i32x4_lt(abs, u32x4_splat(0x3880_0000)));
    let nan = v128_and(v128_or(abs, u32x4_splat(0x0040_0000)), u32x4_splat(!0x1FFF));
    let r = v128_bitselect(nan, r, i32x4_gt(abs, u32x4_splat(0x7F80_0000)));
    v128_or(r, sign)
}

/// [`crate::act::dot_f16_ref`]: 16 f32x4 accumulators are the 64 lanes of ggml's four `__m512`.
pub(crate) fn dot_f16(k: &[u16], q: &[f32]) -> f32 {
    let n = k.len().min(q.len());
    let np = n / 64 * 64;
    let mut acc = [f32x4_splat(0.0); 16];
    let mut i = 0;
    while i < np {
        for j in 0..8 {
            // SAFETY: i + 8j + 8 <= np <= n for both slices.
            let ((k0, k1), q0, q1) = unsafe { (ld_h8(k, i + 8 * j), ld_f4(q, i + 8 * j), ld_f4(q, i + 8 * j + 4)) };
            acc[2 * j] = madd(k0, q0, acc[2 * j]);
            acc[2 * j + 1] = madd(k1, q1, acc[2 * j + 1]);
        }
        i += 64;
    }
    // Lanes l..l+4 of x (16 lanes) = (acc[l] + acc[32+l]) + (acc[16+l] + acc[48+l]).
    let x: [v128; 4] = core::array::from_fn(|m| f32x4_add(f32x4_add(acc[m], acc[8 + m]), f32x4_add(acc[4 + m], acc[12 + m])));
    dot_f16_tail(reduce_add16(x), &k[np..n], &q[np..n])
}

/// [`crate::act::reduce_add16`] of the 16 lanes `x[0]` (lanes 0..4) … `x[3]` (12..16): lanes
/// l + 8 and l, then l + 4 and l, then (0 + 2) + (1 + 3).
#[inline(always)]
fn reduce_add16(x: [v128; 4]) -> f32 {
    hsum_f32(f32x4_add(f32x4_add(x[3], x[1]), f32x4_add(x[2], x[0])))
}

/// [`crate::act::f16_axpy_ref`].
pub(crate) fn f16_axpy(acc: &mut [f32], v: &[u16], s: f32) {
    let n = acc.len().min(v.len());
    let n8 = n / 8 * 8;
    let sv = f32x4_splat(s);
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= n for both slices.
        unsafe {
            let (v0, v1) = ld_h8(v, i);
            let (a0, a1) = (ld_f4(acc, i), ld_f4(acc, i + 4));
            st_f4(acc, i, f16_round4(madd(v0, sv, a0)));
            st_f4(acc, i + 4, f16_round4(madd(v1, sv, a1)));
        }
        i += 8;
    }
    for (a, &vb) in acc[n8..n].iter_mut().zip(&v[n8..n]) {
        *a = crate::act::f16_round(fma1(f16_to_f32(vb), s, *a));
    }
}

/// [`crate::act::f16_scale_ref`].
pub(crate) fn f16_scale(acc: &mut [f32], s: f32) {
    let n4 = acc.len() / 4 * 4;
    let sv = f32x4_splat(s);
    let mut i = 0;
    while i < n4 {
        // SAFETY: i + 4 <= n4 <= acc.len().
        unsafe { st_f4(acc, i, f16_round4(f32x4_mul(ld_f4(acc, i), sv))) };
        i += 4;
    }
    for a in &mut acc[n4..] {
        *a = crate::act::f16_round(*a * s);
    }
}

/// Lane-wise [`crate::act::v_expf_ref`]. 2^n is applied as two exact powers of two (n = n1 + n2,
/// |n1|, |n2| ≤ 96): j·2^n1 is exact (j ∈ [0.7, 1.5], no overflow or subnormal), so the second
/// product is the only rounding, as with `scalef`.
#[inline(always)]
fn v_expf4(x: v128) -> v128 {
    let z = madd(x, f32x4_splat(INV_LN2), f32x4_splat(SHIFT));
    let n = f32x4_sub(z, f32x4_splat(SHIFT));
    let nn = f32x4_neg(n);
    let b = madd(nn, f32x4_splat(LN2_LO), madd(nn, f32x4_splat(LN2_HI), x));
    let u = f32x4_mul(b, b);
    let c = |v: f32| f32x4_splat(v);
    let j = madd(madd(madd(c(C5), b, c(C4)), u, madd(c(C3), b, c(C2))), u, madd(c(C1), b, c(1.0)));
    let e = i32x4_trunc_sat_f32x4(n);
    let e1 = i32x4_shr(e, 1);
    let e2 = i32x4_sub(e, e1);
    let p = |k: v128| i32x4_shl(i32x4_add(k, i32x4_splat(127)), 23);
    let r = f32x4_mul(f32x4_mul(j, p(e1)), p(e2));
    let big = f32x4_gt(f32x4_abs(n), f32x4_splat(192.0));
    let limit = v128_bitselect(f32x4_splat(0.0), f32x4_splat(f32::INFINITY), f32x4_le(n, f32x4_splat(0.0)));
    v128_bitselect(limit, r, big)
}

/// [`crate::act::swiglu_v_ref`].
pub(crate) fn swiglu_v(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let n4 = n / 4 * 4;
    let one = f32x4_splat(1.0);
    let mut i = 0;
    while i < n4 {
        // SAFETY: i + 4 <= n4 <= n for both slices.
        unsafe {
            let g = ld_f4(gate, i);
            let silu = f32x4_div(g, f32x4_add(one, v_expf4(f32x4_neg(g))));
            st_f4(gate, i, f32x4_mul(silu, ld_f4(up, i)));
        }
        i += 4;
    }
    for (g, &u) in gate[n4..n].iter_mut().zip(&up[n4..n]) {
        *g = *g / (1.0 + crate::act::v_expf_ref(-*g)) * u;
    }
}

/// [`crate::act::fa_tile_ref`]: the scores four positions to a vector (lanes = positions of
/// the transposed key tile), each lane one fused chain over d as in the reference; the values
/// accumulated eight vectors of `acc` at a time.
#[allow(clippy::too_many_arguments)] // reason: the operands of one step of the op.
pub(crate) fn fa_tile(q: &[f32], kt: &[f32], vt: &[f32], a: usize, b: usize, kq_scale: f32, m: &mut f32, s: &mut f32, acc: &mut [f32]) {
    use crate::act::{FA_TILE_KV, fa_tile_max};
    let hd = q.len();
    let b = b.min(FA_TILE_KV);
    if a >= b || kt.len() < hd * FA_TILE_KV || vt.len() < b * hd || acc.len() < hd {
        return crate::act::fa_tile_ref(q, kt, vt, a, b, kq_scale, m, s, acc);
    }
    let mut kq = [f32::NEG_INFINITY; FA_TILE_KV];
    // Groups of 4 positions covering a..b, at most 8 accumulators live at once.
    let (g0, g1) = (a / 4, b.div_ceil(4));
    let mut g = g0;
    while g < g1 {
        let ng = (g1 - g).min(8);
        let mut sc = [f32x4_splat(0.0); 8];
        for (d, &qd) in q.iter().enumerate() {
            let qv = f32x4_splat(qd);
            let row = d * FA_TILE_KV + 4 * g;
            for (k, x) in sc.iter_mut().enumerate().take(ng) {
                // SAFETY: row + 4k + 4 <= d·64 + 4·g1 <= hd·64 <= kt.len().
                *x = madd(unsafe { ld_f4(kt, row + 4 * k) }, qv, *x);
            }
        }
        for (k, x) in sc.iter().enumerate().take(ng) {
            let v = f32x4_add(f32x4_mul(*x, f32x4_splat(kq_scale)), f32x4_splat(0.0));
            // SAFETY: 4(g + k) + 4 <= 4·g1 <= 64.
            unsafe { st_f4(&mut kq, 4 * (g + k), v) };
        }
        g += ng;
    }
    // The lanes of the edge groups outside a..b are masked.
    kq[4 * g0..a].fill(f32::NEG_INFINITY);
    kq[b..4 * g1].fill(f32::NEG_INFINITY);
    let Some(ms) = fa_tile_max(&kq, m, s) else { return };
    let msv = f32x4_splat(ms);
    let hd4 = hd / 4 * 4;
    let mut i = 0;
    while i < hd4 {
        // SAFETY: i + 4 <= hd4 <= acc.len().
        unsafe { st_f4(acc, i, f32x4_mul(ld_f4(acc, i), msv)) };
        i += 4;
    }
    for x in &mut acc[hd4..hd] {
        *x *= ms;
    }
    let mv = f32x4_splat(*m);
    let mut sum = 0f64;
    for c in (a / 16)..b.div_ceil(16) {
        let mut e = [f32x4_splat(0.0); 4];
        for (k, x) in e.iter_mut().enumerate() {
            // SAFETY: 16c + 4k + 4 <= 64.
            unsafe {
                *x = v_expf4(f32x4_sub(ld_f4(&kq, 16 * c + 4 * k), mv));
                st_f4(&mut kq, 16 * c + 4 * k, *x);
            }
        }
        sum += f64::from(reduce_add16(e));
    }
    *s = (f64::from(*s) + sum) as f32;
    let mut d0 = 0;
    while d0 < hd4 {
        let nv = ((hd4 - d0) / 4).min(8);
        let mut av = [f32x4_splat(0.0); 8];
        for (k, x) in av.iter_mut().enumerate().take(nv) {
            // SAFETY: d0 + 4k + 4 <= hd4.
            *x = unsafe { ld_f4(acc, d0 + 4 * k) };
        }
        for (j, &p) in kq.iter().enumerate().take(b).skip(a) {
            let pv = f32x4_splat(p);
            for (k, x) in av.iter_mut().enumerate().take(nv) {
                // SAFETY: j·hd + d0 + 4k + 4 <= (j + 1)·hd <= b·hd <= vt.len().
                *x = madd(unsafe { ld_f4(vt, j * hd + d0 + 4 * k) }, pv, *x);
            }
        }
        for (k, x) in av.iter().enumerate().take(nv) {
            // SAFETY: as the loads.
            unsafe { st_f4(acc, d0 + 4 * k, *x) };
        }
        d0 += 4 * nv;
    }
    for d in hd4..hd {
        for j in a..b {
            acc[d] = fma1(vt[j * hd + d], kq[j], acc[d]);
        }
    }
}
