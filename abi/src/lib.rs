//! The one ABI shared by the wasm-chord host (native, `src/host`) and its wasm32 guest (`guest/`).
//!
//! Everything both sides must agree on lives here and only here: the import module and function
//! names, the guest export names, the status codes, the `#[repr(C)]` structs that cross the
//! boundary (with compile-time size asserts) and their one encoding ([`Abi`]), plus the checksum
//! both sides use to prove that the guest holds the right bytes.
//!
//! The host-side table that *implements* the imports is `src/host/imports.rs`; the guest-side
//! declarations are `guest/src/bridge.rs`. Each import is documented there and summarised here.
#![no_std]

/// The encoding of the `#[repr(C)]` structs below across the boundary: their raw bytes, little
/// endian (both sides are: wasm32 by definition, the host by the assert below), read and written
/// unaligned.
///
/// # Safety
/// Implemented only for this crate's boundary structs, made of `u32`/`i32`/`f32`/`u64` fields
/// without padding (each size is asserted to equal the sum of its fields), so every byte is
/// initialised and every bit pattern is a valid value.
pub unsafe trait Abi: Copy {
    /// The struct's bytes, as the other side reads them.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: see the trait: `size_of::<Self>()` initialised bytes at `self`.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), core::mem::size_of::<Self>()) }
    }

    /// The struct at byte `at` of `bytes`, if it lies inside.
    fn read_from(bytes: &[u8], at: usize) -> Option<Self> {
        let end = at.checked_add(core::mem::size_of::<Self>())?;
        let src = bytes.get(at..end)?;
        // SAFETY: `src` holds size_of::<Self>() bytes and every bit pattern is valid (see the
        // trait); read_unaligned has no alignment requirement.
        Some(unsafe { core::ptr::read_unaligned(src.as_ptr().cast::<Self>()) })
    }
}

#[cfg(not(target_endian = "little"))]
compile_error!("the host<->guest ABI encodes structs as little-endian bytes");

/// Wasm module name of every host import.
pub const IMPORT_MODULE: &str = "wasm_chord";

/// Host import names (module [`IMPORT_MODULE`]).
pub mod import {
    /// `memory64_load_layer(layer: i32, dst_ptr: i32, dst_len: i32) -> i32 status`.
    /// Makes layer `layer` resident in the guest's layer cache (the host's `Memory64LayerManager`
    /// picks the slot, evicting per policy, and copies the layer's tensor bytes from the Memory64
    /// region into it), then writes a [`LayerGrant`](super::LayerGrant) at `dst_ptr`
    /// (`dst_len` must equal its size).
    pub const MEMORY64_LOAD_LAYER: &str = "memory64_load_layer";
    /// `memory64_read(offset: i64, dst_ptr: i32, len: i32) -> i32 status`.
    /// Copies `len` bytes of model tensor data starting at `offset` (an offset into the GGUF file,
    /// as given to the guest in its directory) into guest memory at `dst_ptr`. The range must lie
    /// inside one non-layer tensor that the host granted to the guest.
    pub const MEMORY64_READ: &str = "memory64_read";
    /// `memory64_is_enabled() -> i32`: 1 when the weights live in Memory64 regions, 0 in WHOLE mode.
    pub const MEMORY64_IS_ENABLED: &str = "memory64_is_enabled";
    /// `memory64_stats(dst_ptr: i32) -> i32 status`: writes a [`BridgeStats`](super::BridgeStats).
    pub const MEMORY64_STATS: &str = "memory64_stats";
    /// `abort_requested() -> i32`: 1 once the caller of the running guest call asked it to stop
    /// (an AbortSignal, `dispose()`), else 0. The forward pass polls it between layers and
    /// between row chunks of a batch's matrix products, and then returns
    /// [`ERR_ABORTED`](super::status::ERR_ABORTED).
    pub const ABORT_REQUESTED: &str = "abort_requested";
    /// `threads() -> i32`: how many instances (this one and its workers) can share a job: 1
    /// when the model runs on one thread.
    pub const THREADS: &str = "threads";
    /// `parallel_begin(job: i32, chunks: i32) -> i32 status`: offers the `chunks` chunks of the job at
    /// guest address `job` to the workers (each claims chunks and calls its instance's
    /// [`WORKER_RUN`](super::export::WORKER_RUN) export with `(job, chunk, chunks)`) and returns at
    /// once; the caller claims chunks too (`parallel_next`), then calls `parallel_wait`. No job
    /// may be running.
    pub const PARALLEL_BEGIN: &str = "parallel_begin";
    /// `parallel_next() -> i32`: claims the next unclaimed chunk of the running job for the
    /// caller (its index), or -1 when every chunk is claimed. A chunk is claimed exactly once.
    pub const PARALLEL_NEXT: &str = "parallel_next";
    /// `parallel_wait() -> i32 status`: blocks (without spinning) until every chunk the workers
    /// claimed is done; an error status when a worker failed.
    pub const PARALLEL_WAIT: &str = "parallel_wait";
}

