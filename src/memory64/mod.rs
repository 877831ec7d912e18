//! The Memory64 machinery: region layout, the Wasmtime 64-bit regions holding the weights, and
//! the layer cache's policy.

mod layout;
mod manager;
mod runtime;

pub use layout::{MAX_REGION_BYTES, MemoryLayout, RegionSpec};
pub use manager::{CacheConfig, CachePolicy, CacheStats, DEFAULT_CACHE_LAYERS, Grant, Memory64LayerManager, SlotPlan};
pub use runtime::{Memory64Runtime, RegionStats, RuntimeStats};
