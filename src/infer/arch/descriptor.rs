//! What an architecture descriptor says: the hyperparameters the forward pass reads (GGUF key,
//! default, valid range) and the tensor roles (GGUF name, required or optional, element type,
//! shape as a function of the hyperparameters). [`super::resolve`] validates a file against its
//! architecture's descriptor at load and builds the guest's configuration from it; the
//! descriptors themselves are in `llama.rs`, `qwen2.rs`, `gemma3.rs`.

use wasm_chord_abi::{LayerTensors, ModelConfig};

/// An integer hyperparameter the forward pass uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H {
    /// `block_count`: layers.
    BlockCount,
    /// `context_length`: the training context.
    ContextLength,
    /// `embedding_length`: n_embd.
    EmbeddingLength,
    /// `feed_forward_length`: n_ff.
    FeedForwardLength,
    /// `attention.head_count`: n_head.
    HeadCount,
    /// `attention.head_count_kv`: n_head_kv.
    HeadCountKv,
    /// `attention.key_length`: head_dim.
    KeyLength,
    /// `attention.value_length`: must equal head_dim here.
    ValueLength,
    /// `rope.dimension_count`: n_rot.
    RopeDimensionCount,
    /// `attention.sliding_window`: n_swa (0: every layer global).
    SlidingWindow,
}

/// A float hyperparameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F {
    /// `rope.freq_base`.
    RopeFreqBase,
    /// `attention.layer_norm_rms_epsilon`.
    RmsEps,
}

/// What an absent integer key means.
#[derive(Clone, Copy, Debug)]
pub enum Fallback {
    /// The key must be present.
    Required,
    /// This value.
    Value(u32),
    /// The value of an earlier parameter.
    Same(H),
    /// n_embd / n_head (which must divide).
    EmbdPerHead,
}

/// An integer hyperparameter: `{arch}.{key}`, its meaning when absent and its valid range.
#[derive(Clone, Copy, Debug)]
pub struct U32Param {
    /// Key after the `{arch}.` prefix.
    pub key: &'static str,
    /// What it sets.
    pub h: H,
    /// When absent.
    pub fallback: Fallback,
    /// Smallest valid value.
    pub min: u32,
    /// Largest valid value.
    pub max: u32,
}

/// A float hyperparameter: `{arch}.{key}`, its default and its valid range (`min < v <= max`).
#[derive(Clone, Copy, Debug)]
pub struct F32Param {
    /// Key after the `{arch}.` prefix.
    pub key: &'static str,
    /// What it sets.
    pub f: F,
    /// When absent.
    pub default: f32,
    /// Exclusive lower bound.
    pub above: f32,
    /// Inclusive upper bound.
    pub max: f32,
}

/// The resolved hyperparameters (every [`H`] and [`F`], plus the vocabulary size, which is the
/// row count of `token_embd.weight`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Hparams {
    /// Blocks ([`H::BlockCount`]).
    pub n_layer: u32,
    /// Training context ([`H::ContextLength`]).
    pub n_ctx_train: u32,
    /// Embedding width ([`H::EmbeddingLength`]).
    pub n_embd: u32,
    /// Feed-forward width ([`H::FeedForwardLength`]).
    pub n_ff: u32,
    /// Query heads ([`H::HeadCount`]).
    pub n_head: u32,
    /// Key/value heads ([`H::HeadCountKv`]).
    pub n_head_kv: u32,
    /// Key (and query) head width ([`H::KeyLength`]).
    pub head_dim: u32,
    /// Value head width ([`H::ValueLength`]).
    pub value_dim: u32,
    /// Dimensions RoPE rotates ([`H::RopeDimensionCount`]).
    pub n_rot: u32,
    /// Sliding window, 0 for none ([`H::SlidingWindow`]).
    pub n_swa: u32,
    /// Vocabulary: rows of `token_embd.weight`.
    pub n_vocab: u32,
    /// [`F::RopeFreqBase`].
    pub rope_freq_base: f32,
    /// [`F::RmsEps`].
    pub rms_eps: f32,
}

