//! Helpers shared by the model-free integration tests.
#![allow(dead_code)] // reason: each test binary uses a different subset of these helpers

use std::path::PathBuf;

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wasm-chord-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Path of a real model in the model cache, if it was fetched.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("WASM_CHORD_MODELS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wasm-chord/models")))?;
    let p = dir.join(file);
    p.exists().then_some(p)
}
