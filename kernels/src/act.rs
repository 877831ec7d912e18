//! Activation-side kernels of the forward pass whose rounding must follow llama.cpp's x86 build:
//! the f16 pieces of ggml-cpu's flash attention (`ggml_compute_forward_flash_attn_ext_f16`) and
//! SwiGLU's vector exponential (`ggml_v_expf`, AVX-512 form, itself ARM optimized-routines'
//! method). Each has a scalar reference (`*_ref`, exact fused multiply-adds via [`fma`]) and a
//! fast twin (wasm32 SIMD in `simd_act`, the reference elsewhere); `tests/kernels_wasm.rs`
//! compares the two bit for bit. Also scalar only, compared with the platform's libm by the
//! tests below: glibc's `expf`, `expm1f` and `tanhf` methods, and GEGLU's GELU table.

use crate::dot::fma;
use crate::f16::{f16_to_f32, f32_to_f16};

/// Rounds `x` through f16 (round to nearest even, overflow to ±inf), as ggml does when it stores
/// an f32 into an F16 tensor or accumulator.
#[inline]
pub fn f16_round(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// 2^(i/32) for i in 0..32, correctly rounded to f64 (bits; computed with 60-digit decimals).
const EXP2_32THS: [u64; 32] = [
    0x3FF0000000000000, 0x3FF059B0D3158574, 0x3FF0B5586CF9890F, 0x3FF11301D0125B51,
    0x3FF172B83C7D517B, 0x3FF1D4873168B9AA, 0x3FF2387A6E756238, 0x3FF29E9DF51FDEE1,
    0x3FF306FE0A31B715, 0x3FF371A7373AA9CB, 0x3FF3DEA64C123422, 0x3FF44E086061892D,
    0x3FF4BFDAD5362A27, 0x3FF5342B569D4F82, 0x3FF5AB07DD485429, 0x3FF6247EB03A5585,
    0x3FF6A09E667F3BCD, 0x3FF71F75E8EC5F74, 0x3FF7A11473EB0187, 0x3FF82589994CCE13,
    0x3FF8ACE5422AA0DB, 0x3FF93737B0CDC5E5, 0x3FF9C49182A3F090, 0x3FFA5503B23E255D,
    0x3FFAE89F995AD3AD, 0x3FFB7F76F2FB5E47, 0x3FFC199BDD85529C, 0x3FFCB720DCEF9069,
    0x3FFD5818DCFBA487, 0x3FFDFC97337B9B5F, 0x3FFEA4AFA2A490DA, 0x3FFF50765B6E4540,
];

/// e^x for f32 the way glibc's `expf` computes it (the ARM optimized-routines method, which
/// llama.cpp's CPU build calls for the flash-attention softmax): in f64, x·32/ln2 = k + r with k
/// rounded to nearest by the 1.5·2^52 shift, 2^(k/32) from a 32-entry table and the exponent
/// bits, 2^(r/32) by a cubic; one rounding to f32 at the end. Beyond the f32 range: +inf above
/// 0x1.62e42ep6, 0 below −0x1.9fe368p6. Measured on this project's x86-64 host (glibc, all
/// 2^32 inputs): equal to the platform `expf` except on 2 inputs (there glibc is correctly
/// rounded and this is 1 ulp off); Rust's `libm` differs on ~10 %.
pub fn expf(x: f32) -> f32 {
    if x.is_nan() {
        return x + x;
    }
    if x > f32::from_bits(0x42B1_7217) {
        return f32::INFINITY;
    }
    if x < f32::from_bits(0xC2CF_F1B4) {
        return 0.0;
    }
    const N: f64 = 32.0;
    let shift = f64::from_bits(0x4338_0000_0000_0000); // 0x1.8p52
    let inv_ln2_n = f64::from_bits(0x3FF7_1547_652B_82FE) * N;
    let c0 = f64::from_bits(0x3FAC_6AF8_4B91_2394) / N / N / N;
    let c1 = f64::from_bits(0x3FCE_BFCE_50FA_C4F3) / N / N;
    let c2 = f64::from_bits(0x3FE6_2E42_FF0C_52D6) / N;
    let z = inv_ln2_n * f64::from(x);
    let kd = z + shift;
    let ki = kd.to_bits();
    let r = z - (kd - shift);
    let t = EXP2_32THS[(ki % 32) as usize].wrapping_sub((ki % 32) << 47).wrapping_add(ki << 47);
    let s = f64::from_bits(t);
    let p = (c0 * r + c1) * (r * r) + (c2 * r + 1.0);
    (p * s) as f32
}

/// e^x − 1 for f32 as glibc's `expm1f` computes it (fdlibm's `s_expm1f.c`, Sun Microsystems
/// 1993, as kept by glibc's generic flt-32 code, which the x86-64 build uses): x = k·ln2 + r with
/// |r| ≤ ln2/2 (k = ±1 directly for |x| < 1.5·ln2, else k = round(x/ln2) and ln2 in a high part
/// exact in products and a low part, the reduction's rounding error kept in `c`), e^r − 1 from a
/// rational form whose denominator polynomial in (r²/2) has five coefficients Q1..Q5, then
/// rescaled by 2^k with the branch for each range of k that keeps the last step exact. Plain f32
/// operations in source order (glibc is built without FMA contraction). Used by [`tanhf`].
/// Equal to glibc 2.36's `expm1f` on every f32 (test `tanhf_and_expm1f_match_platform`).
pub fn expm1f(x: f32) -> f32 {
    const LN2_HI_D: f32 = f32::from_bits(0x3F31_7180);
    const LN2_LO_D: f32 = f32::from_bits(0x3717_F7D1);
    const INVLN2: f32 = f32::from_bits(0x3FB8_AA3B);
    const Q: [f32; 5] = [f32::from_bits(0xBD08_8889), f32::from_bits(0x3AD0_0D01), f32::from_bits(0xB8A6_70CD), f32::from_bits(0x3686_7E54), f32::from_bits(0xB457_EDBB)];
    let bits = x.to_bits();
    let neg = bits >> 31 != 0;
    let ax = bits & 0x7FFF_FFFF;
    if ax >= 0x4195_B844 {
        // |x| ≥ 27·ln2: NaN, ±inf, overflow, or −1 for large negative x.
        if ax > 0x7F80_0000 {
            return x + x;
        }
        if ax == 0x7F80_0000 {
            return if neg { -1.0 } else { x };
        }
        if ax >= 0x42B1_7218 && !neg && x > f32::from_bits(0x42B1_7180) {
            return f32::INFINITY; // below 0x42B17218 the k = 128 branch still gives a finite value
        }
        if neg {
            return -1.0;
        }
    }
    let (mut x, k, c) = if ax > 0x3EB1_7218 {
        // |x| > ln2/2: reduce.
        let (hi, lo, k) = if ax < 0x3F85_1592 {
            if neg { (x + LN2_HI_D, -LN2_LO_D, -1) } else { (x - LN2_HI_D, LN2_LO_D, 1) }
        } else {
            let k = (INVLN2 * x + if neg { -0.5 } else { 0.5 }) as i32; // truncation, as C's conversion
            let t = k as f32;
            (x - t * LN2_HI_D, t * LN2_LO_D, k)
        };
        let r = hi - lo;
        (r, k, (hi - r) - lo)
    } else if ax < 0x3300_0000 {
        return x; // |x| < 2^-25
    } else {
        (x, 0, 0.0)
    };
    let hfx = 0.5 * x;
    let hxs = x * hfx;
    let r1 = 1.0 + hxs * (Q[0] + hxs * (Q[1] + hxs * (Q[2] + hxs * (Q[3] + hxs * Q[4]))));
    let t = 3.0 - r1 * hfx;
    let mut e = hxs * ((r1 - t) / (6.0 - x * t));
    if k == 0 {
        return x - (x * e - hxs);
    }
    e = x * (e - c) - c;
    e -= hxs;
    if k == -1 {
        return 0.5 * (x - e) - 0.5;
    }
    if k == 1 {
        return if x < -0.25 { -2.0 * (e - (x + 0.5)) } else { 1.0 + 2.0 * (x - e) };
    }
    let scale = |y: f32| f32::from_bits(y.to_bits().wrapping_add((k << 23) as u32));
    if k <= -2 || k > 56 {
        return scale(1.0 - (e - x)) - 1.0;
    }
    if k < 23 {
        let t = f32::from_bits(0x3F80_0000 - (0x0100_0000 >> k)); // 1 − 2^-k
        scale(t - (e - x))
    } else {
        let t = f32::from_bits(((0x7F - k) << 23) as u32); // 2^-k
        x -= e + t;
        scale(x + 1.0)
    }
}

/// tanh for f32 as glibc's `tanhf` computes it (fdlibm's `s_tanhf.c`): ±1 beyond |x| = 22,
/// x·(1 + x) below 2^-55, else from t = [`expm1f`](±2|x|): 1 − 2/(t + 2) for |x| ≥ 1,
/// −t/(t + 2) below (t of −2|x|); the sign restored last. Measured on this project's x86-64 host
/// (glibc 2.36): equal to the platform `tanhf` on every f32 (test `tanhf_and_expm1f_match_platform`).
/// Rust's `libm` (musl's method, other thresholds) differs on some inputs, among them ones that
/// decide an f16 rounding in [`gelu_f32`]. glibc ≥ 2.41 may take a correctly rounded method
/// instead; the sweep test says whether this host's still agrees.
pub fn tanhf(x: f32) -> f32 {
    let bits = x.to_bits();
    let ax = bits & 0x7FFF_FFFF;
    if ax >= 0x7F80_0000 {
        return if bits >> 31 == 0 { 1.0 / x + 1.0 } else { 1.0 / x - 1.0 };
    }
    let z = if ax < 0x41B0_0000 {
        if ax == 0 {
            return x;
        }
        if ax < 0x2400_0000 {
            return x * (1.0 + x);
        }
        let a = f32::from_bits(ax);
        if ax >= 0x3F80_0000 {
            let t = expm1f(2.0 * a);
            1.0 - 2.0 / (t + 2.0)
        } else {
            let t = expm1f(-2.0 * a);
            -t / (t + 2.0)
        }
    } else {
        1.0
    };
    if bits >> 31 == 0 { z } else { -z }
}

/// GELU, tanh form, as ggml's `ggml_gelu_f32` evaluates it in llama.cpp's x86 build:
/// 0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x·x))) left to right in f32, GCC contracting
/// `1 + (0.044715·x)·x` into one fused multiply-add (the x86 builds have FMA), tanh as glibc's
/// ([`tanhf`]). ggml tabulates it over f16 inputs (`ggml_table_gelu_f16`, f16 results):
/// [`gelu_f16_table`].
pub fn gelu_f32(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanhf(SQRT_2_OVER_PI * x * fma(GELU_COEF_A * x, x, 1.0)))
}

