//! The guest instance: one Store per model, the guest's exports as typed functions.

use std::sync::{Arc, OnceLock};

use wasm_chord_abi::{Abi, BridgeStats, Checksum, LayerGrant, ModelConfig, export, status};
use wasmtime::{Config, Engine, Instance, Linker, Memory, Module, OptLevel, Store, StoreLimitsBuilder, TypedFunc};

use super::imports::{HostState, add_to_linker, current_stats, guest_range};
use super::memory::{GroupCreator, MemoryGroup, with_group};
use super::workers::{Pool, WORKER_STACK_BYTES, Worker};
use crate::error::{ChordError, ErrorCode as E, Result, fail};

/// The guest, compiled for wasm32-unknown-unknown with +simd128,+relaxed-simd by build.rs.
static GUEST_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wasm_chord_guest.wasm"));

/// The embedded guest module's bytes (for tests that instantiate it directly).
pub fn guest_wasm() -> &'static [u8] {
    GUEST_WASM
}

/// Largest guest memory (the whole wasm32 address space).
pub const GUEST_MEMORY_LIMIT: u64 = 4 << 30;

/// The process-wide engine, the compiled guest and the linker holding the host-import table.
type Runtime = (Engine, Module, Linker<HostState>);

fn engine_and_module() -> Result<&'static Runtime> {
    static CELL: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut c = Config::new();
        // Cranelift's own optimizer is off: the guest is LLVM-optimized already, and with
        // `OptLevel::Speed` the x86 code of the K-quant loops loads a block's vectors up front and
        // spills them (measured 2026-12-01: Q4_K mat-vec 16.1 → 17.7–19.0 GB/s, Q6_K 16.9 →
        // 18.5–19.1; Qwen2.5-1.5B Q4_K_M decode +9 %, prompt +13 %; results bit-identical).
        c.wasm_simd(true).wasm_relaxed_simd(true).cranelift_opt_level(OptLevel::None);
        // Memories whose pages worker instances can map too (`memory.rs`).
        // (Copy-on-write images of the data segments work only with Wasmtime's own memories.)
        c.with_host_memory(Arc::new(GroupCreator)).memory_init_cow(false);
        if std::env::var_os("WASM_CHORD_PERFMAP").is_some() {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&c).map_err(|e| format!("guest engine: {e}"))?;
        let module = Module::new(&engine, GUEST_WASM).map_err(|e| format!("guest module: {e}"))?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).map_err(|e| format!("guest imports: {e}"))?;
        Ok((engine, module, linker))
    })
    .as_ref()
    .map_err(|e| ChordError::new(E::Internal, e.clone()))
}

/// The compiled guest module (compiled once per process).
pub fn guest_module() -> Result<&'static Module> {
    Ok(&engine_and_module()?.1)
}

/// Instantiates another wasm module against the same engine and host-import table, with its
/// exported `memory` registered as the guest memory. For testing the bridge with hostile guests.
pub fn instantiate_module(wasm: &[u8], state: HostState) -> Result<(Store<HostState>, Instance)> {
    let (engine, _, _) = engine_and_module()?;
    let module = Module::new(engine, wasm).map_err(|e| ChordError::new(E::Internal, format!("module: {e}")))?;
    let mut store = Store::new(engine, state);
    let (instance, _, _) = instantiate(&mut store, &module, None)?;
    Ok((store, instance))
}

/// Instantiates `module` in `store` with the host-import table and registers its exported
/// memory in the store's state. With `join`, the memory maps the pages of that group (a worker
/// instance); else it starts a group of its own, returned.
pub(super) fn instantiate(store: &mut Store<HostState>, module: &Module, join: Option<&Arc<MemoryGroup>>) -> Result<(Instance, Memory, Arc<MemoryGroup>)> {
    let (_, _, linker) = engine_and_module()?;
    let (instance, group) = with_group(join.cloned(), || linker.instantiate(&mut *store, module));
    let instance = instance.map_err(trap)?;
    let memory = instance.get_memory(&mut *store, export::MEMORY).ok_or_else(|| ChordError::new(E::Internal, "module exports no memory"))?;
    let group = group.ok_or_else(|| ChordError::new(E::Internal, "module defines no memory"))?;
    store.data_mut().memory = Some(memory);
    Ok((instance, memory, group))
}

