//! The element-wise and row operations of the forward pass, each mirroring the ggml CPU op of the
//! same name (numerics noted where they matter for matching llama.cpp token for token).

use wasm_chord_kernels::{f16_to_f32, f32_to_f16, quantize_row, vec_dot};

use crate::model::Tensor;

/// Reads little-endian f32 number `i` of `bytes`.
#[inline]
fn f32_at(bytes: &[u8], i: usize) -> f32 {
    let b = &bytes[i * 4..i * 4 + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// `ggml_rms_norm`'s factor 1/sqrt(mean(x²) + eps); the sum of squares is accumulated in f64,
/// as ggml does.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `ggml_rms_norm` then `ggml_mul` by `w` (F32 bytes, len n): y = (x · 1/sqrt(mean(x²) + eps)) · w.
pub fn rms_norm(x: &[f32], w: &[u8], eps: f32, y: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for (i, (yi, &xi)) in y.iter_mut().zip(x).enumerate() {
        *yi = (xi * scale) * f32_at(w, i);
    }
}

/// [`rms_norm`] in place.
pub fn rms_norm_in_place(x: &mut [f32], w: &[u8], eps: f32) {
    let scale = rms_scale(x, eps);
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = (*xi * scale) * f32_at(w, i);
    }
}

/// In-place [`rms_norm`] with weights already as f32 (the output norm).
pub fn rms_norm_f32w(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (xi, &wi) in x.iter_mut().zip(w) {
        *xi = (*xi * scale) * wi;
    }
}

/// `ggml_add` of a bias (F32 bytes) to each row of `x` (rows of `b.len()/4`).
pub fn add_bias(x: &mut [f32], b: &[u8]) {
    let n = b.len() / 4;
    for row in x.chunks_exact_mut(n) {
        for (i, v) in row.iter_mut().enumerate() {
            *v += f32_at(b, i);
        }
    }
}

/// Quantizes the `n` rows of `x` (each `w.cols` wide) to `w`'s activation type, into `qact`.
/// Returns the bytes of one quantized row.
pub fn quantize_rows(w: &Tensor, x: &[f32], n: usize, qact: &mut [u8]) -> usize {
    let vt = w.ty.vec_dot_type();
    let qrb = vt.row_bytes(w.cols).unwrap_or(0);
    for t in 0..n {
        quantize_row(vt, &x[t * w.cols..(t + 1) * w.cols], &mut qact[t * qrb..(t + 1) * qrb]);
    }
    qrb
}

/// `ggml_mul_mat`: out (n, rows) = x (n, cols) · Wᵀ, W given by its bytes (rows, cols) of `w.ty`.
/// Like ggml, activations are first quantized to the weight type's vec_dot type.
pub fn matmul(w: &Tensor, wbytes: &[u8], x: &[f32], n: usize, qact: &mut [u8], out: &mut [f32]) {
    let qrb = quantize_rows(w, x, n, qact);
    matmul_rows(w, wbytes, 0, &qact[..n * qrb], qrb, n, out);
}

/// Dots weight rows `[r0, r0 + wbytes.len()/row_bytes)` with `n` already-quantized activation
/// rows; writes out[t · w.rows + r].
pub fn matmul_rows(w: &Tensor, wbytes: &[u8], r0: usize, qact: &[u8], qrb: usize, n: usize, out: &mut [f32]) {
    for (i, row) in wbytes.chunks_exact(w.row_bytes).enumerate() {
        for t in 0..n {
            out[t * w.rows + r0 + i] = vec_dot(w.ty, w.cols, row, &qact[t * qrb..(t + 1) * qrb]);
        }
    }
}

/// `ggml_rope_ext` on one head vector (len ≥ n_rot) with `cs` = this position's row of the
/// host's RoPE table (n_rot/2 pairs of cos, sin). NORM rotates adjacent pairs, NeoX halves.
pub fn rope(v: &mut [f32], cs: &[f32], n_rot: usize, neox: bool) {
    for (k, i0) in (0..n_rot).step_by(2).enumerate() {
        let (c, s) = (cs[2 * k], cs[2 * k + 1]);
        let (a, b) = if neox { (i0 / 2, i0 / 2 + n_rot / 2) } else { (i0, i0 + 1) };
        let (x0, x1) = (v[a], v[b]);
        // As compiled in ggml's rotate_pairs (GCC contracts a·b ± c·d into one fused op).
        v[a] = fma(x0, c, -(x1 * s));
        v[b] = fma(x0, s, x1 * c);
    }
}

/// Rounds through f16 (what ggml does when an f32 operand meets an F16 tensor in `mul_mat`).
#[inline]
pub fn f16_round(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// One head's causal attention for one query, as llama.cpp's CPU flash-attention kernel
/// (`ggml_compute_forward_flash_attn_ext_f16`, what llama.cpp picks on CPU by default) computes
/// it: q rounded to f16; for each position an f16·f16 dot scaled by `kq_scale`; an online
/// softmax whose running value sum is kept in **f16** (rescaled by e^(M_old − M) when the max
/// grows, then `acc += v · e^(s − M)` rounded to f16); finally acc / S in f32.
///
/// `k`/`v`: caches (n_ctx, kv_stride) f16 bits; this head's vectors start at `off` in each row.
/// Positions `start..=p` are attended. `acc`: scratch of the head size.
#[allow(clippy::too_many_arguments)] // reason: one call site; the arguments are the op's operands.
pub fn attend(q: &[f32], k: &[u16], v: &[u16], kv_stride: usize, off: usize, start: usize, p: usize, kq_scale: f32, acc: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    let mut q16 = [0f32; 512];
    for (d, &x) in q16.iter_mut().zip(q) {
        *d = f16_round(x);
    }
    let acc = &mut acc[..hd];
    acc.fill(0.0);
    let (mut sum, mut max) = (0f32, f32::NEG_INFINITY);
    for j in start..=p {
        let row = j * kv_stride + off;
        let s = dot_f16(&k[row..row + hd], &q16[..hd]) * kq_scale;
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > max {
            ms = (max - s).exp();
            max = s;
            acc.iter_mut().for_each(|a| *a = f16_round(*a * ms));
        } else {
            vs = (s - max).exp();
        }
        for (a, &vb) in acc.iter_mut().zip(&v[row..row + hd]) {
            *a = f16_round(fma(f16_to_f32(vb), vs, *a));
        }
        sum = sum * ms + vs;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// f16 · f16 dot (`ggml_vec_dot_f16`) in the order of ggml's AVX-512 build: four 16-lane f32
/// accumulators fed with fused multiply-adds, 64 elements per step; then x0+x2, x1+x3, x0+x1, and
/// the 16 lanes reduced as GCC's `_mm512_reduce_add_ps` does (halves, then quarters, then pairs);
/// a tail of fewer than 64 elements is added product by product in f64 (`ggml_float`).
fn dot_f16(k: &[u16], q16: &[f32]) -> f32 {
    let np = k.len() / 64 * 64;
    let mut acc = [0f32; 64];
    for (kc, qc) in k[..np].chunks_exact(64).zip(q16[..np].chunks_exact(64)) {
        for ((a, &kb), &qv) in acc.iter_mut().zip(kc).zip(qc) {
            *a = fma(f16_to_f32(kb), qv, *a);
        }
    }
    let x: [f32; 16] = core::array::from_fn(|l| (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]));
    let w: [f32; 8] = core::array::from_fn(|l| x[l + 8] + x[l]);
    let u: [f32; 4] = core::array::from_fn(|l| w[l + 4] + w[l]);
    let mut sum = f64::from((u[0] + u[2]) + (u[1] + u[3]));
    for (&kb, &qv) in k[np..].iter().zip(&q16[np..k.len()]) {
        sum += f64::from(f16_to_f32(kb) * qv);
    }
    sum as f32
}

/// a·b + c rounded once, like the FMA instructions of ggml's x86 kernels.
#[inline]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    wasm_chord_kernels::fma_f32(a, b, c)
}

/// `ggml_swiglu_split`: gate ← silu(gate) · up, silu(x) = x / (1 + e^-x). ggml's x86 builds
/// compute e^-x with a vector approximation (`ggml_v_expf`) on whole 16-lane (AVX-512) chunks and
/// `expf` on the tail; mirrored here so that the rounding matches.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    let vec_part = gate.len() / 16 * 16;
    for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
        let e = if i < vec_part { v_expf(-*g) } else { (-*g).exp() };
        *g = *g / (1.0 + e) * u;
    }
}