/// ggml's GELU table (`ggml_table_gelu_f16`): entry h = f16(GELU(h as f16)) for every half h, as
/// f16 bits. `table` must hold 65536 entries.
pub fn gelu_f16_table(table: &mut [u16]) {
    for (h, d) in table.iter_mut().enumerate().take(1 << 16) {
        *d = f32_to_f16(gelu_f32(f16_to_f32(h as u16)));
    }
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
    dot_f16_tail(reduce_add16(&x), &k[np..], &q[np..])
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
        crate::simd_act::dot_f16(k, q)
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
        crate::simd_act::f16_axpy(acc, v, s)
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
        crate::simd_act::swiglu_v(gate, up)
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

    /// Every f32 input: [`expf`] equals the platform's `expf` (glibc) but for the few inputs
    /// where glibc rounds correctly and the ARM method does not. Slow in debug builds.
    #[test]
    #[ignore = "sweeps all 2^32 inputs: cargo test --release -p wasm-chord-kernels -- --ignored"]
    fn expf_matches_platform_expf() {
        let mut diff = 0u64;
        for b in 0..=u32::MAX {
            let x = f32::from_bits(b);
            let (a, e) = (expf(x), x.exp());
            if a.to_bits() != e.to_bits() && !(a.is_nan() && e.is_nan()) {
                diff += 1;
                assert!(diff <= 8, "expf({x:e}) = {a:e}, platform {e:e}");
            }
        }
    }

    /// Every f32 input: [`tanhf`] and [`expm1f`] equal the platform's (glibc; see their docs).
    #[test]
    #[ignore = "sweeps all 2^32 inputs: cargo test --release -p wasm-chord-kernels -- --ignored"]
    fn tanhf_and_expm1f_match_platform() {
        for b in 0..=u32::MAX {
            let x = f32::from_bits(b);
            let (a, e) = (tanhf(x), x.tanh());
            assert!(a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()), "tanhf({x:e}) = {a:e}, platform {e:e}");
            let (a, e) = (expm1f(x), x.exp_m1());
            assert!(a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()), "expm1f({x:e}) = {a:e}, platform {e:e}");
        }
    }

    /// The tanh arguments GELU's table produces (one per f16 input), and a stride through all
    /// f32: [`tanhf`] and [`expm1f`] equal the platform's.
    #[test]
    fn tanhf_and_expm1f_match_platform_on_a_sample() {
        let arg = |x: f32| 0.797_884_6 * x * (0.044715 * x).mul_add(x, 1.0);
        for h in 0..=u16::MAX {
            let x = arg(f16_to_f32(h));
            assert!(tanhf(x).to_bits() == x.tanh().to_bits() || x.is_nan(), "tanhf({x:e})");
        }
        // A stride through every f32, and every input near the overflow threshold.
        for b in (0..=u32::MAX).step_by(4099).chain(0x42B0_0000..0x42B2_0000) {
            let x = f32::from_bits(b);
            let (t, m) = (tanhf(x), expm1f(x));
            assert!(t.to_bits() == x.tanh().to_bits() || x.is_nan(), "tanhf({x:e}) = {t:e}, platform {:e}", x.tanh());
            assert!(m.to_bits() == x.exp_m1().to_bits() || x.is_nan(), "expm1f({x:e}) = {m:e}, platform {:e}", x.exp_m1());
        }
    }

    /// The GELU table equals ggml's x86 build of it: `ggml_gelu_f32` compiled with FMA
    /// contraction over the platform's `tanhf`, rounded to f16 (F16C rounding, nearest even).
    /// At f16 0xBFFF (x = −1.99902) the contraction decides the f16 result (0xA9D3 fused,
    /// 0xA9D2 not), as gemma3's GEGLU meets in real prompts.
    #[test]
    fn gelu_table_matches_ggml_x86_build() {
        let mut t = vec![0u16; 1 << 16];
        gelu_f16_table(&mut t);
        for (h, &g) in t.iter().enumerate() {
            let x = f16_to_f32(h as u16);
            let want = f32_to_f16(0.5 * x * (1.0 + (0.797_884_6 * x * (0.044715 * x).mul_add(x, 1.0)).tanh()));
            assert!(g == want || x.is_nan(), "gelu table at {h:#06x}: {g:#06x}, want {want:#06x}");
        }
        assert_eq!(t[0xBFFF], 0xA9D3);
    }

    #[test]
    fn expf_edges() {
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(f32::INFINITY), f32::INFINITY);
        assert_eq!(expf(89.0), f32::INFINITY);
        assert_eq!(expf(-104.0), 0.0);
        assert!(expf(f32::NAN).is_nan());
        for i in -1000..1000 {
            let x = i as f32 * 0.0871;
            assert!((f64::from(expf(x)) / f64::from(x).exp() - 1.0).abs() < 1.2e-7, "{x}");
        }
    }

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

