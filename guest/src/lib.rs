//! The wasm-chord guest: a wasm32 module (built with `+simd128,+relaxed-simd`) that holds the
//! model's working set. This stage proves that the guest sees the right bytes: it acquires units
//! through the layer cache (Memory64 mode) or from its own memory (WHOLE mode) and checksums them.
//!
//! Exports are listed in `wasm_chord_abi::export`; imports live in [`bridge`] only.

pub mod bridge;
pub mod directory;
pub mod forward;
pub mod kernel_exports;
pub mod model;
pub mod ops;
pub mod packing;
pub mod parallel;
pub mod taps;

use std::sync::Mutex;

use directory::Directory;
use wasm_chord_kernels::unpack_rows;
use wasm_chord_abi::{Abi, Checksum, Chord64, LayerTensors, ModelConfig, chord64, chord64_combine, status, unit_kind};

static DIR: Mutex<Option<Directory>> = Mutex::new(None);
static MODEL: Mutex<Option<model::Model>> = Mutex::new(None);

/// Bytes read per `memory64_read` call when streaming a non-layer tensor.
const READ_CHUNK: usize = 1 << 20;

fn memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) as u64 * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        u64::MAX
    }
}

/// Allocates `size` bytes (read as u32) aligned to `align` for the host (never freed: lives as
/// long as the instance). Returns 0 when out of memory or on a bad request.
#[unsafe(no_mangle)]
pub extern "C" fn wc_alloc(size: i32, align: i32) -> i32 {
    let size = size as u32 as usize;
    let align = align.max(1) as u32 as usize;
    // Rust's allocator cannot hand out a block of 2 GiB or more on wasm32 (a `Layout` is at most
    // isize::MAX bytes): blocks from 1 GiB up (a large layer cache arena) are fresh pages from
    // `memory.grow`, page-aligned, owned by the host for the instance's lifetime.
    if size >= BIG_ALLOC {
        return if align <= 65536 { grow_pages(size) } else { 0 };
    }
    let Ok(layout) = std::alloc::Layout::from_size_align(size.max(1), align) else {
        return 0;
    };
    // Not zeroed: the host writes every byte it later reads, and zeroing a 1 GiB cache arena
    // would make all of it resident (fresh memory from memory.grow is zero anyway).
    // SAFETY: layout has non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    p as i32
}

/// Host allocations of at least this many bytes bypass the allocator (see `wc_alloc`).
const BIG_ALLOC: usize = 1 << 30;

/// `bytes` of fresh pages (address as i32, 0 when memory cannot grow). The allocator never
/// sees these pages, so they are never handed out twice.
fn grow_pages(bytes: usize) -> i32 {
    #[cfg(target_arch = "wasm32")]
    {
        let old = core::arch::wasm32::memory_grow(0, bytes.div_ceil(65536));
        if old == usize::MAX || old == 0 { 0 } else { (old * 65536) as i32 }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = bytes;
        0
    }
}

/// Takes the model directory written by the host at `dir_ptr`.
#[unsafe(no_mangle)]
pub extern "C" fn wc_init(dir_ptr: i32, dir_len: i32) -> i32 {
    if dir_len < 0 || (dir_ptr as u32 as u64) + dir_len as u64 > memory_bytes() {
        return status::ERR_BAD_POINTER;
    }
    // SAFETY: the range was checked to lie inside our memory; the host wrote it before the call.
    let bytes = unsafe { core::slice::from_raw_parts(dir_ptr as u32 as usize as *const u8, dir_len as usize) };
    match Directory::parse(bytes, memory_bytes()) {
        Ok(d) => {
            // One directory per instance: its resident weights are packed in place right here.
            if let Ok(mut g) = DIR.lock()
                && g.is_none()
            {
                packing::pack_resident(&d);
                *g = Some(d);
                return status::OK;
            }
            status::ERR_BAD_DIRECTORY
        }
        Err(e) => e,
    }
}

/// Checksums unit `unit` as the guest sees it and writes a `Checksum` to `out_ptr`.
#[unsafe(no_mangle)]
pub extern "C" fn wc_unit_checksum(unit: i32, out_ptr: i32) -> i32 {
    let Ok(guard) = DIR.lock() else { return status::ERR_BAD_DIRECTORY };
    let Some(dir) = guard.as_ref() else { return status::ERR_BAD_DIRECTORY };
    let Some(u) = usize::try_from(unit).ok().and_then(|i| dir.units.get(i)) else {
        return status::ERR_NO_SUCH_LAYER;
    };
    let result = if !dir.memory64 {
        checksum_resident(dir, u, u.resident_ptr)
    } else if u.kind == unit_kind::LAYER {
        bridge::load_layer(u.layer).and_then(|g| if u64::from(g.len) < u.bytes { Err(status::ERR_SLOT_TOO_SMALL) } else { checksum_resident(dir, u, g.ptr) })
    } else {
        checksum_streamed(dir, u)
    };
    match result {
        Ok(c) => write_out(out_ptr, c),
        Err(e) => e,
    }
}

