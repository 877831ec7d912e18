//! `Memory64LayerManager`: which layers are resident in the guest's layer cache.
//!
//! The cache is an arena of equal slots in guest memory (slot size = the largest layer, 64-byte
//! aligned). The manager decides; the caller moves bytes (the `load` closure copies a layer from
//! the Memory64 region into the slot it is given). Eviction is LRU (the `lru` crate) by default.
//!
//! Note on LRU: a forward pass visits layers 0..N-1 cyclically; with fewer slots than layers LRU
//! evicts exactly the layer needed next, so a full pass has 0 % hits. That is the honest cost of
//! the default the original design names; a scan-resistant policy is future work.

use lru::LruCache;

use crate::error::{ErrorCode as E, Result, fail};

/// Default number of cache slots when neither `cacheLayers` nor `cacheBytes` is given.
pub const DEFAULT_CACHE_LAYERS: u32 = 4;

/// Cache capacity requested by the user: in layers and/or bytes (both ⇒ the smaller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheConfig {
    /// Slots (layers).
    pub layers: Option<u32>,
    /// Bytes of slots.
    pub bytes: Option<u64>,
}

/// Eviction policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// Least recently used (default).
    #[default]
    Lru,
}

/// The slot arena a [`CacheConfig`] resolves to for a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    /// Number of slots.
    pub n_slots: u32,
    /// Bytes per slot.
    pub slot_bytes: u64,
}

impl SlotPlan {
    /// Total arena bytes.
    pub fn arena_bytes(&self) -> u64 {
        u64::from(self.n_slots) * self.slot_bytes
    }
}

/// Cache statistics. Hits and misses are counted once per real access (a guest request for a
/// layer); preloads count as loads but not as accesses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Policy name (`"lru"`).
    pub policy: &'static str,
    /// Slots.
    pub capacity_layers: u32,
    /// Bytes per slot.
    pub slot_bytes: u64,
    /// Accesses that found the layer resident.
    pub hits: u64,
    /// Accesses that had to load the layer.
    pub misses: u64,
    /// Layers evicted to make room.
    pub evictions: u64,
    /// Layer loads (misses + preloads).
    pub loads: u64,
    /// Bytes copied into slots.
    pub bytes_loaded: u64,
    /// Accesses per layer.
    pub layer_accesses: Vec<u64>,
    /// Resident layers, most recently used first.
    pub resident: Vec<u32>,
}

impl CacheStats {
    /// hits / (hits + misses), 0 when there were no accesses.
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 { 0.0 } else { self.hits as f64 / n as f64 }
    }
}

/// Where a layer sits after [`Memory64LayerManager::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Guest address of the slot.
    pub base: u32,
    /// Slot index.
    pub slot: u32,
    /// Whether it was already resident.
    pub hit: bool,
}

/// The layer cache's policy and bookkeeping (see the module docs).
#[derive(Debug)]
pub struct Memory64LayerManager {
    plan: SlotPlan,
    arena_base: u32,
    /// Layer held by each slot.
    slots: Vec<Option<u32>>,
    /// layer → slot, in recency order.
    lru: LruCache<u32, u32>,
    layer_bytes: Vec<u64>,
    stats: CacheStats,
}

impl Memory64LayerManager {
    /// Resolves the user's capacity to slots for layers of the given sizes. Errors (with the
    /// numbers) when not even one layer fits.
    pub fn plan(layer_bytes: &[u64], cfg: CacheConfig) -> Result<SlotPlan> {
        let largest = layer_bytes.iter().copied().max().unwrap_or(0);
        let slot_bytes = largest.div_ceil(wasm_chord_abi::PAYLOAD_ALIGN).max(1) * wasm_chord_abi::PAYLOAD_ALIGN;
        let n_layers = layer_bytes.len() as u64;
        let by_layers = u64::from(cfg.layers.unwrap_or(if cfg.bytes.is_some() { u32::MAX } else { DEFAULT_CACHE_LAYERS }));
        let by_bytes = cfg.bytes.map_or(u64::MAX, |b| b / slot_bytes);
        if cfg.layers == Some(0) {
            return fail(E::InvalidOption, "cacheLayers must be at least 1");
        }
        if by_bytes == 0 {
            return fail(
                E::CacheTooSmall,
                format!("cacheBytes = {} cannot hold one layer: the largest layer needs a {slot_bytes}-byte slot", cfg.bytes.unwrap_or(0)),
            );
        }
        let n = by_layers.min(by_bytes).min(n_layers.max(1));
        Ok(SlotPlan { n_slots: n as u32, slot_bytes })
    }