/// KV positions per tile of llama.cpp's tiled CPU flash attention (`GGML_FA_TILE_KV`); tiles
/// start at cache cell 0.
pub const FA_TILE_KV: usize = 64;
/// Query rows per tile of the same path (`GGML_FA_TILE_Q`): llama.cpp takes the tiled path for a
/// ubatch of at least this many tokens (and a value width that is a multiple of 16).
pub const FA_TILE_Q: usize = 64;

/// The sum of 16 lanes in the order of GCC's `_mm512_reduce_add_ps`: upper half + lower half,
/// then quarters, then (x0 + x2) + (x1 + x3).
pub(crate) fn reduce_add16(x: &[f32]) -> f32 {
    let w: [f32; 8] = core::array::from_fn(|l| x[l + 8] + x[l]);
    let u: [f32; 4] = core::array::from_fn(|l| w[l + 4] + w[l]);
    (u[0] + u[2]) + (u[1] + u[3])
}

/// One KV tile of llama.cpp's tiled CPU flash attention (`ggml_compute_forward_flash_attn_ext_tiled`,
/// taken for ubatches of [`FA_TILE_Q`]+ tokens) for one query row, as its AVX-512 build rounds it.
///
/// - `q`: (hd) the query in f32 (this path does not round it to f16).
/// - `kt`: (hd, FA_TILE_KV) the tile's keys as f32, transposed: `kt[d * FA_TILE_KV + j]`.
/// - `vt`: (FA_TILE_KV, hd) the tile's values as f32.
/// - positions `a..b` of the tile are attended; the others are masked (−inf).
/// - state: `m` running maximum, `s` running sum, `acc` (hd) running value sum in f32.
///
/// Each score is one fused multiply-add chain over d from 0 (`simd_gemm`'s micro-kernel), times
/// `kq_scale`, plus the mask's +0. With the tile's maximum M' = max(m, scores): when it grows,
/// `acc` and `s` are scaled by expf(m − M'); p_j = `ggml_v_expf`(score_j − M') and
/// `s += Σ p_j`, the 64 values summed 16 at a time (`_mm512_reduce_add_ps`) into an f64
/// (`ggml_vec_soft_max_f32`); then `acc[d] = fma(v_j[d], p_j, acc[d])` for j ascending (masked
/// positions add 0·v, which changes nothing, and are skipped).
#[allow(clippy::too_many_arguments)] // reason: the operands of one step of the op.
pub fn fa_tile_ref(q: &[f32], kt: &[f32], vt: &[f32], a: usize, b: usize, kq_scale: f32, m: &mut f32, s: &mut f32, acc: &mut [f32]) {
    let hd = q.len();
    let mut kq = [f32::NEG_INFINITY; FA_TILE_KV];
    for (j, x) in kq.iter_mut().enumerate().take(b).skip(a) {
        let mut d_acc = 0f32;
        for (d, &qd) in q.iter().enumerate() {
            d_acc = fma(kt[d * FA_TILE_KV + j], qd, d_acc);
        }
        *x = d_acc * kq_scale + 0.0;
    }
    let Some(ms) = fa_tile_max(&kq, m, s) else { return };
    for x in acc[..hd].iter_mut() {
        *x *= ms;
    }
    let mut sum = 0f64;
    for c in kq.chunks_exact_mut(16) {
        for x in c.iter_mut() {
            *x = v_expf_ref(*x - *m);
        }
        sum += f64::from(reduce_add16(c));
    }
    *s = (f64::from(*s) + sum) as f32;
    for j in a..b {
        let p = kq[j];
        for (x, &v) in acc[..hd].iter_mut().zip(&vt[j * hd..(j + 1) * hd]) {
            *x = fma(v, p, *x);
        }
    }
}