/// Acquires layer `layer` as a forward pass would and writes where it is (a `LayerGrant`).
#[unsafe(no_mangle)]
pub extern "C" fn wc_acquire_layer(layer: i32, out_ptr: i32) -> i32 {
    let Ok(guard) = DIR.lock() else { return status::ERR_BAD_DIRECTORY };
    let Some(dir) = guard.as_ref() else { return status::ERR_BAD_DIRECTORY };
    let Some(u) = usize::try_from(layer).ok().and_then(|i| dir.units.get(i)).filter(|u| u.kind == unit_kind::LAYER) else {
        return status::ERR_NO_SUCH_LAYER;
    };
    let grant = if dir.memory64 {
        bridge::load_layer(u.layer)
    } else {
        Ok(wasm_chord_abi::LayerGrant { ptr: u.resident_ptr, len: u.bytes as u32, slot: u32::MAX, hit: 1 })
    };
    match grant {
        Ok(g) => write_out(out_ptr, g),
        Err(e) => e,
    }
}

/// Takes the model configuration (a `ModelConfig` followed by `n_layer` `LayerTensors`) and
/// allocates the KV cache and scratch buffers.
#[unsafe(no_mangle)]
pub extern "C" fn wc_model_init(cfg_ptr: i32, cfg_len: i32) -> i32 {
    let Some(bytes) = guest_bytes(cfg_ptr, cfg_len) else { return status::ERR_BAD_POINTER };
    let Some(cfg) = ModelConfig::read_from(bytes, 0) else { return status::ERR_BAD_CONFIG };
    let head = core::mem::size_of::<ModelConfig>();
    let lt = core::mem::size_of::<LayerTensors>();
    let rope_at = head + cfg.n_layer as usize * lt;
    let rope_len = wasm_chord_abi::rope_tables(&cfg) * wasm_chord_abi::rope_table_len(&cfg);
    if cfg.n_layer as usize > wasm_chord_abi::MAX_LAYERS || bytes.len() != rope_at + rope_len * 4 {
        return status::ERR_BAD_CONFIG;
    }
    let layers: Vec<LayerTensors> = (0..cfg.n_layer as usize).filter_map(|i| LayerTensors::read_from(bytes, head + i * lt)).collect();
    let rope: Vec<f32> = bytes[rope_at..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let Ok(guard) = DIR.lock() else { return status::ERR_BAD_DIRECTORY };
    let Some(dir) = guard.as_ref() else { return status::ERR_BAD_DIRECTORY };
    let Ok(mut slot) = MODEL.lock() else { return status::ERR_BAD_CONFIG };
    *slot = None; // free the previous model's buffers first
    match model::Model::new(dir, cfg, &layers, rope) {
        Ok(m) => {
            *slot = Some(m);
            status::OK
        }
        Err(e) => e,
    }
}

/// Runs the forward pass on `n_tokens` u32 token ids at `tokens_ptr`, at positions `pos..`, as
/// part of a llama.cpp ubatch of `ubatch` tokens (see `wasm_chord_abi::exports::EVAL`).
#[unsafe(no_mangle)]
pub extern "C" fn wc_eval(tokens_ptr: i32, n_tokens: i32, pos: i32, ubatch: i32) -> i32 {
    let Ok(n) = usize::try_from(n_tokens) else { return status::ERR_BAD_REQUEST };
    let Ok(pos) = usize::try_from(pos) else { return status::ERR_BAD_REQUEST };
    let Ok(ubatch) = usize::try_from(ubatch) else { return status::ERR_BAD_REQUEST };
    let Some(bytes) = guest_bytes(tokens_ptr, (n * 4) as i32) else { return status::ERR_BAD_POINTER };
    let tokens: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let Ok(mut slot) = MODEL.lock() else { return status::ERR_BAD_REQUEST };
    let Some(m) = slot.as_mut() else { return status::ERR_BAD_REQUEST };
    match forward::eval(m, &tokens, pos, ubatch) {
        Ok(()) => status::OK,
        Err(e) => e,
    }
}

/// Where the logits of the last evaluated token live (n_vocab f32), 0 before `wc_model_init`.
#[unsafe(no_mangle)]
pub extern "C" fn wc_logits() -> i32 {
    match MODEL.lock() {
        Ok(g) => g.as_ref().map_or(0, |m| m.logits.as_ptr() as i32),
        Err(_) => 0,
    }
}

/// Where the KV cache lives (see `wasm_chord_abi::exports::KV_CACHE`), 0 before `wc_model_init`.
#[unsafe(no_mangle)]
pub extern "C" fn wc_kv_cache() -> i32 {
    match MODEL.lock() {
        Ok(g) => g.as_ref().map_or(0, |m| m.kv_cache.as_ptr() as i32),
        Err(_) => 0,
    }
}

/// Debug: record the intermediate tensors of layer `layer` during the next evals (−1: stop).
#[unsafe(no_mangle)]
pub extern "C" fn wc_debug_tap(layer: i32) -> i32 {
    taps::select(usize::try_from(layer).ok());
    status::OK
}

/// Debug: copies record `index` (at most `max` floats) to `out_ptr` and its name (≤ 32 bytes,
/// NUL-padded) to `name_ptr`; returns the number of floats, or a negative status.
#[unsafe(no_mangle)]
pub extern "C" fn wc_debug_tap_read(index: i32, name_ptr: i32, out_ptr: i32, max: i32) -> i32 {
    let Some((name, data)) = usize::try_from(index).ok().and_then(taps::get) else { return status::ERR_NO_SUCH_LAYER };
    let n = data.len().min(max.max(0) as usize);
    if guest_bytes(name_ptr, 32).is_none() || guest_bytes(out_ptr, (n * 4) as i32).is_none() {
        return status::ERR_BAD_POINTER;
    }
    let mut nb = [0u8; 32];
    nb[..name.len().min(32)].copy_from_slice(&name.as_bytes()[..name.len().min(32)]);
    // SAFETY: both ranges were checked to lie inside guest memory; the host does not touch them
    // during the call.
    unsafe {
        core::ptr::copy_nonoverlapping(nb.as_ptr(), name_ptr as u32 as usize as *mut u8, 32);
        core::ptr::copy_nonoverlapping(data.as_ptr().cast::<u8>(), out_ptr as u32 as usize as *mut u8, n * 4);
    }
    n as i32
}

/// `len` bytes of guest memory at `ptr`, if that range lies inside memory.
fn guest_bytes(ptr: i32, len: i32) -> Option<&'static [u8]> {
    // Pointers are unsigned: above 2 GiB of guest memory they arrive as negative i32.
    if ptr == 0 || len < 0 || (ptr as u32 as u64) + len as u64 > memory_bytes() {
        return None;
    }
    // SAFETY: the range was checked to lie inside our memory; the host wrote it before the call
    // and does not touch it while the call runs (the guest is single-threaded).
    Some(unsafe { core::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as usize) })
}