/// Guest export names.
pub mod export {
    /// The guest's linear memory.
    pub const MEMORY: &str = "memory";
    /// `wc_alloc(size: i32, align: i32) -> i32 ptr` (0 = out of memory). Host-owned allocations:
    /// the directory, the layer-slot arena, WHOLE-mode tensor bytes.
    pub const ALLOC: &str = "wc_alloc";
    /// `wc_init(dir_ptr: i32, dir_len: i32) -> i32 status`: hands the guest its model directory.
    pub const INIT: &str = "wc_init";
    /// `wc_unit_checksum(unit: i32, out_ptr: i32) -> i32 status`: the guest acquires unit `unit`
    /// (a layer through the layer cache, or a non-layer tensor through `memory64_read`) and writes
    /// the [`Checksum`](super::Checksum) of the tensor bytes it sees to `out_ptr`.
    pub const UNIT_CHECKSUM: &str = "wc_unit_checksum";
    /// `wc_acquire_layer(layer: i32, out_ptr: i32) -> i32 status`: the guest acquires layer
    /// `layer` as a forward pass would (through `memory64_load_layer` in Memory64 mode; from its
    /// own memory in WHOLE mode) and writes the [`LayerGrant`](super::LayerGrant) to `out_ptr`.
    pub const ACQUIRE_LAYER: &str = "wc_acquire_layer";
    /// `wc_bridge_stats(out_ptr: i32) -> i32 status`: the guest calls `memory64_stats` and copies
    /// the result to `out_ptr` (used by tests to exercise the import from real guest code).
    pub const BRIDGE_STATS: &str = "wc_bridge_stats";
    /// `wc_model_init(cfg_ptr: i32, cfg_len: i32) -> i32 status`: takes a [`ModelConfig`](super::ModelConfig)
    /// (after `wc_init`), validates it against the directory and allocates the KV cache and scratch
    /// buffers for `n_ctx` positions and batches of up to `n_batch` tokens.
    pub const MODEL_INIT: &str = "wc_model_init";
    /// `wc_eval(tokens_ptr: i32, n_tokens: i32, pos: i32, ubatch: i32) -> i32 status`: runs the
    /// forward pass on `n_tokens` (≤ `n_batch`) token ids (u32) at positions `pos..pos+n_tokens`,
    /// writing their keys and values into the KV cache (positions ≥ `pos` are
    /// overwritten/forgotten), and the logits of the last token into the logits buffer. `ubatch`
    /// (≥ `n_tokens`): the size of the llama.cpp ubatch these tokens would be evaluated in, which
    /// picks the attention path whose rounding the guest mirrors (1 for a generated token).
    pub const EVAL: &str = "wc_eval";
    /// `wc_logits() -> i32 ptr`: where the `n_vocab` f32 logits of the last evaluated token live
    /// (0 before `wc_model_init`).
    pub const LOGITS: &str = "wc_logits";
    /// `wc_kv_cache() -> i32 ptr`: where the KV cache lives (0 before `wc_model_init`): keys and
    /// values of every layer, (n_layer, 2, n_ctx, n_head_kv·head_dim) f16 bits — see
    /// [`kv_plane_len`](super::kv_plane_len). The host copies the positions a sequence uses out
    /// and back in to give each chat session its own cache.
    pub const KV_CACHE: &str = "wc_kv_cache";
    /// `wc_worker_run(job: i32, chunk: i32, chunks: i32) -> i32 status`: runs chunk `chunk` of
    /// `chunks` of the job at `job` (see [`PARALLEL_BEGIN`](super::import::PARALLEL_BEGIN)).
    /// Called on worker instances only: it touches nothing but the job's own buffers.
    pub const WORKER_RUN: &str = "wc_worker_run";
    /// The mutable global holding the guest's stack pointer: each worker instance is given a
    /// stack of its own through it.
    pub const STACK_POINTER: &str = "__stack_pointer";
}

