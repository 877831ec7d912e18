//! Hyperparameters and tensor roles from GGUF metadata, for the architectures the guest's forward
//! pass implements: one [`Descriptor`] each (`llama.rs`, `qwen2.rs`, `gemma3.rs`). A file is
//! validated against its descriptor at load, with errors that name the key or tensor and the
//! numbers, and the guest's configuration is built from it; the guest re-checks shapes against
//! its directory.

pub mod descriptor;
pub mod gemma3;
pub mod llama;
pub mod qwen2;

use std::collections::{HashMap, HashSet};

use wasm_chord_abi::{Abi, LayerTensors, ModelConfig, NO_TENSOR};

use crate::error::{ChordError, ErrorCode as E, Result, fail};
use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::model::UnitTable;
use descriptor::{Descriptor, Elem, Fallback, H, Hparams, Need, Role};

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
        let mut out = self.cfg.as_bytes().to_vec();
        for l in &self.layers {
            out.extend_from_slice(l.as_bytes());
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

/// The architectures with a forward pass here, one descriptor each.
pub const ARCHITECTURES: &[&Descriptor] = &[&llama::LLAMA, &qwen2::QWEN2, &gemma3::GEMMA3];

/// The descriptor of `general.architecture` = `name`.
pub fn descriptor(name: &str) -> Option<&'static Descriptor> {
    ARCHITECTURES.iter().copied().find(|d| d.name == name)
}

/// Validates `gguf` against its architecture's descriptor and resolves the configuration for
/// `n_ctx` positions (None: the model's, capped at [`DEFAULT_CONTEXT_CAP`]). Errors name the
/// key or tensor and the numbers: `ERR_UNSUPPORTED_ARCH` (no descriptor, a tensor or RoPE
/// scaling the forward pass does not implement), `ERR_MODEL_BAD_HPARAMS`,
/// `ERR_MODEL_MISSING_TENSOR`, `ERR_MODEL_TENSOR_SHAPE`.
pub fn resolve(gguf: &GgufFile, units: &UnitTable, n_ctx: Option<u32>) -> Result<ArchConfig> {
    let d = match gguf.get("general.architecture") {
        None => return fail(E::UnsupportedArch, format!("general.architecture is missing (supported: {})", supported())),
        Some(v) => match v.as_str() {
            Some(name) => descriptor(name).ok_or_else(|| ChordError::new(E::UnsupportedArch, format!("architecture {name:?} is not supported (supported: {})", supported())))?,
            None => return fail(E::UnsupportedArch, format!("general.architecture is {v}, not a string")),
        },
    };
    let tensors = TensorIndex::new(gguf, units);
    let mut hp = hparams(gguf, d)?;
    hp.n_vocab = match tensors.find("token_embd.weight") {
        Some((_, t)) => match u32::try_from(t.shape.get(1).copied().unwrap_or(1)) {
            Ok(v) => v,
            Err(_) => return fail(E::ModelTensorShape, format!("token_embd.weight has {:?} rows, more than a vocabulary can have", t.shape.get(1))),
        },
        None => return fail(E::MissingTensor, format!("tensor \"token_embd.weight\" is missing (required by {})", d.name)),
    };
    if let Some(v) = gguf.get(&format!("{}.vocab_size", d.name))
        && v.as_u64() != Some(hp.n_vocab.into())
    {
        return fail(E::ModelBadHparams, format!("{}.vocab_size is {v} but token_embd.weight has {} rows", d.name, hp.n_vocab));
    }
    if hp.n_layer != units.n_layers {
        return fail(E::ModelBadHparams, format!("{}.block_count is {} but the file has {} layers of tensors (blk.0 … blk.{})", d.name, hp.n_layer, units.n_layers, units.n_layers.saturating_sub(1)));
    }
    let mut cfg = ModelConfig {
        arch: d.id,
        n_layer: hp.n_layer,
        n_embd: hp.n_embd,
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim: hp.head_dim,
        n_ff: hp.n_ff,
        n_vocab: hp.n_vocab,
        n_ctx: n_ctx.unwrap_or(hp.n_ctx_train.min(DEFAULT_CONTEXT_CAP)),
        n_batch: DEFAULT_BATCH,
        n_rot: hp.n_rot,
        rope_type: d.rope_type,
        rope_freq_base: hp.rope_freq_base,
        rms_eps: hp.rms_eps,
        ref_threads: default_reference_threads(),
        tok_embd: NO_TENSOR,
        output_norm: NO_TENSOR,
        output: NO_TENSOR,
        ..ModelConfig::default()
    };
    (d.constants)(&hp, &mut cfg);
    // node-llama-cpp gives llama.cpp one more than its batch for sliding-window models (its log:
    // "SWA KV cache, size = 1280 cells" = 512 + 513, padded to 256).
    cfg.ref_n_ubatch = REF_UBATCH + u32::from(cfg.n_swa > 0);
    let mut known: HashSet<&str> = HashSet::new();
    for role in d.tensors {
        if let Some(i) = tensors.role(d, &hp, role, role.name)? {
            *role.slot.field(&mut cfg) = i;
        }
        known.insert(role.name);
    }
    if cfg.output == NO_TENSOR {
        cfg.output = cfg.tok_embd;
    }
    let mut layers = Vec::with_capacity(hp.n_layer as usize);
    for il in 0..hp.n_layer {
        let mut l = LayerTensors { bq: NO_TENSOR, bk: NO_TENSOR, bv: NO_TENSOR, q_norm: NO_TENSOR, k_norm: NO_TENSOR, post_attn_norm: NO_TENSOR, post_ffw_norm: NO_TENSOR, ..LayerTensors::default() };
        for role in d.layer.iter().copied().flatten() {
            let name = format!("blk.{il}.{}", role.name);
            *role.slot.field(&mut l) = tensors.role(d, &hp, role, &name)?.unwrap_or(NO_TENSOR);
        }
        layers.push(l);
    }
    // A tensor no role names would be ignored by the forward pass: the output would be wrong.
    for t in &gguf.tensors {
        let is_known = match crate::model::layer_of(&t.name) {
            // blk.{i}.{role}: a layer role of the descriptor.
            Some(_) => {
                let role_name = t.name.splitn(3, '.').nth(2).unwrap_or("");
                d.layer.iter().copied().flatten().any(|r| r.name == role_name)
            }
            None => known.contains(t.name.as_str()),
        };
        if !is_known {
            return fail(E::UnsupportedArch, format!("tensor {:?} has no role in a {} model here (the forward pass would ignore it and compute something else)", t.name, d.name));
        }
    }
    Ok(ArchConfig { cfg, layers, n_ctx_train: hp.n_ctx_train })
}

