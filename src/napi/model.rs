//! The `Model` class. Every method that touches the model runs off the JS thread (libuv pool)
//! behind one lock per model, so concurrent calls are queued and safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use super::errors::{invalid_option, to_js};
use super::job::Job;
use super::meta::{array_slice, metadata_json};
use super::options::{parse_load_options, report};
use super::types::{CacheStats, LayerAccess, LayerInfo, MemoryStats, ModelInfo, UnitChecksum};
use crate::error::{ChordError, ErrorCode, Result as CoreResult};
use crate::gguf::{GgufFile, GgufValue};
use crate::model::{LoadHooks, Memory64GGUFLoader, Memory64Model};

pub(super) struct Shared {
    model: Mutex<Option<Memory64Model>>,
    info: ModelInfo,
    gguf: Arc<GgufFile>,
    unit_names: Vec<String>,
    /// The tokenizer (shared outside the model lock, so tokenizing never waits for a generation),
    /// or why the file's tokenizer cannot be used.
    pub(super) vocab: std::result::Result<Arc<crate::infer::Tokenizer>, ChordError>,
    /// Set by `dispose()` before it takes the lock: running generations stop at once.
    pub(super) closing: AtomicBool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Option<Memory64Model>> {
        self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A GGUF model loaded into a sandboxed wasm32 guest. Create it with `Model.load`.
#[napi]
pub struct Model {
    pub(super) shared: Arc<Shared>,
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
    /// Loads a GGUF model. Parses the header (no tensor bytes), plans memory and fills the guest:
    /// WHOLE mode copies every tensor into guest memory; Memory64 mode maps the file into Wasmtime
    /// 64-bit memories and pages layers into the guest's layer cache on demand.
    ///
    /// Also accepts a single options object with `modelPath`. Rejects with `ERR_GGUF_*` for bad
    /// files, `ERR_INVALID_OPTION`, `ERR_MODEL_TOO_LARGE_FOR_WASM32` (`memory64: 'never'` on a
    /// model a wasm32 memory cannot hold), `ERR_CACHE_TOO_SMALL`, `ERR_ABORTED`, `ERR_IO`.
    #[napi(ts_args_type = "path: string | (LoadOptions & { modelPath: string }), options?: LoadOptions", ts_return_type = "Promise<Model>")]
    pub fn load(env: Env, path: Unknown, options: Option<Unknown>) -> AsyncTask<Job<Model>> {
        match Self::start_load(&env, path, options) {
            Ok(task) => task,
            Err(e) => Job::task(move || Err(e)),
        }
    }

    fn start_load(env: &Env, path: Unknown, options: Option<Unknown>) -> CoreResult<AsyncTask<Job<Model>>> {
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
            t => return Err(invalid_option(format!("path must be a string, got {t}"))),
        };
        let parsed = parse_load_options(env, options)?;
        Ok(Job::task(move || {
            let aborted = parsed.aborted.clone();
            let progress = parsed.progress.clone();
            let hooks = LoadHooks { progress: &|f| report(&progress, f), aborted: &|| aborted.load(Ordering::SeqCst) };
            let model = Memory64GGUFLoader::new(&path, parsed.options).load_with(&hooks)?;
            Ok(Model::new(model))
        }))
    }

    fn new(model: Memory64Model) -> Self {
        let info = ModelInfo::from_core(model.info(), model.load_time().as_secs_f64() * 1000.0);
        let gguf = model.gguf_arc();
        let unit_names = model.units().units.iter().map(|u| u.name.clone()).collect();
        let vocab = model.tokenizer().cloned();
        Self { shared: Arc::new(Shared { model: Mutex::new(Some(model)), info, gguf, unit_names, vocab, closing: AtomicBool::new(false) }) }
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
    /// type, tensor type histogram, memory mode and threshold. Readable after `dispose()`.
    #[napi(getter)]
    pub fn info(&self) -> ModelInfo {
        self.shared.info.clone()
    }

    /// GGUF key/values as JS values. Arrays longer than 1024 elements (the vocabulary, merges)
    /// are shown as `{ type: 'array', elementType, length }`; read them with `getMetadataArray`.
    /// Integers beyond 2^53 are BigInts.
    #[napi(getter, ts_return_type = "Record<string, GgufMetadataValue>")]
    pub fn metadata(&self) -> Value {
        metadata_json(&self.shared.gguf)
    }

    /// Elements `[start, end)` of a metadata array (defaults: the whole array).
    #[napi(ts_return_type = "GgufMetadataValue[]")]
    pub fn get_metadata_array(&self, env: Env, key: String, start: Option<f64>, end: Option<f64>) -> Result<Value> {
        let run = || -> CoreResult<Value> {
            let Some(GgufValue::Array(a)) = self.shared.gguf.get(&key) else {
                return Err(invalid_option(format!("metadata key {key:?} is not an array")));
            };
            let s = start.map(|v| index(v, "start")).transpose()?.unwrap_or(0) as usize;
            let e = end.map(|v| index(v, "end")).transpose()?.map_or(a.len(), |e| e as usize);
            Ok(array_slice(a, s, e))
        };
        run().map_err(|e| to_js(&env, e))
    }

    /// Number of units: layers first (`0..layerCount`), then each non-layer tensor.
    #[napi(getter)]
    pub fn unit_count(&self) -> u32 {
        self.shared.unit_names.len() as u32
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
        let names = self.shared.clone();
        self.with(move |m| {
            let u = index(unit, "unit")?;
            let guest = m.guest_checksum(u)?;
            let file = m.file_checksum(u)?;
            Ok(UnitChecksum {
                unit: u,
                name: names.unit_names.get(u as usize).cloned().unwrap_or_default(),
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
        self.with(|m| Ok(m.memory_stats().into()))
    }

    /// Releases the guest, its memory and the regions. Idempotent; afterwards every method
    /// rejects with `ERR_DISPOSED`. Also available as `[Symbol.asyncDispose]()`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispose(&self) -> AsyncTask<Job<()>> {
        let shared = self.shared.clone();
        shared.closing.store(true, Ordering::SeqCst);
        Job::task(move || {
            drop(shared.lock().take());
            Ok(())
        })
    }

    /// Whether `dispose()` was called.
    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.shared.closing.load(Ordering::SeqCst)
    }
}

/// Installs the JS wrappers (`src/napi/wrappers.js`): `generate` (a Promise) and `stream` (an
/// async iterator) over the native `_generate`, and `[Symbol.asyncDispose]` (calls `dispose()`)
/// on runtimes that define `Symbol.asyncDispose` (Node 20.4+).
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    let class: Unknown = exports.get_named_property("Model")?;
    let install: Function<Unknown, Unknown> = env.run_script(include_str!("wrappers.js"))?;
    install.call(class)?;
    Ok(())
}
