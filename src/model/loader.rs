//! `Memory64GGUFLoader`: parse the GGUF header, plan memory (WHOLE or MEMORY64 by threshold),
//! create the regions or copy the weights, instantiate the guest and hand it its directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use wasm_chord_abi::{Abi, DIR_MAGIC, DIR_VERSION, DirHeader, PAYLOAD_ALIGN, TensorEntry, UnitEntry, unit_kind};

use super::info::{MemoryMode, ModelInfo, file_type_name, type_histogram};
use super::model::Memory64Model;
use super::units::{UnitKind, UnitTable};
use crate::error::{ChordError, ErrorCode as E, Result, fail};
use crate::gguf::{GgufFile, GgufValue, ModelFile, ReaderLimits, read_gguf_file};
use crate::host::{Bridge, Guest, HostState, LayerCopyPlan};
use crate::infer::{ArchConfig, model_tokenizer, resolve};
use crate::memory64::{CacheConfig, Memory64LayerManager, Memory64Runtime, MemoryLayout, SlotPlan};

/// Default `memory64Threshold`: tensor data above 3 GiB goes to Memory64 under `'auto'`.
pub const DEFAULT_MEMORY64_THRESHOLD: u64 = 3 << 30;

/// Bytes of guest memory WHOLE mode may fill with weights (the wasm32 address space less room
/// for the guest's own code, stack and working buffers).
pub const WASM32_WEIGHT_BUDGET: u64 = (4 << 30) - (256 << 20);

/// Largest run of layer tensors the loader puts in one Memory64 region.
pub const REGION_SPLIT_BYTES: u64 = 1 << 30;

/// `memory64` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memory64Option {
    /// Memory64 when tensor bytes exceed the threshold or cannot fit a wasm32 guest (default).
    #[default]
    Auto,
    /// Always Memory64.
    Always,
    /// Never (WHOLE mode); fails early when the model cannot fit a wasm32 memory.
    Never,
}

/// Load options (the JS names in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// `memory64` (default `Auto`).
    pub memory64: Memory64Option,
    /// `memory64Threshold` in bytes (default 3 GiB).
    pub memory64_threshold: u64,
    /// `cacheLayers` / `cacheBytes` (default 4 layers).
    pub cache: CacheConfig,
    /// `contextLength`: KV cache positions (default: the model's, capped at 4096).
    pub context_length: Option<u32>,
    /// `referenceThreads`: the llama.cpp thread count whose attention split is mirrored
    /// (default [`default_reference_threads`](crate::infer::arch::default_reference_threads)).
    pub reference_threads: Option<u32>,
    /// `threads`: threads the guest's matrix products are split over (default
    /// [`default_threads`]). Results are bit-identical at every count.
    pub threads: Option<u32>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { memory64: Memory64Option::Auto, memory64_threshold: DEFAULT_MEMORY64_THRESHOLD, cache: CacheConfig::default(), context_length: None, reference_threads: None, threads: None }
    }
}

/// The default `threads`: the machine's available parallelism (logical CPUs this process may
/// run on).
pub fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The memory plan of a model.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Mode chosen.
    pub mode: MemoryMode,
    /// Why, in words (for `wasm-chord info`).
    pub reason: String,
    /// Regions and the file offset of each (Memory64 mode).
    pub regions: Option<(MemoryLayout, Vec<u64>)>,
    /// Layer cache slots (Memory64 mode).
    pub slots: Option<SlotPlan>,
    /// Bytes of weights copied into the guest (WHOLE mode: all payloads).
    pub resident_bytes: u64,
}

/// Loads GGUF models into a guest (see the module docs).
#[derive(Clone, Debug)]
pub struct Memory64GGUFLoader {
    path: PathBuf,
    options: LoadOptions,
}

/// Progress and cancellation hooks for a load.
pub struct LoadHooks<'a> {
    /// Called with the fraction done, 0..=1.
    pub progress: &'a dyn Fn(f64),
    /// Polled between steps; `true` aborts the load with `ERR_ABORTED`.
    pub aborted: &'a dyn Fn() -> bool,
}

impl Default for LoadHooks<'_> {
    fn default() -> Self {
        Self { progress: &|_| {}, aborted: &|| false }
    }
}

