//! `gemma3` (Gemma 3): llama's block plus per-head RMSNorm on queries and keys, norms after the
//! attention and feed-forward blocks, GEGLU, embeddings scaled by √n_embd, and sliding-window
//! attention on five of every six layers (with RoPE base 10000 there, as llama.cpp's gemma3).

use wasm_chord_abi::{ModelConfig, arch, rope_type};

use super::descriptor::*;

const GEMMA3_HPARAMS: &[U32Param] =
    &[U32Param { key: "attention.sliding_window", h: H::SlidingWindow, fallback: Fallback::Value(0), min: 0, max: 1 << 27 }];

const GEMMA3_NORMS: &[Role<LayerSlot>] = &[
    norm("attn_q_norm.weight", LayerSlot::QNorm, Need::Required, &[Dim::HeadDim]),
    norm("attn_k_norm.weight", LayerSlot::KNorm, Need::Required, &[Dim::HeadDim]),
    norm("post_attention_norm.weight", LayerSlot::PostAttnNorm, Need::Required, &[Dim::Embd]),
    norm("post_ffw_norm.weight", LayerSlot::PostFfwNorm, Need::Required, &[Dim::Embd]),
];

/// The `gemma3` descriptor.
pub const GEMMA3: Descriptor = Descriptor {
    name: "gemma3",
    id: arch::GEMMA3,
    rope_type: rope_type::NEOX,
    hparams: &[TRANSFORMER_HPARAMS, GEMMA3_HPARAMS],
    floats: TRANSFORMER_FLOATS,
    tensors: EMBED_AND_HEAD,
    layer: &[ATTENTION_AND_GATED_FFN, GEMMA3_NORMS],
    constants,
};

fn constants(hp: &Hparams, c: &mut ModelConfig) {
    // Queries are scaled before the scores (llama.cpp's gemma3 graph: 1/√head_dim), the scores
    // not again.
    c.q_scale = 1.0 / (hp.head_dim as f32).sqrt();
    c.kq_scale = 1.0;
    c.embd_scale = (hp.n_embd as f32).sqrt();
    c.ffn_gelu = 1;
    c.n_swa = hp.n_swa;
    c.n_swa_pattern = if hp.n_swa > 0 { 6 } else { 0 };
    c.rope_freq_base_swa = 10000.0;
}
