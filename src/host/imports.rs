//! The one table of host imports (module `wasm_chord`). Every guest pointer and length is
//! validated against the guest's memory before use; a bad call returns an error status (see
//! `wasm_chord_abi::status`), counts an error, and never touches memory outside the guest.
//!
//! | import | params | returns | effect / ownership | failure |
//! |---|---|---|---|---|
//! | `memory64_load_layer` | `layer: i32, dst_ptr: i32, dst_len: i32` | status | Makes `layer` resident: the `Memory64LayerManager` picks a slot (LRU eviction), the layer's tensors are copied from the Memory64 region into it; a `LayerGrant {ptr, len, slot, hit}` is written at `dst_ptr`. The slot stays valid until the guest's next `memory64_load_layer` call (which may evict it). | `ERR_DISABLED` (WHOLE mode), `ERR_NO_SUCH_LAYER`, `ERR_BAD_LENGTH` (`dst_len` ≠ 16), `ERR_BAD_POINTER`, `ERR_IO` (file truncated / read error; the host keeps the detailed error) |
//! | `memory64_read` | `offset: i64, dst_ptr: i32, len: i32` | status | Copies `len` bytes of tensor data at absolute file offset `offset` into guest memory at `dst_ptr`. Only ranges inside a non-layer tensor the host listed in the guest's directory are granted: a guest never passes a file offset it was not given. | `ERR_DISABLED`, `ERR_BAD_POINTER`, `ERR_NOT_GRANTED`, `ERR_IO` |
//! | `memory64_is_enabled` | — | `1` / `0` | Whether the weights live in Memory64 regions. | — |
//! | `memory64_stats` | `dst_ptr: i32` | status | Writes a `BridgeStats` (56 bytes) at `dst_ptr`. | `ERR_BAD_POINTER` |
//! | `abort_requested` | — | `1` / `0` | Whether the caller of the running guest call asked it to stop ([`with_abort_poll`]); a layer copy also stops between tensors then. | — |
//! | `threads` | — | count | How many instances a job can be split over: the main instance and its workers (`workers.rs`); 1 without workers. | — |
//! | `parallel_begin` | `job: i32, chunks: i32` | status | Offers the `chunks` chunks of the job at guest address `job` to the workers (each claims chunks and calls its instance's `wc_worker_run(job, chunk, chunks)`); returns at once. The host never reads the job: it is the guest's own encoding, passed between instances of one module. | `ERR_WORKER` (no workers, `chunks` not in `1..=65536`, a job already running) |
//! | `parallel_next` | — | chunk or `-1` | Claims the next unclaimed chunk of the running job for the caller; -1 when all are claimed (or no job runs). | — |
//! | `parallel_wait` | — | status | Blocks, without spinning, until every chunk the workers claimed is done. | `ERR_WORKER` (a worker trapped or failed; the host keeps the detailed error) |

use std::cell::Cell;
use std::ops::Range;

use wasm_chord_abi::{Abi, BridgeStats, IMPORT_MODULE, LayerGrant, import, status};
use wasmtime::{Caller, Linker, Memory, StoreLimits};

use super::workers::Pool;

use crate::error::{ChordError, ErrorCode as E, Result, fail};
use crate::memory64::{Memory64LayerManager, Memory64Runtime};

/// Where each tensor of a layer comes from and goes to: `(file_offset, bytes, payload_offset)`.
#[derive(Clone, Debug, Default)]
pub struct LayerCopyPlan {
    /// Tensor copies.
    pub tensors: Vec<(u64, u64, u64)>,
}

/// The Memory64 side of a model's host state.
pub struct Bridge {
    /// Regions holding the weights.
    runtime: Memory64Runtime,
    /// Layer cache policy.
    manager: Memory64LayerManager,
    /// Copy plan of each layer.
    layers: Vec<LayerCopyPlan>,
    /// File ranges the guest may read with `memory64_read`, sorted, non-overlapping.
    granted: Vec<Range<u64>>,
}

