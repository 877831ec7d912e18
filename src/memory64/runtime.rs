//! `Memory64Runtime`: the regions that hold a model's weights, each a real Wasmtime 64-bit linear
//! memory (`Config::wasm_memory64`), larger than 4 GiB when the model is.
//!
//! How a region is backed: Wasmtime creates an *instance's* memories through the engine's
//! `MemoryCreator` (a host `Memory::new` does not), so each region is the exported memory of a
//! tiny memory-only module `(module (memory (export "m") i64 N N))` instantiated in a dedicated
//! region engine whose creator maps the model file copy-on-write (`MAP_PRIVATE`, via memmap2).
//! The footprint of a region is therefore address space only.
//!
//! How a file-backed region is read: the host fills the destination with `pread` of the file
//! range the region maps ([`ModelFile::read_exact_at`], which also checks after each read that
//! the file is still the one loaded), not by touching the mapping. A fault on a mapping of a file
//! that shrank is a SIGBUS that kills the process; a `pread` returns short. `pread` also fills a
//! slot from the page cache faster than faulting the mapping in (see `ModelFile`), and leaves no
//! pages of the mapping resident.
//!
//! The region engine runs no code against these memories (the host reads file-backed ones by
//! `pread` and copies out of anonymous ones), so it is configured with no guard pages and no
//! reservation; the guest engine (`src/host`) keeps Wasmtime's own memory creator.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use memmap2::{MmapMut, MmapOptions};
use wasmtime::{Config, Engine, Instance, LinearMemory, Memory, MemoryCreator, MemoryType, Module, Store};

use super::layout::{MemoryLayout, RegionSpec};
use crate::error::{ChordError, ErrorCode as E, Result, fail};
use crate::gguf::ModelFile;

const WASM_PAGE: u64 = 65536;

/// Per-region statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionStats {
    /// Region name.
    pub name: String,
    /// Logical size in bytes.
    pub size: u64,
    /// Size of the Wasmtime memory (whole 64 KiB pages).
    pub memory_bytes: u64,
    /// File offset of the region's first byte (file-backed regions).
    pub file_offset: Option<u64>,
    /// Successful reads.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Failed reads (out of bounds, file truncated).
    pub errors: u64,
}

/// Aggregate statistics of a runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Successful reads.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Failed reads.
    pub errors: u64,
}

struct Region {
    spec: RegionSpec,
    memory: Memory,
    /// File offset of the region's logical byte 0.
    file_offset: Option<u64>,
    /// Logical byte 0 sits at this offset inside the memory (file mappings start on a page).
    delta: u64,
    stats: RegionStats,
}

/// Host-managed Memory64 regions (see the module docs).
pub struct Memory64Runtime {
    store: Store<()>,
    regions: Vec<Region>,
    /// The file that file-backed regions map (and are read from).
    source: Option<Arc<ModelFile>>,
}

impl std::fmt::Debug for Memory64Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory64Runtime").field("regions", &self.region_stats()).finish()
    }
}

impl Memory64Runtime {
    /// Anonymous, zero-filled, writable regions (tests and scratch use).
    pub fn new(layout: &MemoryLayout) -> Result<Self> {
        let mut store = Store::new(region_engine()?, ());
        let mut regions = Vec::with_capacity(layout.regions().len());
        for spec in layout.regions() {
            let memory = instantiate_region(&mut store, spec.size, Backing::Anonymous)?;
            regions.push(Region::new(spec.clone(), memory, &store, None, 0));
        }
        Ok(Self { store, regions, source: None })
    }

    /// File-backed regions: region `i` holds the bytes `[file_offsets[i], file_offsets[i] + size_i)`
    /// of `file`, mapped copy-on-write (never copied into anonymous memory) and read by `pread`.
    pub fn map_file(file: Arc<ModelFile>, layout: &MemoryLayout, file_offsets: &[u64]) -> Result<Self> {
        if file_offsets.len() != layout.regions().len() {
            return fail(E::InvalidLayout, format!("{} file offsets for {} regions", file_offsets.len(), layout.regions().len()));
        }
        let file_len = file.len();
        let page = page_size();
        let shared = Arc::new(file.file().try_clone().map_err(|e| crate::error::io_err("dup", e))?);
        let mut store = Store::new(region_engine()?, ());
        let mut regions = Vec::with_capacity(file_offsets.len());
        for (spec, &off) in layout.regions().iter().zip(file_offsets) {
            let end = off.checked_add(spec.size).filter(|&e| e <= file_len);
            if end.is_none() {
                return fail(E::Memory64, format!("region {:?} [{off}, +{}) lies outside the {file_len}-byte file", spec.name, spec.size));
            }
            let map_start = off / page * page;
            let delta = off - map_start;
            let backing = Backing::File { file: shared.clone(), offset: map_start };
            let memory = instantiate_region(&mut store, delta + spec.size, backing)?;
            regions.push(Region::new(spec.clone(), memory, &store, Some(off), delta));
        }
        Ok(Self { store, regions, source: Some(file) })
    }

