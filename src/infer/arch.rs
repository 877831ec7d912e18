//! Hyperparameters and tensor roles from GGUF metadata, for the architectures the guest's forward
//! pass implements: `llama`, `qwen2`, `gemma3`. Everything is validated here, with errors that
//! name the missing key or tensor; the guest re-checks shapes against its directory.

use std::collections::HashMap;

use wasm_chord_abi::{LayerTensors, ModelConfig, NO_TENSOR, arch, rope_type};

use crate::error::{ErrorCode as E, Result, fail};
use crate::gguf::GgufFile;
use crate::model::UnitTable;
use crate::model::pod_bytes;

/// Context length used when the caller gives none and the model's is larger.
pub const DEFAULT_CONTEXT_CAP: u32 = 4096;

/// Tokens per guest `wc_eval` call (prompt batches).
pub const DEFAULT_BATCH: u32 = 32;

/// llama.cpp's ubatch as node-llama-cpp sets it up by default (`batchSize` = min(context, 512),
/// `n_ubatch` = `n_batch`): a prompt is evaluated in ubatches of this many tokens, and the
/// ubatch size picks the attention path whose rounding the guest mirrors.
pub const REF_UBATCH: u32 = 512;

/// node-llama-cpp's default thread count for a CPU context: max(4, math cores), where llama.cpp
/// counts physical cores (one per set of hyperthread siblings in Linux's CPU topology; the
/// logical CPU count where that is not readable).
pub fn default_reference_threads() -> u32 {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut siblings = std::collections::BTreeSet::new();
    for cpu in 0..logical.min(4096) {
        match std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings")) {
            Ok(s) => {
                siblings.insert(s.trim().to_owned());
            }
            Err(_) => break,
        }
    }
    let cores = if siblings.is_empty() { logical } else { siblings.len() as u32 };
    cores.max(4)
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct ArchConfig {
    /// What the guest gets.
    pub cfg: ModelConfig,
    /// One entry per block.
    pub layers: Vec<LayerTensors>,
    /// The model's own training context (`{arch}.context_length`).
    pub n_ctx_train: u32,
}

impl ArchConfig {
    /// The bytes `wc_model_init` takes: the config followed by the layer table.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = pod_bytes(&self.cfg);
        for l in &self.layers {
            out.extend_from_slice(&pod_bytes(l));
        }
        let c = &self.cfg;
        let bases = [c.rope_freq_base, c.rope_freq_base_swa];
        for &base in &bases[..wasm_chord_abi::rope_tables(c)] {
            for v in rope_table(base, c.n_rot, c.n_ctx) {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Bytes of the f16 KV cache for `n_ctx` positions.
    pub fn kv_bytes(&self, n_ctx: u32) -> u64 {
        let c = &self.cfg;
        2 * 2 * u64::from(c.n_layer) * u64::from(n_ctx) * u64::from(c.n_head_kv) * u64::from(c.head_dim)
    }
}

/// RoPE cos/sin for positions `0..n_ctx` and pairs `0..n_rot/2`, computed as ggml's
/// `ggml_rope_cache_init` does — the angle starts at the position and is multiplied by
/// `powf(base, -2/n_rot)` per pair — with the platform libm's `powf`, `cosf` and `sinf` (what
/// llama.cpp calls; glibc's are not always correctly rounded, so Rust's own would differ in the
/// last bit now and then, and these models amplify such bits).
pub fn rope_table(base: f32, n_rot: u32, n_ctx: u32) -> Vec<f32> {
    // SAFETY: plain libm calls on finite floats; no pointers involved.
    let theta_scale = unsafe { libm_f32::powf(base, -2.0 / n_rot as f32) };
    let mut out = Vec::with_capacity(n_ctx as usize * n_rot as usize);
    for pos in 0..n_ctx {
        let mut theta = pos as f32;
        for _ in 0..n_rot / 2 {
            // SAFETY: as above.
            let (c, s) = unsafe { (libm_f32::cosf(theta), libm_f32::sinf(theta)) };
            out.push(c);
            out.push(s);
            theta *= theta_scale;
        }
    }
    out
}

/// The platform C library's single-precision functions (the `libc` crate does not declare them).
mod libm_f32 {
    unsafe extern "C" {
        pub fn powf(x: f32, y: f32) -> f32;
        pub fn cosf(x: f32) -> f32;
        pub fn sinf(x: f32) -> f32;
    }
}


struct Meta<'a> {
    gguf: &'a GgufFile,
    arch: &'a str,
}

impl Meta<'_> {
    fn u32(&self, suffix: &str) -> Result<u32> {
        let key = format!("{}.{suffix}", self.arch);
        match self.gguf.get_u64(&key) {
            Some(v) if v > 0 && v <= u64::from(u32::MAX) => Ok(v as u32),
            Some(v) => fail(E::GgufBadMetadata, format!("metadata {key} = {v} is out of range")),
            None => fail(E::GgufBadMetadata, format!("metadata key {key} is missing (needed to run a {} model)", self.arch)),
        }
    }