impl Bridge {
    /// A bridge serving `layers` (one copy plan per layer) through `manager`'s slots from
    /// `runtime`'s regions, and `memory64_read` of the file ranges `granted` (sorted by start,
    /// non-overlapping: the non-layer tensors).
    pub fn new(runtime: Memory64Runtime, manager: Memory64LayerManager, layers: Vec<LayerCopyPlan>, granted: Vec<Range<u64>>) -> Self {
        Self { runtime, manager, layers, granted }
    }

    /// The regions holding the weights.
    pub fn runtime(&self) -> &Memory64Runtime {
        &self.runtime
    }

    /// The layer cache policy and its statistics.
    pub fn manager(&self) -> &Memory64LayerManager {
        &self.manager
    }

    /// Empties the layer cache.
    pub fn clear_cache(&mut self) {
        self.manager.clear();
    }

    /// The copy plan of each layer.
    pub fn layers(&self) -> &[LayerCopyPlan] {
        &self.layers
    }

    /// The file ranges `memory64_read` serves.
    pub fn granted(&self) -> &[Range<u64>] {
        &self.granted
    }

    /// Makes every layer resident in guest memory `data` (the cache must hold them all).
    pub fn preload_all(&mut self, data: &mut [u8]) -> Result<()> {
        let Self { runtime, manager, layers, .. } = self;
        manager.preload_all(|layer, base, cap| copy_layer(runtime, &layers[layer as usize], data, base, cap))
    }
}

/// State of a guest Store.
pub struct HostState {
    /// The guest's memory (set right after instantiation).
    pub(super) memory: Option<Memory>,
    /// Memory64 machinery (None in WHOLE mode).
    bridge: Option<Bridge>,
    /// Bridge counters.
    pub(super) stats: BridgeStats,
    /// The detailed host error behind the last error status, for the caller to surface.
    pub(super) last_error: Option<ChordError>,
    /// Guest memory limit.
    pub(super) limits: StoreLimits,
    /// The worker instances a job can be split over (None: one thread).
    pub(super) workers: Option<Pool>,
}

thread_local! {
    /// The abort poll of the guest call running on this thread (see [`with_abort_poll`]).
    static ABORT_POLL: Cell<Option<&'static (dyn Fn() -> bool + 'static)>> = const { Cell::new(None) };
}

/// Runs `f` (guest calls on this thread) with `poll` answering the guest's `abort_requested`.
/// The guest runs synchronously on the calling thread, so a thread-local scoped to `f` reaches
/// exactly the calls made inside it.
pub fn with_abort_poll<R>(poll: &dyn Fn() -> bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<&'static (dyn Fn() -> bool + 'static)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ABORT_POLL.with(|p| p.set(self.0));
        }
    }
    // SAFETY: the 'static reference never outlives `poll`: it is reachable only through
    // ABORT_POLL, which `Restore` resets to its previous value when this function returns or
    // unwinds, before `poll`'s borrow ends.
    let extended: &'static (dyn Fn() -> bool + 'static) = unsafe { std::mem::transmute::<&dyn Fn() -> bool, &'static (dyn Fn() -> bool + 'static)>(poll) };
    let _restore = Restore(ABORT_POLL.with(|p| p.replace(Some(extended))));
    f()
}

/// Whether the running guest call was asked to stop.
pub(crate) fn abort_requested() -> bool {
    ABORT_POLL.with(|p| p.get().is_some_and(|f| f()))
}

