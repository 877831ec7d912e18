//! Model-free tests: synthetic GGUF models written by the project's writer, loaded in both
//! memory modes; the guest's view of every unit must match the file.

mod common;

use wasm_chord::gguf::{GgmlType, GgufValue, GgufWriter, TensorData};
use wasm_chord::model::{LoadOptions, Memory64GGUFLoader, Memory64Option, MemoryMode};
use wasm_chord::{CacheConfig, ErrorCode};

fn options(mode: Memory64Option, layers: u32) -> LoadOptions {
    LoadOptions { memory64: mode, cache: CacheConfig { layers: Some(layers), bytes: None }, ..Default::default() }
}

#[test]
fn every_unit_matches_the_file_in_both_modes() {
    let dir = common::temp_dir("units");
    let path = dir.join("synthetic.gguf");
    GgufWriter::synthetic_llama(8, 256, 512, 1000, GgmlType::Q8_0, TensorData::Pattern).write_to(&path).unwrap();

    let mut whole = Memory64GGUFLoader::new(&path, options(Memory64Option::Never, 3)).load().unwrap();
    let mut m64 = Memory64GGUFLoader::new(&path, options(Memory64Option::Always, 3)).load().unwrap();
    assert_eq!(whole.mode(), MemoryMode::Whole);
    assert_eq!(m64.mode(), MemoryMode::Memory64);
    let n_units = whole.units().units.len() as u32;
    assert_eq!(n_units, 8 + 3);
    for u in 0..n_units {
        let expect = whole.file_checksum(u).unwrap();
        assert!(expect.bytes > 0);
        assert_eq!(whole.guest_checksum(u).unwrap(), expect, "whole, unit {u}");
        assert_eq!(m64.guest_checksum(u).unwrap(), expect, "memory64, unit {u}");
    }
    // A cyclic pass over 8 layers with 3 slots never hits (LRU); a repeat of the last one does.
    let s = m64.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses, s.evictions), (0, 8, 5));
    m64.guest_checksum(7).unwrap();
    let s = m64.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses), (1, 8));
    assert_eq!(s.resident.len(), 3);
    assert_eq!(s.layer_accesses[7], 2);
    // The guest read the non-layer tensors through memory64_read and sees the same counters.
    let b = m64.bridge_stats_from_guest().unwrap();
    assert_eq!(b, m64.bridge_stats());
    assert_eq!(b.enabled, 1);
    assert_eq!(b.layer_loads, 8);
    assert!(b.reads >= 3 && b.errors == 0, "{b:?}");
    assert!(whole.cache_stats().is_none());
    assert_eq!(whole.bridge_stats_from_guest().unwrap().enabled, 0);
    // Preload cannot fit 8 layers in 3 slots; clearCache empties the cache.
    assert_eq!(m64.preload_all_layers().unwrap_err().code, ErrorCode::CacheTooSmall);
    m64.clear_cache();
    assert!(m64.cache_stats().unwrap().resident.is_empty());
    assert!(!m64.layer_info(7).unwrap().resident);
    assert!(whole.layer_info(7).unwrap().resident);
    assert_eq!(m64.layer_info(8).unwrap_err().code, ErrorCode::NoSuchLayer);
}

#[test]
fn preload_all_layers_when_they_fit() {
    let dir = common::temp_dir("preload");
    let path = dir.join("synthetic.gguf");
    GgufWriter::synthetic_llama(4, 128, 256, 300, GgmlType::F32, TensorData::Pattern).write_to(&path).unwrap();
    let mut m = Memory64GGUFLoader::new(&path, options(Memory64Option::Always, 4)).load().unwrap();
    m.preload_all_layers().unwrap();
    let s = m.cache_stats().unwrap();
    assert_eq!((s.loads, s.hits, s.misses), (4, 0, 0));
    for l in 0..4 {
        assert_eq!(m.guest_checksum(l).unwrap(), m.file_checksum(l).unwrap());
    }
    let s = m.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses, s.loads), (4, 0, 4));
}

#[test]
fn cache_bytes_sizes_the_cache() {
    let dir = common::temp_dir("bytes");
    let path = dir.join("synthetic.gguf");
    GgufWriter::synthetic_llama(6, 128, 256, 300, GgmlType::F32, TensorData::Pattern).write_to(&path).unwrap();
    let (_, units, _) = Memory64GGUFLoader::new(&path, LoadOptions::default()).plan().unwrap();
    let layer = units.layer_bytes()[0];
    let o = LoadOptions { memory64: Memory64Option::Always, cache: CacheConfig { layers: None, bytes: Some(2 * layer + 10) }, ..Default::default() };
    let m = Memory64GGUFLoader::new(&path, o).load().unwrap();
    assert_eq!(m.cache_stats().unwrap().capacity_layers, 2);
    let o = LoadOptions { memory64: Memory64Option::Always, cache: CacheConfig { layers: None, bytes: Some(layer / 2) }, ..Default::default() };
    assert_eq!(Memory64GGUFLoader::new(&path, o).load().unwrap_err().code, ErrorCode::CacheTooSmall);
}

