//! ggml block formats and kernels for wasm-chord: f16/bf16 conversions, dequantizers, reference
//! quantizers, scalar reference dot products and their wasm32 SIMD twins.
//!
//! Public API the guest forward pass relies on (names and signatures fixed):
//!
//! ```ignore
//! #[repr(u32)] #[derive(Clone, Copy, PartialEq, Eq, Debug)]
//! pub enum GgmlType { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
//!                     Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30 }
//! impl GgmlType {
//!     pub fn from_id(id: u32) -> Option<GgmlType>;
//!     pub fn block_size(self) -> usize;          // elements per block
//!     pub fn type_size(self) -> usize;           // bytes per block
//!     pub fn row_bytes(self, n: usize) -> Option<usize>; // None if n % block_size != 0
//!     pub fn vec_dot_type(self) -> GgmlType;     // what the activation row is quantized to (ggml-cpu's table)
//! }
//! pub fn f16_to_f32(h: u16) -> f32; pub fn f32_to_f16(x: f32) -> u16;   // RNE, like F16C
//! pub fn bf16_to_f32(h: u16) -> f32; pub fn f32_to_bf16(x: f32) -> u16; // ggml_compute_fp32_to_bf16
//! pub fn f16_to_f32_lanes(halves: &[u16], out: &mut [f32], scales: bool); // the SIMD conversions, for tests
//! pub fn quantize_row(t: GgmlType, x: &[f32], out: &mut [u8]);      // fast path (SIMD on wasm32)
//! pub fn quantize_row_ref(t: GgmlType, x: &[f32], out: &mut [u8]);  // scalar reference; also weight quantizers
//! pub fn dequantize_row(t: GgmlType, src: &[u8], out: &mut [f32]);  // all 13 weight types
//! pub fn vec_dot(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32;      // SIMD on wasm32
//! pub fn vec_dot_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32;  // scalar reference
//! pub fn vec_dot_rows(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32]);     // mat-vec
//! pub fn vec_dot_rows_x4(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32]);  // grouped rows
//! pub fn vec_dot_tile(t, n, w, rows, a, qrb, ntok, grouped, out, out_stride);          // rows × tokens (prompt batches)
//! pub fn vec_dot_tile_packed(t, n, w, rows, a, qrb, ntok, out, out_stride);            // the same, packed rows
//! pub fn pack_rows / unpack_rows / vec_dot_rows_packed / vec_dot_packed_ref  // packed layout (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
//! pub fn quantize_row_q8_k_x4(x: &[f32], out: &mut [u8]);  // Q8_K for grouped rows
//! pub fn dot_f16 / f16_axpy / f16_scale / swiglu_v / expf  // attention and SwiGLU pieces (+ _ref)
//! pub fn gelu_f16_table / gelu_f32 / tanhf / expm1f         // GEGLU's table, glibc's methods
//! ```
//!
//! Numerics (what llama.cpp computes, and where this crate differs):
//! - [`quantize_row`] (the activation quantizer the forward pass uses) mirrors what llama.cpp runs
//!   on x86: Q8_0/Q8_1 as ggml-cpu's AVX path (`id = 127/amax`, round half to even), Q8_K as
//!   `quantize_row_q8_K_ref`. [`quantize_row_ref`] mirrors ggml's `_ref` C (Q8_0/Q8_1 use
//!   `id = 1/d` and `roundf`); the two can differ by one quant step on rare ties.
//! - Dot products: the integer part of each block is exact. [`vec_dot_ref`] scales in f32 in
//!   the order of llama.cpp's x86 CPU build for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 (8 lanes, fused
//!   multiply-adds, `hsum_float_8`), Q6_K (its AVX2 kernel: 8 integer lanes per block) and Q4_K
//!   (the repacked `q4_K_8x8` gemv, and gemm for grouped rows: [`vec_dot_rows_x4`]); in the
//!   `_generic` C order for the rest. [`vec_dot`] / [`vec_dot_rows`] on wasm32 equal it bit for
//!   bit for those seven types (when `f32x4.relaxed_madd` is fused, as in Wasmtime on FMA hosts)
//!   and sum the other types' blocks in 4 lanes (≈1e-6 relative).
//! - [`vec_dot_rows_packed`] reads rows rewritten by [`pack_rows`] (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: same bytes per
//!   row, regrouped so that the SIMD kernels decode them with fewer instructions) and gives
//!   exactly what [`vec_dot_rows`] gives on the rows as stored.
//! - The attention and SwiGLU pieces (`act`) follow ggml-cpu's flash attention (f16 value sums,
//!   AVX-512 f16 dot order, glibc's `expf`) and `ggml_v_expf`; GEGLU's GELU table is ggml's
//!   (`ggml_table_gelu_f16`) as its x86 build computes it (glibc's `tanhf`, GCC's contraction).
//!
//! Layouts follow llama.cpp's `ggml-common.h`; algorithms are ported from `ggml-quants.c` and
//! `ggml-cpu/quants.c` (cited per function). Each format has one home, `formats::<format>`:
//! its block, dequantizer, reference quantizer, scalar reference dot and SIMD kernels, in that
//! order; the modules by operation (`dequant`, `quant`, `dot`, `simd`, `simd_k`, `simd_packed`)
//! hold the dispatchers and what several formats share.

