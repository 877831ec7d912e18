//! Models: the tensor → layer mapping, the loader that plans memory and fills the guest, and
//! the loaded model.

mod info;
mod loader;
#[allow(clippy::module_inception)] // reason: `model::model` holds `Memory64Model`, the module's main type
mod model;
mod units;

pub use info::{LayerInfo, MemoryMode, MemoryStats, ModelInfo, TypeCount, current_rss, file_type_name};
pub use loader::{
    DEFAULT_MEMORY64_THRESHOLD, REGION_SPLIT_BYTES, bridge_for, LoadHooks, LoadOptions, Memory64GGUFLoader, Memory64Option, MemoryPlan, WASM32_WEIGHT_BUDGET, plan_memory,
    plan_regions,
};
pub use model::{Memory64Model, SequenceId, file_checksum};
pub use units::{Unit, UnitKind, UnitTable, layer_of};