/// A sparse synthetic file larger than 4 GiB: a 4 GiB token embedding first, so that every layer
/// and the final norm lie past the 4 GiB offset. Only a few KiB per tensor are on disk.
#[test]
fn sparse_file_over_4gib_pages_layers_past_4gib() {
    let dir = common::temp_dir("sparse");
    let path = dir.join("sparse.gguf");
    let mut w = GgufWriter::synthetic_llama(4, 512, 1024, 1000, GgmlType::F32, TensorData::Sparse);
    // token_embd: [512, 2^21] F32 = 4 GiB, and the head tied to it (output.weight dropped).
    w.tensors[0].shape = vec![512, 1 << 21];
    w.tensors.retain(|t| t.name != "output.weight");
    w.metadata.retain(|(k, _)| k != "llama.vocab_size");
    w.write_to(&path).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 4 << 30);

    let (gguf, units, plan) = Memory64GGUFLoader::new(&path, LoadOptions::default()).plan().unwrap();
    assert_eq!(plan.mode, MemoryMode::Memory64, "auto must choose Memory64 above 3 GiB");
    let never = Memory64GGUFLoader::new(&path, options(Memory64Option::Never, 2)).load().unwrap_err();
    assert_eq!(never.code, ErrorCode::ModelTooLargeForWasm32);
    assert!(never.message.contains("memory64"), "{}", never.message);

    // 'auto' with a threshold above the file size still picks Memory64: WHOLE cannot fit wasm32.
    let high = LoadOptions { memory64_threshold: 1 << 40, ..options(Memory64Option::Auto, 2) };
    let (_, _, p) = Memory64GGUFLoader::new(&path, high).plan().unwrap();
    assert_eq!(p.mode, MemoryMode::Memory64, "{}", p.reason);
    let mut m = Memory64GGUFLoader::new(&path, options(Memory64Option::Auto, 2)).load().unwrap();
    for l in 0..4u32 {
        let first = &gguf.tensors[units.units[l as usize].tensors[0]];
        assert!(first.file_offset > 4 << 30, "layer {l} starts below 4 GiB");
        assert_eq!(m.guest_checksum(l).unwrap(), m.file_checksum(l).unwrap(), "layer {l}");
    }
    // output_norm.weight (last unit) is also past 4 GiB and comes through memory64_read.
    let last = units.units.len() as u32 - 1;
    assert_eq!(m.guest_checksum(last).unwrap(), m.file_checksum(last).unwrap());
    let stats = m.memory_stats();
    assert!(stats.region_bytes > 4 << 30);
    assert!(stats.regions.iter().any(|r| r.file_offset.unwrap_or(0) > 4 << 30 && r.reads > 0));
    assert!(stats.guest_memory_bytes < 1 << 30);
    drop(m);
    std::fs::remove_file(&path).unwrap();
}

/// Loads a 4-layer synthetic model in Memory64 mode with one cache slot (every other layer is
/// read from the file again) and reads layer 0 once.
fn loaded_with_one_slot(tag: &str) -> (std::path::PathBuf, wasm_chord::Memory64Model) {
    let dir = common::temp_dir(tag);
    let path = dir.join("synthetic.gguf");
    GgufWriter::synthetic_llama(4, 128, 256, 300, GgmlType::F32, TensorData::Pattern).write_to(&path).unwrap();
    let mut m = Memory64GGUFLoader::new(&path, options(Memory64Option::Always, 1)).load().unwrap();
    assert_eq!(m.guest_checksum(0).unwrap(), m.file_checksum(0).unwrap());
    // The change below must land in a later clock tick than the write above (mtime granularity).
    std::thread::sleep(std::time::Duration::from_millis(20));
    (path, m)
}

/// After the file changed, every read of it fails with ERR_FILE_CHANGED and a message saying
/// what changed: the next layer, the evicted layer 0 read again, a row of a non-layer tensor,
/// and the independent file checksum (`verifyUnit`).
fn every_later_read_fails(m: &mut wasm_chord::Memory64Model, says: &str) {
    let e = m.guest_checksum(3).unwrap_err();
    assert_eq!(e.code, ErrorCode::FileChanged, "{e}");
    assert!(e.message.contains(says), "{e}");
    assert_eq!(m.guest_checksum(0).unwrap_err().code, ErrorCode::FileChanged);
    let last = m.units().units.len() as u32 - 1;
    assert_eq!(m.guest_checksum(last).unwrap_err().code, ErrorCode::FileChanged);
    assert_eq!(m.file_checksum(1).unwrap_err().code, ErrorCode::FileChanged);
    assert!(m.bridge_stats().errors >= 3);
}

#[test]
fn file_truncated_under_a_loaded_model_is_a_typed_error() {
    let (path, mut m) = loaded_with_one_slot("trunc");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(4096).unwrap();
    every_later_read_fails(&mut m, "size went from");
}