/// Status codes returned by imports and exports. Zero is success; negatives are errors.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// A guest pointer/length pair does not lie inside guest memory (or overflows).
    pub const ERR_BAD_POINTER: i32 = -1;
    /// No layer/unit with that index.
    pub const ERR_NO_SUCH_LAYER: i32 = -2;
    /// `dst_len` does not match the struct the host writes.
    pub const ERR_BAD_LENGTH: i32 = -3;
    /// `memory64_read` range not inside a tensor granted to the guest.
    pub const ERR_NOT_GRANTED: i32 = -4;
    /// The region could not be read (file truncated under us, I/O error).
    pub const ERR_IO: i32 = -5;
    /// Memory64 is not enabled for this model (WHOLE mode).
    pub const ERR_DISABLED: i32 = -6;
    /// The guest directory is malformed.
    pub const ERR_BAD_DIRECTORY: i32 = -7;
    /// The guest ran out of linear memory.
    pub const ERR_OUT_OF_MEMORY: i32 = -8;
    /// The layer does not fit in a cache slot.
    pub const ERR_SLOT_TOO_SMALL: i32 = -9;
    /// The model configuration does not match the directory (shape, type, missing tensor).
    pub const ERR_BAD_CONFIG: i32 = -10;
    /// `wc_eval` before `wc_model_init`, or a batch/position outside the configured sizes.
    pub const ERR_BAD_REQUEST: i32 = -11;
    /// The call stopped early because `abort_requested` said so (its results are not valid).
    pub const ERR_ABORTED: i32 = -12;
    /// A kernel export was given an unknown ggml type id, or a length that is not a whole number
    /// of the type's blocks (the test-only kernel exports).
    pub const ERR_BAD_TYPE: i32 = -13;
    /// A worker instance failed its chunk of a parallel job (it trapped), or a job was begun
    /// wrongly (no workers, a bad chunk count, one already running).
    pub const ERR_WORKER: i32 = -14;

    /// The name and a sentence for status `st` (for host error messages; never a bare number).
    pub fn describe(st: i32) -> (&'static str, &'static str) {
        match st {
            OK => ("OK", "success"),
            ERR_BAD_POINTER => ("ERR_BAD_POINTER", "a pointer and length passed across the boundary do not lie inside guest memory"),
            ERR_NO_SUCH_LAYER => ("ERR_NO_SUCH_LAYER", "no layer or unit has that index"),
            ERR_BAD_LENGTH => ("ERR_BAD_LENGTH", "a destination length does not match the structure written"),
            ERR_NOT_GRANTED => ("ERR_NOT_GRANTED", "the range read is not inside a tensor the host granted to the guest"),
            ERR_IO => ("ERR_IO", "the model file could not be read"),
            ERR_DISABLED => ("ERR_DISABLED", "Memory64 is not enabled for this model (WHOLE mode)"),
            ERR_BAD_DIRECTORY => ("ERR_BAD_DIRECTORY", "the model directory handed to the guest is malformed"),
            ERR_OUT_OF_MEMORY => ("ERR_OUT_OF_MEMORY", "the guest ran out of linear memory"),
            ERR_SLOT_TOO_SMALL => ("ERR_SLOT_TOO_SMALL", "a layer does not fit its cache slot"),
            ERR_BAD_CONFIG => ("ERR_BAD_CONFIG", "the model configuration does not match the tensors (a shape, a type or a tensor is wrong or missing)"),
            ERR_BAD_REQUEST => ("ERR_BAD_REQUEST", "the call came before the model was initialised, or its batch or positions lie outside the configured sizes"),
            ERR_ABORTED => ("ERR_ABORTED", "the call was aborted"),
            ERR_BAD_TYPE => ("ERR_BAD_TYPE", "an unknown ggml type, or a length that is not a whole number of its blocks"),
            ERR_WORKER => ("ERR_WORKER", "a worker thread failed its chunk of a parallel job, or the job was begun wrongly"),
            _ => ("unknown", "an unknown status (a guest that does not follow this ABI)"),
        }
    }
}