impl Memory64GGUFLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl AsRef<Path>, options: LoadOptions) -> Self {
        Self { path: path.as_ref().to_path_buf(), options }
    }

    /// Parses the header and plans memory without loading anything.
    pub fn plan(&self) -> Result<(GgufFile, UnitTable, MemoryPlan)> {
        self.plan_file(&ModelFile::open(&self.path)?)
    }

    fn plan_file(&self, file: &ModelFile) -> Result<(GgufFile, UnitTable, MemoryPlan)> {
        let gguf = read_gguf_file(file, ReaderLimits::default())?;
        let units = UnitTable::new(&gguf)?;
        let plan = plan_memory(&gguf, &units, &self.options)?;
        Ok((gguf, units, plan))
    }

    /// Loads the model.
    pub fn load(&self) -> Result<Memory64Model> {
        self.load_with(&LoadHooks::default())
    }

    /// Loads the model, reporting progress and polling for abort.
    pub fn load_with(&self, hooks: &LoadHooks<'_>) -> Result<Memory64Model> {
        let started = Instant::now();
        let check_abort = || if (hooks.aborted)() { fail(E::Aborted, "model load aborted") } else { Ok(()) };
        check_abort()?;
        let file = Arc::new(ModelFile::open(&self.path)?);
        let (gguf, units, plan) = self.plan_file(&file)?;
        // Semantic defects fail here, before any tensor byte is read.
        let mut arch = resolve(&gguf, &units, self.options.context_length)?;
        if let Some(t) = self.options.reference_threads {
            arch.cfg.ref_threads = t.max(1);
        }
        let tokenizer = model_tokenizer(&gguf, arch.cfg.n_vocab)?;
        (hooks.progress)(0.0);
        let threads = self.options.threads.unwrap_or_else(default_threads).max(1);
        let mut guest = Guest::new(HostState::new(None), threads as usize)?;
        let mut resident_ptrs = vec![0u32; units.units.len()];
        match &plan.regions {
            None => copy_whole(&file, &gguf, &units, &mut guest, &mut resident_ptrs, hooks)?,
            Some((layout, offsets)) => {
                let slots = plan.slots.unwrap_or(SlotPlan { n_slots: 0, slot_bytes: 0 });
                let arena = if slots.n_slots > 0 { guest.alloc(slots.arena_bytes(), PAYLOAD_ALIGN as u32)? } else { 0 };
                let runtime = Memory64Runtime::map_file(file.clone(), layout, offsets)?;
                let bridge = bridge_for(&gguf, &units, runtime, Memory64LayerManager::new(units.layer_bytes(), slots, arena));
                guest.memory_and_state().1.set_bridge(bridge);
            }
        }
        check_abort()?;
        guest.init(&directory_bytes(&gguf, &units, plan.mode, &resident_ptrs))?;
        let arch = self.init_inference(arch, &mut guest)?;
        (hooks.progress)(1.0);
        let info = model_info(&self.path, &gguf, &units, &plan, self.options.memory64_threshold);
        Ok(Memory64Model::new(file, gguf, units, plan, guest, info, started, arch, tokenizer))
    }

    /// Sizes the guest's KV cache for the configuration resolved by [`resolve`] (which validated
    /// the file against its architecture's descriptor). A `contextLength` that cannot fit is a
    /// load error; the default context is halved until it fits.
    fn init_inference(&self, mut arch: ArchConfig, guest: &mut Guest) -> Result<ArchConfig> {
        loop {
            match guest.model_init(&arch.to_bytes(), arch.cfg.n_batch, arch.cfg.n_vocab) {
                Ok(()) => return Ok(arch),
                Err(e) if e.code == E::ModelTooLargeForWasm32 => {
                    let n_ctx = arch.cfg.n_ctx;
                    if self.options.context_length.is_some() || n_ctx <= 256 {
                        let why = match self.options.context_length {
                            Some(c) => format!("contextLength = {c}"),
                            None => format!("contextLength was not given; the default (the model's context, capped at {}) was halved down to {n_ctx}", crate::infer::arch::DEFAULT_CONTEXT_CAP),
                        };
                        return fail(
                            E::ContextTooLarge,
                            format!("a context of {n_ctx} positions needs a {} MiB KV cache, which does not fit the wasm32 guest beside {} MiB of weights/cache ({why})", arch.kv_bytes(n_ctx) >> 20, guest.memory_bytes() >> 20),
                        );
                    }
                    arch.cfg.n_ctx = n_ctx / 2;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Bytes read from the file between two polls of the abort hook (~10 ms at page-cache speed).
const LOAD_CHUNK: usize = 64 << 20;

/// WHOLE mode: every tensor is read from the file straight into guest memory, in chunks between
/// which the abort hook is polled.
fn copy_whole(file: &ModelFile, gguf: &GgufFile, units: &UnitTable, guest: &mut Guest, ptrs: &mut [u32], hooks: &LoadHooks<'_>) -> Result<()> {
    let total = units.units.iter().map(|u| u.tensor_bytes).sum::<u64>().max(1);
    let mut done = 0u64;
    for (ui, u) in units.units.iter().enumerate() {
        let base = guest.alloc(u.payload_bytes.max(1), PAYLOAD_ALIGN as u32)?;
        ptrs[ui] = base;
        for (&t, &off) in u.tensors.iter().zip(&u.payload_offsets) {
            let ti = &gguf.tensors[t];
            let (data, _) = guest.memory_and_state();
            let start = base as usize + off as usize;
            let dst = data.get_mut(start..start + ti.bytes as usize).ok_or_else(|| ChordError::new(E::Internal, "tensor outside guest memory"))?;
            for (i, chunk) in dst.chunks_mut(LOAD_CHUNK).enumerate() {
                if (hooks.aborted)() {
                    return fail(E::Aborted, "model load aborted");
                }
                file.read_exact_at(chunk, ti.file_offset + (i * LOAD_CHUNK) as u64, &|| format!("tensor {:?}", ti.name))?;
                done += chunk.len() as u64;
                (hooks.progress)(done as f64 / total as f64 * 0.99);
            }
        }
    }
    Ok(())
}

/// The Memory64 bridge of a model: the copy plan of each layer (file offset, bytes, payload
/// offset of each tensor) and the file ranges `memory64_read` may serve (the non-layer tensors).
pub fn bridge_for(gguf: &GgufFile, units: &UnitTable, runtime: Memory64Runtime, manager: Memory64LayerManager) -> Bridge {
    let layers = units
        .layers()
        .iter()
        .map(|u| LayerCopyPlan {
            tensors: u.tensors.iter().zip(&u.payload_offsets).map(|(&t, &o)| (gguf.tensors[t].file_offset, gguf.tensors[t].bytes, o)).collect(),
        })
        .collect();
    let mut granted: Vec<std::ops::Range<u64>> = units.units[units.n_layers as usize..]
        .iter()
        .flat_map(|u| u.tensors.iter().map(|&t| gguf.tensors[t].file_offset..gguf.tensors[t].file_offset + gguf.tensors[t].bytes))
        .collect();
    granted.sort_by_key(|r| r.start);
    Bridge::new(runtime, manager, layers, granted)
}

/// Chooses WHOLE or MEMORY64 and sizes regions and cache.
pub fn plan_memory(gguf: &GgufFile, units: &UnitTable, o: &LoadOptions) -> Result<MemoryPlan> {
    let tensor_bytes = gguf.tensor_bytes();
    let payload: u64 = units.units.iter().map(|u| u.payload_bytes).sum();
    let (mode, reason) = match o.memory64 {
        Memory64Option::Always => (MemoryMode::Memory64, "memory64: 'always'".to_string()),
        Memory64Option::Never => (MemoryMode::Whole, "memory64: 'never'".to_string()),
        Memory64Option::Auto if tensor_bytes > o.memory64_threshold => {
            (MemoryMode::Memory64, format!("auto: tensor data {tensor_bytes} B > threshold {} B", o.memory64_threshold))
        }
        Memory64Option::Auto if payload > WASM32_WEIGHT_BUDGET => {
            (MemoryMode::Memory64, format!("auto: tensor payload {payload} B does not fit the {WASM32_WEIGHT_BUDGET} B a wasm32 guest can hold"))
        }
        Memory64Option::Auto => (MemoryMode::Whole, format!("auto: tensor data {tensor_bytes} B <= threshold {} B", o.memory64_threshold)),
    };
    if mode == MemoryMode::Whole {
        if payload > WASM32_WEIGHT_BUDGET {
            return fail(
                E::ModelTooLargeForWasm32,
                format!(
                    "the model's tensors need {payload} bytes of guest memory, more than the {WASM32_WEIGHT_BUDGET} bytes a wasm32 guest can give them ({reason}). Load it with memory64: 'auto' or 'always' to keep the weights in Memory64 regions"
                ),
            );
        }
        return Ok(MemoryPlan { mode, reason, regions: None, slots: None, resident_bytes: payload });
    }
    let layer_bytes = units.layer_bytes();
    let slots = if layer_bytes.is_empty() { None } else { Some(fit_slots(Memory64LayerManager::plan(&layer_bytes, o.cache)?, o.cache)?) };
    let regions = plan_regions(gguf, units)?;
    Ok(MemoryPlan { mode, reason, regions: Some(regions), slots, resident_bytes: slots.map_or(0, |s| s.arena_bytes()) })
}

/// The layer cache within what the wasm32 guest can give it ([`WASM32_WEIGHT_BUDGET`]): the
/// default shrinks to the slots that fit, down to one; a `cacheLayers`/`cacheBytes` the caller
/// passed that cannot fit is an error naming it.
fn fit_slots(mut s: SlotPlan, cache: CacheConfig) -> Result<SlotPlan> {
    let fit = WASM32_WEIGHT_BUDGET / s.slot_bytes.max(1);
    if fit == 0 {
        return fail(
            E::ModelTooLargeForWasm32,
            format!("the largest layer needs a {}-byte cache slot, more than the {WASM32_WEIGHT_BUDGET} bytes a wasm32 guest can give its layer cache", s.slot_bytes),
        );
    }
    if u64::from(s.n_slots) <= fit {
        return Ok(s);
    }
    let passed: Vec<String> = [cache.layers.map(|l| format!("cacheLayers = {l}")), cache.bytes.map(|b| format!("cacheBytes = {b}"))].into_iter().flatten().collect();
    if passed.is_empty() {
        s.n_slots = fit as u32;
        return Ok(s);
    }
    fail(
        E::InvalidOption,
        format!(
            "{} asks for {} cache slots of {} bytes ({} bytes), more than the {WASM32_WEIGHT_BUDGET} bytes a wasm32 guest can give its layer cache: at most {fit} slots fit",
            passed.join(" and "),
            s.n_slots,
            s.slot_bytes,
            s.arena_bytes()
        ),
    )
}

/// Splits the tensor data into named regions: maximal runs of tensors (in file order) of one
/// kind — `embeddings` (token embeddings), `layers_A_B` (layer tensors; A..B the layers in the
/// run), `output` (output head and norm), `globals` (anything else) — and runs of layers longer
/// than [`REGION_SPLIT_BYTES`] are cut at tensor boundaries. Each region spans from its first
/// tensor's data to its last's.
pub fn plan_regions(gguf: &GgufFile, _units: &UnitTable) -> Result<(MemoryLayout, Vec<u64>)> {
    let mut order: Vec<usize> = (0..gguf.tensors.len()).filter(|&i| gguf.tensors[i].bytes > 0).collect();
    order.sort_by_key(|&i| gguf.tensors[i].file_offset);
    let kind = |name: &str| match super::units::layer_of(name) {
        Some(_) => "layers",
        None if name.starts_with("token_embd") => "embeddings",
        None if name.starts_with("output") => "output",
        None => "globals",
    };
    // (kind, start, end, min layer, max layer)
    let mut runs: Vec<(&str, u64, u64, u32, u32)> = Vec::new();
    for i in order {
        let t = &gguf.tensors[i];
        let k = kind(&t.name);
        let l = super::units::layer_of(&t.name).unwrap_or(0);
        let end = t.file_offset + t.bytes;
        match runs.last_mut() {
            Some(r) if r.0 == k && (k != "layers" || end - r.1 <= REGION_SPLIT_BYTES) => {
                r.2 = end;
                r.3 = r.3.min(l);
                r.4 = r.4.max(l);
            }
            _ => runs.push((k, t.file_offset, end, l, l)),
        }
    }
    if runs.is_empty() {
        return fail(E::GgufBadMetadata, "the model has no tensor data to place in Memory64 regions");
    }
    let mut names: Vec<String> = Vec::with_capacity(runs.len());
    for r in &runs {
        let base = if r.0 == "layers" { format!("layers_{}_{}", r.3, r.4) } else { r.0.to_string() };
        let n = names.iter().filter(|x| **x == base || x.starts_with(&format!("{base}#"))).count();
        names.push(if n == 0 { base } else { format!("{base}#{}", n + 1) });
    }
    let specs: Vec<(&str, u64)> = names.iter().zip(&runs).map(|(n, r)| (n.as_str(), r.2 - r.1)).collect();
    Ok((MemoryLayout::multi(&specs)?, runs.iter().map(|r| r.1).collect()))
}

/// The directory the guest receives (format in `wasm_chord_abi`).
fn directory_bytes(gguf: &GgufFile, units: &UnitTable, mode: MemoryMode, resident: &[u32]) -> Vec<u8> {
    let n_tensors: usize = units.units.iter().map(|u| u.tensors.len()).sum();
    let header = DirHeader {
        magic: DIR_MAGIC,
        version: DIR_VERSION,
        n_units: units.units.len() as u32,
        n_tensors: n_tensors as u32,
        memory64: u32::from(mode == MemoryMode::Memory64),
        reserved: 0,
    };
    let mut out = header.as_bytes().to_vec();
    let mut first = 0u32;
    for (i, u) in units.units.iter().enumerate() {
        let (kind, layer) = match u.kind {
            UnitKind::Layer(l) => (unit_kind::LAYER, l),
            UnitKind::Tensor => (unit_kind::TENSOR, u32::MAX),
        };
        let e = UnitEntry { kind, layer, first_tensor: first, n_tensors: u.tensors.len() as u32, bytes: u.payload_bytes, resident_ptr: resident[i], reserved: 0 };
        out.extend_from_slice(e.as_bytes());
        first += u.tensors.len() as u32;
    }
    for u in &units.units {
        for (&t, &off) in u.tensors.iter().zip(&u.payload_offsets) {
            let ti = &gguf.tensors[t];
            let mut ne = [1u64; 4];
            ne[..ti.shape.len()].copy_from_slice(&ti.shape);
            let e = TensorEntry { file_offset: ti.file_offset, bytes: ti.bytes, unit_offset: off, ggml_type: ti.ggml_type.id(), n_dims: ti.shape.len() as u32, ne };
            out.extend_from_slice(e.as_bytes());
        }
    }
    out
}

fn model_info(path: &Path, gguf: &GgufFile, units: &UnitTable, plan: &MemoryPlan, threshold: u64) -> ModelInfo {
    let vocab = match gguf.get("tokenizer.ggml.tokens") {
        Some(GgufValue::Array(a)) => Some(a.len() as u64),
        _ => gguf.arch_u64("vocab_size"),
    };
    let file_type = gguf.get_u64("general.file_type");
    ModelInfo {
        architecture: gguf.architecture().unwrap_or("unknown").to_string(),
        name: gguf.get_str("general.name").map(str::to_string),
        path: path.display().to_string(),
        file_size: gguf.file_size,
        gguf_version: gguf.version,
        tensor_bytes: gguf.tensor_bytes(),
        tensor_count: gguf.tensors.len() as u32,
        layer_count: units.n_layers,
        context_length: gguf.arch_u64("context_length"),
        embedding_length: gguf.arch_u64("embedding_length"),
        head_count: gguf.arch_u64("attention.head_count"),
        head_count_kv: gguf.arch_u64("attention.head_count_kv"),
        vocab_size: vocab,
        file_type,
        file_type_name: file_type.and_then(file_type_name),
        tensor_types: type_histogram(gguf),
        mode: plan.mode,
        memory64_threshold: threshold,
    }
}
