//! The float formats F32, F16 (IEEE half) and BF16 (bfloat16): one element per "block", so no
//! struct; the conversions live in `f16`. Their scalar reference dots (ggml's generic order:
//! products in f32, summed in f64) and the wasm32 SIMD dots.

use crate::types::{rd_f32, rd_u16};

// ---------------------------------------------------------------------------------------------
// Dot with the activation type (scalar reference)
// ---------------------------------------------------------------------------------------------

/// `ggml_vec_dot_f32` generic: products in f32, summed in f64 (`ggml_float`).
pub(crate) fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0.0f64;
    for i in 0..n {
        s += (rd_f32(w, 4 * i) * rd_f32(a, 4 * i)) as f64;
    }
    s as f32
}

/// `ggml_vec_dot_f16`/`bf16` generic: products of the widened values in f32, summed in f64.
pub(crate) fn dot_half(n: usize, w: &[u8], a: &[u8], cvt: fn(u16) -> f32) -> f32 {
    let mut s = 0.0f64;
    for i in 0..n {
        s += (cvt(rd_u16(w, 2 * i)) * cvt(rd_u16(a, 2 * i))) as f64;
    }
    s as f32
}

// ---------------------------------------------------------------------------------------------
// wasm32 SIMD
// ---------------------------------------------------------------------------------------------

/// The SIMD dots of F32 and F16/BF16 rows, summed in f32 lanes (the kernel tests hold them to
/// the f64 references within 1e-5 of Σ|w·a|).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use core::arch::wasm32::*;

    use crate::f16::{bf16_to_f32, f16_to_f32};
    use crate::simd::{f16x8_to_f32, hsum_f32, ld};
    use crate::types::{rd_f32, rd_u16};

    /// F32 · F32: 4 accumulators of 4 lanes, tail scalar.
    ///
    /// # Safety
    /// `w`, `a` hold at least `4 n` bytes.
    pub(crate) unsafe fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
        let mut acc = [f32x4_splat(0.0); 4];
        let n16 = n / 16 * 16;
        let mut i = 0;
        while i < n16 {
            for (k, ak) in acc.iter_mut().enumerate() {
                let o = 4 * (i + 4 * k);
                // SAFETY: o + 16 <= 4 * n16 <= 4 n.
                let (x, y) = unsafe { (ld(w, o), ld(a, o)) };
                *ak = f32x4_add(*ak, f32x4_mul(x, y));
            }
            i += 16;
        }
        let v = f32x4_add(f32x4_add(acc[0], acc[1]), f32x4_add(acc[2], acc[3]));
        let mut s = hsum_f32(v);
        for j in n16..n {
            s += rd_f32(w, 4 * j) * rd_f32(a, 4 * j);
        }
        s
    }

    /// 8 bfloat16 (u16 lanes) → two f32x4.
    #[inline(always)]
    fn bf16x8_to_f32(v: v128) -> (v128, v128) {
        (
            i32x4_shl(u32x4_extend_low_u16x8(v), 16),
            i32x4_shl(u32x4_extend_high_u16x8(v), 16),
        )
    }

    /// F16·F16 or BF16·BF16: widen 8 at a time, products summed in f32 lanes, tail scalar.
    ///
    /// # Safety
    /// `w`, `a` hold at least `2 n` bytes.
    pub(crate) unsafe fn dot_half(n: usize, w: &[u8], a: &[u8], bf: bool) -> f32 {
        let cvt = if bf { bf16x8_to_f32 } else { f16x8_to_f32 };
        let (mut acc0, mut acc1) = (f32x4_splat(0.0), f32x4_splat(0.0));
        let n8 = n / 8 * 8;
        let mut i = 0;
        while i < n8 {
            // SAFETY: 2 i + 16 <= 2 n8 <= 2 n.
            let (x, y) = unsafe { (ld(w, 2 * i), ld(a, 2 * i)) };
            let ((x0, x1), (y0, y1)) = (cvt(x), cvt(y));
            acc0 = f32x4_add(acc0, f32x4_mul(x0, y0));
            acc1 = f32x4_add(acc1, f32x4_mul(x1, y1));
            i += 8;
        }
        let mut s = hsum_f32(f32x4_add(acc0, acc1));
        let c: fn(u16) -> f32 = if bf { bf16_to_f32 } else { f16_to_f32 };
        for j in n8..n {
            s += c(rd_u16(w, 2 * j)) * c(rd_u16(a, 2 * j));
        }
        s
    }
}
