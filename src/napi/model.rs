//! The `Model` class. Every method that touches the model runs off the JS thread (libuv pool)
//! behind one lock per model, so concurrent calls are queued and safe.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use super::errors::{invalid_option, to_js};
use super::job::Job;
use super::meta::{array_slice, metadata_json};
use super::options::{LoadOptions, js_type, report};
use super::types::{CacheStats, LayerAccess, LayerInfo, MemoryStats, ModelInfo, UnitChecksum};
use crate::error::{ChordError, ErrorCode, Result as CoreResult};
use crate::gguf::{GgufFile, GgufValue};
use crate::model::{LoadHooks, Memory64GGUFLoader, Memory64Model, SequenceId};

pub(super) struct Shared {
    model: Mutex<Option<Memory64Model>>,
    /// What calls read without the model lock; `dispose()` empties it at once.
    view: RwLock<Option<View>>,
    info: ModelInfo,
    unit_count: u32,
    /// Set by `dispose()` before it takes the lock: running generations stop at once.
    pub(super) closing: AtomicBool,
    /// Bytes reported to V8 as external memory for this model (`napi_adjust_external_memory`),
    /// given back by `dispose()` or, if it never ran, when the object is collected.
    external: AtomicI64,
    /// Positions of the KV cache allocated at load (`contextLength`).
    pub(super) n_ctx: u32,
    /// The next chat session's sequence id.
    pub(super) next_sequence: AtomicU64,
    /// Sequences of sessions collected without `dispose()`, dropped at the next locked call.
    pub(super) orphans: Mutex<Vec<SequenceId>>,
    /// The saved KV caches of inactive sessions, in host memory: their bytes now (written under
    /// the model lock, [`Shared::note_sessions`]) and as reported to V8 (on the JS thread,
    /// [`Shared::sync_external`]).
    session_cache: AtomicI64,
    session_reported: AtomicI64,
}

/// The parts of a model read outside the model lock.
pub(super) struct View {
    pub(super) gguf: Arc<GgufFile>,
    unit_names: Arc<[String]>,
    /// The tokenizer (so tokenizing never waits for a generation), or why the file's tokenizer
    /// cannot be used.
    pub(super) vocab: std::result::Result<Arc<crate::infer::Tokenizer>, ChordError>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Option<Memory64Model>> {
        let mut guard = self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let orphans = std::mem::take(&mut *self.orphans.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(m) = guard.as_mut() {
            if !orphans.is_empty() {
                orphans.into_iter().for_each(|s| m.drop_sequence(s));
                self.note_sessions(m);
            }
        }
        guard
    }

    /// Records how many bytes `model`'s saved session caches take now (call under the lock
    /// after anything that saves or drops one); V8 is told at the next [`Shared::sync_external`].
    pub(super) fn note_sessions(&self, model: &Memory64Model) {
        self.session_cache.store(i64::try_from(model.session_cache_bytes()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Tells V8 how the saved session caches grew or shrank since it was last told (JS thread:
    /// after each generation and each session's `dispose()`). Nothing after `dispose()`.
    pub(super) fn sync_external(&self, env: &Env) {
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        let now = self.session_cache.load(Ordering::SeqCst);
        let before = self.session_reported.swap(now, Ordering::SeqCst);
        if now != before {
            let _ = env.adjust_external_memory(now - before);
        }
    }

    /// Runs `f` on the lock-free view; `ERR_DISPOSED` once `dispose()` was called.
    pub(super) fn view<T>(&self, f: impl FnOnce(&View) -> CoreResult<T>) -> CoreResult<T> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(disposed());
        }
        match self.view.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(v) => f(v),
            None => Err(disposed()),
        }
    }

    /// Bytes reported to V8 for this model now.
    fn external_bytes(&self) -> i64 {
        self.external.load(Ordering::SeqCst).saturating_add(self.session_reported.load(Ordering::SeqCst))
    }

    /// Gives back the external memory reported for this model (once).
    fn release_external(&self, env: &Env) {
        let bytes = self.external.swap(0, Ordering::SeqCst).saturating_add(self.session_reported.swap(0, Ordering::SeqCst));
        if bytes != 0 {
            let _ = env.adjust_external_memory(-bytes);
        }
    }
}

/// A GGUF model loaded into a sandboxed wasm32 guest. Create it with `Model.load`.
#[napi(custom_finalize)]
pub struct Model {
    pub(super) shared: Arc<Shared>,
}

/// Gives the memory a disposed model freed back to the system: glibc keeps freed chunks in each
/// thread's arena (loads run on the libuv pool, generations on threads of their own), so without
/// this RSS grows in steps over load/dispose cycles although nothing leaks (~35-48 MiB over 50
/// SmolLM2 cycles). `malloc_trim` walks the arenas and releases their free pages.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Error for a call on a disposed model.
pub(super) fn disposed() -> ChordError {
    ChordError::new(ErrorCode::Disposed, "the model was disposed")
}

fn index(v: f64, what: &str) -> CoreResult<u32> {
    if v.is_finite() && v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
        Ok(v as u32)
    } else {
        Err(invalid_option(format!("{what} must be a non-negative integer, got {v}")))
    }
}

#[napi]
impl Model {
    /// Internal: the native load; `Model.load` (`src/napi/wrappers.js`, declared by
    /// `scripts/after-build.js`) wraps it to deliver `onLoadProgress` and turn a throwing one into
    /// `ERR_CALLBACK`.
    #[napi(js_name = "_load", skip_typescript)]
    pub fn load(env: Env, path: Unknown, options: Option<Unknown>) -> AsyncTask<LoadJob> {
        let job = match Self::start_load(&env, path, options) {
            Ok(job) => job,
            Err(e) => Job::new(move || Err(e)),
        };
        AsyncTask::new(LoadJob(job))
    }

