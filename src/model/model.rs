//! `Memory64Model`: a loaded model — its metadata, memory plan, guest and layer cache.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasm_chord_abi::{BridgeStats, Checksum, Chord64, chord64_combine};

use super::info::{LayerInfo, MemoryMode, MemoryStats, ModelInfo, current_rss};
use super::loader::MemoryPlan;
use super::units::UnitTable;
use crate::error::{ErrorCode as E, Result, fail, io_err};
use crate::gguf::GgufFile;
use crate::host::Guest;
use crate::memory64::CacheStats;

/// A loaded model (see the module docs).
pub struct Memory64Model {
    path: PathBuf,
    gguf: Arc<GgufFile>,
    units: UnitTable,
    plan: MemoryPlan,
    guest: Guest,
    info: ModelInfo,
    load_time: Duration,
}

impl std::fmt::Debug for Memory64Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory64Model").field("path", &self.path).field("mode", &self.plan.mode).finish()
    }
}

impl Memory64Model {
    pub(super) fn new(path: PathBuf, gguf: GgufFile, units: UnitTable, plan: MemoryPlan, guest: Guest, info: ModelInfo, load_time: Duration) -> Self {
        Self { path, gguf: Arc::new(gguf), units, plan, guest, info, load_time }
    }

    /// Facts about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The parsed GGUF header and metadata.
    pub fn gguf(&self) -> &GgufFile {
        &self.gguf
    }

    /// The parsed GGUF header, shared.
    pub fn gguf_arc(&self) -> Arc<GgufFile> {
        self.gguf.clone()
    }

    /// The tensor → unit mapping.
    pub fn units(&self) -> &UnitTable {
        &self.units
    }

    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Wall time the load took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Layer `i`: size, tensors, residency.
    pub fn layer_info(&self, i: u32) -> Result<LayerInfo> {
        let u = self.layer_unit(i)?;
        let resident = match &self.guest.state().bridge {
            None => true,
            Some(b) => b.manager.is_resident(i),
        };
        let tensors = u
            .tensors
            .iter()
            .map(|&t| {
                let ti = &self.gguf.tensors[t];
                (ti.name.clone(), ti.ggml_type.name(), ti.shape.clone())
            })
            .collect();
        Ok(LayerInfo { index: i, bytes: u.payload_bytes, tensors, resident })
    }

    fn layer_unit(&self, i: u32) -> Result<&super::units::Unit> {
        if i >= self.units.n_layers {
            return fail(E::NoSuchLayer, format!("layer {i} does not exist (the model has {} layers)", self.units.n_layers));
        }
        Ok(&self.units.units[i as usize])
    }

    /// The guest's checksum of unit `unit` (layers `0..layer_count`, then non-layer tensors), as
    /// seen from inside the guest: in Memory64 mode a layer is acquired through the layer cache
    /// (a real access) and a non-layer tensor is streamed through `memory64_read`.
    pub fn guest_checksum(&mut self, unit: u32) -> Result<Checksum> {
        if unit as usize >= self.units.units.len() {
            return fail(E::NoSuchLayer, format!("unit {unit} does not exist ({} units)", self.units.units.len()));
        }
        self.guest.unit_checksum(unit)
    }

    /// The guest acquires layer `i` as a forward pass would (a real cache access in Memory64
    /// mode). Returns whether it was already resident.
    pub fn acquire_layer(&mut self, i: u32) -> Result<bool> {
        self.layer_unit(i)?;
        self.guest.acquire_layer(i)
    }

    /// The same checksum computed independently on the host by reading the file with `pread`
    /// (no region, no bridge, no guest).
    pub fn file_checksum(&self, unit: u32) -> Result<Checksum> {
        file_checksum(&self.path, &self.gguf, &self.units, unit)
    }

    /// Makes every layer resident (Memory64 mode); errors with the numbers when the cache cannot
    /// hold them all. No-op in WHOLE mode.
    pub fn preload_all_layers(&mut self) -> Result<()> {
        let (data, state) = self.guest.memory_and_state();
        let Some(bridge) = state.bridge.as_mut() else { return Ok(()) };
        let crate::host::Bridge { runtime, manager, layers, .. } = bridge;
        manager.preload_all(|layer, base, cap| crate::host::copy_layer(runtime, &layers[layer as usize], data, base, cap))
    }

    /// Cache statistics (`None` in WHOLE mode, where every layer is resident and no cache exists).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.guest.state().bridge.as_ref().map(|b| b.manager.stats())
    }

    /// Forgets every cached layer (Memory64 mode).
    pub fn clear_cache(&mut self) {
        if let Some(b) = self.guest.memory_and_state().1.bridge.as_mut() {
            b.manager.clear();
        }
    }

    /// Bridge counters as kept by the host.
    pub fn bridge_stats(&self) -> BridgeStats {
        self.guest.bridge_stats()
    }

    /// Bridge counters as the guest reads them through `memory64_stats`.
    pub fn bridge_stats_from_guest(&mut self) -> Result<BridgeStats> {
        self.guest.bridge_stats_from_guest()
    }

    /// Memory accounting.
    pub fn memory_stats(&self) -> MemoryStats {
        let state = self.guest.state();
        let (regions, region_bytes) = match &state.bridge {
            Some(b) => (b.runtime.region_stats(), b.runtime.total_bytes()),
            None => (Vec::new(), 0),
        };
        let cache_arena_bytes = self.plan.slots.map_or(0, |s| s.arena_bytes());
        let resident_weight_bytes = match &state.bridge {
            None => self.plan.resident_bytes,
            Some(b) => b.manager.stats().resident.iter().map(|&l| self.units.units[l as usize].payload_bytes).sum(),
        };
        MemoryStats {
            mode: self.plan.mode,
            guest_memory_bytes: self.guest.memory_bytes(),
            cache_arena_bytes,
            resident_weight_bytes,
            regions,
            region_bytes,
            bridge: self.guest.bridge_stats(),
            rss_bytes: current_rss(),
        }
    }

    /// Memory mode.
    pub fn mode(&self) -> MemoryMode {
        self.plan.mode
    }
}

/// Checksum of a unit's tensors read straight from the file (the independent reference).
pub fn file_checksum(path: &Path, gguf: &GgufFile, units: &UnitTable, unit: u32) -> Result<Checksum> {
    let Some(u) = units.units.get(unit as usize) else {
        return fail(E::NoSuchLayer, format!("unit {unit} does not exist ({} units)", units.units.len()));
    };
    let file = File::open(path).map_err(|e| io_err(format!("cannot open {}", path.display()), e))?;
    let mut buf = vec![0u8; 8 << 20];
    let mut acc = 0u64;
    let mut bytes = 0u64;
    for &t in &u.tensors {
        let ti = &gguf.tensors[t];
        let mut h = Chord64::new();
        let mut done = 0u64;
        while done < ti.bytes {
            let n = (ti.bytes - done).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], ti.file_offset + done).map_err(|e| io_err(format!("reading {:?}", ti.name), e))?;
            h.update(&buf[..n]);
            done += n as u64;
        }
        acc = chord64_combine(acc, h.finish());
        bytes += ti.bytes;
    }
    Ok(Checksum { hash: acc, bytes })
}