/// e^x as ggml's vector `ggml_v_expf` (AVX-512 form) computes it — the ARM optimized-routines
/// method: n = round(x / ln2) by the 1.5·2^23 shift trick, b = x − n·ln2 in two fused steps, a
/// degree-5 polynomial in b evaluated with fused multiply-adds, scaled by 2^n; |n| > 192 gives
/// 0 or +inf. Every operation rounds as the vector instructions do (fused where they are fused).
pub fn v_expf(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 0x1.8p23
    let z = fma(x, f32::from_bits(0x3FB8_AA3B), SHIFT); // x · 0x1.715476p+0 (1/ln2) + shift
    let n = z - SHIFT;
    // fnmadd(a, b, c) = c − a·b, fused.
    let b = fma(-n, f32::from_bits(0x35BF_BE8E), fma(-n, f32::from_bits(0x3F31_7200), x)); // ln2 lo 0x1.7f7d1cp-20, hi 0x1.62e4p-1
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let c5 = f32::from_bits(0x3C07_2010); // 0x1.0e4020p-7
    let c4 = f32::from_bits(0x3D2B_9F17); // 0x1.573e2ep-5
    let c3 = f32::from_bits(0x3E2A_AF33); // 0x1.555e66p-3
    let c2 = f32::from_bits(0x3EFF_FEDB); // 0x1.fffdb6p-2
    let c1 = f32::from_bits(0x3F7F_FFF6); // 0x1.ffffecp-1
    let j = fma(fma(fma(c5, b, c4), u, fma(c3, b, c2)), u, fma(c1, b, 1.0));
    // scalef(j, n) = j · 2^n, one rounding (exact in f64, then rounded once to f32).
    (f64::from(j) * 2f64.powi(n as i32)) as f32
}

/// GELU, tanh approximation (ggml_gelu_f32).
fn gelu_f32(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// `ggml_geglu_split`: gate ← gelu(gate) · up. ggml (GGML_GELU_FP16) looks GELU up in a table
/// indexed by the f16 of x holding f16 results, and passes x through beyond ±10; so do we.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            f16_round(gelu_f32(f16_round(x))) * u
        };
    }
}
