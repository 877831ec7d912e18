//! What a loaded model reports about itself: `ModelInfo`, `LayerInfo`, `MemoryStats`.

use crate::gguf::GgufFile;
use crate::memory64::RegionStats;
use wasm_chord_abi::BridgeStats;

/// Memory mode chosen at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Every tensor copied into guest memory at load.
    Whole,
    /// Weights in Memory64 regions; layers paged into the guest's layer cache.
    Memory64,
}

impl MemoryMode {
    /// `"whole"` / `"memory64"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryMode::Whole => "whole",
            MemoryMode::Memory64 => "memory64",
        }
    }
}

/// Count and bytes of the tensors of one ggml type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeCount {
    /// ggml type name.
    pub ggml_type: String,
    /// Tensors.
    pub count: u32,
    /// Bytes.
    pub bytes: u64,
}

/// Facts about a loaded model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`.
    pub name: Option<String>,
    /// File path.
    pub path: String,
    /// File size.
    pub file_size: u64,
    /// GGUF version.
    pub gguf_version: u32,
    /// Sum of tensor data bytes.
    pub tensor_bytes: u64,
    /// Number of tensors.
    pub tensor_count: u32,
    /// Transformer layers (`blk.N`).
    pub layer_count: u32,
    /// `{arch}.context_length`.
    pub context_length: Option<u64>,
    /// `{arch}.embedding_length`.
    pub embedding_length: Option<u64>,
    /// `{arch}.attention.head_count`.
    pub head_count: Option<u64>,
    /// `{arch}.attention.head_count_kv`.
    pub head_count_kv: Option<u64>,
    /// Vocabulary size (`tokenizer.ggml.tokens` length, else `{arch}.vocab_size`).
    pub vocab_size: Option<u64>,
    /// `general.file_type`.
    pub file_type: Option<u64>,
    /// llama.cpp's name of the file type (`Q4_K_M`, …).
    pub file_type_name: Option<&'static str>,
    /// Tensor type histogram.
    pub tensor_types: Vec<TypeCount>,
    /// Memory mode chosen.
    pub mode: MemoryMode,
    /// Threshold used by `memory64: 'auto'`.
    pub memory64_threshold: u64,
}

/// One layer as the API shows it.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// Layer number.
    pub index: u32,
    /// Payload bytes (tensors + alignment padding) as held in a cache slot.
    pub bytes: u64,
    /// Tensors: (name, ggml type name, shape).
    pub tensors: Vec<(String, &'static str, Vec<u64>)>,
    /// Whether the layer is in guest memory now (always true in WHOLE mode).
    pub resident: bool,
}

/// Memory accounting.
#[derive(Clone, Debug)]
pub struct MemoryStats {
    /// Memory mode.
    pub mode: MemoryMode,
    /// Guest linear memory size.
    pub guest_memory_bytes: u64,
    /// Layer cache arena in the guest (Memory64 mode).
    pub cache_arena_bytes: u64,
    /// Bytes of resident weights in guest memory.
    pub resident_weight_bytes: u64,
    /// Host bytes holding the KV caches of chat sessions that are not in the guest right now.
    pub session_cache_bytes: u64,
    /// Memory64 regions.
    pub regions: Vec<RegionStats>,
    /// Sum of region sizes (virtual; file-backed).
    pub region_bytes: u64,
    /// Bridge counters.
    pub bridge: BridgeStats,
    /// Resident set size of this process (Linux `/proc/self/statm`), if known.
    pub rss_bytes: Option<u64>,
}

/// llama.cpp's `llama_ftype` names.
pub fn file_type_name(ft: u64) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// Tensor type histogram, sorted by bytes (largest first).
pub fn type_histogram(gguf: &GgufFile) -> Vec<TypeCount> {
    let mut out: Vec<TypeCount> = Vec::new();
    for t in &gguf.tensors {
        match out.iter_mut().find(|c| c.ggml_type == t.ggml_type.name()) {
            Some(c) => {
                c.count += 1;
                c.bytes += t.bytes;
            }
            None => out.push(TypeCount { ggml_type: t.ggml_type.name().to_string(), count: 1, bytes: t.bytes }),
        }
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    out
}

/// Resident set size of this process.
pub fn current_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