impl Hparams {
    /// The value of `h`.
    pub fn get(&self, h: H) -> u32 {
        match h {
            H::BlockCount => self.n_layer,
            H::ContextLength => self.n_ctx_train,
            H::EmbeddingLength => self.n_embd,
            H::FeedForwardLength => self.n_ff,
            H::HeadCount => self.n_head,
            H::HeadCountKv => self.n_head_kv,
            H::KeyLength => self.head_dim,
            H::ValueLength => self.value_dim,
            H::RopeDimensionCount => self.n_rot,
            H::SlidingWindow => self.n_swa,
        }
    }

    /// Sets `h`.
    pub fn set(&mut self, h: H, v: u32) {
        *match h {
            H::BlockCount => &mut self.n_layer,
            H::ContextLength => &mut self.n_ctx_train,
            H::EmbeddingLength => &mut self.n_embd,
            H::FeedForwardLength => &mut self.n_ff,
            H::HeadCount => &mut self.n_head,
            H::HeadCountKv => &mut self.n_head_kv,
            H::KeyLength => &mut self.head_dim,
            H::ValueLength => &mut self.value_dim,
            H::RopeDimensionCount => &mut self.n_rot,
            H::SlidingWindow => &mut self.n_swa,
        } = v;
    }

    /// Sets `f`.
    pub fn set_f32(&mut self, f: F, v: f32) {
        *match f {
            F::RopeFreqBase => &mut self.rope_freq_base,
            F::RmsEps => &mut self.rms_eps,
        } = v;
    }
}

/// One dimension of a tensor shape, in terms of the hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// n_embd.
    Embd,
    /// n_ff.
    Ff,
    /// n_vocab.
    Vocab,
    /// head_dim.
    HeadDim,
    /// n_head·head_dim (queries, attention output).
    Q,
    /// n_head_kv·head_dim (keys, values).
    Kv,
}

impl Dim {
    /// Its value for `hp`.
    pub fn value(self, hp: &Hparams) -> u64 {
        match self {
            Dim::Embd => hp.n_embd.into(),
            Dim::Ff => hp.n_ff.into(),
            Dim::Vocab => hp.n_vocab.into(),
            Dim::HeadDim => hp.head_dim.into(),
            Dim::Q => u64::from(hp.n_head) * u64::from(hp.head_dim),
            Dim::Kv => u64::from(hp.n_head_kv) * u64::from(hp.head_dim),
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dim::Embd => "n_embd",
            Dim::Ff => "n_ff",
            Dim::Vocab => "n_vocab",
            Dim::HeadDim => "head_dim",
            Dim::Q => "n_head·head_dim",
            Dim::Kv => "n_head_kv·head_dim",
        }
    }
}

/// Whether a role must be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Missing ⇒ `ERR_MODEL_MISSING_TENSOR`.
    Required,
    /// May be absent.
    Optional,
}

/// Element types a role accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// Any ggml type the kernels take (matrices and the embedding table).
    Any,
    /// F32 only (norm weights and biases, which the forward pass reads as floats).
    F32,
}

/// Where a non-layer tensor goes in [`ModelConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSlot {
    /// `tok_embd`.
    TokEmbd,
    /// `output_norm`.
    OutputNorm,
    /// `output` (absent ⇒ the embedding table, tied).
    Output,
}

impl ModelSlot {
    /// The config field.
    pub fn field(self, c: &mut ModelConfig) -> &mut i32 {
        match self {
            ModelSlot::TokEmbd => &mut c.tok_embd,
            ModelSlot::OutputNorm => &mut c.output_norm,
            ModelSlot::Output => &mut c.output,
        }
    }
}

