//! Activation-side kernels of the forward pass whose rounding must follow llama.cpp's x86 build:
//! the f16 pieces of ggml-cpu's flash attention (`ggml_compute_forward_flash_attn_ext_f16`) and
//! SwiGLU's vector exponential (`ggml_v_expf`, AVX-512 form, itself ARM optimized-routines'
//! method). Each has a scalar reference (`*_ref`, exact fused multiply-adds via [`fma`]) and a
//! fast twin (wasm32 SIMD in `simd_act`, the reference elsewhere); `tests/kernels_wasm.rs`
//! compares the two bit for bit.

use crate::dot::fma;
use crate::f16::{f16_to_f32, f32_to_f16};

/// Rounds `x` through f16 (round to nearest even, overflow to ±inf), as ggml does when it stores
/// an f32 into an F16 tensor or accumulator.
#[inline]
pub fn f16_round(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// `ggml_vec_dot_f16` of the f16 row `k` with `q` (f32 values already rounded to f16, len ≥
/// k.len()), in the order of ggml's AVX-512 build: four 16-lane f32 accumulators fed with fused
/// multiply-adds, 64 elements per step; then x0+x2, x1+x3, x0+x1, the 16 lanes reduced as GCC's
/// `_mm512_reduce_add_ps` does (halves, quarters, pairs); a tail of fewer than 64 elements added
/// product by product in f64 (`ggml_float`).
pub fn dot_f16_ref(k: &[u16], q: &[f32]) -> f32 {
    let np = k.len() / 64 * 64;
    let mut acc = [0f32; 64];
    for (kc, qc) in k[..np].chunks_exact(64).zip(q[..np].chunks_exact(64)) {
        for ((a, &kb), &qv) in acc.iter_mut().zip(kc).zip(qc) {
            *a = fma(f16_to_f32(kb), qv, *a);
        }
    }
    let x: [f32; 16] = core::array::from_fn(|l| (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]));
    let w: [f32; 8] = core::array::from_fn(|l| x[l + 8] + x[l]);
    let u: [f32; 4] = core::array::from_fn(|l| w[l + 4] + w[l]);
    dot_f16_tail((u[0] + u[2]) + (u[1] + u[3]), &k[np..], &q[np..])
}

/// The f64 tail of [`dot_f16_ref`]: `sum` plus the products of the remaining elements.
pub(crate) fn dot_f16_tail(sum: f32, k: &[u16], q: &[f32]) -> f32 {
    let mut s = f64::from(sum);
    for (&kb, &qv) in k.iter().zip(q) {
        s += f64::from(f16_to_f32(kb) * qv);
    }
    s as f32
}

/// The online-softmax value update of flash attention: `acc[i] ← f16(fma(v[i], s, acc[i]))`
/// (ggml keeps the running value sum in an f16 row: `ggml_vec_mad_f16`).
pub fn f16_axpy_ref(acc: &mut [f32], v: &[u16], s: f32) {
    for (a, &vb) in acc.iter_mut().zip(v) {
        *a = f16_round(fma(f16_to_f32(vb), s, *a));
    }
}

/// The rescale of flash attention's f16 running sum when the maximum grows: `acc[i] ←
/// f16(acc[i] · s)` (`ggml_vec_scale_f16`).
pub fn f16_scale_ref(acc: &mut [f32], s: f32) {
    for a in acc.iter_mut() {
        *a = f16_round(*a * s);
    }
}

/// e^x as ggml's vector `ggml_v_expf` (AVX-512 form) computes it: n = round(x / ln2) by the
/// 1.5·2^23 shift trick, b = x − n·ln2 in two fused steps, a degree-5 polynomial in b by fused
/// multiply-adds, scaled by 2^n with one rounding (`scalef`); |n| > 192 gives 0 or +inf.
pub fn v_expf_ref(x: f32) -> f32 {
    let z = fma(x, INV_LN2, SHIFT);
    let n = z - SHIFT;
    let b = fma(-n, LN2_LO, fma(-n, LN2_HI, x));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = fma(fma(fma(C5, b, C4), u, fma(C3, b, C2)), u, fma(C1, b, 1.0));
    // j · 2^n rounded once: exact in f64, then one rounding to f32.
    (f64::from(j) * pow2_f64(n as i32)) as f32
}