/// Registers the imports of the table above.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, import::MEMORY64_LOAD_LAYER, |mut c: Caller<'_, HostState>, layer: i32, dst: i32, len: i32| {
        let st = load_layer(&mut c, layer, dst, len);
        finish(&mut c, st)
    })?;
    linker.func_wrap(IMPORT_MODULE, import::MEMORY64_READ, |mut c: Caller<'_, HostState>, offset: i64, dst: i32, len: i32| {
        let st = read(&mut c, offset, dst, len);
        finish(&mut c, st)
    })?;
    linker.func_wrap(IMPORT_MODULE, import::MEMORY64_IS_ENABLED, |c: Caller<'_, HostState>| i32::from(c.data().bridge.is_some()))?;
    linker.func_wrap(IMPORT_MODULE, import::MEMORY64_STATS, |mut c: Caller<'_, HostState>, dst: i32| {
        let st = write_stats(&mut c, dst);
        finish(&mut c, st)
    })?;
    linker.func_wrap(IMPORT_MODULE, import::ABORT_REQUESTED, || i32::from(abort_requested()))?;
    linker.func_wrap(IMPORT_MODULE, import::THREADS, |c: Caller<'_, HostState>| c.data().workers.as_ref().map_or(1, |p| p.threads() as i32))?;
    linker.func_wrap(IMPORT_MODULE, import::PARALLEL_BEGIN, |mut c: Caller<'_, HostState>, job: i32, chunks: i32| {
        let st = match c.data().workers.as_ref() {
            Some(p) => p.begin(job, usize::try_from(chunks).unwrap_or(0)).map_err(|e| (status::ERR_WORKER, Some(e))),
            None => Err((status::ERR_WORKER, None)),
        };
        finish(&mut c, st)
    })?;
    linker.func_wrap(IMPORT_MODULE, import::PARALLEL_NEXT, |c: Caller<'_, HostState>| {
        c.data().workers.as_ref().and_then(|p| p.next()).map_or(-1, |k| k as i32)
    })?;
    linker.func_wrap(IMPORT_MODULE, import::PARALLEL_WAIT, |mut c: Caller<'_, HostState>| {
        let st = match c.data().workers.as_ref() {
            Some(p) => p.wait().map_err(|m| (status::ERR_WORKER, Some(ChordError::new(E::Internal, m)))),
            None => Err((status::ERR_WORKER, None)),
        };
        finish(&mut c, st)
    })?;
    Ok(())
}

/// A failed call: the status code, and (for host-side failures) the detailed error.
type CallResult = std::result::Result<(), (i32, Option<ChordError>)>;

fn finish(c: &mut Caller<'_, HostState>, r: CallResult) -> i32 {
    match r {
        Ok(()) => status::OK,
        Err((st, detail)) => {
            let s = c.data_mut();
            s.stats.errors += 1;
            s.last_error = detail;
            st
        }
    }
}

/// `[ptr, ptr + len)` as a range of guest memory, if it lies inside `mem_len` bytes.
pub(crate) fn guest_range(mem_len: usize, ptr: i32, len: i64) -> Option<Range<usize>> {
    let start = ptr as u32 as usize;
    let len = usize::try_from(len).ok()?;
    let end = start.checked_add(len)?;
    (end <= mem_len).then_some(start..end)
}

fn load_layer(c: &mut Caller<'_, HostState>, layer: i32, dst: i32, dst_len: i32) -> CallResult {
    let Some(memory) = c.data().memory else { return Err((status::ERR_DISABLED, None)) };
    let (data, state) = memory.data_and_store_mut(&mut *c);
    state.stats.layer_requests += 1;
    let Some(bridge) = state.bridge.as_mut() else { return Err((status::ERR_DISABLED, None)) };
    if dst_len as usize != size_of::<LayerGrant>() {
        return Err((status::ERR_BAD_LENGTH, None));
    }
    let out = guest_range(data.len(), dst, dst_len.into()).ok_or((status::ERR_BAD_POINTER, None))?;
    let layer = u32::try_from(layer).map_err(|_| (status::ERR_NO_SUCH_LAYER, None))?;
    if layer >= bridge.manager.n_layers() {
        return Err((status::ERR_NO_SUCH_LAYER, None));
    }
    let grant = acquire_layer(bridge, data, layer).map_err(|e| (if e.code == E::Aborted { status::ERR_ABORTED } else { status::ERR_IO }, Some(e)))?;
    if !grant.1 {
        state.stats.layer_loads += 1;
        state.stats.layer_bytes += layer_len(bridge, layer);
    }
    let g = LayerGrant { ptr: grant.0, len: layer_len(bridge, layer) as u32, slot: grant.2, hit: u32::from(grant.1) };
    data[out].copy_from_slice(g.as_bytes());
    Ok(())
}