    /// A manager over an arena of `plan.n_slots` slots starting at guest address `arena_base`.
    pub fn new(layer_bytes: Vec<u64>, plan: SlotPlan, arena_base: u32) -> Self {
        let n_layers = layer_bytes.len();
        Self {
            plan,
            arena_base,
            slots: vec![None; plan.n_slots as usize],
            lru: LruCache::unbounded(),
            layer_bytes,
            stats: CacheStats {
                policy: "lru",
                capacity_layers: plan.n_slots,
                slot_bytes: plan.slot_bytes,
                layer_accesses: vec![0; n_layers],
                ..Default::default()
            },
        }
    }

    /// The slot plan.
    pub fn plan_of(&self) -> SlotPlan {
        self.plan
    }

    /// Number of layers managed.
    pub fn n_layers(&self) -> u32 {
        self.layer_bytes.len() as u32
    }

    /// Whether `layer` is resident.
    pub fn is_resident(&self, layer: u32) -> bool {
        self.lru.contains(&layer)
    }

    /// A real access to `layer`: a hit promotes it; a miss picks a slot (a free one, else the
    /// least recently used, which is evicted) and calls `load(slot_base, slot_bytes)` to fill it.
    pub fn acquire(&mut self, layer: u32, load: impl FnOnce(u32, u64) -> Result<()>) -> Result<Grant> {
        self.check_layer(layer)?;
        self.stats.layer_accesses[layer as usize] += 1;
        if let Some(&slot) = self.lru.get(&layer) {
            self.stats.hits += 1;
            return Ok(Grant { base: self.slot_base(slot), slot, hit: true });
        }
        let grant = self.load_into_slot(layer, load)?;
        self.stats.misses += 1;
        Ok(grant)
    }

    /// Makes every layer resident. Errors with the numbers when they cannot all fit.
    pub fn preload_all(&mut self, mut load: impl FnMut(u32, u32, u64) -> Result<()>) -> Result<()> {
        let n = self.n_layers();
        if n > self.plan.n_slots {
            let need = u64::from(n) * self.plan.slot_bytes;
            return fail(
                E::CacheTooSmall,
                format!(
                    "preloading all {n} layers needs {n} slots of {} bytes ({need} bytes); the cache has {} slots ({} bytes). Load with cacheLayers >= {n} or cacheBytes >= {need}",
                    self.plan.slot_bytes,
                    self.plan.n_slots,
                    self.plan.arena_bytes()
                ),
            );
        }
        for layer in 0..n {
            if !self.lru.contains(&layer) {
                self.load_into_slot(layer, |base, cap| load(layer, base, cap))?;
            }
        }
        Ok(())
    }