/// 2^e as an f64, exact for |e| ≤ 1000 (no libm in `no_std`).
fn pow2_f64(e: i32) -> f64 {
    f64::from_bits(((1023 + e as i64) as u64) << 52)
}

/// `ggml_vec_swiglu_f32` on the vectorised part of a row: `gate[i] ← gate[i] / (1 +
/// v_expf(−gate[i])) · up[i]` (ggml's x86 build takes `expf` for the tail that does not fill a
/// vector; the caller handles that tail).
pub fn swiglu_v_ref(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + v_expf_ref(-*g)) * u;
    }
}

/// [`dot_f16_ref`], fast path (same result, bit for bit, on hosts where the wasm relaxed fused
/// multiply-add is fused).
pub fn dot_f16(k: &[u16], q: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        crate::simd_act::dot_f16(k, &q[..k.len().min(q.len())])
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        dot_f16_ref(k, q)
    }
}

/// [`f16_axpy_ref`], fast path.
pub fn f16_axpy(acc: &mut [f32], v: &[u16], s: f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let n = acc.len().min(v.len());
        crate::simd_act::f16_axpy(&mut acc[..n], &v[..n], s)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        f16_axpy_ref(acc, v, s)
    }
}

/// [`f16_scale_ref`], fast path.
pub fn f16_scale(acc: &mut [f32], s: f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        crate::simd_act::f16_scale(acc, s)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        f16_scale_ref(acc, s)
    }
}

/// [`swiglu_v_ref`], fast path.
pub fn swiglu_v(gate: &mut [f32], up: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let n = gate.len().min(up.len());
        crate::simd_act::swiglu_v(&mut gate[..n], &up[..n])
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        swiglu_v_ref(gate, up)
    }
}

/// 1.5·2^23: adding it rounds an f32 of magnitude < 2^22 to an integer.
pub(crate) const SHIFT: f32 = 12_582_912.0;
/// 1/ln 2 rounded to f32 (0x1.715476p+0).
pub(crate) const INV_LN2: f32 = f32::from_bits(0x3FB8_AA3B);
/// ln 2, high part (0x1.62e4p-1).
pub(crate) const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
/// ln 2, low part (0x1.7f7d1cp-20).
pub(crate) const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E);
/// Polynomial coefficients of `ggml_v_expf` (0x1.0e4020p-7 … 0x1.ffffecp-1).
pub(crate) const C5: f32 = f32::from_bits(0x3C07_2010);
pub(crate) const C4: f32 = f32::from_bits(0x3D2B_9F17);
pub(crate) const C3: f32 = f32::from_bits(0x3E2A_AF33);
pub(crate) const C2: f32 = f32::from_bits(0x3EFF_FEDB);
pub(crate) const C1: f32 = f32::from_bits(0x3F7F_FFF6);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_expf_is_close_to_exp() {
        for i in -800..800 {
            let x = i as f32 * 0.11;
            let (a, b) = (v_expf_ref(x), (x as f64).exp() as f32);
            assert!((a - b).abs() <= b.abs() * 4e-7 + f32::MIN_POSITIVE, "{x}: {a} vs {b}");
        }
        assert_eq!(v_expf_ref(-200.0), 0.0);
        assert_eq!(v_expf_ref(200.0), f32::INFINITY);
    }

    #[test]
    fn dot_f16_ref_matches_f64_dot() {
        let k: Vec<u16> = (0..80).map(|i| f32_to_f16((i as f32 * 0.37).sin())).collect();
        let q: Vec<f32> = (0..80).map(|i| f16_round((i as f32 * 0.11).cos())).collect();
        let exact: f64 = k.iter().zip(&q).map(|(&a, &b)| f64::from(f16_to_f32(a)) * f64::from(b)).sum();
        assert!((f64::from(dot_f16_ref(&k, &q)) - exact).abs() < 1e-4);
    }
}
