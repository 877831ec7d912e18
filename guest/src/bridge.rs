//! The only module that declares host imports (module `wasm_chord`). Each import is documented in
//! the host's table, `src/host/imports.rs`, and summarised in `wasm_chord_abi::import`.

use wasm_chord_abi::{BridgeStats, LayerGrant, status};

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasm_chord")]
unsafe extern "C" {
    fn memory64_load_layer(layer: i32, dst_ptr: *mut LayerGrant, dst_len: i32) -> i32;
    fn memory64_read(offset: i64, dst_ptr: *mut u8, len: i32) -> i32;
    fn memory64_is_enabled() -> i32;
    fn memory64_stats(dst_ptr: *mut BridgeStats) -> i32;
    fn abort_requested() -> i32;
    fn threads() -> i32;
    fn parallel_begin(job: i32, chunks: i32) -> i32;
    fn parallel_next() -> i32;
    fn parallel_wait() -> i32;
}

/// How many instances can share a job (`threads`): 1 without workers.
#[cfg(target_arch = "wasm32")]
pub fn thread_count() -> usize {
    // SAFETY: no arguments.
    unsafe { threads() }.max(1) as usize
}

/// Offers the `chunks` chunks of the job at `job` to the workers (`parallel_begin`).
#[cfg(target_arch = "wasm32")]
pub fn begin(job: *const u8, chunks: usize) -> Result<(), i32> {
    // SAFETY: the host only passes the address on to the workers' `wc_worker_run`.
    let st = unsafe { parallel_begin(job as i32, chunks as i32) };
    if st == status::OK { Ok(()) } else { Err(st) }
}

/// Claims the next chunk of the running job (`parallel_next`); `None` when all are claimed.
#[cfg(target_arch = "wasm32")]
pub fn next() -> Option<usize> {
    // SAFETY: no arguments.
    usize::try_from(unsafe { parallel_next() }).ok()
}

/// Waits until the chunks the workers claimed of the running job are done (`parallel_wait`).
#[cfg(target_arch = "wasm32")]
pub fn wait() -> Result<(), i32> {
    // SAFETY: no arguments.
    let st = unsafe { parallel_wait() };
    if st == status::OK { Ok(()) } else { Err(st) }
}

/// Whether the host asked the running call to stop (`abort_requested`).
#[cfg(target_arch = "wasm32")]
pub fn aborted() -> bool {
    // SAFETY: no arguments.
    unsafe { abort_requested() != 0 }
}

/// `Err(ERR_ABORTED)` once the host asked the running call to stop.
pub fn check_abort() -> Result<(), i32> {
    if aborted() { Err(status::ERR_ABORTED) } else { Ok(()) }
}

/// Asks the host to make `layer` resident in the layer cache; returns where it is.
#[cfg(target_arch = "wasm32")]
pub fn load_layer(layer: u32) -> Result<LayerGrant, i32> {
    let mut g = LayerGrant::default();
    // SAFETY: `g` is a live, writable LayerGrant in our memory; the host validates and writes
    // exactly size_of::<LayerGrant>() bytes.
    let st = unsafe { memory64_load_layer(layer as i32, &mut g, core::mem::size_of::<LayerGrant>() as i32) };
    if st == status::OK { Ok(g) } else { Err(st) }
}

/// Copies `dst.len()` bytes of granted tensor data at file offset `offset` into `dst`.
#[cfg(target_arch = "wasm32")]
pub fn read(offset: u64, dst: &mut [u8]) -> Result<(), i32> {
    // SAFETY: `dst` is a live writable slice of our memory; the host validates the range.
    let st = unsafe { memory64_read(offset as i64, dst.as_mut_ptr(), dst.len() as i32) };
    if st == status::OK { Ok(()) } else { Err(st) }
}

/// Whether the weights live in Memory64 regions.
#[cfg(target_arch = "wasm32")]
pub fn is_enabled() -> bool {
    // SAFETY: no arguments.
    unsafe { memory64_is_enabled() == 1 }
}

/// The bridge's counters.
#[cfg(target_arch = "wasm32")]
pub fn stats() -> Result<BridgeStats, i32> {
    let mut s = BridgeStats::default();
    // SAFETY: `s` is a live, writable BridgeStats in our memory.
    let st = unsafe { memory64_stats(&mut s) };
    if st == status::OK { Ok(s) } else { Err(st) }
}

// Native builds of this crate (unit tests of pure code) have no host: every call reports that.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_layer(_layer: u32) -> Result<LayerGrant, i32> {
    Err(status::ERR_DISABLED)
}
#[cfg(not(target_arch = "wasm32"))]
pub fn read(_offset: u64, _dst: &mut [u8]) -> Result<(), i32> {
    Err(status::ERR_DISABLED)
}
#[cfg(not(target_arch = "wasm32"))]
pub fn is_enabled() -> bool {
    false
}
#[cfg(not(target_arch = "wasm32"))]
pub fn aborted() -> bool {
    false
}
#[cfg(not(target_arch = "wasm32"))]
pub fn stats() -> Result<BridgeStats, i32> {
    Err(status::ERR_DISABLED)
}
#[cfg(not(target_arch = "wasm32"))]
pub fn thread_count() -> usize {
    1
}
#[cfg(not(target_arch = "wasm32"))]
pub fn begin(_job: *const u8, _chunks: usize) -> Result<(), i32> {
    Err(status::ERR_WORKER)
}
#[cfg(not(target_arch = "wasm32"))]
pub fn next() -> Option<usize> {
    None
}
#[cfg(not(target_arch = "wasm32"))]
pub fn wait() -> Result<(), i32> {
    Err(status::ERR_WORKER)
}