/// Architectures the guest's forward pass implements (`ModelConfig::arch`).
pub mod arch {
    /// `llama` (also SmolLM2, TinyLlama, Mistral): RMSNorm, GQA, RoPE normal, SwiGLU.
    pub const LLAMA: u32 = 1;
    /// `qwen2`: llama plus q/k/v biases and NeoX RoPE.
    pub const QWEN2: u32 = 2;
    /// `gemma3`: QK-norm, post-attention/post-FFN norms, sliding-window layers, GELU FFN,
    /// scaled embeddings, tied output.
    pub const GEMMA3: u32 = 3;
}

/// RoPE variants (`ModelConfig::rope_type`), as ggml names them.
pub mod rope_type {
    /// Rotate adjacent pairs (x[2i], x[2i+1]).
    pub const NORM: u32 = 0;
    /// Rotate halves (x[i], x[i + n_rot/2]).
    pub const NEOX: u32 = 2;
}

/// "No tensor" in a tensor-index field of [`ModelConfig`] / [`LayerTensors`].
pub const NO_TENSOR: i32 = -1;

/// The tensors of one transformer block, as indices into the directory's tensor list
/// ([`NO_TENSOR`] when the architecture has no such tensor). GGUF names in the comments.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerTensors {
    /// `blk.N.attn_norm.weight` (n_embd)
    pub attn_norm: i32,
    /// `blk.N.attn_q.weight` (n_embd → n_head·head_dim)
    pub wq: i32,
    /// `blk.N.attn_k.weight` (n_embd → n_head_kv·head_dim)
    pub wk: i32,
    /// `blk.N.attn_v.weight` (n_embd → n_head_kv·head_dim)
    pub wv: i32,
    /// `blk.N.attn_output.weight` (n_head·head_dim → n_embd)
    pub wo: i32,
    /// `blk.N.attn_q.bias`
    pub bq: i32,
    /// `blk.N.attn_k.bias`
    pub bk: i32,
    /// `blk.N.attn_v.bias`
    pub bv: i32,
    /// `blk.N.attn_q_norm.weight` (head_dim)
    pub q_norm: i32,
    /// `blk.N.attn_k_norm.weight` (head_dim)
    pub k_norm: i32,
    /// `blk.N.post_attention_norm.weight` (n_embd)
    pub post_attn_norm: i32,
    /// `blk.N.ffn_norm.weight` (n_embd)
    pub ffn_norm: i32,
    /// `blk.N.ffn_gate.weight` (n_embd → n_ff)
    pub ffn_gate: i32,
    /// `blk.N.ffn_up.weight` (n_embd → n_ff)
    pub ffn_up: i32,
    /// `blk.N.ffn_down.weight` (n_ff → n_embd)
    pub ffn_down: i32,
    /// `blk.N.post_ffw_norm.weight` (n_embd)
    pub post_ffw_norm: i32,
}
const _: () = assert!(core::mem::size_of::<LayerTensors>() == 64);
// SAFETY: padding-free integers/floats, 64 bytes (asserted above).
unsafe impl Abi for LayerTensors {}

/// Largest layer count a [`ModelConfig`] can describe.
pub const MAX_LAYERS: usize = 256;