fn layer_len(bridge: &Bridge, layer: u32) -> u64 {
    bridge.layers[layer as usize].tensors.last().map_or(0, |&(_, n, off)| off + n)
}

/// A real access to `layer` through the manager; copies it into its slot on a miss.
/// Returns `(guest address, hit, slot)`.
pub(crate) fn acquire_layer(bridge: &mut Bridge, data: &mut [u8], layer: u32) -> Result<(u32, bool, u32)> {
    let Bridge { runtime, manager, layers, .. } = bridge;
    let plan = &layers[layer as usize];
    let g = manager.acquire(layer, |base, cap| copy_layer(runtime, plan, data, base, cap))?;
    Ok((g.base, g.hit, g.slot))
}

/// Copies every tensor of a layer from the regions into the slot at `base` (`cap` bytes).
fn copy_layer(runtime: &mut Memory64Runtime, plan: &LayerCopyPlan, data: &mut [u8], base: u32, cap: u64) -> Result<()> {
    let slot = guest_range(data.len(), base as i32, cap as i64)
        .ok_or_else(|| ChordError::new(E::Internal, format!("slot at {base} (+{cap}) is outside guest memory ({} bytes)", data.len())))?;
    for &(file_offset, bytes, payload_offset) in &plan.tensors {
        if abort_requested() {
            return fail(E::Aborted, "aborted while copying a layer into its cache slot");
        }
        let Some(end) = payload_offset.checked_add(bytes).filter(|&e| e <= cap) else {
            return fail(E::Internal, format!("tensor at payload offset {payload_offset} (+{bytes}) exceeds the {cap}-byte slot"));
        };
        let dst = &mut data[slot.start + payload_offset as usize..slot.start + end as usize];
        runtime.read_file_range(file_offset, dst)?;
    }
    Ok(())
}

fn read(c: &mut Caller<'_, HostState>, offset: i64, dst: i32, len: i32) -> CallResult {
    let Some(memory) = c.data().memory else { return Err((status::ERR_DISABLED, None)) };
    let (data, state) = memory.data_and_store_mut(&mut *c);
    let Some(bridge) = state.bridge.as_mut() else { return Err((status::ERR_DISABLED, None)) };
    let range = guest_range(data.len(), dst, len.into()).ok_or((status::ERR_BAD_POINTER, None))?;
    let start = u64::try_from(offset).map_err(|_| (status::ERR_NOT_GRANTED, None))?;
    let end = start.checked_add(range.len() as u64).ok_or((status::ERR_NOT_GRANTED, None))?;
    // The last granted range starting at or before `start` must contain [start, end).
    let idx = bridge.granted.partition_point(|r| r.start <= start);
    let ok = idx > 0 && end <= bridge.granted[idx - 1].end;
    if !ok {
        return Err((status::ERR_NOT_GRANTED, None));
    }
    bridge.runtime.read_file_range(start, &mut data[range.clone()]).map_err(|e| (status::ERR_IO, Some(e)))?;
    state.stats.reads += 1;
    state.stats.read_bytes += range.len() as u64;
    Ok(())
}

fn write_stats(c: &mut Caller<'_, HostState>, dst: i32) -> CallResult {
    let Some(memory) = c.data().memory else { return Err((status::ERR_BAD_POINTER, None)) };
    let (data, state) = memory.data_and_store_mut(&mut *c);
    let out = guest_range(data.len(), dst, size_of::<BridgeStats>() as i64).ok_or((status::ERR_BAD_POINTER, None))?;
    let s = current_stats(state);
    data[out].copy_from_slice(s.as_bytes());
    Ok(())
}

