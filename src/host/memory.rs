//! The guest engine's linear memories: ordinary wasm32 memories (4 GiB reservation and guard
//! pages, as Wasmtime's own) whose pages live in a `memfd`, so that a model's worker instances
//! (`workers.rs`) can map the very same pages as their own memory.
//!
//! Why not a wasm shared memory: an imported or shared memory costs Cranelift's code two more
//! dependent loads per memory access (the definition's address, then the base; measured
//! 2026-12-02: a 128-token prompt on Qwen2.5-1.5B Q4_K_M 15 % slower at one thread). A memory
//! the module defines has its base in the instance's context. Every instance of a group has such
//! a memory; only the pages are shared.
//!
//! A group's first memory (the main instance's) grows as wasm says. The others (workers) are
//! grown by their thread to the main memory's current size before each job, through Wasmtime
//! (so that its view of their size stays true), and never past it.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// The pages of one main memory and the worker memories mapping them.
pub struct MemoryGroup {
    fd: OwnedFd,
    /// Bytes of the memfd (the reservation of every memory of the group).
    reserved: usize,
    /// The main memory's current size in bytes.
    size: AtomicUsize,
}

impl MemoryGroup {
    /// The main memory's current size in bytes: how far a worker memory may grow.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }
}

/// An instantiation under way on this thread: the group its memory joins (None: a new one), and
/// the group its memory started.
type Pending = (Option<Arc<MemoryGroup>>, Option<Arc<MemoryGroup>>);

thread_local! {
    /// See [`with_group`].
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// Runs `f` (an instantiation on this thread) so that the memory it creates maps `join`'s pages
/// (a worker instance) or, with `None`, starts a group of its own. Returns `f`'s result and the
/// group of the memory created.
pub(super) fn with_group<R>(join: Option<Arc<MemoryGroup>>, f: impl FnOnce() -> R) -> (R, Option<Arc<MemoryGroup>>) {
    let previous = PENDING.with(|p| p.replace(Some((join.clone(), None))));
    let r = f();
    let created = PENDING.with(|p| p.replace(previous)).and_then(|(_, c)| c);
    (r, created.or(join))
}

/// The guest engine's `MemoryCreator`.
pub(super) struct GroupCreator;

// SAFETY: each memory is a reservation of `reserved + guard` bytes that never moves while the
// `GroupMemory` lives; only `[0, byte_size)` is accessible (read-write), the rest faults, as
// Wasmtime's bounds-check elision for the engine's 4 GiB reservation and guard requires. A worker
// memory never grows past its main memory's size.
unsafe impl MemoryCreator for GroupCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> std::result::Result<Box<dyn LinearMemory>, String> {
        let join = PENDING.with(|p| p.borrow().as_ref().and_then(|(j, _)| j.clone()));
        let reserved = reserved_size_in_bytes.ok_or("the guest engine reserves address space for every memory")?;
        let group = match join.clone() {
            Some(g) if g.reserved == reserved => g,
            Some(g) => return Err(format!("a worker memory reserves {reserved} bytes, its group {}", g.reserved)),
            None => {
                let g = Arc::new(MemoryGroup { fd: memfd(reserved)?, reserved, size: AtomicUsize::new(0) });
                PENDING.with(|p| {
                    if let Some((_, created)) = p.borrow_mut().as_mut() {
                        *created = Some(g.clone());
                    }
                });
                g
            }
        };
        let main = join.is_none();
        let total = reserved.checked_add(guard_size_in_bytes).ok_or("memory reservation overflows")?;
        // SAFETY: a fresh PROT_NONE reservation, then the memfd mapped over its first `reserved`
        // bytes (MAP_FIXED inside our own reservation), still PROT_NONE.
        let base = unsafe {
            let base = libc::mmap(std::ptr::null_mut(), total, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0);
            if base == libc::MAP_FAILED {
                return Err(format!("cannot reserve {total} bytes of address space: {}", std::io::Error::last_os_error()));
            }
            let m = libc::mmap(base, reserved, libc::PROT_NONE, libc::MAP_SHARED | libc::MAP_FIXED, group.fd.as_raw_fd(), 0);
            if m == libc::MAP_FAILED {
                let e = std::io::Error::last_os_error();
                libc::munmap(base, total);
                return Err(format!("cannot map the guest memory's pages: {e}"));
            }
            base as usize
        };
        let mut memory = GroupMemory { base, total, size: 0, group: group.clone(), main };
        // A worker starts at what the main memory holds now (its data segments land there).
        let size = if main { minimum } else { group.size() };
        memory.grow_to(size).map_err(|e| format!("{e:#}"))?;
        Ok(Box::new(memory))
    }
}

/// One memory of a group.
struct GroupMemory {
    base: usize,
    total: usize,
    size: usize,
    group: Arc<MemoryGroup>,
    /// Whether this is the group's main memory (the one that grows).
    main: bool,
}

// SAFETY: `as_ptr` is the base of a reservation of `reserved + guard` bytes that lives as long as
// `self`; `[0, byte_size)` is read-write.
unsafe impl LinearMemory for GroupMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.group.reserved
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if !self.main && new_size > self.group.size() {
            return Err(wasmtime::format_err!("a worker memory grows only as far as its main memory ({} bytes), not to {new_size}", self.group.size()));
        }
        if new_size > self.group.reserved {
            return Err(wasmtime::format_err!("guest memory cannot grow to {new_size} bytes (reservation {})", self.group.reserved));
        }
        if new_size > self.size {
            protect(self.base + self.size, new_size - self.size).map_err(|e| wasmtime::format_err!("{e}"))?;
            self.size = new_size;
            if self.main {
                self.group.size.store(new_size, Ordering::Release);
            }
        }
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.base as *mut u8
    }
}

impl Drop for GroupMemory {
    fn drop(&mut self) {
        // SAFETY: the reservation made in `new_memory`, no longer used by any instance.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.total) };
    }
}

fn memfd(bytes: usize) -> std::result::Result<OwnedFd, String> {
    // SAFETY: a plain syscall with a NUL-terminated name; the fd returned is ours.
    let fd = unsafe { libc::memfd_create(c"wasm-chord-guest".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create failed: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned to us and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Sparse: pages take memory only once written.
    // SAFETY: ftruncate on our own fd.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), bytes as libc::off_t) } != 0 {
        return Err(format!("cannot size the guest memory's memfd to {bytes} bytes: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Makes `[addr, addr + len)` read-write.
fn protect(addr: usize, len: usize) -> std::result::Result<(), String> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: the range lies inside a reservation owned by a live `GroupMemory` (callers).
    if unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        return Err(format!("mprotect of {len} bytes of guest memory failed: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