#![cfg_attr(not(test), no_std)]

mod act;
mod dequant;
mod dot;
mod f16;
mod formats;
mod pack;
mod quant;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_packed;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_act;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_k;
mod types;

pub use act::{
    FA_TILE_KV, FA_TILE_Q, dot_f16, dot_f16_ref, expf, expm1f, f16_axpy, f16_axpy_ref, f16_round, f16_scale,
    f16_scale_ref, fa_tile, fa_tile_ref, gelu_f16_table, gelu_f32, swiglu_v, swiglu_v_ref, tanhf, v_expf_ref,
};

pub use dequant::dequantize_row;
/// a·b + c with one rounding, computed exactly in software (wasm has no scalar fma instruction):
/// the reference the fast paths are compared with.
pub use dot::fma as fma_ref;

/// a·b + c with one rounding: on wasm32 with relaxed-simd the vector `f32x4.relaxed_madd` (fused
/// on hosts with FMA, which is where ggml's x86 kernels fuse too), elsewhere [`fma_ref`].
#[inline]
pub fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd"))]
    {
        simd_act::fma1(a, b, c)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128", target_feature = "relaxed-simd")))]
    {
        dot::fma(a, b, c)
    }
}

/// The wasm32 SIMD half → f32 conversions on whole lanes of 8, for tests: `scales` picks the
/// block-scale form (no denormal operand), else the data form; the tail and other targets use
/// [`f16_to_f32`]. Each gives [`f16_to_f32`]'s value for every half.
pub fn f16_to_f32_lanes(halves: &[u16], out: &mut [f32], scales: bool) {
    let n = halves.len().min(out.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let n8 = simd::f16_to_f32_lanes(&halves[..n], &mut out[..n], scales);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let n8 = {
        let _ = scales;
        0
    };
    for (o, &h) in out[n8..n].iter_mut().zip(&halves[n8..n]) {
        *o = f16_to_f32(h);
    }
}

pub use pack::{has_packed_layout, pack_rows, unpack_rows};
pub use f16::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use formats::q8_k::quantize_row_q8_k_x4;
pub use quant::{quantize_row_ref, quantize_row_scalar};
pub use types::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, BlockQ8_1, BlockQ8K, GgmlType, K_SCALE_SIZE, QK_K, QK4_0, QK4_1, QK5_0, QK5_1,
    QK8_0, QK8_1,
};

/// True when the SIMD kernels are compiled in (wasm32 with simd128).
pub const HAS_SIMD: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));