/// A running guest.
pub struct Guest {
    store: Store<HostState>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<(i32, i32), i32>,
    init: TypedFunc<(i32, i32), i32>,
    unit_checksum: TypedFunc<(i32, i32), i32>,
    acquire_layer: TypedFunc<(i32, i32), i32>,
    bridge_stats: TypedFunc<i32, i32>,
    model_init: TypedFunc<(i32, i32), i32>,
    eval: TypedFunc<(i32, i32, i32, i32), i32>,
    logits: TypedFunc<(), i32>,
    scratch: u32,
    /// Guest buffer for token ids passed to `wc_eval` (n_batch u32), once the model is initialised.
    tokens_buf: u32,
    n_batch: u32,
    n_vocab: u32,
}

fn trap(e: wasmtime::Error) -> ChordError {
    ChordError::new(E::GuestTrap, format!("the guest trapped: {e:#}"))
}

impl Guest {
    /// Instantiates the guest with `state` (its `memory` field is filled in here), with
    /// `threads − 1` worker instances to split its matrix products over.
    pub fn new(mut state: HostState, threads: usize) -> Result<Self> {
        let (engine, module, _) = engine_and_module()?;
        state.limits = StoreLimitsBuilder::new().memory_size(GUEST_MEMORY_LIMIT as usize).build();
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        let (instance, memory, group) = instantiate(&mut store, module, None)?;
        // Workers are instantiated before the main instance runs anything: instantiation writes
        // the module's data segments into the memory they share.
        let mut workers = (1..threads).map(|_| Worker::new(module, &group)).collect::<Result<Vec<_>>>()?;
        let f = |store: &mut Store<HostState>, name: &str| {
            instance.get_typed_func(store, name).map_err(|e| ChordError::new(E::Internal, format!("guest export {name}: {e}")))
        };
        let alloc = f(&mut store, export::ALLOC)?;
        let init = f(&mut store, export::INIT)?;
        let unit_checksum = f(&mut store, export::UNIT_CHECKSUM)?;
        let acquire_layer = f(&mut store, export::ACQUIRE_LAYER)?;
        let bridge_stats = instance
            .get_typed_func(&mut store, export::BRIDGE_STATS)
            .map_err(|e| ChordError::new(E::Internal, format!("guest export {}: {e}", export::BRIDGE_STATS)))?;
        let model_init = f(&mut store, export::MODEL_INIT)?;
        let eval = instance
            .get_typed_func(&mut store, export::EVAL)
            .map_err(|e| ChordError::new(E::Internal, format!("guest export {}: {e}", export::EVAL)))?;
        let logits = instance
            .get_typed_func(&mut store, export::LOGITS)
            .map_err(|e| ChordError::new(E::Internal, format!("guest export {}: {e}", export::LOGITS)))?;
        let mut g = Self { store, instance, memory, alloc, init, unit_checksum, acquire_layer, bridge_stats, model_init, eval, logits, scratch: 0, tokens_buf: 0, n_batch: 0, n_vocab: 0 };
        g.scratch = g.alloc(256, 16)?;
        for w in &mut workers {
            let stack = g.alloc(WORKER_STACK_BYTES.into(), 16)?;
            w.set_stack(stack + WORKER_STACK_BYTES)?;
        }
        if !workers.is_empty() {
            g.store.data_mut().workers = Some(Pool::spawn(workers)?);
        }
        Ok(g)
    }

    /// Allocates `size` bytes in guest memory; the block lives as long as the guest.
    pub fn alloc(&mut self, size: u64, align: u32) -> Result<u32> {
        if size >= GUEST_MEMORY_LIMIT {
            return fail(E::ModelTooLargeForWasm32, format!("cannot allocate {size} bytes in a wasm32 guest"));
        }
        let p = self.alloc.call(&mut self.store, (size as u32 as i32, align as i32)).map_err(trap)?;
        if p == 0 {
            return fail(
                E::ModelTooLargeForWasm32,
                format!("the wasm32 guest is out of memory allocating {size} bytes (memory is {} bytes, limit {GUEST_MEMORY_LIMIT})", self.memory_bytes()),
            );
        }
        Ok(p as u32)
    }

    /// Guest memory and host state, together.
    pub fn memory_and_state(&mut self) -> (&mut [u8], &mut HostState) {
        self.memory.data_and_store_mut(&mut self.store)
    }

