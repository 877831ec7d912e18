//! The element-wise and row operations of the forward pass, each mirroring the ggml CPU op of the
//! same name (numerics noted where they matter for matching llama.cpp token for token).

use wasm_chord_kernels::{GgmlType, dot_f16, expf, f16_axpy, f16_scale, quantize_row, quantize_row_q8_k_x4, swiglu_v, vec_dot_rows_packed, vec_dot_tile};

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
/// Returns the bytes of one quantized row. For Q4_K weights with rows in multiples of 8 (which
/// llama.cpp's x86 build repacks), whole groups of 4 rows use the repacked kernels' quantizer
/// (`ggml_quantize_mat_q8_K_4x8`), the rest the ordinary one, as llama.cpp does.
pub fn quantize_rows(w: &Tensor, x: &[f32], n: usize, qact: &mut [u8]) -> usize {
    let vt = w.ty.vec_dot_type();
    let qrb = vt.row_bytes(w.cols).unwrap_or(0);
    let grouped = grouped_rows(w, n);
    for t in 0..n {
        let (src, dst) = (&x[t * w.cols..(t + 1) * w.cols], &mut qact[t * qrb..(t + 1) * qrb]);
        if t < grouped { quantize_row_q8_k_x4(src, dst) } else { quantize_row(vt, src, dst) }
    }
    qrb
}

/// How many of `n` activation rows llama.cpp's x86 build multiplies with `w` in groups of 4 (its
/// repacked Q4_K kernels, for weights whose row count is a multiple of 8): the first n − n mod 4.
fn grouped_rows(w: &Tensor, n: usize) -> usize {
    if w.ty == GgmlType::Q4_K && w.rows % 8 == 0 { n / 4 * 4 } else { 0 }
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
    // A batch takes the rows in chunks small enough to stay in L1/L2 while every token passes
    // over them (a multiple of 12: whole groups for the kernels' 4- and 6-row passes); one token
    // takes them all at once.
    let all = wbytes.len() / w.row_bytes.max(1);
    let chunk_rows = if n == 1 { all.max(1) } else { (16 * 1024 / w.row_bytes.max(1)).clamp(12, 96) / 12 * 12 };
    let grouped = grouped_rows(w, n);
    for (c, chunk) in wbytes.chunks(chunk_rows * w.row_bytes).enumerate() {
        let (rows, first) = (chunk.len() / w.row_bytes, r0 + c * chunk_rows);
        if w.packed {
            for t in 0..n {
                let (o, a) = (t * w.rows + first, &qact[t * qrb..(t + 1) * qrb]);
                vec_dot_rows_packed(w.ty, w.cols, chunk, a, &mut out[o..o + rows]);
            }
            continue;
        }
        // Tokens [0, grouped) in llama.cpp's grouped order, the rest as single rows; each set as
        // one tile (the kernels decode a weight block once for several tokens).
        for (t0, t1, g) in [(0, grouped, true), (grouped, n, false)] {
            if t1 > t0 {
                let a = &qact[t0 * qrb..t1 * qrb];
                vec_dot_tile(w.ty, w.cols, chunk, rows, a, qrb, t1 - t0, g, &mut out[t0 * w.rows + first..], w.rows);
            }
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
pub use wasm_chord_kernels::f16_round;

/// One head's causal attention for one query, as llama.cpp's CPU flash-attention kernel
/// (`ggml_compute_forward_flash_attn_ext_f16`, what llama.cpp picks on CPU by default) computes
/// it: q rounded to f16; for each position an f16·f16 dot scaled by `kq_scale`; an online
/// softmax whose running value sum is kept in **f16** (rescaled by e^(M_old − M) when the max
/// grows, then `acc += v · e^(s − M)` rounded to f16); finally acc / S in f32. The f16 pieces are
/// the SIMD kernels of `wasm_chord_kernels::act`; e^x is glibc's `expf` method (llama.cpp calls
/// the platform's), not Rust's `libm`, which rounds differently on ~10 % of inputs.
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
            ms = expf(max - s);
            max = s;
            f16_scale(acc, ms);
        } else {
            vs = expf(s - max);
        }
        f16_axpy(acc, &v[row..row + hd], vs);
        sum = sum * ms + vs;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// a·b + c rounded once, like the FMA instructions of ggml's x86 kernels.
#[inline]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    wasm_chord_kernels::fma_f32(a, b, c)
}

/// `ggml_swiglu_split`: gate ← silu(gate) · up, silu(x) = x / (1 + e^-x). ggml's x86 builds
/// compute e^-x with a vector approximation (`ggml_v_expf`) on whole 16-lane (AVX-512) chunks and
/// `expf` on the tail; the vector part is the kernels' `swiglu_v`, so the rounding matches.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    let vec_part = gate.len() / 16 * 16;
    let (gv, gt) = gate.split_at_mut(vec_part);
    swiglu_v(gv, &up[..vec_part]);
    for (g, &u) in gt.iter_mut().zip(&up[vec_part..]) {
        *g = *g / (1.0 + expf(-*g)) * u;
    }
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