    fn start_load(env: &Env, path: Unknown, options: Option<Unknown>) -> CoreResult<Job<Model>> {
        let started = std::time::Instant::now();
        let (path, options) = match path.get_type().unwrap_or(ValueType::Unknown) {
            // SAFETY: checked to be a string.
            ValueType::String => (unsafe { path.cast::<String>() }.map_err(|e| invalid_option(e.to_string()))?, options),
            ValueType::Object => {
                // SAFETY: checked to be an object.
                let obj: Object = unsafe { path.cast() }.map_err(|e| invalid_option(e.to_string()))?;
                let p: Option<String> = obj.get("modelPath").ok().flatten();
                let p = p.ok_or_else(|| invalid_option("options.modelPath must be a string"))?;
                let mut clean = Object::new(env).map_err(|e| invalid_option(e.to_string()))?;
                for k in Object::keys(&obj).unwrap_or_default().into_iter().filter(|k| k != "modelPath") {
                    if let Ok(Some(v)) = obj.get::<Unknown>(&k) {
                        clean.set(&k, v).map_err(|e| invalid_option(e.to_string()))?;
                    }
                }
                (p, Some(clean.to_unknown()))
            }
            t => return Err(invalid_option(format!("path must be a string, got {}", js_type(t, false)))),
        };
        let parsed = LoadOptions::parse(env, options)?;
        Ok(Job::new(move || {
            let aborted = parsed.aborted.clone();
            let progress = parsed.progress.clone();
            let hooks = LoadHooks { progress: &|f| report(&progress, f), aborted: &|| aborted.load(Ordering::SeqCst) };
            let model = Memory64GGUFLoader::new(&path, parsed.options).load_with(&hooks)?;
            Ok(Model::new(model, started))
        }))
    }

    /// `info.loadMs` is the time from the `load` call until the model is ready to resolve.
    fn new(model: Memory64Model, started: std::time::Instant) -> Self {
        let gguf = model.gguf_arc();
        let unit_names: Arc<[String]> = model.units().units.iter().map(|u| u.name.clone()).collect();
        let unit_count = unit_names.len() as u32;
        let vocab = model.tokenizer().cloned();
        // What a live model holds: its guest's memory (weights in WHOLE mode, cache arena, KV
        // cache, buffers) and about the file's header again as parsed metadata and vocabulary.
        let external = model.memory_stats().guest_memory_bytes.saturating_add(gguf.data_offset.saturating_mul(2));
        let n_ctx = model.context_length();
        let info = ModelInfo::from_core(model.info(), n_ctx, started.elapsed().as_secs_f64() * 1000.0);
        let view = View { gguf, unit_names, vocab };
        let external = AtomicI64::new(i64::try_from(external).unwrap_or(i64::MAX));
        let shared = Shared { model: Mutex::new(Some(model)), view: RwLock::new(Some(view)), info, unit_count, closing: AtomicBool::new(false), external, n_ctx, next_sequence: AtomicU64::new(1), orphans: Mutex::new(Vec::new()), session_cache: AtomicI64::new(0), session_reported: AtomicI64::new(0) };
        Self { shared: Arc::new(shared) }
    }