/// True when the weight row `w` and activation row `a` are long enough for `n` elements of `t`.
fn dot_lengths_ok(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> bool {
    match (t.row_bytes(n), t.vec_dot_type().row_bytes(n)) {
        (Some(wb), Some(ab)) => w.len() >= wb && a.len() >= ab,
        _ => false,
    }
}

/// Dot product of one weight row `w` (type `t`, `n` elements) with an activation row `a` already
/// quantized to `t.vec_dot_type()` (by [`quantize_row`]). SIMD on wasm32, [`vec_dot_ref`] elsewhere.
/// Returns NaN when `n` is not a multiple of the block size, a slice is too short, or `t` is an
/// activation-only type (Q8_1, Q8_K).
pub fn vec_dot(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !dot_lengths_ok(t, n, w, a) {
        debug_assert!(false, "vec_dot: bad lengths for {t:?} n={n}");
        return f32::NAN;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::vec_dot(t, n, w, a)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        dot::vec_dot_ref(t, n, w, a)
    }
}

/// Dots of the `out.len()` consecutive weight rows in `w` (type `t`, `n` elements each, rows
/// `t.row_bytes(n)` bytes apart) with one activation row `a` (as in [`vec_dot`]): a mat-vec. On
/// wasm32 the 32-element types take several rows per pass over the activation (same results as
/// [`vec_dot`] row by row, bit for bit). Writes NaN everywhere when a length does not fit.
pub fn vec_dot_rows(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    dot_rows(t, n, w, a, out, false)
}

/// [`vec_dot_rows`] for an activation row that llama.cpp's x86 build multiplies as one of a
/// group of 4 (its repacked `gemm` kernels, used for Q4_K weights with rows in multiples of 8 and
/// batches of 4 or more tokens): for Q4_K the blocks' sums are fused per 64 elements instead of
/// per block; the other types give what [`vec_dot_rows`] gives. The activation is expected from
/// [`quantize_row_q8_k_x4`].
pub fn vec_dot_rows_x4(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    dot_rows(t, n, w, a, out, true)
}

/// A mat-mul tile: the dots of the `rows` consecutive weight rows in `w` (type `t`, `n` elements,
/// stored as in the file) with `ntok` activation rows (each `qrb` bytes apart in `a`, quantized
/// as for [`vec_dot_rows`], or by [`quantize_row_q8_k_x4`] when `grouped`), written to
/// `out[tok · out_stride + r]`. Gives exactly what [`vec_dot_rows`] (or [`vec_dot_rows_x4`] when
/// `grouped`) gives token by token, bit for bit; on wasm32 the K-quants decode each weight block
/// once for a tile of several tokens (prompt batches). Writes NaN into the covered outputs when a
/// length does not fit.
#[allow(clippy::too_many_arguments)] // reason: the operands of one mat-mul tile, each a plain length or slice.
pub fn vec_dot_tile(t: GgmlType, n: usize, w: &[u8], rows: usize, a: &[u8], qrb: usize, ntok: usize, grouped: bool, out: &mut [f32], out_stride: usize) {
    let Some(rb) = tile_fits(t, n, w, rows, a, qrb, ntok, out, out_stride) else { return };
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd_k::vec_dot_tile(t, n, &w[..rows * rb], a, qrb, ntok, grouped, out, out_stride)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let arb = t.vec_dot_type().row_bytes(n).unwrap_or(0);
        for tok in 0..ntok {
            let o = &mut out[tok * out_stride..tok * out_stride + rows];
            dot_rows(t, n, &w[..rows * rb], &a[tok * qrb..tok * qrb + arb], o, grouped);
        }
    }
}

/// [`vec_dot_tile`] for weight rows in the packed layout ([`pack_rows`]; types without
/// [`has_packed_layout`] are taken as stored, ungrouped): exactly what [`vec_dot_rows`] gives on
/// the rows before packing, token by token, bit for bit; on wasm32 each packed weight block is
/// decoded once for a tile of several tokens (prompt batches). Writes NaN into the covered
/// outputs when a length does not fit.
#[allow(clippy::too_many_arguments)] // reason: the operands of one mat-mul tile, each a plain length or slice.
pub fn vec_dot_tile_packed(t: GgmlType, n: usize, w: &[u8], rows: usize, a: &[u8], qrb: usize, ntok: usize, out: &mut [f32], out_stride: usize) {
    if !has_packed_layout(t) {
        return vec_dot_tile(t, n, w, rows, a, qrb, ntok, false, out, out_stride);
    }
    let Some(rb) = tile_fits(t, n, w, rows, a, qrb, ntok, out, out_stride) else { return };
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd_packed::vec_dot_tile_packed(t, n, &w[..rows * rb], rb, a, qrb, ntok, out, out_stride)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let arb = t.vec_dot_type().row_bytes(n).unwrap_or(0);
        for tok in 0..ntok {
            for (r, row) in w[..rows * rb].chunks(rb).enumerate() {
                out[tok * out_stride + r] = pack::vec_dot_packed_ref(t, n, row, &a[tok * qrb..tok * qrb + arb]);
            }
        }
    }
}

/// [`vec_dot_rows`] for rows in the packed layout ([`pack_rows`]; types with
/// [`has_packed_layout`], others are taken as stored): the same results, bit for bit, as
/// [`vec_dot_rows`] on the rows before packing.
pub fn vec_dot_rows_packed(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let Some(rb) = rows_fit(t, n, w, a, out) else { return };
    if !has_packed_layout(t) {
        return dot_rows(t, n, w, a, out, false);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd_packed::vec_dot_rows_packed(t, n, w, rb, a, out)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for (o, row) in out.iter_mut().zip(w.chunks(rb)) {
            *o = pack::vec_dot_packed_ref(t, n, row, a);
        }
    }
}

/// Scalar reference of [`vec_dot_rows_packed`] for one packed row.
pub fn vec_dot_packed_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !dot_lengths_ok(t, n, w, a) {
        debug_assert!(false, "vec_dot_packed_ref: bad lengths for {t:?} n={n}");
        return f32::NAN;
    }
    pack::vec_dot_packed_ref(t, n, w, a)
}