/// Hyperparameters and tensor roles, resolved by the host from GGUF metadata and validated
/// there (the guest re-checks shapes against the directory). Followed in memory by
/// `n_layer` [`LayerTensors`], then the RoPE tables ([`rope_tables`] of them: global layers,
/// then sliding-window layers): for each position `0..n_ctx` and pair `0..n_rot/2`, `cos` then
/// `sin` as f32 — computed by the host with the platform's `powf`/`cosf`/`sinf`, as llama.cpp
/// computes them, so that the rotation rounds identically.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelConfig {
    /// One of [`arch`].
    pub arch: u32,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Embedding width.
    pub n_embd: u32,
    /// Query heads.
    pub n_head: u32,
    /// Key/value heads (GQA: n_head is a multiple).
    pub n_head_kv: u32,
    /// Width of one head (keys, queries and values).
    pub head_dim: u32,
    /// Feed-forward width.
    pub n_ff: u32,
    /// Vocabulary size (rows of the output head).
    pub n_vocab: u32,
    /// KV cache positions.
    pub n_ctx: u32,
    /// Largest batch of tokens per `wc_eval`.
    pub n_batch: u32,
    /// Dimensions rotated by RoPE (≤ head_dim).
    pub n_rot: u32,
    /// One of [`rope_type`].
    pub rope_type: u32,
    /// RoPE base frequency (global-attention layers).
    pub rope_freq_base: f32,
    /// RoPE base frequency of sliding-window layers.
    pub rope_freq_base_swa: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Multiplier applied to Q before attention (gemma3), or 0 for none.
    pub q_scale: f32,
    /// Scale inside softmax (1/sqrt(head_dim) for llama/qwen2, 1 for gemma3).
    pub kq_scale: f32,
    /// Multiplier of the token embeddings (sqrt(n_embd) for gemma3, 1 otherwise).
    pub embd_scale: f32,
    /// Sliding-window size (0: none).
    pub n_swa: u32,
    /// Layer il uses the sliding window when `n_swa_pattern > 0 && il % n_swa_pattern < n_swa_pattern - 1`.
    pub n_swa_pattern: u32,
    /// `token_embd.weight` (n_embd, n_vocab).
    pub tok_embd: i32,
    /// `output_norm.weight` (n_embd).
    pub output_norm: i32,
    /// `output.weight`, or `token_embd.weight` when the head is tied.
    pub output: i32,
    /// Feed-forward activation: 0 = SiLU (SwiGLU), 1 = GELU (tanh approximation, GeGLU).
    pub ffn_gelu: u32,
    /// Thread count of the llama.cpp run whose rounding the attention of a single-token ubatch
    /// mirrors once 512+ cache cells are in view (llama.cpp then splits it into one chunk per
    /// thread); ≥ 1.
    pub ref_threads: u32,
    /// llama.cpp's ubatch size (`n_ubatch`), which sizes its sliding-window cache
    /// (n_swa + n_ubatch cells, padded to 256).
    pub ref_n_ubatch: u32,
}
const _: () = assert!(core::mem::size_of::<ModelConfig>() == 104);
// SAFETY: padding-free integers/floats, 104 bytes (asserted above).
unsafe impl Abi for ModelConfig {}

/// How many RoPE tables follow a [`ModelConfig`]: 2 when sliding-window layers use their own
/// base frequency, else 1.
pub fn rope_tables(c: &ModelConfig) -> usize {
    if c.n_swa > 0 && c.n_swa_pattern > 0 { 2 } else { 1 }
}

/// f16 values in one plane of the KV cache (the keys, or the values, of one layer):
/// n_ctx × n_head_kv·head_dim. The cache ([`export::KV_CACHE`]) is 2·n_layer such planes, layer
/// by layer, keys before values; position `p` of a plane is its values `p·w..(p+1)·w` with
/// w = n_head_kv·head_dim.
pub fn kv_plane_len(c: &ModelConfig) -> usize {
    c.n_ctx as usize * c.n_head_kv as usize * c.head_dim as usize
}

/// f32 values in one RoPE table: n_ctx × n_rot (n_rot/2 pairs of cos, sin).
pub fn rope_table_len(c: &ModelConfig) -> usize {
    c.n_ctx as usize * c.n_rot as usize
}

/// What `memory64_load_layer` writes: where the layer now sits in guest memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerGrant {
    /// Guest address of the layer's first byte (tensor `k` is at `ptr + tensor.unit_offset`).
    pub ptr: u32,
    /// Bytes of the layer payload.
    pub len: u32,
    /// Cache slot index.
    pub slot: u32,
    /// 1 when the layer was already resident (a hit), 0 when it was loaded now (a miss).
    pub hit: u32,
}
const _: () = assert!(core::mem::size_of::<LayerGrant>() == 16);
// SAFETY: padding-free integers/floats, 16 bytes (asserted above).
unsafe impl Abi for LayerGrant {}