    fn u32_or(&self, suffix: &str, default: u32) -> Result<u32> {
        if self.gguf.get(&format!("{}.{suffix}", self.arch)).is_some() { self.u32(suffix) } else { Ok(default) }
    }

    fn f32_or(&self, suffix: &str, default: f32) -> Result<f32> {
        let key = format!("{}.{suffix}", self.arch);
        match self.gguf.get(&key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(x as f32),
                _ => fail(E::GgufBadMetadata, format!("metadata {key} is not a finite number")),
            },
        }
    }
}

/// Resolves the configuration of `gguf` for `n_ctx` positions (None: the model's, capped at
/// [`DEFAULT_CONTEXT_CAP`]).
pub fn resolve(gguf: &GgufFile, units: &UnitTable, n_ctx: Option<u32>) -> Result<ArchConfig> {
    let name = gguf.architecture().unwrap_or("(none)");
    let arch_id = match name {
        "llama" => arch::LLAMA,
        "qwen2" => arch::QWEN2,
        "gemma3" => arch::GEMMA3,
        other => return fail(E::UnsupportedArch, format!("architecture {other:?} is not supported (supported: llama, qwen2, gemma3)")),
    };
    let m = Meta { gguf, arch: name };
    let n_embd = m.u32("embedding_length")?;
    let n_head = m.u32("attention.head_count")?;
    let n_head_kv = m.u32_or("attention.head_count_kv", n_head)?;
    let head_dim = m.u32_or("attention.key_length", n_embd / n_head)?;
    let n_ctx_train = m.u32("context_length")?;
    if n_head_kv == 0 || n_head % n_head_kv != 0 || head_dim == 0 || head_dim % 2 != 0 || head_dim > 512 {
        return fail(E::GgufBadMetadata, format!("unsupported attention shape: {n_head} heads, {n_head_kv} kv heads, head size {head_dim}"));
    }
    if m.u32_or("attention.value_length", head_dim)? != head_dim {
        return fail(E::UnsupportedArch, "key and value head sizes differ");
    }
    let tensors = TensorIndex::new(gguf, units);
    let tok_embd = tensors.required("token_embd.weight")?;
    let n_vocab = gguf.tensors[tensors.gguf_index["token_embd.weight"]].shape.get(1).copied().unwrap_or(0) as u32;
    let output = tensors.optional("output.weight").unwrap_or(tok_embd);
    let n_layer = m.u32("block_count")?;
    if n_layer as usize > wasm_chord_abi::MAX_LAYERS || n_layer != units.n_layers {
        return fail(E::GgufBadMetadata, format!("block_count is {n_layer} but the file has {} layers of tensors", units.n_layers));
    }
    let gemma = arch_id == arch::GEMMA3;
    let n_swa = if gemma { m.u32_or("attention.sliding_window", 0)? } else { 0 };
    let n_ctx = match n_ctx {
        Some(n) => n,
        None => n_ctx_train.min(DEFAULT_CONTEXT_CAP),
    };
    let cfg = ModelConfig {
        arch: arch_id,
        n_layer,
        n_embd,
        n_head,
        n_head_kv,
        head_dim,
        n_ff: m.u32("feed_forward_length")?,
        n_vocab,
        n_ctx,
        n_batch: DEFAULT_BATCH,
        n_rot: m.u32_or("rope.dimension_count", head_dim)?.min(head_dim),
        rope_type: if arch_id == arch::LLAMA { rope_type::NORM } else { rope_type::NEOX },
        rope_freq_base: m.f32_or("rope.freq_base", 10000.0)?,
        // llama.cpp's gemma3 hparams: local (sliding-window) layers use base 10000.
        rope_freq_base_swa: if gemma { 10000.0 } else { m.f32_or("rope.freq_base", 10000.0)? },
        rms_eps: m.f32_or("attention.layer_norm_rms_epsilon", 1e-5)?,
        q_scale: if gemma { 1.0 / (head_dim as f32).sqrt() } else { 0.0 },
        kq_scale: if gemma { 1.0 } else { 1.0 / (head_dim as f32).sqrt() },
        embd_scale: if gemma { (n_embd as f32).sqrt() } else { 1.0 },
        n_swa,
        n_swa_pattern: if gemma && n_swa > 0 { 6 } else { 0 },
        tok_embd,
        output_norm: tensors.required("output_norm.weight")?,
        output,
        ffn_gelu: u32::from(gemma),
        ref_threads: default_reference_threads(),
        // node-llama-cpp gives llama.cpp one more than its batch for sliding-window models
        // (its log: "SWA KV cache, size = 1280 cells" = 512 + 513, padded to 256).
        ref_n_ubatch: REF_UBATCH + u32::from(n_swa > 0),
    };
    let mut layers = Vec::with_capacity(n_layer as usize);
    for il in 0..n_layer {
        layers.push(layer_tensors(&tensors, il, arch_id)?);
    }
    Ok(ArchConfig { cfg, layers, n_ctx_train })
}