/// Calls `memory64_stats` and copies the result to `out_ptr`.
#[unsafe(no_mangle)]
pub extern "C" fn wc_bridge_stats(out_ptr: i32) -> i32 {
    match bridge::stats() {
        Ok(s) => write_out(out_ptr, s),
        Err(e) => e,
    }
}

fn write_out<T: Copy>(out_ptr: i32, value: T) -> i32 {
    let size = core::mem::size_of::<T>() as u64;
    if (out_ptr as u32 as u64) + size > memory_bytes() || out_ptr == 0 {
        return status::ERR_BAD_POINTER;
    }
    // SAFETY: the range lies inside our memory (checked above); unaligned write of a POD struct.
    unsafe { core::ptr::write_unaligned(out_ptr as u32 as usize as *mut T, value) };
    status::OK
}

/// Checksums a unit whose payload starts at guest address `base`.
fn checksum_resident(dir: &Directory, u: &wasm_chord_abi::UnitEntry, base: u32) -> Result<Checksum, i32> {
    if u64::from(base) + u.bytes > memory_bytes() {
        return Err(status::ERR_BAD_POINTER);
    }
    let mut acc = 0u64;
    let mut bytes = 0u64;
    for t in dir.unit_tensors(u) {
        // SAFETY: [base, base + u.bytes) is inside our memory (checked above) and every tensor
        // lies inside its unit's payload (checked when the directory was parsed).
        let data = unsafe { core::slice::from_raw_parts((base as usize + t.unit_offset as usize) as *const u8, t.bytes as usize) };
        // Packed weights are hashed as the file stores them (unpacked a chunk of rows at a time).
        let hash = match packing::packed_rows(dir.memory64, t) {
            Some((ty, rb)) => {
                let step = (READ_CHUNK / rb).max(1) * rb;
                let mut buf = vec![0u8; step.min(data.len())];
                let mut h = Chord64::new();
                for chunk in data.chunks(step) {
                    let b = &mut buf[..chunk.len()];
                    b.copy_from_slice(chunk);
                    unpack_rows(ty, t.ne[0] as usize, b);
                    h.update(b);
                }
                h.finish()
            }
            None => chord64(data),
        };
        acc = chord64_combine(acc, hash);
        bytes += t.bytes;
    }
    Ok(Checksum { hash: acc, bytes })
}

/// Checksums a non-layer unit by streaming it through `memory64_read`.
fn checksum_streamed(dir: &Directory, u: &wasm_chord_abi::UnitEntry) -> Result<Checksum, i32> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut acc = 0u64;
    let mut bytes = 0u64;
    for t in dir.unit_tensors(u) {
        let mut h = Chord64::new();
        let mut done = 0u64;
        while done < t.bytes {
            let n = (t.bytes - done).min(READ_CHUNK as u64) as usize;
            bridge::read(t.file_offset + done, &mut buf[..n])?;
            h.update(&buf[..n]);
            done += n as u64;
        }
        acc = chord64_combine(acc, h.finish());
        bytes += t.bytes;
    }
    Ok(Checksum { hash: acc, bytes })
}
