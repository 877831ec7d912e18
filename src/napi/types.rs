//! Plain JS objects returned by the API (become TypeScript interfaces).

use napi_derive::napi;

use crate::memory64::{CacheStats as CoreCacheStats, RegionStats as CoreRegionStats};
use crate::model::{LayerInfo as CoreLayerInfo, MemoryStats as CoreMemoryStats, ModelInfo as CoreModelInfo};

/// Count and bytes of the tensors of one ggml type.
#[napi(object)]
#[derive(Clone)]
pub struct TensorTypeCount {
    /// ggml type name, e.g. `Q4_K`.
    pub r#type: String,
    /// Number of tensors.
    pub count: u32,
    /// Bytes of tensor data.
    pub bytes: f64,
}

/// Facts about a loaded model (`model.info`).
#[napi(object)]
#[derive(Clone)]
pub struct ModelInfo {
    /// `general.architecture` (e.g. `llama`, `qwen2`, `gemma3`).
    pub architecture: String,
    /// `general.name`, if present.
    pub name: Option<String>,
    /// Path the model was loaded from.
    pub path: String,
    /// File size in bytes.
    pub file_size: f64,
    /// GGUF version (2 or 3).
    pub gguf_version: u32,
    /// Sum of tensor data bytes.
    pub tensor_bytes: f64,
    /// Number of tensors.
    pub tensor_count: u32,
    /// Number of transformer layers (`blk.N.*`).
    pub layer_count: u32,
    /// Training context length (`{arch}.context_length`), what the model was trained for.
    pub context_length: Option<f64>,
    /// KV cache positions allocated at load (the `contextLength` load option; default the
    /// training context capped at 4096): the most tokens prompt + reply can hold.
    pub context_size: u32,
    /// Embedding width (`{arch}.embedding_length`).
    pub embedding_length: Option<f64>,
    /// Attention heads.
    pub head_count: Option<f64>,
    /// Key/value heads (GQA).
    pub head_count_kv: Option<f64>,
    /// Vocabulary size.
    pub vocab_size: Option<f64>,
    /// `general.file_type` (llama.cpp `llama_ftype`).
    pub file_type: Option<f64>,
    /// Name of the file type, e.g. `Q4_K_M`.
    pub file_type_name: Option<String>,
    /// Tensor type histogram, largest first.
    pub tensor_types: Vec<TensorTypeCount>,
    /// Memory mode chosen at load: `'whole'` or `'memory64'`.
    #[napi(ts_type = "'whole' | 'memory64'")]
    pub mode: String,
    /// Threshold (bytes) used by `memory64: 'auto'`.
    pub memory64_threshold: f64,
    /// Milliseconds from the `Model.load` call until the model was ready (parsing, copying or
    /// mapping, the guest, the tokenizer).
    pub load_ms: f64,
}

