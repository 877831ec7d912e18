//! Build script: napi-rs linker setup, and the wasm32 guest (`guest/`), compiled for
//! `wasm32-unknown-unknown` with `+simd128,+relaxed-simd` and embedded in the addon.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    napi_build::setup();
    build_guest();
}

fn build_guest() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for p in ["guest/src", "guest/Cargo.toml", "abi/src", "abi/Cargo.toml", "kernels/src", "kernels/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("guest");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", "wasm32-unknown-unknown", "--manifest-path"])
        .arg(root.join("guest/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags (coverage, sanitizers, host target-cpu) must not leak into the guest.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        // LLVM's loop strength reduction is off: it rewrites the kernels' `base + constant`
        // addresses into induction pointers plus a plain `i32.add`, which cannot go into the wasm
        // load's offset field, so Wasmtime emits an extra `lea` per load. Without it the offsets
        // fold (measured 2026-12-01, Qwen2.5-1.5B Q4_K_M: Q4_K prompt tile +15 %, Q6_K +7 %, a
        // 128-token prompt 5.15 → 4.65 s, decode +1-2 %; results bit-identical).
        // The stack pointer is exported so that each worker instance (`src/host/workers.rs`) gets
        // a stack of its own.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128,+relaxed-simd\x1f-Cllvm-args=-disable-lsr\x1f-Clink-arg=--export=__stack_pointer");
    let status = cmd.status().expect("failed to run cargo for the wasm32 guest");
    if !status.success() {
        panic!(
            "building the wasm32 guest failed (exit {status}). Is the target installed? Run: rustup target add wasm32-unknown-unknown"
        );
    }
    let wasm = target_dir.join("wasm32-unknown-unknown/release/wasm_chord_guest.wasm");
    std::fs::copy(&wasm, out.join("wasm_chord_guest.wasm")).expect("copy guest wasm");
}