    /// Runs `f` on the model off the JS thread; rejects with `ERR_DISPOSED` after `dispose()`.
    fn with<T: Send + 'static>(&self, f: impl FnOnce(&mut Memory64Model) -> CoreResult<T> + Send + 'static) -> AsyncTask<Job<T>>
    where
        Job<T>: Task,
    {
        let shared = self.shared.clone();
        Job::task(move || match shared.lock().as_mut() {
            Some(m) => f(m),
            None => Err(disposed()),
        })
    }

    /// Facts about the model: architecture, sizes, layer count, head counts, vocabulary, file
    /// type, tensor type histogram, memory mode and threshold, `loadMs` (from the `load` call until
    /// the model was ready). Readable after `dispose()` (a small copy).
    #[napi(getter)]
    pub fn info(&self) -> ModelInfo {
        self.shared.info.clone()
    }

    /// GGUF key/values as JS values. Arrays longer than 1024 elements (the vocabulary, merges)
    /// are shown as `{ type: 'array', elementType, length }`; read them with `getMetadataArray`.
    /// Integers beyond 2^53 are BigInts. Throws `ERR_DISPOSED` after `dispose()` (which frees the
    /// metadata).
    #[napi(getter, ts_return_type = "Record<string, GgufMetadataValue>")]
    pub fn metadata(&self, env: Env) -> Result<Value> {
        self.shared.view(|v| Ok(metadata_json(&v.gguf))).map_err(|e| to_js(&env, e))
    }

    /// Elements `[start, end)` of a metadata array (defaults: the whole array). Throws
    /// `ERR_DISPOSED` after `dispose()`.
    #[napi(ts_return_type = "GgufMetadataValue[]")]
    pub fn get_metadata_array(&self, env: Env, key: String, start: Option<f64>, end: Option<f64>) -> Result<Value> {
        let run = |v: &View| -> CoreResult<Value> {
            let Some(GgufValue::Array(a)) = v.gguf.get(&key) else {
                return Err(invalid_option(format!("metadata key {key:?} is not an array")));
            };
            let s = start.map(|v| index(v, "start")).transpose()?.unwrap_or(0) as usize;
            let e = end.map(|v| index(v, "end")).transpose()?.map_or(a.len(), |e| e as usize);
            Ok(array_slice(a, s, e))
        };
        self.shared.view(run).map_err(|e| to_js(&env, e))
    }

    /// Number of units: layers first (`0..layerCount`), then each non-layer tensor. Readable
    /// after `dispose()`.
    #[napi(getter)]
    pub fn unit_count(&self) -> u32 {
        self.shared.unit_count
    }

    /// Layer `index`: its bytes, tensors (name, type, shape) and whether it is resident.
    #[napi(ts_return_type = "Promise<LayerInfo>")]
    pub fn get_layer(&self, index: f64) -> AsyncTask<Job<LayerInfo>> {
        self.with(move |m| m.layer_info(self::index(index, "layer index")?).map(Into::into))
    }

    /// The guest acquires layer `index` as a forward pass would: in Memory64 mode a real cache
    /// access (a miss copies the layer from its region through the bridge). Counts in
    /// `cacheStats()`.
    #[napi(ts_return_type = "Promise<LayerAccess>")]
    pub fn acquire_layer(&self, index: f64) -> AsyncTask<Job<LayerAccess>> {
        self.with(move |m| {
            let i = self::index(index, "layer index")?;
            let t = std::time::Instant::now();
            let hit = m.acquire_layer(i)?;
            Ok(LayerAccess { index: i, hit, micros: t.elapsed().as_secs_f64() * 1e6 })
        })
    }

    /// Proof that the guest holds the right bytes: the guest acquires unit `unit` (a layer
    /// through the layer cache — a real access — or a non-layer tensor through `memory64_read`)
    /// and checksums what it sees; the host checksums the same tensors read from the file.
    #[napi(ts_return_type = "Promise<UnitChecksum>")]
    pub fn verify_unit(&self, unit: f64) -> AsyncTask<Job<UnitChecksum>> {
        let names = self.shared.view(|v| Ok(v.unit_names.clone()));
        self.with(move |m| {
            let names = names?;
            let u = index(unit, "unit")?;
            let guest = m.guest_checksum(u)?;
            let file = m.file_checksum(u)?;
            Ok(UnitChecksum {
                unit: u,
                name: names.get(u as usize).cloned().unwrap_or_default(),
                guest: format!("{:016x}", guest.hash),
                file: format!("{:016x}", file.hash),
                bytes: guest.bytes as f64,
                ok: guest == file,
            })
        })
    }