/// The bridge counters with the live `enabled`/`regions` fields filled in.
pub(crate) fn current_stats(state: &HostState) -> BridgeStats {
    let mut s = state.stats;
    s.enabled = u32::from(state.bridge.is_some());
    s.regions = state.bridge.as_ref().map_or(0, |b| b.runtime.region_count() as u32);
    s
}

/// A hostile guest for tests and the fuzzer (`fuzz/`): a module importing every entry of the
/// table and exporting each under a short name (`ll`, `rd`, `en`, `st`, `ab`, `th`, `pb`, `pn`, `pw`) with the same
/// signature, so that a caller can pass any arguments across the boundary. Memory: 2 pages.
#[doc(hidden)]
pub const HOSTILE_GUEST_WAT: &str = r#"
  (module
    (import "wasm_chord" "memory64_load_layer" (func $ll (param i32 i32 i32) (result i32)))
    (import "wasm_chord" "memory64_read" (func $rd (param i64 i32 i32) (result i32)))
    (import "wasm_chord" "memory64_is_enabled" (func $en (result i32)))
    (import "wasm_chord" "memory64_stats" (func $st (param i32) (result i32)))
    (import "wasm_chord" "abort_requested" (func $ab (result i32)))
    (import "wasm_chord" "threads" (func $th (result i32)))
    (import "wasm_chord" "parallel_begin" (func $pb (param i32 i32) (result i32)))
    (import "wasm_chord" "parallel_next" (func $pn (result i32)))
    (import "wasm_chord" "parallel_wait" (func $pw (result i32)))
    (memory (export "memory") 2 2)
    (func (export "ll") (param i32 i32 i32) (result i32) local.get 0 local.get 1 local.get 2 call $ll)
    (func (export "rd") (param i64 i32 i32) (result i32) local.get 0 local.get 1 local.get 2 call $rd)
    (func (export "en") (result i32) call $en)
    (func (export "st") (param i32) (result i32) local.get 0 call $st)
    (func (export "ab") (result i32) call $ab)
    (func (export "th") (result i32) call $th)
    (func (export "pb") (param i32 i32) (result i32) local.get 0 local.get 1 call $pb)
    (func (export "pn") (result i32) call $pn)
    (func (export "pw") (result i32) call $pw))
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_range_rejects_hostile_pointers() {
        assert_eq!(guest_range(100, 10, 20), Some(10..30));
        assert_eq!(guest_range(100, 90, 10), Some(90..100));
        assert_eq!(guest_range(100, 90, 11), None);
        assert_eq!(guest_range(100, -1, 1), None); // 0xFFFF_FFFF
        assert_eq!(guest_range(100, 0, -1), None);
        assert_eq!(guest_range(100, 100, 0), Some(100..100));
        assert_eq!(guest_range(100, 101, 0), None);
        assert_eq!(guest_range(1 << 32, -1, 2), None);
        assert_eq!(guest_range(1 << 32, -1, 1), Some(0xFFFF_FFFF..1 << 32));
    }

    /// A tiny real file (2 layers) and the bridge the loader would build for it, with one slot at
    /// guest address 65536.
    fn tiny_bridge() -> (std::path::PathBuf, crate::gguf::GgufFile, Bridge) {
        use crate::gguf::{GgmlType, GgufWriter, TensorData, read_gguf};
        use crate::model::{UnitTable, bridge_for, plan_regions};
        let dir = std::env::temp_dir().join(format!("wasm-chord-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.gguf");
        GgufWriter::synthetic_llama(2, 32, 64, 40, GgmlType::F32, TensorData::Pattern).write_to(&path).unwrap();
        let gguf = read_gguf(&path).unwrap();
        let units = UnitTable::new(&gguf).unwrap();
        let (layout, offsets) = plan_regions(&gguf, &units).unwrap();
        let file = std::sync::Arc::new(crate::gguf::ModelFile::open(&path).unwrap());
        let runtime = Memory64Runtime::map_file(file, &layout, &offsets).unwrap();
        let plan = Memory64LayerManager::plan(&units.layer_bytes(), crate::memory64::CacheConfig { layers: Some(1), bytes: None }).unwrap();
        assert!(65536 + plan.arena_bytes() <= 131072);
        let bridge = bridge_for(&gguf, &units, runtime, Memory64LayerManager::new(units.layer_bytes(), plan, 65536));
        assert_eq!(bridge.granted.len(), 3); // token_embd, output_norm, output
        (path, gguf, bridge)
    }

    #[test]
    fn hostile_guest_gets_error_statuses_never_host_memory() {
        use crate::host::instantiate_module;
        let (_path, gguf, bridge) = tiny_bridge();
        let wasm = wat::parse_str(HOSTILE_GUEST_WAT).unwrap();
        let (mut store, inst) = instantiate_module(&wasm, HostState::new(Some(bridge))).unwrap();
        let ll = inst.get_typed_func::<(i32, i32, i32), i32>(&mut store, "ll").unwrap();
        let rd = inst.get_typed_func::<(i64, i32, i32), i32>(&mut store, "rd").unwrap();
        let en = inst.get_typed_func::<(), i32>(&mut store, "en").unwrap();
        let st = inst.get_typed_func::<i32, i32>(&mut store, "st").unwrap();
        let mem = inst.get_memory(&mut store, "memory").unwrap();
        let top = 131072;

        assert_eq!(en.call(&mut store, ()).unwrap(), 1);
        assert_eq!(ll.call(&mut store, (0, 1000, 16)).unwrap(), status::OK);
        let g = &mem.data(&store)[1000..1016];
        assert_eq!(u32::from_le_bytes(g[0..4].try_into().unwrap()), 65536);
        assert_eq!(u32::from_le_bytes(g[12..16].try_into().unwrap()), 0); // miss
        assert_eq!(ll.call(&mut store, (0, 1000, 16)).unwrap(), status::OK);
        assert_eq!(u32::from_le_bytes(mem.data(&store)[1012..1016].try_into().unwrap()), 1); // hit
        // The slot holds the file's bytes of blk.0's first tensor.
        let t0 = gguf.tensors.iter().find(|t| t.name == "blk.0.attn_norm.weight").unwrap();
        let file = std::fs::read(&_path).unwrap();
        assert_eq!(&mem.data(&store)[65536..65536 + t0.bytes as usize], &file[t0.file_offset as usize..(t0.file_offset + t0.bytes) as usize]);

        let before: Vec<u8> = mem.data(&store).to_vec();
        assert_eq!(ll.call(&mut store, (0, top - 8, 16)).unwrap(), status::ERR_BAD_POINTER);
        assert_eq!(ll.call(&mut store, (0, -1, 16)).unwrap(), status::ERR_BAD_POINTER);
        assert_eq!(ll.call(&mut store, (0, 1000, 15)).unwrap(), status::ERR_BAD_LENGTH);
        assert_eq!(ll.call(&mut store, (2, 1000, 16)).unwrap(), status::ERR_NO_SUCH_LAYER);
        assert_eq!(ll.call(&mut store, (-1, 1000, 16)).unwrap(), status::ERR_NO_SUCH_LAYER);

        let embd = gguf.tensors.iter().find(|t| t.name == "token_embd.weight").unwrap();
        let off = embd.file_offset as i64;
        assert_eq!(rd.call(&mut store, (t0.file_offset as i64, 2000, 64)).unwrap(), status::ERR_NOT_GRANTED);
        assert_eq!(rd.call(&mut store, (off + embd.bytes as i64 - 10, 2000, 64)).unwrap(), status::ERR_NOT_GRANTED);
        assert_eq!(rd.call(&mut store, (-5, 2000, 64)).unwrap(), status::ERR_NOT_GRANTED);
        assert_eq!(rd.call(&mut store, (i64::MAX, 2000, 64)).unwrap(), status::ERR_NOT_GRANTED);
        assert_eq!(rd.call(&mut store, (off, top - 10, 64)).unwrap(), status::ERR_BAD_POINTER);
        assert_eq!(rd.call(&mut store, (off, 0, -1)).unwrap(), status::ERR_BAD_POINTER);
        assert_eq!(st.call(&mut store, top - 10).unwrap(), status::ERR_BAD_POINTER);
        // None of the rejected calls wrote anything.
        assert_eq!(mem.data(&store), &before[..]);

        assert_eq!(rd.call(&mut store, (off + 64, 2000, 64)).unwrap(), status::OK);
        assert_eq!(&mem.data(&store)[2000..2064], &file[embd.file_offset as usize + 64..embd.file_offset as usize + 128]);
        assert_eq!(st.call(&mut store, 3000).unwrap(), status::OK);
        let s = &mem.data(&store)[3000..3056];
        let w = |i: usize| u64::from_le_bytes(s[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!((w(0), w(1), w(3), w(5)), (1, 64, 1, 12)); // reads, read_bytes, layer_loads, errors
    }

    #[test]
    fn whole_mode_bridge_is_disabled() {
        use crate::host::instantiate_module;
        let wasm = wat::parse_str(HOSTILE_GUEST_WAT).unwrap();
        let (mut store, inst) = instantiate_module(&wasm, HostState::new(None)).unwrap();
        let ll = inst.get_typed_func::<(i32, i32, i32), i32>(&mut store, "ll").unwrap();
        let rd = inst.get_typed_func::<(i64, i32, i32), i32>(&mut store, "rd").unwrap();
        let en = inst.get_typed_func::<(), i32>(&mut store, "en").unwrap();
        assert_eq!(en.call(&mut store, ()).unwrap(), 0);
        assert_eq!(ll.call(&mut store, (0, 1000, 16)).unwrap(), status::ERR_DISABLED);
        assert_eq!(rd.call(&mut store, (0, 1000, 16)).unwrap(), status::ERR_DISABLED);
        // Without workers: one thread, and a parallel job is refused (the guest runs it alone).
        let th = inst.get_typed_func::<(), i32>(&mut store, "th").unwrap();
        let pb = inst.get_typed_func::<(i32, i32), i32>(&mut store, "pb").unwrap();
        let pw = inst.get_typed_func::<(), i32>(&mut store, "pw").unwrap();
        assert_eq!(th.call(&mut store, ()).unwrap(), 1);
        let pn = inst.get_typed_func::<(), i32>(&mut store, "pn").unwrap();
        for chunks in [-1, 0, 1, 2, 1 << 30] {
            assert_eq!(pb.call(&mut store, (64, chunks)).unwrap(), status::ERR_WORKER);
        }
        assert_eq!(pn.call(&mut store, ()).unwrap(), -1);
        assert_eq!(pw.call(&mut store, ()).unwrap(), status::ERR_WORKER);
    }
}
impl HostState {
    /// Fresh state; `bridge` is `Some` in Memory64 mode.
    pub fn new(bridge: Option<Bridge>) -> Self {
        Self { memory: None, bridge, stats: BridgeStats::default(), last_error: None, limits: StoreLimits::default(), workers: None }
    }

    /// The Memory64 bridge (None in WHOLE mode).
    pub fn bridge(&self) -> Option<&Bridge> {
        self.bridge.as_ref()
    }

    /// The Memory64 bridge, mutably.
    pub fn bridge_mut(&mut self) -> Option<&mut Bridge> {
        self.bridge.as_mut()
    }

    /// Installs the bridge (the loader does, once the guest has allocated its cache arena).
    pub fn set_bridge(&mut self, bridge: Bridge) {
        self.bridge = Some(bridge);
    }
}