fn supported() -> String {
    ARCHITECTURES.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
}

/// Reads and range-checks `d`'s hyperparameters, then the relations between them.
fn hparams(gguf: &GgufFile, d: &Descriptor) -> Result<Hparams> {
    let mut hp = Hparams::default();
    let mut seen: Vec<H> = Vec::new();
    let bad = |m: String| ChordError::new(E::ModelBadHparams, m);
    for p in d.hparams.iter().copied().flatten() {
        let key = format!("{}.{}", d.name, p.key);
        let in_range = |x: u64| x >= u64::from(p.min) && x <= u64::from(p.max);
        let v = match gguf.get(&key) {
            Some(v) => match v.as_u64() {
                Some(x) if in_range(x) => x as u32,
                Some(_) => return Err(bad(format!("{key} = {v} is out of range ({}..={})", p.min, p.max))),
                None => return Err(bad(format!("{key} is {v}, not a non-negative integer"))),
            },
            None => match p.fallback {
                Fallback::Required => return Err(bad(format!("metadata key {key} is missing (needed to run a {} model)", d.name))),
                Fallback::Value(x) => x,
                Fallback::Same(h) if seen.contains(&h) => hp.get(h),
                Fallback::Same(h) => return fail(E::Internal, format!("descriptor {}: {key} falls back to {h:?}, which comes later", d.name)),
                Fallback::EmbdPerHead => {
                    if hp.n_head == 0 || hp.n_embd % hp.n_head != 0 {
                        return Err(bad(format!("{key} is missing and {}.embedding_length = {} is not a multiple of {}.attention.head_count = {}", d.name, hp.n_embd, d.name, hp.n_head)));
                    }
                    let v = hp.n_embd / hp.n_head;
                    if !in_range(v.into()) {
                        return Err(bad(format!("{key} is missing and embedding_length / head_count = {v} is out of its range ({}..={})", p.min, p.max)));
                    }
                    v
                }
            },
        };
        hp.set(p.h, v);
        seen.push(p.h);
    }
    for p in d.floats {
        let key = format!("{}.{}", d.name, p.key);
        let v = match gguf.get(&key) {
            None => p.default,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > f64::from(p.above) && x <= f64::from(p.max) => x as f32,
                _ => return Err(bad(format!("{key} = {v} is out of range (above {} up to {})", p.above, p.max))),
            },
        };
        hp.set_f32(p.f, v);
    }
    let n = d.name;
    if hp.n_head % hp.n_head_kv != 0 {
        return Err(bad(format!("{n}.attention.head_count = {} is not a multiple of {n}.attention.head_count_kv = {}", hp.n_head, hp.n_head_kv)));
    }
    if hp.head_dim % 2 != 0 {
        return Err(bad(format!("the head size ({n}.attention.key_length or embedding_length/head_count) is {}, not even", hp.head_dim)));
    }
    if hp.value_dim != hp.head_dim {
        return fail(E::UnsupportedArch, format!("{n}.attention.value_length = {} differs from the key length {} (not implemented here)", hp.value_dim, hp.head_dim));
    }
    if hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0 {
        return Err(bad(format!("{n}.rope.dimension_count = {} must be even and at most the head size {}", hp.n_rot, hp.head_dim)));
    }
    if let Some(v) = gguf.get(&format!("{n}.rope.scaling.type"))
        && v.as_str() != Some("none")
    {
        return fail(E::UnsupportedArch, format!("{n}.rope.scaling.type is {v}: RoPE scaling is not implemented here"));
    }
    Ok(hp)
}