fn layer_tensors(t: &TensorIndex, il: u32, arch_id: u32) -> Result<LayerTensors> {
    let req = |n: &str| t.required(&format!("blk.{il}.{n}"));
    let opt = |n: &str| t.optional(&format!("blk.{il}.{n}")).unwrap_or(NO_TENSOR);
    let gemma = arch_id == arch::GEMMA3;
    let qwen = arch_id == arch::QWEN2;
    Ok(LayerTensors {
        attn_norm: req("attn_norm.weight")?,
        wq: req("attn_q.weight")?,
        wk: req("attn_k.weight")?,
        wv: req("attn_v.weight")?,
        wo: req("attn_output.weight")?,
        bq: if qwen { req("attn_q.bias")? } else { opt("attn_q.bias") },
        bk: if qwen { req("attn_k.bias")? } else { opt("attn_k.bias") },
        bv: if qwen { req("attn_v.bias")? } else { opt("attn_v.bias") },
        q_norm: if gemma { req("attn_q_norm.weight")? } else { NO_TENSOR },
        k_norm: if gemma { req("attn_k_norm.weight")? } else { NO_TENSOR },
        post_attn_norm: if gemma { req("post_attention_norm.weight")? } else { NO_TENSOR },
        ffn_norm: req("ffn_norm.weight")?,
        ffn_gate: req("ffn_gate.weight")?,
        ffn_up: req("ffn_up.weight")?,
        ffn_down: req("ffn_down.weight")?,
        post_ffw_norm: if gemma { req("post_ffw_norm.weight")? } else { NO_TENSOR },
    })
}

/// Tensor name → index in the guest directory (units in order, each unit's tensors in order).
struct TensorIndex {
    dir_index: HashMap<String, i32>,
    gguf_index: HashMap<String, usize>,
}

impl TensorIndex {
    fn new(gguf: &GgufFile, units: &UnitTable) -> Self {
        let mut dir_index = HashMap::new();
        let mut gguf_index = HashMap::new();
        let mut i = 0i32;
        for u in &units.units {
            for &t in &u.tensors {
                dir_index.insert(gguf.tensors[t].name.clone(), i);
                gguf_index.insert(gguf.tensors[t].name.clone(), t);
                i += 1;
            }
        }
        Self { dir_index, gguf_index }
    }

    fn optional(&self, name: &str) -> Option<i32> {
        self.dir_index.get(name).copied()
    }

    fn required(&self, name: &str) -> Result<i32> {
        match self.optional(name) {
            Some(i) => Ok(i),
            None => fail(E::MissingTensor, format!("tensor {name:?} is missing")),
        }
    }
}