/// What `memory64_stats` writes: the bridge's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// `memory64_read` calls that succeeded.
    pub reads: u64,
    /// Bytes copied by `memory64_read`.
    pub read_bytes: u64,
    /// `memory64_load_layer` calls.
    pub layer_requests: u64,
    /// Layer loads that copied bytes (misses).
    pub layer_loads: u64,
    /// Bytes copied by layer loads.
    pub layer_bytes: u64,
    /// Calls rejected with an error status.
    pub errors: u64,
    /// 1 when Memory64 is enabled.
    pub enabled: u32,
    /// Number of Memory64 regions.
    pub regions: u32,
}
const _: () = assert!(core::mem::size_of::<BridgeStats>() == 56);
// SAFETY: padding-free integers/floats, 56 bytes (asserted above).
unsafe impl Abi for BridgeStats {}

/// Checksum result written by `wc_unit_checksum`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// [`chord64`] combined over the unit's tensors in directory order.
    pub hash: u64,
    /// Bytes hashed.
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Checksum>() == 16);
// SAFETY: padding-free integers/floats, 16 bytes (asserted above).
unsafe impl Abi for Checksum {}

// ---------------------------------------------------------------------------------------------
// The model directory: a flat little-endian byte string the host writes into guest memory.
//
//   header:  magic u32 = DIR_MAGIC, version u32 = DIR_VERSION, n_units u32, n_tensors u32,
//            memory64 u32 (0/1), reserved u32
//   units:   n_units × UnitEntry   (in unit order: layers 0..L-1, then non-layer tensors)
//   tensors: n_tensors × TensorEntry
// ---------------------------------------------------------------------------------------------

/// Directory magic ("WCD1").
pub const DIR_MAGIC: u32 = 0x3144_4357;
/// Directory layout version.
pub const DIR_VERSION: u32 = 1;

/// Directory header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirHeader {
    /// [`DIR_MAGIC`].
    pub magic: u32,
    /// [`DIR_VERSION`].
    pub version: u32,
    /// Number of [`UnitEntry`] records.
    pub n_units: u32,
    /// Number of [`TensorEntry`] records.
    pub n_tensors: u32,
    /// 1 = Memory64 mode (layers through the cache), 0 = WHOLE mode (everything resident).
    pub memory64: u32,
    /// Zero.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<DirHeader>() == 24);
// SAFETY: padding-free integers/floats, 24 bytes (asserted above).
unsafe impl Abi for DirHeader {}

/// Unit kinds.
pub mod unit_kind {
    /// `blk.N.*` tensors of one transformer layer.
    pub const LAYER: u32 = 0;
    /// A single non-layer tensor (`token_embd.weight`, `output_norm.weight`, `output.weight`, …).
    pub const TENSOR: u32 = 1;
}

/// One unit: a layer or a non-layer tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitEntry {
    /// [`unit_kind`].
    pub kind: u32,
    /// Layer number for layers; `u32::MAX` otherwise.
    pub layer: u32,
    /// First tensor of this unit in the tensor table.
    pub first_tensor: u32,
    /// Number of tensors.
    pub n_tensors: u32,
    /// Payload bytes when resident (tensors packed at [`TensorEntry::unit_offset`]).
    pub bytes: u64,
    /// WHOLE mode: guest address of the resident payload. Memory64 mode: 0 (ask the bridge).
    pub resident_ptr: u32,
    /// Zero.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<UnitEntry>() == 32);
// SAFETY: padding-free integers/floats, 32 bytes (asserted above).
unsafe impl Abi for UnitEntry {}

/// One tensor of a unit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TensorEntry {
    /// Absolute offset of the tensor's data in the GGUF file (what `memory64_read` takes).
    pub file_offset: u64,
    /// Bytes of tensor data.
    pub bytes: u64,
    /// Offset of the tensor inside its unit's resident payload.
    pub unit_offset: u64,
    /// ggml type id (`GGML_TYPE_*`).
    pub ggml_type: u32,
    /// Number of dimensions used in `ne`.
    pub n_dims: u32,
    /// ggml `ne[0..4]` (ne[0] is the contiguous dimension).
    pub ne: [u64; 4],
}
const _: () = assert!(core::mem::size_of::<TensorEntry>() == 64);
// SAFETY: padding-free integers/floats, 64 bytes (asserted above).
unsafe impl Abi for TensorEntry {}