/// The tile maximum step of [`fa_tile_ref`] (shared with its SIMD twin): `None` when every
/// score is −inf (the row skips the tile); else updates `m` and `s` and returns the factor for
/// `acc` (1 when the maximum held).
pub(crate) fn fa_tile_max(kq: &[f32; FA_TILE_KV], m: &mut f32, s: &mut f32) -> Option<f32> {
    let tile_max = kq.iter().fold(f32::NEG_INFINITY, |mx, &x| if mx > x { mx } else { x });
    if tile_max == f32::NEG_INFINITY {
        return None;
    }
    let m_new = m.max(tile_max);
    let mut ms = 1.0;
    if m_new > *m {
        ms = expf(*m - m_new);
        *s *= ms;
    }
    *m = m_new;
    Some(ms)
}

/// [`fa_tile_ref`], fast path.
#[allow(clippy::too_many_arguments)] // reason: the operands of one step of the op.
pub fn fa_tile(q: &[f32], kt: &[f32], vt: &[f32], a: usize, b: usize, kq_scale: f32, m: &mut f32, s: &mut f32, acc: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        crate::simd_act::fa_tile(q, kt, vt, a, b, kq_scale, m, s, acc)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        fa_tile_ref(q, kt, vt, a, b, kq_scale, m, s, acc)
    }
}