/// Where a block tensor goes in [`LayerTensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSlot {
    /// `attn_norm`.
    AttnNorm,
    /// `wq` (attn_q).
    Wq,
    /// `wk` (attn_k).
    Wk,
    /// `wv` (attn_v).
    Wv,
    /// `wo` (attn_output).
    Wo,
    /// `bq` (attn_q.bias).
    Bq,
    /// `bk` (attn_k.bias).
    Bk,
    /// `bv` (attn_v.bias).
    Bv,
    /// `q_norm` (attn_q_norm).
    QNorm,
    /// `k_norm` (attn_k_norm).
    KNorm,
    /// `post_attn_norm` (post_attention_norm).
    PostAttnNorm,
    /// `ffn_norm`.
    FfnNorm,
    /// `ffn_gate`.
    FfnGate,
    /// `ffn_up`.
    FfnUp,
    /// `ffn_down`.
    FfnDown,
    /// `post_ffw_norm`.
    PostFfwNorm,
}

impl LayerSlot {
    /// The layer-table field.
    pub fn field(self, l: &mut LayerTensors) -> &mut i32 {
        match self {
            LayerSlot::AttnNorm => &mut l.attn_norm,
            LayerSlot::Wq => &mut l.wq,
            LayerSlot::Wk => &mut l.wk,
            LayerSlot::Wv => &mut l.wv,
            LayerSlot::Wo => &mut l.wo,
            LayerSlot::Bq => &mut l.bq,
            LayerSlot::Bk => &mut l.bk,
            LayerSlot::Bv => &mut l.bv,
            LayerSlot::QNorm => &mut l.q_norm,
            LayerSlot::KNorm => &mut l.k_norm,
            LayerSlot::PostAttnNorm => &mut l.post_attn_norm,
            LayerSlot::FfnNorm => &mut l.ffn_norm,
            LayerSlot::FfnGate => &mut l.ffn_gate,
            LayerSlot::FfnUp => &mut l.ffn_up,
            LayerSlot::FfnDown => &mut l.ffn_down,
            LayerSlot::PostFfwNorm => &mut l.post_ffw_norm,
        }
    }
}

/// A tensor role: its GGUF name (after `blk.N.` for block tensors), where it goes, whether it
/// must be there, its element type and its ggml shape (ne0 first).
#[derive(Clone, Copy, Debug)]
pub struct Role<S: 'static> {
    /// GGUF name.
    pub name: &'static str,
    /// Where it goes.
    pub slot: S,
    /// Required or optional.
    pub need: Need,
    /// Accepted element types.
    pub elem: Elem,
    /// Shape, ne0 first.
    pub shape: &'static [Dim],
}

/// An F32 vector role (a norm weight or a bias) of the given shape.
pub const fn norm<S: Copy>(name: &'static str, slot: S, need: Need, shape: &'static [Dim]) -> Role<S> {
    Role { name, slot, need, elem: Elem::F32, shape }
}

/// A required matrix (any type) mapping `shape[0]` inputs to `shape[1]` outputs.
pub const fn matrix<S: Copy>(name: &'static str, slot: S, shape: &'static [Dim]) -> Role<S> {
    Role { name, slot, need: Need::Required, elem: Elem::Any, shape }
}

/// One architecture: everything the host needs to validate a file and configure the guest.
pub struct Descriptor {
    /// `general.architecture`.
    pub name: &'static str,
    /// The guest's architecture id ([`wasm_chord_abi::arch`]).
    pub id: u32,
    /// RoPE variant ([`wasm_chord_abi::rope_type`]).
    pub rope_type: u32,
    /// Integer hyperparameters, in resolution order (a [`Fallback::Same`] names an earlier one).
    pub hparams: &'static [&'static [U32Param]],
    /// Float hyperparameters.
    pub floats: &'static [F32Param],
    /// Non-layer tensors.
    pub tensors: &'static [Role<ModelSlot>],
    /// Tensors of every block, named after `blk.N.`.
    pub layer: &'static [&'static [Role<LayerSlot>]],
    /// The architecture's constants in the guest configuration (scales, GELU, sliding-window
    /// pattern, the local RoPE base).
    pub constants: fn(&Hparams, &mut ModelConfig),
}

