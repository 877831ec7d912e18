//! Worker instances: the threads a model's guest splits its matrix products over.
//!
//! A model with `threads = N` runs N instances of the guest module over one set of memory pages
//! (`memory.rs`): the main instance (the forward pass, on the caller's thread) and N − 1 workers,
//! each owned by a thread of its own. The main instance offers a job's chunks with
//! `parallel_begin`, claims and runs chunks itself (`parallel_next`) and then waits for the chunks
//! workers claimed (`parallel_wait`); a worker claims chunks and runs each through the guest's
//! `wc_worker_run` export. Claiming means a late worker (its core busy with something else) costs
//! the job nothing: the main instance does the chunks nobody took. A worker that finished a job
//! watches for the next one for [`WATCH`] (the forward pass begins its products microseconds
//! apart), then sleeps on a condition variable: between calls nothing spins. Every worker is
//! instantiated before the main instance runs any code (each instantiation writes the module's
//! data segments into the pages), and each gets a stack of its own in guest memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasm_chord_abi::{export, status};
use wasmtime::{Global, Memory, Module, Store, TypedFunc, Val};

use super::guest::instantiate;
use super::imports::HostState;
use super::memory::MemoryGroup;
use crate::error::{ChordError, ErrorCode as E, Result};

/// Bytes of guest memory given to each worker as its stack.
pub(super) const WORKER_STACK_BYTES: u32 = 1 << 20;

/// A worker instance, not yet running.
pub(super) struct Worker {
    store: Store<HostState>,
    memory: Memory,
    group: Arc<MemoryGroup>,
    run: TypedFunc<(i32, i32, i32), i32>,
    stack_pointer: Global,
}

impl Worker {
    /// A further instance of `module` whose memory maps `group`'s pages.
    pub(super) fn new(module: &Module, group: &Arc<MemoryGroup>) -> Result<Self> {
        let mut store = Store::new(module.engine(), HostState::new(None));
        let (instance, memory, _) = instantiate(&mut store, module, Some(group))?;
        let run = instance
            .get_typed_func(&mut store, export::WORKER_RUN)
            .map_err(|e| ChordError::new(E::Internal, format!("guest export {}: {e}", export::WORKER_RUN)))?;
        let stack_pointer = instance
            .get_global(&mut store, export::STACK_POINTER)
            .ok_or_else(|| ChordError::new(E::Internal, format!("guest exports no {}", export::STACK_POINTER)))?;
        Ok(Self { store, memory, group: group.clone(), run, stack_pointer })
    }

    /// Grows the worker's memory to the main memory's size (the pages are already there).
    fn catch_up(&mut self) -> std::result::Result<(), String> {
        let (have, want) = (self.memory.data_size(&self.store), self.group.size());
        if want > have {
            self.memory.grow(&mut self.store, ((want - have) / 65536) as u64).map_err(|e| format!("{e:#}"))?;
        }
        Ok(())
    }

    /// Points the worker's stack pointer at `top`, the end of a block of guest memory it owns
    /// (until then it shares the main instance's stack and must not run).
    pub(super) fn set_stack(&mut self, top: u32) -> Result<()> {
        self.stack_pointer.set(&mut self.store, Val::I32(top as i32)).map_err(|e| ChordError::new(E::Internal, format!("worker stack: {e}")))
    }
}

/// The job slot the main instance and the workers share.
#[derive(Default)]
struct State {
    /// Bumped for every job begun (mirrored in `Shared::generation` for spinning workers).
    generation: u64,
    /// Guest address of the running job.
    job: i32,
    /// Chunks of the running job.
    chunks: usize,
    /// The next chunk nobody has claimed.
    next: usize,
    /// Chunks claimed by workers and not finished.
    running: usize,
    /// The first failure of a worker during the running job.
    failure: Option<String>,
    /// Set on drop: workers return.
    quit: bool,
}