    /// Forgets every resident layer (slots become free; bytes are not touched).
    pub fn clear(&mut self) {
        self.lru.clear();
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    /// Statistics.
    pub fn stats(&self) -> CacheStats {
        let mut s = self.stats.clone();
        s.resident = self.lru.iter().map(|(&l, _)| l).collect();
        s
    }

    fn check_layer(&self, layer: u32) -> Result<()> {
        if layer >= self.n_layers() {
            return fail(E::NoSuchLayer, format!("layer {layer} does not exist (the model has {} layers)", self.n_layers()));
        }
        if self.layer_bytes[layer as usize] > self.plan.slot_bytes {
            return fail(E::Internal, format!("layer {layer} ({} bytes) exceeds the slot size {}", self.layer_bytes[layer as usize], self.plan.slot_bytes));
        }
        Ok(())
    }

    fn slot_base(&self, slot: u32) -> u32 {
        // Fits: the arena was allocated in a wasm32 memory, so every slot address is < 4 GiB.
        (u64::from(self.arena_base) + u64::from(slot) * self.plan.slot_bytes) as u32
    }

    fn load_into_slot(&mut self, layer: u32, load: impl FnOnce(u32, u64) -> Result<()>) -> Result<Grant> {
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => free as u32,
            None => {
                let Some((old_layer, slot)) = self.lru.pop_lru() else {
                    return fail(E::Internal, "layer cache has no slots");
                };
                debug_assert_eq!(self.slots[slot as usize], Some(old_layer));
                self.slots[slot as usize] = None;
                self.stats.evictions += 1;
                slot
            }
        };
        let base = self.slot_base(slot);
        load(base, self.plan.slot_bytes)?;
        self.slots[slot as usize] = Some(layer);
        self.lru.put(layer, slot);
        self.stats.loads += 1;
        self.stats.bytes_loaded += self.layer_bytes[layer as usize];
        Ok(Grant { base, slot, hit: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mgr(n_layers: usize, slots: u32) -> Memory64LayerManager {
        let bytes = vec![1000u64; n_layers];
        let plan = Memory64LayerManager::plan(&bytes, CacheConfig { layers: Some(slots), bytes: None }).unwrap();
        Memory64LayerManager::new(bytes, plan, 4096)
    }

    #[test]
    fn lru_hits_misses_evictions() {
        let mut m = mgr(5, 2);
        let mut loaded = vec![];
        for l in [0, 1, 0, 2, 1, 0] {
            m.acquire(l, |base, _| {
                loaded.push((l, base));
                Ok(())
            })
            .unwrap();
        }
        // 0 miss, 1 miss, 0 hit, 2 miss (evicts 1), 1 miss (evicts 0), 0 miss (evicts 2)
        let s = m.stats();
        assert_eq!((s.hits, s.misses, s.evictions, s.loads), (1, 5, 3, 5));
        assert_eq!(s.bytes_loaded, 5000);
        assert_eq!(s.layer_accesses, vec![3, 2, 1, 0, 0]);
        assert_eq!(s.resident, vec![0, 1]);
        assert_eq!(loaded[0], (0, 4096));
        assert_eq!(loaded[1], (1, 4096 + 1024)); // slot size is 1000 rounded up to 64
    }

    #[test]
    fn cyclic_scan_with_fewer_slots_never_hits() {
        let mut m = mgr(6, 4);
        for _ in 0..3 {
            for l in 0..6 {
                m.acquire(l, |_, _| Ok(())).unwrap();
            }
        }
        assert_eq!(m.stats().hits, 0);
    }

    #[test]
    fn failed_load_leaves_slot_free_and_counts_nothing() {
        let mut m = mgr(3, 1);
        assert!(m.acquire(0, |_, _| crate::error::fail(E::Io, "boom")).is_err());
        assert!(!m.is_resident(0));
        let s = m.stats();
        assert_eq!((s.misses, s.loads), (0, 0));
        m.acquire(1, |_, _| Ok(())).unwrap();
        assert!(m.is_resident(1));
    }

    #[test]
    fn capacity_in_bytes_and_errors() {
        let bytes = vec![1000u64; 10];
        let p = Memory64LayerManager::plan(&bytes, CacheConfig { layers: None, bytes: Some(3 * 1024) }).unwrap();
        assert_eq!((p.n_slots, p.slot_bytes), (3, 1024));
        let p = Memory64LayerManager::plan(&bytes, CacheConfig { layers: Some(2), bytes: Some(3 * 1024) }).unwrap();
        assert_eq!(p.n_slots, 2);
        let p = Memory64LayerManager::plan(&bytes, CacheConfig::default()).unwrap();
        assert_eq!(p.n_slots, DEFAULT_CACHE_LAYERS);
        let p = Memory64LayerManager::plan(&bytes, CacheConfig { layers: Some(99), bytes: None }).unwrap();
        assert_eq!(p.n_slots, 10);
        let e = Memory64LayerManager::plan(&bytes, CacheConfig { layers: None, bytes: Some(1000) }).unwrap_err();
        assert_eq!(e.code, E::CacheTooSmall);
        let mut m = mgr(5, 2);
        let e = m.preload_all(|_, _, _| Ok(())).unwrap_err();
        assert_eq!(e.code, E::CacheTooSmall);
        assert!(e.message.contains("5 layers"), "{}", e.message);
        let mut m = mgr(3, 3);
        m.preload_all(|_, _, _| Ok(())).unwrap();
        assert_eq!(m.stats().resident.len(), 3);
        assert_eq!((m.stats().hits, m.stats().misses, m.stats().loads), (0, 0, 3));
        m.clear();
        assert!(m.stats().resident.is_empty());
        assert_eq!(m.acquire(7, |_, _| Ok(())).unwrap_err().code, E::NoSuchLayer);
    }
}
