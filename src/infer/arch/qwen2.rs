//! `qwen2` (Qwen2, Qwen2.5): llama's block with required q/k/v biases and RoPE on NeoX halves.

use wasm_chord_abi::{arch, rope_type};

use super::descriptor::*;
use super::llama::plain_attention;

const BIASES: [Role<LayerSlot>; 3] = qkv_biases(Need::Required);

/// The `qwen2` descriptor.
pub const QWEN2: Descriptor = Descriptor {
    name: "qwen2",
    id: arch::QWEN2,
    rope_type: rope_type::NEOX,
    hparams: &[TRANSFORMER_HPARAMS],
    floats: TRANSFORMER_FLOATS,
    tensors: EMBED_AND_HEAD,
    layer: &[ATTENTION_AND_GATED_FFN, &BIASES],
    constants: plain_attention,
};