impl ModelInfo {
    pub fn from_core(i: &CoreModelInfo, context_size: u32, load_ms: f64) -> Self {
        let f = |v: Option<u64>| v.map(|x| x as f64);
        Self {
            architecture: i.architecture.clone(),
            name: i.name.clone(),
            path: i.path.clone(),
            file_size: i.file_size as f64,
            gguf_version: i.gguf_version,
            tensor_bytes: i.tensor_bytes as f64,
            tensor_count: i.tensor_count,
            layer_count: i.layer_count,
            context_length: f(i.context_length),
            context_size,
            embedding_length: f(i.embedding_length),
            head_count: f(i.head_count),
            head_count_kv: f(i.head_count_kv),
            vocab_size: f(i.vocab_size),
            file_type: f(i.file_type),
            file_type_name: i.file_type_name.map(str::to_string),
            tensor_types: i.tensor_types.iter().map(|t| TensorTypeCount { r#type: t.ggml_type.clone(), count: t.count, bytes: t.bytes as f64 }).collect(),
            mode: i.mode.as_str().to_string(),
            memory64_threshold: i.memory64_threshold as f64,
            load_ms,
        }
    }
}

/// One tensor of a layer.
#[napi(object)]
pub struct TensorSummary {
    /// Name, verbatim from the file.
    pub name: String,
    /// ggml type name.
    pub r#type: String,
    /// ggml `ne` (ne[0] is the contiguous dimension).
    pub shape: Vec<f64>,
}

/// A layer (`model.getLayer(i)`).
#[napi(object)]
pub struct LayerInfo {
    /// Layer number.
    pub index: u32,
    /// Bytes the layer occupies in a cache slot (tensors + alignment padding).
    pub bytes: f64,
    /// Its tensors.
    pub tensors: Vec<TensorSummary>,
    /// Whether the layer is in guest memory now (always true in WHOLE mode).
    pub resident: bool,
}

impl From<CoreLayerInfo> for LayerInfo {
    fn from(l: CoreLayerInfo) -> Self {
        Self {
            index: l.index,
            bytes: l.bytes as f64,
            tensors: l.tensors.into_iter().map(|(name, t, shape)| TensorSummary { name, r#type: t.to_string(), shape: shape.into_iter().map(|d| d as f64).collect() }).collect(),
            resident: l.resident,
        }
    }
}

/// Layer cache statistics (`model.cacheStats()`).
#[napi(object)]
pub struct CacheStats {
    /// Memory mode; in `'whole'` mode every layer is resident and the counters stay 0.
    #[napi(ts_type = "'whole' | 'memory64'")]
    pub mode: String,
    /// Eviction policy (`'lru'`), or `'none'` in WHOLE mode.
    #[napi(ts_type = "'lru' | 'none'")]
    pub policy: String,
    /// Cache slots (layers).
    pub capacity_layers: u32,
    /// Bytes per slot.
    pub slot_bytes: f64,
    /// Accesses that found the layer resident.
    pub hits: f64,
    /// Accesses that loaded the layer.
    pub misses: f64,
    /// hits / (hits + misses); 0 before any access.
    pub hit_rate: f64,
    /// Layers evicted.
    pub evictions: f64,
    /// Layer loads (misses + preloads).
    pub loads: f64,
    /// Bytes copied into slots.
    pub bytes_loaded: f64,
    /// Accesses per layer.
    pub layer_accesses: Vec<f64>,
    /// Resident layers, most recently used first.
    pub resident: Vec<u32>,
}

impl CacheStats {
    pub fn from_core(s: Option<CoreCacheStats>, n_layers: u32) -> Self {
        match s {
            Some(s) => Self {
                mode: "memory64".into(),
                policy: s.policy.into(),
                capacity_layers: s.capacity_layers,
                slot_bytes: s.slot_bytes as f64,
                hits: s.hits as f64,
                misses: s.misses as f64,
                hit_rate: s.hit_rate(),
                evictions: s.evictions as f64,
                loads: s.loads as f64,
                bytes_loaded: s.bytes_loaded as f64,
                layer_accesses: s.layer_accesses.iter().map(|&x| x as f64).collect(),
                resident: s.resident,
            },
            None => Self {
                mode: "whole".into(),
                policy: "none".into(),
                capacity_layers: n_layers,
                slot_bytes: 0.0,
                hits: 0.0,
                misses: 0.0,
                hit_rate: 0.0,
                evictions: 0.0,
                loads: 0.0,
                bytes_loaded: 0.0,
                layer_accesses: vec![0.0; n_layers as usize],
                resident: (0..n_layers).collect(),
            },
        }
    }
}

/// One Memory64 region.
#[napi(object)]
pub struct RegionStats {
    /// Region name (`embeddings`, `layers_0_15`, `output`, …).
    pub name: String,
    /// Bytes of model data in the region.
    pub size: f64,
    /// Size of the Wasmtime 64-bit memory (whole 64 KiB pages).
    pub memory_bytes: f64,
    /// File offset of the region's first byte.
    pub file_offset: Option<f64>,
    /// Reads served.
    pub reads: f64,
    /// Bytes read.
    pub bytes_read: f64,
    /// Failed reads.
    pub errors: f64,
}

impl From<CoreRegionStats> for RegionStats {
    fn from(r: CoreRegionStats) -> Self {
        Self {
            name: r.name,
            size: r.size as f64,
            memory_bytes: r.memory_bytes as f64,
            file_offset: r.file_offset.map(|x| x as f64),
            reads: r.reads as f64,
            bytes_read: r.bytes_read as f64,
            errors: r.errors as f64,
        }
    }
}

/// Host-import bridge counters.
#[napi(object)]
pub struct BridgeStats {
    /// Whether Memory64 is enabled.
    pub enabled: bool,
    /// `memory64_read` calls served.
    pub reads: f64,
    /// Bytes copied by `memory64_read`.
    pub read_bytes: f64,
    /// `memory64_load_layer` calls.
    pub layer_requests: f64,
    /// Layer loads that copied bytes.
    pub layer_loads: f64,
    /// Bytes copied by layer loads.
    pub layer_bytes: f64,
    /// Calls rejected with an error status.
    pub errors: f64,
}

/// Memory accounting (`model.memoryStats()`).
#[napi(object)]
pub struct MemoryStats {
    /// `'whole'` or `'memory64'`.
    #[napi(ts_type = "'whole' | 'memory64'")]
    pub mode: String,
    /// Size of the guest's wasm32 linear memory.
    pub guest_memory_bytes: f64,
    /// Bytes of the layer cache arena in guest memory (Memory64 mode).
    pub cache_arena_bytes: f64,
    /// Bytes of weights resident in guest memory now.
    pub resident_weight_bytes: f64,
    /// Host bytes holding the KV caches of chat sessions that are not in the guest right now
    /// (each session's cache goes there while another session or a plain generation runs).
    pub session_cache_bytes: f64,
    /// Sum of Memory64 region sizes (file-backed: address space, not RSS).
    pub region_bytes: f64,
    /// The regions.
    pub regions: Vec<RegionStats>,
    /// Bridge counters.
    pub bridge: BridgeStats,
    /// Resident set size of the process, if known.
    pub rss_bytes: Option<f64>,
    /// Bytes this model had reported to V8 as external memory (`napi_adjust_external_memory`)
    /// when `memoryStats()` was called, so that the garbage collector weighs an undisposed model
    /// by what it holds: its guest memory, about twice the file's header (metadata and
    /// vocabulary), and `sessionCacheBytes` as of the last generation or session `dispose()`.
    /// 0 after `dispose()`.
    pub external_bytes: f64,
}

impl From<CoreMemoryStats> for MemoryStats {
    fn from(m: CoreMemoryStats) -> Self {
        let b = m.bridge;
        Self {
            mode: m.mode.as_str().into(),
            guest_memory_bytes: m.guest_memory_bytes as f64,
            cache_arena_bytes: m.cache_arena_bytes as f64,
            resident_weight_bytes: m.resident_weight_bytes as f64,
            session_cache_bytes: m.session_cache_bytes as f64,
            region_bytes: m.region_bytes as f64,
            regions: m.regions.into_iter().map(Into::into).collect(),
            bridge: BridgeStats {
                enabled: b.enabled == 1,
                reads: b.reads as f64,
                read_bytes: b.read_bytes as f64,
                layer_requests: b.layer_requests as f64,
                layer_loads: b.layer_loads as f64,
                layer_bytes: b.layer_bytes as f64,
                errors: b.errors as f64,
            },
            rss_bytes: m.rss_bytes.map(|x| x as f64),
            external_bytes: 0.0,
        }
    }
}

/// A checksum of one unit's tensor bytes (`model.verifyLayer(i)`).
#[napi(object)]
pub struct UnitChecksum {
    /// Unit index (layers first, then non-layer tensors).
    pub unit: u32,
    /// Unit name (`blk.3`, `token_embd.weight`, …).
    pub name: String,
    /// chord64 of the bytes as the guest saw them, hex.
    pub guest: String,
    /// chord64 of the same bytes read from the file by the host, hex.
    pub file: String,
    /// Bytes hashed.
    pub bytes: f64,
    /// Whether both agree.
    pub ok: bool,
}

/// Result of `model.acquireLayer(i)`.
#[napi(object)]
pub struct LayerAccess {
    /// Layer number.
    pub index: u32,
    /// Whether the layer was already resident (always true in WHOLE mode).
    pub hit: bool,
    /// Microseconds the guest's acquisition took (including any copy through the bridge).
    pub micros: f64,
}
