//! The element-wise and row operations of the forward pass, each mirroring the ggml CPU op of the
//! same name (numerics noted where they matter for matching llama.cpp token for token).

use wasm_chord_kernels::{FA_TILE_KV, GgmlType, dot_f16, expf, f16_axpy, f16_scale, f16_to_f32, fa_tile, quantize_row, quantize_row_q8_k_x4, swiglu_v, vec_dot_tile, vec_dot_tile_packed};

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
/// rows; writes out[t · w.rows + r]. The rows are split over the model's threads.
pub fn matmul_rows(w: &Tensor, wbytes: &[u8], r0: usize, qact: &[u8], qrb: usize, n: usize, out: &mut [f32]) {
    crate::parallel::matmul_rows(w, wbytes, r0, qact, qrb, n, out)
}

/// `matmul_rows` on this thread.
pub fn matmul_rows_serial(w: &Tensor, wbytes: &[u8], r0: usize, qact: &[u8], qrb: usize, n: usize, out: &mut [f32]) {
    // A batch takes the rows in chunks small enough to stay in L1/L2 while every token passes
    // over them (a multiple of 12: whole groups for the kernels' 4- and 6-row passes); one token
    // takes them all at once.
    let all = wbytes.len() / w.row_bytes.max(1);
    let chunk_rows = if n == 1 { all.max(1) } else { (16 * 1024 / w.row_bytes.max(1)).clamp(12, 96) / 12 * 12 };
    let grouped = grouped_rows(w, n);
    for (c, chunk) in wbytes.chunks(chunk_rows * w.row_bytes).enumerate() {
        // A batch's product takes up to ~100 ms: stop early (leaving `out` partial) when the host
        // asks; the forward pass then returns ERR_ABORTED.
        if n > 1 && crate::bridge::aborted() {
            return;
        }
        let (rows, first) = (chunk.len() / w.row_bytes, r0 + c * chunk_rows);
        if w.packed {
            vec_dot_tile_packed(w.ty, w.cols, chunk, rows, &qact[..n * qrb], qrb, n, &mut out[first..], w.rows);
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

/// One head's causal attention for one query, as the one-chunk path of llama.cpp's CPU
/// flash-attention kernel (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`, what llama.cpp
/// picks on CPU by default, for ubatches of fewer than `FA_TILE_Q` tokens) computes it: q
/// rounded to f16; for each position an f16·f16 dot scaled by `kq_scale`; an online softmax
/// whose running value sum is kept in **f16** (rescaled by e^(M_old − M) when the max grows,
/// then `acc += v · e^(s − M)` rounded to f16); finally acc / S in f32. The f16 pieces are the
/// SIMD kernels of `wasm_chord_kernels::act`; e^x is glibc's `expf` method (llama.cpp calls the
/// platform's), not Rust's `libm`, which rounds differently on ~10 % of inputs.
///
/// `k`/`v`: caches (n_ctx, kv_stride) f16 bits; this head's vectors start at `off` in each row.
/// Positions `start..=p` are attended. `acc`: scratch of the head size.
#[allow(clippy::too_many_arguments)] // reason: one call site; the arguments are the op's operands.
pub fn attend(q: &[f32], k: &[u16], v: &[u16], kv_stride: usize, off: usize, start: usize, p: usize, kq_scale: f32, acc: &mut [f32], out: &mut [f32]) {
    let q16 = q16(q);
    let (_, sum) = attend_chunk(&q16[..q.len()], k, v, kv_stride, off, start, p + 1, kq_scale, acc);
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// `q` rounded to f16 (at most 512 values).
fn q16(q: &[f32]) -> [f32; 512] {
    let mut q16 = [0f32; 512];
    for (d, &x) in q16.iter_mut().zip(q) {
        *d = f16_round(x);
    }
    q16
}

/// The online softmax of [`attend`] over positions `lo..hi`: leaves the f16 running value sum in
/// `acc` (head size) and returns (running max, running sum).
#[allow(clippy::too_many_arguments)] // reason: the operands of the op.
fn attend_chunk(q16: &[f32], k: &[u16], v: &[u16], kv_stride: usize, off: usize, lo: usize, hi: usize, kq_scale: f32, acc: &mut [f32]) -> (f32, f32) {
    let hd = q16.len();
    let acc = &mut acc[..hd];
    acc.fill(0.0);
    let (mut sum, mut max) = (0f32, f32::NEG_INFINITY);
    for j in lo..hi {
        let row = j * kv_stride + off;
        let s = dot_f16(&k[row..row + hd], q16) * kq_scale;
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
    (max, sum)
}

/// Cache cells llama.cpp's attention has in view when position `p` is the newest
/// (`llama_kv_cache::get_n_kv`: the used cells padded to 256, at most the cache size `cells`).
pub fn kv_cells_in_view(p: usize, cells: usize) -> usize {
    cells.min((p + 1).next_multiple_of(256).max(256))
}

/// [`attend`] as llama.cpp's split-KV path computes it (taken for a single-token ubatch once
/// 512+ cells are in view): the `n_kv` cells in view are cut into `splits` chunks of
/// ⌈n_kv / splits⌉ (llama.cpp's thread count; one chunk per thread), each run as [`attend`]'s
/// online softmax from scratch (f16 running sum), then combined in f32 chunk by chunk
/// (`ggml_flash_attn_ext_reduce_partials`): M = max(M, M_c), V = V·e^(M_old − M) + V_c·e^(M_c − M)
/// and S likewise (GCC fuses the first product), chunks with S_c = 0 left out; finally V / S.
/// `acc`: scratch of the head size; `out` also serves as the f32 accumulator.
#[allow(clippy::too_many_arguments)] // reason: one call site; the arguments are the op's operands.
pub fn attend_split(q: &[f32], k: &[u16], v: &[u16], kv_stride: usize, off: usize, start: usize, p: usize, kq_scale: f32, n_kv: usize, splits: usize, acc: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    let q16 = q16(q);
    let out = &mut out[..hd];
    out.fill(0.0);
    let chunk = n_kv.div_ceil(splits.max(1));
    let (mut m, mut s) = (f32::NEG_INFINITY, 0f32);
    for c in 0..splits.max(1) {
        let (lo, hi) = ((c * chunk).max(start), ((c + 1) * chunk).min(n_kv).min(p + 1));
        if lo >= hi {
            continue; // nothing in view: S_c = 0
        }
        let (mc, sc) = attend_chunk(&q16[..hd], k, v, kv_stride, off, lo, hi, kq_scale, acc);
        if sc == 0.0 {
            continue;
        }
        let m_new = m.max(mc);
        let (so, sn) = (expf(m - m_new), expf(mc - m_new));
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = fma(*o, so, a * sn);
        }
        s = fma(s, so, sc * sn);
        m = m_new;
    }
    if s != 0.0 {
        let inv = 1.0 / s;
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

/// The keys and values of a batch, and where a batch's attention writes: the operands of
/// [`attend_tiled`].
pub struct TiledAttention<'a> {
    /// Key cache (n_ctx, kv_stride) as f16 bits.
    pub k: &'a [u16],
    /// Value cache (n_ctx, kv_stride) as f16 bits.
    pub v: &'a [u16],
    /// Row width of the caches (n_head_kv · head_dim).
    pub kv_stride: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Query heads.
    pub n_head: usize,
    /// Query heads per key/value head.
    pub group: usize,
    /// Position of the batch's first row.
    pub pos: usize,
    /// Sliding window (positions p − window < j ≤ p attended), if any.
    pub window: Option<usize>,
    /// Scale of the scores.
    pub kq_scale: f32,
}

/// The attention of a batch of `n` query rows (`q`: (n, n_head·head_dim), f32, not rounded) as
/// llama.cpp's tiled CPU flash attention computes it (`ggml_compute_forward_flash_attn_ext_tiled`,
/// taken for ubatches of `FA_TILE_Q`+ tokens): the cache in tiles of [`FA_TILE_KV`] cells from
/// cell 0, each tile's keys and values converted to f32 once per key/value head and handed with
/// every row that sees it to [`fa_tile`]; then V / S. Rows are independent in llama.cpp's tiles,
/// so the guest's batch need not be llama.cpp's ubatch. `tile`: scratch of 2·FA_TILE_KV·head_dim;
/// `state`: scratch of 2·n·n_head; `out`: (n, n_head·head_dim).
pub fn attend_tiled(a: &TiledAttention, q: &[f32], n: usize, tile: &mut [f32], state: &mut [f32], out: &mut [f32]) {
    let (hd, nq) = (a.head_dim, a.n_head * a.head_dim);
    let (kt, vt) = tile[..2 * FA_TILE_KV * hd].split_at_mut(FA_TILE_KV * hd);
    let (ms, ss) = state[..2 * n * a.n_head].split_at_mut(n * a.n_head);
    ms.fill(f32::NEG_INFINITY);
    ss.fill(0.0);
    out[..n * nq].fill(0.0);
    let start = |p: usize| a.window.map_or(0, |w| (p + 1).saturating_sub(w));
    let last = a.pos + n - 1;
    for g in 0..a.n_head / a.group {
        let off = g * hd;
        for lo in (start(a.pos) / FA_TILE_KV * FA_TILE_KV..=last).step_by(FA_TILE_KV) {
            let hi = (lo + FA_TILE_KV).min(last + 1);
            for j in lo..hi {
                let row = j * a.kv_stride + off;
                let (kr, vr) = (&a.k[row..row + hd], &a.v[row..row + hd]);
                for (d, &h) in kr.iter().enumerate() {
                    kt[d * FA_TILE_KV + (j - lo)] = f16_to_f32(h);
                }
                for (x, &h) in vt[(j - lo) * hd..(j - lo + 1) * hd].iter_mut().zip(vr) {
                    *x = f16_to_f32(h);
                }
            }
            for t in 0..n {
                let p = a.pos + t;
                let (ja, jb) = (start(p).max(lo), (p + 1).min(hi));
                if ja >= jb {
                    continue;
                }
                for h in g * a.group..(g + 1) * a.group {
                    let i = t * a.n_head + h;
                    let o = t * nq + h * hd;
                    fa_tile(&q[o..o + hd], kt, vt, ja - lo, jb - lo, a.kq_scale, &mut ms[i], &mut ss[i], &mut out[o..o + hd]);
                }
            }
        }
    }
    for (i, &s) in ss.iter().enumerate() {
        let inv = if s == 0.0 { 0.0 } else { 1.0 / s };
        let (t, h) = (i / a.n_head, i % a.n_head);
        out[t * nq + h * hd..t * nq + (h + 1) * hd].iter_mut().for_each(|x| *x *= inv);
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

/// `ggml_geglu_split`: gate ← gelu(gate) · up. ggml (GGML_GELU_FP16) looks GELU up in its table
/// (`table`: [`wasm_chord_kernels::gelu_f16_table`]) indexed by the f16 of x, and passes x
/// through beyond ±10; so do we.
pub fn geglu(gate: &mut [f32], up: &[f32], table: &[u16]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            let h = table.get(usize::from(wasm_chord_kernels::f32_to_f16(x))).copied().unwrap_or(0);
            wasm_chord_kernels::f16_to_f32(h) * u
        };
    }
}