struct Shared {
    state: Mutex<State>,
    /// `State::generation`, readable without the lock.
    generation: AtomicU64,
    /// Signalled when a job is begun (or on quit).
    wake: Condvar,
    /// Signalled when the last running chunk of a worker finishes.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state torn (plain fields); go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a worker that finished a job watches for the next before it sleeps. The forward
/// pass begins its products microseconds apart, and waking a sleeping thread takes tens of
/// microseconds; between calls (no job for this long) every worker sleeps.
const WATCH: Duration = Duration::from_micros(100);

/// Most chunks a job may have.
const MAX_CHUNKS: usize = 1 << 16;

/// A model's running workers.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts one thread per worker.
    pub(super) fn spawn(workers: Vec<Worker>) -> Result<Self> {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), generation: AtomicU64::new(0), wake: Condvar::new(), done: Condvar::new() });
        let mut pool = Self { shared: shared.clone(), threads: Vec::new() };
        for (i, worker) in workers.into_iter().enumerate() {
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("wasm-chord-worker-{}", i + 1))
                .spawn(move || worker_loop(&shared, worker, i + 1))
                .map_err(|e| ChordError::new(E::Internal, format!("cannot start worker thread {}: {e}", i + 1)))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Instances a job can be split over: the workers and the main instance.
    pub fn threads(&self) -> usize {
        self.threads.len() + 1
    }

    /// Offers the `chunks` chunks of the job at guest address `job` to the workers.
    pub(super) fn begin(&self, job: i32, chunks: usize) -> std::result::Result<(), ChordError> {
        if !(1..=MAX_CHUNKS).contains(&chunks) {
            return Err(ChordError::new(E::Internal, format!("parallel_begin of {chunks} chunks (1..={MAX_CHUNKS})")));
        }
        let mut s = self.shared.lock();
        if s.next < s.chunks || s.running != 0 {
            return Err(ChordError::new(E::Internal, "parallel_begin while a job is running"));
        }
        s.generation += 1;
        (s.job, s.chunks, s.next, s.failure) = (job, chunks, 0, None);
        self.shared.generation.store(s.generation, Ordering::Release);
        drop(s);
        self.shared.wake.notify_all();
        Ok(())
    }

    /// Claims the next chunk of the running job for the caller.
    pub(super) fn next(&self) -> Option<usize> {
        claim(&mut self.shared.lock())
    }

    /// Blocks until every chunk the workers claimed is done (the caller has claimed the rest);
    /// the first worker's failure, if any.
    pub(super) fn wait(&self) -> std::result::Result<(), String> {
        let mut s = self.shared.lock();
        s.next = s.chunks; // nothing more to claim, should the caller have stopped early
        while s.running != 0 {
            s = self.shared.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.failure.take().map_or(Ok(()), Err)
    }
}

fn claim(s: &mut State) -> Option<usize> {
    (s.next < s.chunks).then(|| {
        s.next += 1;
        s.next - 1
    })
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().quit = true;
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            // A worker thread never panics (its failures are reported as strings); nothing to
            // do if one did.
            let _ = t.join();
        }
    }
}

fn worker_loop(shared: &Shared, mut worker: Worker, index: usize) {
    let mut seen = 0;
    loop {
        // Watch for the next job a little, then sleep until one is begun.
        let watching = Instant::now();
        while shared.generation.load(Ordering::Acquire) == seen && watching.elapsed() < WATCH {
            std::hint::spin_loop();
        }
        let mut s = shared.lock();
        while !s.quit && s.generation == seen {
            s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.quit {
            return;
        }
        seen = s.generation;
        let job = (s.job, s.chunks);
        drop(s);
        // The main memory may have grown since the last job: the worker's memory follows.
        if let Err(e) = worker.catch_up() {
            let mut s = shared.lock();
            if s.generation == seen {
                s.failure.get_or_insert(format!("worker {index} cannot map the guest memory: {e}"));
            }
            continue;
        }
        loop {
            let chunk = {
                let mut s = shared.lock();
                let chunk = if s.generation == seen { claim(&mut s) } else { None };
                s.running += usize::from(chunk.is_some());
                chunk
            };
            let Some(chunk) = chunk else { break };
            let failure = match worker.run.call(&mut worker.store, (job.0, chunk as i32, job.1 as i32)) {
                Ok(status::OK) => None,
                Ok(st) => Some(format!("worker {index}: {}", status::describe(st).1)),
                Err(e) => Some(format!("worker {index} trapped: {e:#}")),
            };
            let mut s = shared.lock();
            s.running -= 1;
            let failed = failure.is_some();
            if let Some(f) = failure {
                s.failure.get_or_insert(f);
                s.next = s.chunks; // the job is lost: claim nothing more
            }
            if s.running == 0 {
                shared.done.notify_all();
            }
            if failed {
                break;
            }
        }
    }
}
