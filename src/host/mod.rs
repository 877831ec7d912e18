//! The Wasmtime host: one engine for the guest, the guest instance (one Store per model), and the
//! one table of host imports (`imports.rs`). Only this module talks to the guest.

mod guest;
mod imports;
mod memory;
mod workers;

pub use guest::{GUEST_MEMORY_LIMIT, Guest, guest_module, guest_wasm, instantiate_module};
pub use imports::{Bridge, HOSTILE_GUEST_WAT, HostState, LayerCopyPlan, with_abort_poll};
