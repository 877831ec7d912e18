//! The short fuzz run in CI (`cargo test`): every target for a few seconds from a fixed seed,
//! with no finding allowed. The long run is `cargo run --release -p wasm-chord-fuzz -- all
//! --seconds N` (README). Unit tests of the library, so that `cargo test` links one test binary
//! for the crate, not three.

use std::time::Duration;

use crate::{Budget, FileTarget, Outcome, bridge::run_bridge_target, gguf_target, load_target, model_target, run_file_target, seeds};

fn findings_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("findings")
}

#[test]
fn every_seed_is_a_model_that_loads_and_generates() {
    let scratch = std::env::temp_dir().join(format!("wasm-chord-fuzz-seed-{}.gguf", std::process::id()));
    for (i, s) in seeds().iter().enumerate() {
        assert_eq!(gguf_target(s), Outcome::Accepted, "seed {i}");
        assert_eq!(model_target(s), Outcome::Accepted, "seed {i}");
        assert_eq!(load_target(s, &scratch, false), Outcome::Accepted, "seed {i}, WHOLE");
        assert_eq!(load_target(s, &scratch, true), Outcome::Accepted, "seed {i}, Memory64");
    }
    let _ = std::fs::remove_file(&scratch);
}

fn short(target: FileTarget, seconds: u64) {
    let r = run_file_target(target, 7, Budget { execs: u64::MAX, time: Duration::from_secs(seconds) }, &findings_dir());
    println!("{target:?}: {r}");
    assert!(r.findings.is_empty(), "{target:?}: {:#?}", r.findings);
    assert!(r.execs > 0 && r.rejected > 0 && r.outcomes > 3, "{target:?}: {r}");
}

#[test]
fn gguf_reader_short_run() {
    short(FileTarget::Gguf, 3);
}

#[test]
fn load_validation_short_run() {
    short(FileTarget::Model, 3);
}

#[test]
fn guest_load_short_run() {
    short(FileTarget::Load, 4);
}

#[test]
fn hostile_guest_bridge_short_run() {
    let r = run_bridge_target(7, Budget { execs: u64::MAX, time: Duration::from_secs(3) }, &findings_dir());
    println!("bridge: {r}");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.accepted > 0 && r.rejected > 0 && r.outcomes >= 4, "{r}");
}
