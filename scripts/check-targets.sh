#!/usr/bin/env bash
# `cargo check` of the crate for the other declared targets that can be checked on this machine:
# aarch64-unknown-linux-gnu (rustup's std, and Debian's gcc-aarch64-linux-gnu for the C that
# Wasmtime's build script compiles). The macOS and Windows targets in package.json's
# `napi.targets` cannot be checked here: their C toolchains are not available on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add aarch64-unknown-linux-gnu
if ! command -v aarch64-linux-gnu-gcc > /dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q gcc-aarch64-linux-gnu
fi
cargo check --target aarch64-unknown-linux-gnu