/// Tensor name → index in the guest directory (units in order, each unit's tensors in order).
struct TensorIndex<'a> {
    gguf: &'a GgufFile,
    index: HashMap<&'a str, (i32, usize)>,
}

impl<'a> TensorIndex<'a> {
    fn new(gguf: &'a GgufFile, units: &UnitTable) -> Self {
        let mut index = HashMap::new();
        let mut i = 0i32;
        for u in &units.units {
            for &t in &u.tensors {
                index.insert(gguf.tensors[t].name.as_str(), (i, t));
                i += 1;
            }
        }
        Self { gguf, index }
    }

    fn find(&self, name: &str) -> Option<(i32, &'a TensorInfo)> {
        self.index.get(name).map(|&(i, t)| (i, &self.gguf.tensors[t]))
    }

    /// The directory index of `role` under `name`, after checking its type and shape (None:
    /// an optional role that is absent).
    fn role<S>(&self, d: &Descriptor, hp: &Hparams, role: &Role<S>, name: &str) -> Result<Option<i32>> {
        let Some((i, t)) = self.find(name) else {
            return match role.need {
                Need::Required => fail(E::MissingTensor, format!("tensor {name:?} is missing (required by {})", d.name)),
                Need::Optional => Ok(None),
            };
        };
        if role.elem == Elem::F32 && t.ggml_type != GgmlType::F32 {
            return fail(E::ModelTensorShape, format!("tensor {name:?} is {}, expected F32", t.ggml_type.name()));
        }
        // ggml drops trailing dimensions of 1.
        let mut shape = t.shape.clone();
        while shape.len() > role.shape.len() && shape.last() == Some(&1) {
            shape.pop();
        }
        let want: Vec<u64> = role.shape.iter().map(|dim| dim.value(hp)).collect();
        if shape != want {
            let expected = role.shape.iter().zip(&want).map(|(dim, v)| format!("{} = {v}", dim.name())).collect::<Vec<_>>().join(", ");
            return fail(E::ModelTensorShape, format!("tensor {name:?} has shape {:?}, expected [{expected}]", t.shape));
        }
        Ok(Some(i))
    }
}