/// Scalar reference of [`vec_dot_rows_x4`] for one row.
pub fn vec_dot_ref_x4(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !dot_lengths_ok(t, n, w, a) {
        debug_assert!(false, "vec_dot_ref_x4: bad lengths for {t:?} n={n}");
        return f32::NAN;
    }
    if t == GgmlType::Q4_K { formats::q4_k::dot_ref(&w[..t.row_bytes(n).unwrap_or(0)], a, true) } else { dot::vec_dot_ref(t, n, w, a) }
}

/// [`vec_dot_rows`] / [`vec_dot_rows_x4`].
pub(crate) fn dot_rows(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32], grouped: bool) {
    let Some(rb) = rows_fit(t, n, w, a, out) else { return };
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::vec_dot_rows(t, n, w, rb, a, out, grouped)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for (o, row) in out.iter_mut().zip(w.chunks(rb)) {
            *o = if grouped { vec_dot_ref_x4(t, n, row, a) } else { dot::vec_dot_ref(t, n, row, a) };
        }
    }
}

/// The row bytes when `w` holds `rows` rows of `n` elements of `t`, `a` holds `ntok` activation
/// rows `qrb` apart and `out` `ntok` output rows `out_stride` apart; otherwise fills the covered
/// outputs with NaN (and debug-asserts).
#[allow(clippy::too_many_arguments)] // reason: the operands of one mat-mul tile.
fn tile_fits(t: GgmlType, n: usize, w: &[u8], rows: usize, a: &[u8], qrb: usize, ntok: usize, out: &mut [f32], out_stride: usize) -> Option<usize> {
    let (rb, arb) = (t.row_bytes(n).unwrap_or(0), t.vec_dot_type().row_bytes(n).unwrap_or(usize::MAX));
    let fits = rb > 0
        && rows.checked_mul(rb).is_some_and(|b| w.len() >= b)
        && (ntok == 0 || (qrb >= arb && (ntok - 1).checked_mul(qrb).and_then(|x| x.checked_add(arb)).is_some_and(|b| a.len() >= b)))
        && out_stride >= rows
        && (ntok == 0 || (ntok - 1).checked_mul(out_stride).and_then(|x| x.checked_add(rows)).is_some_and(|b| out.len() >= b));
    if !fits {
        debug_assert!(false, "vec_dot_tile: bad lengths for {t:?} n={n}");
        for tok in 0..ntok {
            let o = tok.saturating_mul(out_stride);
            if let Some(o) = out.get_mut(o..o.saturating_add(rows).min(out.len())) {
                o.fill(f32::NAN);
            }
        }
        return None;
    }
    Some(rb)
}

/// The row bytes when `w` holds `out.len()` rows of `n` elements of `t` and `a` one activation
/// row; otherwise fills `out` with NaN (and debug-asserts).
fn rows_fit(t: GgmlType, n: usize, w: &[u8], a: &[u8], out: &mut [f32]) -> Option<usize> {
    let rb = t.row_bytes(n).unwrap_or(0);
    let fits = rb.checked_mul(out.len()).is_some_and(|total| w.len() >= total);
    if !fits || !dot_lengths_ok(t, n, w, a) {
        debug_assert!(false, "vec_dot_rows: bad lengths for {t:?} n={n}");
        out.fill(f32::NAN);
        return None;
    }
    Some(rb)
}

/// Scalar reference of [`vec_dot`] (ggml-cpu's `ggml_vec_dot_*_generic` semantics); same contract.
pub fn vec_dot_ref(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !dot_lengths_ok(t, n, w, a) {
        debug_assert!(false, "vec_dot_ref: bad lengths for {t:?} n={n}");
        return f32::NAN;
    }
    dot::vec_dot_ref(t, n, w, a)
}

/// Quantizes one activation row `x` (len n) to `t` (a vec_dot_type: F32, F16, BF16, Q8_0, Q8_1,
/// Q8_K) into `out` (`t.row_bytes(n)` bytes): the fast path the forward pass uses (SIMD on wasm32
/// for Q8_0/Q8_1/Q8_K; numerics in the crate docs). Other types fall back to [`quantize_row_ref`].
/// Does nothing (debug-asserts) when the lengths do not match.
pub fn quantize_row(t: GgmlType, x: &[f32], out: &mut [u8]) {
    if t.row_bytes(x.len()) != Some(out.len()) {
        debug_assert!(false, "quantize_row: bad lengths for {t:?}");
        return;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        if simd::quantize_row(t, x, out) {
            return;
        }
    }
    quant::quantize_row_scalar(t, x, out);
}

#[cfg(test)]
mod tests;
