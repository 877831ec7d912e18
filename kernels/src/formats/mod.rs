//! One home per block format: its `#[repr(C)]` block (from ggml-common.h), dequantizer, reference
//! quantizer, scalar reference dot and wasm32 SIMD kernels, in that order, in one file. The
//! operation-wide entry points (`dequantize_row`, `quantize_row_ref`, `vec_dot_ref`, the SIMD
//! `vec_dot`/`vec_dot_rows`/`vec_dot_tile`) dispatch on [`crate::GgmlType`] to these; the pieces
//! several formats share stay beside those entry points (`dot`, `quant`, `simd`, `simd_k`).

pub mod q6_k;
pub mod q4_k;
pub mod q5_k;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q5_0;
pub mod q5_1;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;
pub mod float;