    /// Loads every layer into the cache (Memory64 mode). Rejects with `ERR_CACHE_TOO_SMALL`, with
    /// the numbers, when they cannot all fit. Resolves at once in WHOLE mode.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn preload_all_layers(&self) -> AsyncTask<Job<()>> {
        self.with(|m| m.preload_all_layers())
    }

    /// Layer cache statistics: capacity, hits, misses, hit rate, evictions, bytes loaded,
    /// per-layer accesses, resident layers.
    #[napi(ts_return_type = "Promise<CacheStats>")]
    pub fn cache_stats(&self) -> AsyncTask<Job<CacheStats>> {
        let n = self.shared.info.layer_count;
        self.with(move |m| Ok(CacheStats::from_core(m.cache_stats(), n)))
    }

    /// Empties the layer cache (Memory64 mode); statistics are kept.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn clear_cache(&self) -> AsyncTask<Job<()>> {
        self.with(|m| {
            m.clear_cache();
            Ok(())
        })
    }

    /// Memory accounting: guest memory, cache arena, resident weights, Memory64 regions, bridge
    /// counters, process RSS.
    #[napi(ts_return_type = "Promise<MemoryStats>")]
    pub fn memory_stats(&self) -> AsyncTask<Job<MemoryStats>> {
        let external = self.shared.external_bytes();
        self.with(move |m| Ok(MemoryStats { external_bytes: external as f64, ..m.memory_stats().into() }))
    }

    /// Releases everything the model holds: the metadata and vocabulary at once, then, as soon
    /// as a running call has stopped, the guest, its memory, the regions and the file. Idempotent;
    /// afterwards every method rejects (or throws, for the synchronous ones and the `metadata`
    /// getter) with `ERR_DISPOSED`; `info`, `unitCount` and `disposed` stay readable. Also
    /// available as `[Symbol.asyncDispose]()`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispose(&self, env: Env) -> AsyncTask<Job<()>> {
        let shared = self.shared.clone();
        shared.closing.store(true, Ordering::SeqCst);
        drop(shared.view.write().unwrap_or_else(|p| p.into_inner()).take());
        shared.release_external(&env);
        Job::task(move || {
            drop(shared.lock().take());
            return_freed_memory();
            Ok(())
        })
    }

    /// Whether `dispose()` was called.
    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.shared.closing.load(Ordering::SeqCst)
    }
}

impl ObjectFinalize for Model {
    /// A model collected without `dispose()`: its memory goes with the object; give V8 back the
    /// external memory it was told about.
    fn finalize(self, env: Env) -> Result<()> {
        self.shared.release_external(&env);
        Ok(())
    }
}

/// `Model.load`'s task: a [`Job`] that, on the JS thread, tells V8 how much memory the new
/// model holds (`napi_adjust_external_memory`), so that an undisposed model is collected sooner.
pub struct LoadJob(Job<Model>);

impl Task for LoadJob {
    type Output = CoreResult<Model>;
    type JsValue = Model;

    fn compute(&mut self) -> Result<Self::Output> {
        self.0.compute()
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Model> {
        let model = self.0.resolve(env, output)?;
        let _ = env.adjust_external_memory(model.shared.external.load(Ordering::SeqCst));
        Ok(model)
    }
}

/// Installs the JS wrappers (`src/napi/wrappers.js`): `generate` (a Promise) and `stream` (an
/// async iterator) over the native `_generate`, and `[Symbol.asyncDispose]` (calls `dispose()`)
/// on runtimes that define `Symbol.asyncDispose` (Node 20.4+).
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    let model: Unknown = exports.get_named_property("Model")?;
    let session: Unknown = exports.get_named_property("ChatSession")?;
    let install: Function<FnArgs<(Unknown, Unknown)>, Unknown> = env.run_script(include_str!("wrappers.js"))?;
    install.call(FnArgs::from((model, session)))?;
    Ok(())
}