/// Alignment of tensors inside a unit payload (and of slots in the arena).
pub const PAYLOAD_ALIGN: u64 = 64;

/// Streaming 64-bit checksum of a byte string ("chord64"): 8-byte little-endian words folded with
/// a multiply-rotate step; the tail is zero-padded and the length mixed in at the end. Not
/// cryptographic: it proves that two sides saw the same bytes. Feeding the bytes in any split
/// gives the same result as one [`chord64`] call.
#[derive(Clone, Copy, Debug)]
pub struct Chord64 {
    h: u64,
    pending: [u8; 8],
    n_pending: usize,
    len: u64,
}

const CHORD_K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Default for Chord64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Chord64 {
    /// A fresh hasher.
    pub const fn new() -> Self {
        Self { h: 0xC0DE_C0DE_0000_0000 ^ CHORD_K, pending: [0; 8], n_pending: 0, len: 0 }
    }

    #[inline(always)]
    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(CHORD_K).rotate_left(29);
    }

    /// Feeds more bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.n_pending > 0 {
            let take = (8 - self.n_pending).min(bytes.len());
            self.pending[self.n_pending..self.n_pending + take].copy_from_slice(&bytes[..take]);
            self.n_pending += take;
            bytes = &bytes[take..];
            if self.n_pending < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pending));
            self.n_pending = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.n_pending = rest.len();
    }

    /// The checksum of everything fed so far.
    pub fn finish(mut self) -> u64 {
        if self.n_pending > 0 {
            let mut tail = [0u8; 8];
            tail[..self.n_pending].copy_from_slice(&self.pending[..self.n_pending]);
            self.word(u64::from_le_bytes(tail));
        }
        finish(self.h ^ self.len)
    }
}

/// One-shot [`Chord64`].
pub fn chord64(bytes: &[u8]) -> u64 {
    let mut c = Chord64::new();
    c.update(bytes);
    c.finish()
}

/// Combines the running checksum of a unit with the checksum of its next tensor.
pub fn chord64_combine(acc: u64, tensor_hash: u64) -> u64 {
    finish(acc.rotate_left(17) ^ tensor_hash.wrapping_mul(0xFF51_AFD7_ED55_8CCD))
}

fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_structs_encode_as_little_endian_fields_and_read_back() {
        let g = LayerGrant { ptr: 1, len: 2, slot: 3, hit: 0x0403_0201 };
        assert_eq!(g.as_bytes(), [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 4]);
        let s = BridgeStats { reads: 1, read_bytes: 2, layer_requests: 3, layer_loads: 4, layer_bytes: 5, errors: 6, enabled: 7, regions: 8 };
        let b = s.as_bytes();
        assert_eq!((b[0], b[40], b[48], b[52]), (1, 6, 7, 8));
        // Unaligned reads, and reads that do not fit.
        let mut buf = [0u8; 60];
        buf[3..59].copy_from_slice(b);
        assert_eq!(BridgeStats::read_from(&buf, 3), Some(s));
        assert_eq!(BridgeStats::read_from(&buf, 5), None);
        assert_eq!(LayerGrant::read_from(&buf, usize::MAX), None);
    }

    #[test]
    fn every_status_has_a_name_and_a_sentence() {
        for st in 0..=13 {
            let (name, sentence) = status::describe(-st);
            assert!(name.starts_with("ERR_") || st == 0, "status {}", -st);
            assert!(sentence.len() > 10 || st == 0);
        }
        assert_eq!(status::describe(-99).0, "unknown");
    }

    #[test]
    fn chord64_streaming_matches_one_shot() {
        let data: [u8; 37] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let whole = chord64(&data);
        for split in 0..data.len() {
            let mut c = Chord64::new();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.finish(), whole, "split at {split}");
        }
        assert_ne!(chord64(&data[..36]), whole);
        assert_ne!(chord64(&[]), chord64(&[0]));
    }
}