    /// Number of regions.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Sum of logical region sizes.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.spec.size).sum()
    }

    /// Whether the regions map a file.
    pub fn is_file_backed(&self) -> bool {
        self.source.is_some()
    }

    /// Copies `dst.len()` bytes at `offset` of region `region` into `dst` (bounds-checked).
    pub fn read(&mut self, region: usize, offset: u64, dst: &mut [u8]) -> Result<()> {
        let res = self.read_inner(region, offset, dst);
        if let Some(r) = self.regions.get_mut(region) {
            match &res {
                Ok(()) => {
                    r.stats.reads += 1;
                    r.stats.bytes_read += dst.len() as u64;
                }
                Err(_) => r.stats.errors += 1,
            }
        }
        res
    }

    /// Copies bytes at absolute file offset `file_offset` (file-backed runtimes): finds the region
    /// holding the whole range and reads from it.
    pub fn read_file_range(&mut self, file_offset: u64, dst: &mut [u8]) -> Result<()> {
        let len = dst.len() as u64;
        let found = self.regions.iter().position(|r| {
            r.file_offset.is_some_and(|o| file_offset >= o && file_offset.checked_add(len).is_some_and(|e| e <= o + r.spec.size))
        });
        match found {
            Some(i) => {
                let o = self.regions[i].file_offset.unwrap_or(0);
                self.read(i, file_offset - o, dst)
            }
            None => fail(E::Memory64, format!("no region holds file range [{file_offset}, +{len})")),
        }
    }

    /// Writes into an anonymous region (file-backed regions are read-only).
    pub fn write(&mut self, region: usize, offset: u64, src: &[u8]) -> Result<()> {
        if self.source.is_some() {
            return fail(E::Memory64, "file-backed regions are read-only");
        }
        let (start, r) = self.locate(region, offset, src.len() as u64)?;
        let memory = r.memory;
        memory.data_mut(&mut self.store)[start..start + src.len()].copy_from_slice(src);
        Ok(())
    }

    /// Statistics per region.
    pub fn region_stats(&self) -> Vec<RegionStats> {
        self.regions.iter().map(|r| r.stats.clone()).collect()
    }

    /// Aggregate statistics.
    pub fn stats(&self) -> RuntimeStats {
        self.regions.iter().fold(RuntimeStats::default(), |mut a, r| {
            a.reads += r.stats.reads;
            a.bytes_read += r.stats.bytes_read;
            a.errors += r.stats.errors;
            a
        })
    }

    fn read_inner(&mut self, region: usize, offset: u64, dst: &mut [u8]) -> Result<()> {
        let len = dst.len();
        let (start, r) = self.locate(region, offset, len as u64)?;
        match (&self.source, r.file_offset) {
            (Some(file), Some(base)) => file.read_exact_at(dst, base + offset, &|| format!("region {:?} bytes [{offset}, +{len})", r.spec.name)),
            _ => {
                dst.copy_from_slice(&r.memory.data(&self.store)[start..start + dst.len()]);
                Ok(())
            }
        }
    }

    /// Bounds check: returns the memory index of logical `offset`.
    fn locate(&self, region: usize, offset: u64, len: u64) -> Result<(usize, &Region)> {
        let n = self.regions.len();
        let Some(r) = self.regions.get(region) else {
            return fail(E::Memory64, format!("region {region} does not exist ({n} regions)"));
        };
        match offset.checked_add(len) {
            Some(end) if end <= r.spec.size => Ok(((r.delta + offset) as usize, r)),
            _ => fail(E::Memory64, format!("read of {len} bytes at offset {offset} is outside region {:?} ({} bytes)", r.spec.name, r.spec.size)),
        }
    }
}

impl Region {
    fn new(spec: RegionSpec, memory: Memory, store: &Store<()>, file_offset: Option<u64>, delta: u64) -> Self {
        let stats = RegionStats {
            name: spec.name.clone(),
            size: spec.size,
            memory_bytes: memory.data_size(store) as u64,
            file_offset,
            ..Default::default()
        };
        Self { spec, memory, file_offset, delta, stats }
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

// ---------------------------------------------------------------------------------------------
// The region engine and its memory creator.
// ---------------------------------------------------------------------------------------------

enum Backing {
    Anonymous,
    File { file: Arc<std::fs::File>, offset: u64 },
}

thread_local! {
    /// The backing of the region being instantiated on this thread (consumed by the creator).
    static PENDING: RefCell<Option<Backing>> = const { RefCell::new(None) };
}

fn region_engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut c = Config::new();
            c.wasm_memory64(true)
                .with_host_memory(Arc::new(RegionCreator))
                .memory_guard_size(0)
                .memory_reservation(0)
                .memory_reservation_for_growth(0)
                .guard_before_linear_memory(false)
                .memory_init_cow(false);
            Engine::new(&c).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ChordError::new(E::Memory64, format!("cannot create the Memory64 region engine: {e}")))
}