/// The hyperparameters every architecture here reads.
pub const TRANSFORMER_HPARAMS: &[U32Param] = &[
    U32Param { key: "block_count", h: H::BlockCount, fallback: Fallback::Required, min: 1, max: wasm_chord_abi::MAX_LAYERS as u32 },
    U32Param { key: "context_length", h: H::ContextLength, fallback: Fallback::Required, min: 1, max: 1 << 27 },
    U32Param { key: "embedding_length", h: H::EmbeddingLength, fallback: Fallback::Required, min: 1, max: 1 << 16 },
    U32Param { key: "feed_forward_length", h: H::FeedForwardLength, fallback: Fallback::Required, min: 1, max: 1 << 20 },
    U32Param { key: "attention.head_count", h: H::HeadCount, fallback: Fallback::Required, min: 1, max: 1024 },
    U32Param { key: "attention.head_count_kv", h: H::HeadCountKv, fallback: Fallback::Same(H::HeadCount), min: 1, max: 1024 },
    U32Param { key: "attention.key_length", h: H::KeyLength, fallback: Fallback::EmbdPerHead, min: 2, max: 512 },
    U32Param { key: "attention.value_length", h: H::ValueLength, fallback: Fallback::Same(H::KeyLength), min: 2, max: 512 },
    U32Param { key: "rope.dimension_count", h: H::RopeDimensionCount, fallback: Fallback::Same(H::KeyLength), min: 2, max: 512 },
];

/// The float hyperparameters every architecture here reads, with llama.cpp's defaults.
pub const TRANSFORMER_FLOATS: &[F32Param] = &[
    F32Param { key: "rope.freq_base", f: F::RopeFreqBase, default: 10000.0, above: 0.0, max: 1e12 },
    F32Param { key: "attention.layer_norm_rms_epsilon", f: F::RmsEps, default: 1e-5, above: 0.0, max: 0.1 },
];

/// Embedding table, final norm and output head (tied to the embedding when absent).
pub const EMBED_AND_HEAD: &[Role<ModelSlot>] = &[
    matrix("token_embd.weight", ModelSlot::TokEmbd, &[Dim::Embd, Dim::Vocab]),
    norm("output_norm.weight", ModelSlot::OutputNorm, Need::Required, &[Dim::Embd]),
    Role { name: "output.weight", slot: ModelSlot::Output, need: Need::Optional, elem: Elem::Any, shape: &[Dim::Embd, Dim::Vocab] },
];

/// A pre-norm attention block without biases and a gated feed-forward block (llama's layer).
pub const ATTENTION_AND_GATED_FFN: &[Role<LayerSlot>] = &[
    norm("attn_norm.weight", LayerSlot::AttnNorm, Need::Required, &[Dim::Embd]),
    matrix("attn_q.weight", LayerSlot::Wq, &[Dim::Embd, Dim::Q]),
    matrix("attn_k.weight", LayerSlot::Wk, &[Dim::Embd, Dim::Kv]),
    matrix("attn_v.weight", LayerSlot::Wv, &[Dim::Embd, Dim::Kv]),
    matrix("attn_output.weight", LayerSlot::Wo, &[Dim::Q, Dim::Embd]),
    norm("ffn_norm.weight", LayerSlot::FfnNorm, Need::Required, &[Dim::Embd]),
    matrix("ffn_gate.weight", LayerSlot::FfnGate, &[Dim::Embd, Dim::Ff]),
    matrix("ffn_up.weight", LayerSlot::FfnUp, &[Dim::Embd, Dim::Ff]),
    matrix("ffn_down.weight", LayerSlot::FfnDown, &[Dim::Ff, Dim::Embd]),
];

/// Biases on the query, key and value projections (`need`: required for qwen2, optional for
/// llama, where some fine-tunes add them).
pub const fn qkv_biases(need: Need) -> [Role<LayerSlot>; 3] {
    [
        norm("attn_q.bias", LayerSlot::Bq, need, &[Dim::Q]),
        norm("attn_k.bias", LayerSlot::Bk, need, &[Dim::Kv]),
        norm("attn_v.bias", LayerSlot::Bv, need, &[Dim::Kv]),
    ]
}
