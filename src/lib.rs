//! wasm-chord: run GGUF language models inside a sandboxed wasm32 guest, with host-managed
//! Memory64 regions for models larger than a 32-bit memory can hold.
//!
//! Architecture (see `docs/ARCHITECTURE.md`):
//! - [`gguf`]: hostile-file-safe GGUF reader and the project's own writer.
//! - [`memory64`]: [`MemoryLayout`], [`Memory64Runtime`] (Wasmtime 64-bit memories backed by the
//!   file), [`Memory64LayerManager`] (the layer cache policy).
//! - [`host`]: the Wasmtime host — the guest instance and the one table of host imports.
//! - [`model`]: [`Memory64GGUFLoader`] and [`Memory64Model`].
//! - [`infer`]: architecture resolution, sampler and the generation loop (the forward pass
//!   itself runs in the guest).
//! - `napi` (feature `node`): the thin JavaScript layer.

pub mod error;
pub mod gguf;
pub mod host;
pub mod infer;
pub mod memory64;
pub mod model;
#[cfg(feature = "node")]
mod napi;

pub use error::{ChordError, ErrorCode, Result};
pub use memory64::{CacheConfig, CacheStats, Memory64LayerManager, Memory64Runtime, MemoryLayout};
pub use model::{LoadOptions, Memory64GGUFLoader, Memory64Model, Memory64Option, MemoryMode};