    /// Host state.
    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    /// Guest memory size in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.data_size(&self.store) as u64
    }

    /// Copies `bytes` into guest memory at `ptr` (bounds-checked).
    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<()> {
        let data = self.memory.data_mut(&mut self.store);
        let r = guest_range(data.len(), ptr as i32, bytes.len() as i64)
            .ok_or_else(|| ChordError::new(E::Internal, format!("write of {} bytes at {ptr} is outside guest memory", bytes.len())))?;
        data[r].copy_from_slice(bytes);
        Ok(())
    }

    /// Hands the guest its directory.
    pub fn init(&mut self, directory: &[u8]) -> Result<()> {
        let ptr = self.alloc(directory.len() as u64, 8)?;
        self.write(ptr, directory)?;
        let st = self.init.call(&mut self.store, (ptr as i32, directory.len() as i32)).map_err(trap)?;
        self.check(st, "wc_init")
    }

    /// Hands the guest its model configuration (`ModelConfig` + layer table bytes); the guest
    /// allocates its KV cache and scratch buffers.
    pub fn model_init(&mut self, cfg: &[u8], n_batch: u32, n_vocab: u32) -> Result<()> {
        let ptr = self.alloc(cfg.len() as u64, 8)?;
        self.write(ptr, cfg)?;
        if self.tokens_buf == 0 || self.n_batch < n_batch {
            self.tokens_buf = self.alloc(u64::from(n_batch) * 4, 4)?;
        }
        let st = self.model_init.call(&mut self.store, (ptr as i32, cfg.len() as i32)).map_err(trap)?;
        self.check(st, "wc_model_init")?;
        self.n_batch = n_batch;
        self.n_vocab = n_vocab;
        Ok(())
    }

    /// Runs the forward pass on `tokens` (at most n_batch) at positions `pos..`, part of a
    /// llama.cpp ubatch of `ubatch` tokens (which picks the attention rounding mirrored).
    pub fn eval(&mut self, tokens: &[u32], pos: u32, ubatch: u32) -> Result<()> {
        if tokens.is_empty() || tokens.len() > self.n_batch as usize {
            return fail(E::Internal, format!("eval of {} tokens (batch is {})", tokens.len(), self.n_batch));
        }
        let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        self.write(self.tokens_buf, &bytes)?;
        let st = match self.eval.call(&mut self.store, (self.tokens_buf as i32, tokens.len() as i32, pos as i32, ubatch as i32)) {
            Ok(st) => st,
            // The guest traps on purpose when a worker failed its chunk: report the worker.
            Err(e) => return Err(match self.store.data_mut().last_error.take() {
                Some(worker) => ChordError::new(E::GuestTrap, format!("the guest trapped: {}", worker.message)),
                None => trap(e),
            }),
        };
        self.check(st, "wc_eval")
    }

    /// Copies the logits of the last evaluated token into `out` (resized to n_vocab).
    pub fn logits(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let ptr = self.logits.call(&mut self.store, ()).map_err(trap)?;
        let n = self.n_vocab as usize;
        let data = self.memory.data(&self.store);
        let r = guest_range(data.len(), ptr, (n * 4) as i64).filter(|_| ptr != 0).ok_or_else(|| ChordError::new(E::Internal, "logits outside guest memory"))?;
        out.clear();
        out.extend(data[r].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        Ok(())
    }

    /// Copies positions `0..n_pos` of every plane of the KV cache (keys and values of each layer,
    /// see [`wasm_chord_abi::kv_plane_len`]) out of guest memory: 2·n_layer runs of
    /// n_pos·n_head_kv·head_dim f16 values, plane after plane.
    pub fn kv_save(&mut self, cfg: &ModelConfig, n_pos: usize) -> Result<Vec<u8>> {
        let (base, plane, run) = self.kv_layout(cfg, n_pos)?;
        let data = self.memory.data(&self.store);
        let mut out = Vec::with_capacity(2 * cfg.n_layer as usize * run);
        for p in 0..2 * cfg.n_layer as usize {
            let at = base + p * plane;
            out.extend_from_slice(&data[at..at + run]);
        }
        Ok(out)
    }

    /// Writes back what [`Self::kv_save`] gave for the same `n_pos`.
    pub fn kv_restore(&mut self, cfg: &ModelConfig, n_pos: usize, saved: &[u8]) -> Result<()> {
        let (base, plane, run) = self.kv_layout(cfg, n_pos)?;
        if saved.len() != 2 * cfg.n_layer as usize * run {
            return fail(E::Internal, format!("a saved KV cache of {} bytes for {n_pos} positions (expected {})", saved.len(), 2 * cfg.n_layer as usize * run));
        }
        let data = self.memory.data_mut(&mut self.store);
        for (p, chunk) in saved.chunks_exact(run.max(1)).enumerate() {
            let at = base + p * plane;
            data[at..at + run].copy_from_slice(chunk);
        }
        Ok(())
    }

    /// (cache address, bytes per plane, bytes of `n_pos` positions of a plane), bounds-checked.
    fn kv_layout(&mut self, cfg: &ModelConfig, n_pos: usize) -> Result<(usize, usize, usize)> {
        let f: TypedFunc<(), i32> = self.instance.get_typed_func(&mut self.store, export::KV_CACHE).map_err(|e| ChordError::new(E::Internal, format!("guest export {}: {e}", export::KV_CACHE)))?;
        let ptr = f.call(&mut self.store, ()).map_err(trap)?;
        let plane = wasm_chord_abi::kv_plane_len(cfg) * 2;
        let width = cfg.n_head_kv as usize * cfg.head_dim as usize * 2;
        if ptr == 0 || n_pos > cfg.n_ctx as usize {
            return fail(E::Internal, format!("no KV cache for {n_pos} positions (cache at {ptr}, n_ctx {})", cfg.n_ctx));
        }
        let total = 2 * cfg.n_layer as usize * plane;
        let r = guest_range(self.memory.data_size(&self.store), ptr, total as i64).ok_or_else(|| ChordError::new(E::Internal, "the KV cache is outside guest memory"))?;
        Ok((r.start, plane, n_pos * width))
    }

    /// Debug taps: records copies of layer `layer`'s intermediate tensors during the following
    /// evals (`None` stops). See `guest/src/taps.rs`.
    pub fn debug_tap(&mut self, layer: Option<u32>) -> Result<()> {
        let f: TypedFunc<i32, i32> = self.instance.get_typed_func(&mut self.store, "wc_debug_tap").map_err(|e| ChordError::new(E::Internal, format!("{e}")))?;
        let st = f.call(&mut self.store, layer.map_or(-1, |l| l as i32)).map_err(trap)?;
        self.check(st, "wc_debug_tap")
    }

    /// The records of the debug taps: (stage name, values), in the order they were taken.
    pub fn debug_tap_records(&mut self) -> Result<Vec<(String, Vec<f32>)>> {
        let f: TypedFunc<(i32, i32, i32, i32), i32> = self.instance.get_typed_func(&mut self.store, "wc_debug_tap_read").map_err(|e| ChordError::new(E::Internal, format!("{e}")))?;
        const MAX: usize = 1 << 22;
        let (name_ptr, buf) = (self.alloc(32, 8)?, self.alloc((MAX * 4) as u64, 16)?);
        let mut out = Vec::new();
        for i in 0.. {
            let n = f.call(&mut self.store, (i, name_ptr as i32, buf as i32, MAX as i32)).map_err(trap)?;
            if n < 0 {
                break;
            }
            let data = self.memory.data(&self.store);
            let name = String::from_utf8_lossy(&data[name_ptr as usize..name_ptr as usize + 32]).trim_end_matches('\0').to_string();
            let vals = data[buf as usize..buf as usize + n as usize * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            out.push((name, vals));
        }
        Ok(out)
    }

    /// The guest's checksum of unit `unit` (acquired through the layer cache in Memory64 mode).
    pub fn unit_checksum(&mut self, unit: u32) -> Result<Checksum> {
        let st = self.unit_checksum.call(&mut self.store, (unit as i32, self.scratch as i32)).map_err(trap)?;
        self.check(st, "wc_unit_checksum")?;
        self.read_scratch::<Checksum>()
    }

    /// The guest acquires layer `layer` as a forward pass would; returns whether it was a hit
    /// (always true in WHOLE mode, where every layer is resident).
    pub fn acquire_layer(&mut self, layer: u32) -> Result<bool> {
        let st = self.acquire_layer.call(&mut self.store, (layer as i32, self.scratch as i32)).map_err(trap)?;
        self.check(st, "wc_acquire_layer")?;
        Ok(self.read_scratch::<LayerGrant>()?.hit != 0)
    }

    /// The bridge statistics as the guest sees them (through `memory64_stats`), or the host's
    /// own copy in WHOLE mode.
    pub fn bridge_stats_from_guest(&mut self) -> Result<BridgeStats> {
        let st = self.bridge_stats.call(&mut self.store, self.scratch as i32).map_err(trap)?;
        self.check(st, "wc_bridge_stats")?;
        self.read_scratch::<BridgeStats>()
    }

    /// The bridge statistics kept by the host.
    pub fn bridge_stats(&self) -> BridgeStats {
        current_stats(self.store.data())
    }

    /// The ABI struct the guest wrote at the scratch address.
    fn read_scratch<T: Abi>(&self) -> Result<T> {
        T::read_from(self.memory.data(&self.store), self.scratch as usize).ok_or_else(|| ChordError::new(E::Internal, "scratch outside memory"))
    }

    /// Turns a guest status into a result, preferring the host's detailed error.
    fn check(&mut self, st: i32, what: &str) -> Result<()> {
        if st == status::OK {
            return Ok(());
        }
        if let Some(e) = self.store.data_mut().last_error.take() {
            return Err(e);
        }
        if st == status::ERR_ABORTED {
            return fail(E::Aborted, format!("{what} stopped early: the call was aborted"));
        }
        if st == status::ERR_OUT_OF_MEMORY {
            return fail(E::ModelTooLargeForWasm32, format!("{what}: the wasm32 guest ran out of memory ({} bytes in use of {GUEST_MEMORY_LIMIT})", self.memory_bytes()));
        }
        let (name, sentence) = status::describe(st);
        fail(E::Guest, format!("{what} failed: {sentence} ({name})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_of_2_gib_and_more_succeed_and_are_addressable() {
        // Rust's allocator on wasm32 refuses any block of 2 GiB or more; wc_alloc takes such
        // blocks from fresh pages instead.
        let mut g = Guest::new(HostState::new(None), 1).unwrap();
        let small = g.alloc(1 << 20, 64).unwrap();
        let big = g.alloc(3 << 30, wasm_chord_abi::PAYLOAD_ALIGN as u32).unwrap();
        assert_eq!(big % 65536, 0);
        assert!(u64::from(big) + (3 << 30) <= g.memory_bytes());
        assert!(big >= small + (1 << 20) || u64::from(small) >= u64::from(big) + (3 << 30));
        let last = big + (3 << 30) - 8;
        g.write(last, &[7; 8]).unwrap();
        assert_eq!(g.memory_and_state().0[last as usize..last as usize + 8], [7; 8]);
        // A further small allocation still works and does not overlap the big block.
        let after = g.alloc(4096, 16).unwrap();
        assert!(after < big || u64::from(after) >= u64::from(big) + (3 << 30));
        assert_eq!(g.alloc(1 << 30, 65536 * 2).unwrap_err().code, E::ModelTooLargeForWasm32);
    }

    #[test]
    fn worker_pool_refuses_misuse_and_reports_a_failed_chunk() {
        let mut g = Guest::new(HostState::new(None), 3).unwrap();
        let job = g.alloc(256, 16).unwrap() as i32;
        let pool = g.store.data().workers.as_ref().unwrap();
        assert_eq!(pool.threads(), 3);
        assert!(pool.begin(job, 0).is_err() && pool.begin(job, 1 << 20).is_err());
        // Job address 0: a worker's `wc_worker_run` refuses it, and `wait` says so. The caller
        // claims nothing here, so the workers get every chunk (or `wait` closes the job first).
        pool.begin(0, 64).unwrap();
        assert!(pool.begin(job, 2).is_err(), "a second job while chunks are unclaimed");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let e = pool.wait().unwrap_err();
        assert!(e.starts_with("worker ") && e.contains("configured sizes"), "{e}");
        // Every chunk is claimed once: a job the caller claims entirely runs no worker chunk.
        pool.begin(0, 3).unwrap();
        let mut mine = 0;
        while pool.next().is_some() {
            mine += 1;
        }
        assert!(mine <= 3);
        let _ = pool.wait();
        assert_eq!(pool.next(), None);
        assert!(pool.wait().is_ok(), "nothing pending");
        drop(g); // joins the workers
    }
}