#[test]
fn file_overwritten_in_place_under_a_loaded_model_is_a_typed_error() {
    // Same size, same inode, other bytes: what silently gave wrong text when the mapping was read.
    let (path, mut m) = loaded_with_one_slot("overwrite");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x5a; 4096], len - 8192).unwrap();
    every_later_read_fails(&mut m, "it was modified");
}

#[test]
fn file_replaced_under_a_loaded_model_is_a_typed_error() {
    let (path, mut m) = loaded_with_one_slot("replace");
    let other = path.with_extension("new");
    std::fs::copy(&path, &other).unwrap();
    std::fs::rename(&other, &path).unwrap();
    every_later_read_fails(&mut m, "names another file");
}

#[test]
fn only_regular_files_load_and_a_fifo_does_not_block() {
    let dir = common::temp_dir("fifo");
    let fifo = dir.join("model.gguf");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = Memory64GGUFLoader::new(&fifo, LoadOptions::default()).load().unwrap_err();
    assert_eq!(e.code, ErrorCode::Io, "{e}");
    assert!(e.message.contains("not a regular file (a FIFO)"), "{e}");
    let e = Memory64GGUFLoader::new(&dir, LoadOptions::default()).load().unwrap_err();
    assert!(e.code == ErrorCode::Io && e.message.contains("a directory"), "{e}");
}

#[test]
fn regions_follow_file_order_and_split_large_layer_runs() {
    let dir = common::temp_dir("regions");
    let path = dir.join("sparse.gguf");
    // 6 layers of ~200 MiB each (sparse on disk): layer runs must be cut below 1 GiB.
    GgufWriter::synthetic_llama(6, 4096, 4096, 300, GgmlType::F32, TensorData::Sparse).write_to(&path).unwrap();
    let (gguf, units, _) = Memory64GGUFLoader::new(&path, LoadOptions::default()).plan().unwrap();
    let (layout, offsets) = wasm_chord::model::plan_regions(&gguf, &units).unwrap();
    let names: Vec<&str> = layout.regions().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"embeddings"));
    assert_eq!(names.last(), Some(&"output"));
    assert!(names.len() >= 4, "{names:?}");
    assert!(names[1].starts_with("layers_0_"), "{names:?}");
    for r in layout.regions() {
        assert!(r.size <= wasm_chord::model::REGION_SPLIT_BYTES || !r.name.starts_with("layers"), "{r:?}");
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn layer_cache_arenas_over_2_gib_and_layers_of_3_gib_load() {
    let dir = common::temp_dir("big-arena");
    // 8 layers of 448 MiB (sparse on disk): cacheBytes = 3 GiB gives 6 slots, a 2.6 GiB arena —
    // more than the guest's allocator can hand out at once (it took fresh pages since).
    let path = dir.join("448mib-layers.gguf");
    GgufWriter::synthetic_llama(8, 4096, 4096, 300, GgmlType::F32, TensorData::Sparse).write_to(&path).unwrap();
    let o = LoadOptions { memory64: Memory64Option::Always, cache: CacheConfig { layers: None, bytes: Some(3 << 30) }, context_length: Some(256), ..Default::default() };
    let mut m = Memory64GGUFLoader::new(&path, o).load().unwrap();
    let s = m.cache_stats().unwrap();
    assert_eq!(s.capacity_layers, 6);
    // The arena itself lies partly above 2 GiB of guest memory. (Filling its slots would read
    // gigabytes of file holes, ~0.25 GB/s on this machine's disk: one layer is enough here.)
    assert!(m.memory_stats().guest_memory_bytes > 2 << 30);
    assert!(!m.acquire_layer(0).unwrap());
    drop(m);

    // Layers of ~2.9 GiB: the default cache (4 layers) shrinks to the one slot that fits.
    let path = dir.join("2.9gib-layers.gguf");
    let mut w = GgufWriter::synthetic_llama(2, 8192, 20480, 300, GgmlType::F32, TensorData::Sparse);
    // 16 heads of 512 (8 heads would be 1024 wide, more than the forward pass takes).
    w.metadata.retain(|(k, _)| !k.starts_with("llama.attention.head_count"));
    w.kv("llama.attention.head_count", GgufValue::U32(16)).kv("llama.attention.head_count_kv", GgufValue::U32(16));
    w.write_to(&path).unwrap();
    let o = LoadOptions { memory64: Memory64Option::Always, context_length: Some(256), ..Default::default() };
    let m = Memory64GGUFLoader::new(&path, o).load().unwrap();
    let s = m.cache_stats().unwrap();
    assert_eq!(s.capacity_layers, 1);
    assert!(s.slot_bytes > (2 << 30) + (800 << 20), "slot of {} bytes", s.slot_bytes);
    drop(m);
    // Asking for more slots than fit names the option passed, and only it.
    let o = LoadOptions { memory64: Memory64Option::Always, cache: CacheConfig { layers: Some(2), bytes: None }, ..Default::default() };
    let e = Memory64GGUFLoader::new(&path, o).load().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidOption, "{e}");
    assert!(e.message.starts_with("cacheLayers = 2 asks for 2 cache slots") && e.message.contains("at most 1 slots fit") && !e.message.contains("cacheBytes"), "{e}");
}
