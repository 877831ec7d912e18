//! `llama` (also SmolLM2, TinyLlama, Mistral): RMSNorm, grouped-query attention, RoPE on
//! adjacent pairs, SwiGLU; optional q/k/v biases.

use wasm_chord_abi::{ModelConfig, arch, rope_type};

use super::descriptor::*;

const BIASES: [Role<LayerSlot>; 3] = qkv_biases(Need::Optional);

/// The `llama` descriptor.
pub const LLAMA: Descriptor = Descriptor {
    name: "llama",
    id: arch::LLAMA,
    rope_type: rope_type::NORM,
    hparams: &[TRANSFORMER_HPARAMS],
    floats: TRANSFORMER_FLOATS,
    tensors: EMBED_AND_HEAD,
    layer: &[ATTENTION_AND_GATED_FFN, &BIASES],
    constants: plain_attention,
};

/// Attention scaled by 1/√head_dim on the scores, embeddings unscaled, SiLU gate.
pub fn plain_attention(hp: &Hparams, c: &mut ModelConfig) {
    c.kq_scale = 1.0 / (hp.head_dim as f32).sqrt();
    c.q_scale = 0.0;
    c.embd_scale = 1.0;
    c.rope_freq_base_swa = hp.rope_freq_base;
}