fn instantiate_region(store: &mut Store<()>, bytes: u64, backing: Backing) -> Result<Memory> {
    let pages = bytes.div_ceil(WASM_PAGE).max(1);
    let module = Module::new(store.engine(), region_module(pages))
        .map_err(|e| ChordError::new(E::Memory64, format!("region module ({pages} pages): {e}")))?;
    PENDING.with(|p| *p.borrow_mut() = Some(backing));
    let instance = Instance::new(&mut *store, &module, &[]);
    PENDING.with(|p| p.borrow_mut().take());
    let instance = instance.map_err(|e| ChordError::new(E::Memory64, format!("cannot create a {bytes}-byte Memory64 region: {e:#}")))?;
    instance
        .get_memory(&mut *store, "m")
        .ok_or_else(|| ChordError::new(E::Internal, "region module has no memory export"))
}

/// `(module (memory (export "m") i64 pages pages))` in the binary format.
fn region_module(pages: u64) -> Vec<u8> {
    let mut limits = vec![0x05]; // flags: has maximum | 64-bit index
    leb128(&mut limits, pages);
    leb128(&mut limits, pages);
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    let mut mem = vec![1u8];
    mem.extend_from_slice(&limits);
    out.push(5);
    leb128(&mut out, mem.len() as u64);
    out.extend_from_slice(&mem);
    let export = [1u8, 1, b'm', 2, 0];
    out.push(7);
    leb128(&mut out, export.len() as u64);
    out.extend_from_slice(&export);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

struct RegionCreator;

// SAFETY: every memory returned is a live mapping of exactly `minimum` bytes that stays valid
// (never moves) until the `RegionMemory` is dropped; no growth beyond it is allowed. The region
// engine is configured with zero guard and zero reservation, and runs no wasm code against these
// memories, so no bounds-check elision depends on guard pages.
unsafe impl MemoryCreator for RegionCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        _reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> std::result::Result<Box<dyn LinearMemory>, String> {
        if guard_size_in_bytes != 0 {
            return Err(format!("region engine expects no guard pages, was asked for {guard_size_in_bytes}"));
        }
        let backing = PENDING.with(|p| p.borrow_mut().take()).ok_or("no region backing pending on this thread")?;
        let map = match backing {
            Backing::Anonymous => MmapOptions::new().len(minimum).map_anon(),
            // SAFETY: a private (copy-on-write) mapping that the host never reads or writes (file
            // bytes are read by `pread`), so a file that shrinks under it cannot fault.
            Backing::File { file, offset } => unsafe { MmapOptions::new().offset(offset).len(minimum).map_copy(&*file) },
        }
        .map_err(|e| format!("mmap of {minimum} bytes failed: {e}"))?;
        Ok(Box::new(RegionMemory { map, size: minimum }))
    }
}

struct RegionMemory {
    map: MmapMut,
    size: usize,
}

// SAFETY: `as_ptr` returns the base of a mapping of `size` bytes that lives as long as `self`.
unsafe impl LinearMemory for RegionMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.size
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size <= self.size {
            Ok(())
        } else {
            Err(wasmtime::format_err!("Memory64 regions do not grow ({} -> {new_size} bytes)", self.size))
        }
    }

    fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr().cast_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_region_larger_than_4gib() {
        let layout = MemoryLayout::multi(&[("small", 1000), ("big", 5 << 30)]).unwrap();
        let mut rt = Memory64Runtime::new(&layout).unwrap();
        assert_eq!(rt.region_count(), 2);
        let far = (5u64 << 30) - 8;
        rt.write(1, far, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut buf = [0u8; 8];
        rt.read(1, far, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
        let e = rt.read(1, far + 1, &mut buf).unwrap_err();
        assert_eq!(e.code, E::Memory64);
        assert!(rt.read(0, u64::MAX - 2, &mut buf).is_err());
        assert!(rt.read(7, 0, &mut buf).is_err());
        let s = rt.stats();
        assert_eq!((s.reads, s.bytes_read, s.errors), (1, 8, 2));
        assert_eq!(rt.region_stats()[1].memory_bytes, 5 << 30);
    }

    #[test]
    fn region_module_is_valid() {
        let engine = region_engine().unwrap();
        Module::new(engine, region_module(1)).unwrap();
        Module::new(engine, region_module(200_000)).unwrap();
    }
}
