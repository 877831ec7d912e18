//! `Model.load` options: read from the JS object field by field, so that a wrong type or value
//! becomes `ERR_INVALID_OPTION` naming the option.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use super::errors::invalid_option;
use crate::ChordError;
use crate::memory64::CacheConfig;
use crate::model::{DEFAULT_MEMORY64_THRESHOLD, LoadOptions as CoreLoadOptions, Memory64Option};

/// A progress callback callable from any thread.
pub type ProgressFn = ThreadsafeFunction<f64, Unknown<'static>, f64, Status, false, true>;

/// Options parsed from JS, plus the hooks taken from it.
pub struct ParsedLoad {
    /// Core options.
    pub options: CoreLoadOptions,
    /// `onLoadProgress`.
    pub progress: Option<Arc<ProgressFn>>,
    /// Set when `signal` aborts.
    pub aborted: Arc<AtomicBool>,
}

const KNOWN: &[&str] = &["memory64", "memory64Threshold", "cacheLayers", "cacheBytes", "contextLength", "threads", "referenceThreads", "onLoadProgress", "signal"];

fn type_of(v: &Unknown) -> ValueType {
    v.get_type().unwrap_or(ValueType::Unknown)
}

fn number(obj: &Object, key: &str, min: f64, max: f64) -> std::result::Result<Option<f64>, ChordError> {
    let Ok(Some(v)) = obj.get::<Unknown>(key) else { return Ok(None) };
    match type_of(&v) {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Number => {
            // SAFETY: the value was just checked to be a number.
            let n: f64 = unsafe { v.cast() }.map_err(|e| invalid_option(format!("{key}: {e}")))?;
            if !n.is_finite() || n.fract() != 0.0 || n < min || n > max {
                return Err(invalid_option(format!("{key} must be an integer in [{min}, {max}], got {n}")));
            }
            Ok(Some(n))
        }
        t => Err(invalid_option(format!("{key} must be a number, got {t}"))),
    }
}

/// Parses `options` (undefined, null or an object).
pub fn parse_load_options(env: &Env, options: Option<Unknown>) -> std::result::Result<ParsedLoad, ChordError> {
    let aborted = Arc::new(AtomicBool::new(false));
    let mut parsed = ParsedLoad { options: CoreLoadOptions::default(), progress: None, aborted: aborted.clone() };
    let Some(options) = options else { return Ok(parsed) };
    match type_of(&options) {
        ValueType::Undefined | ValueType::Null => return Ok(parsed),
        ValueType::Object => {}
        t => return Err(invalid_option(format!("options must be an object, got {t}"))),
    }
    // SAFETY: checked to be an object.
    let obj: Object = unsafe { options.cast() }.map_err(|e| invalid_option(e.to_string()))?;
    if let Ok(keys) = Object::keys(&obj) {
        if let Some(k) = keys.iter().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid_option(format!("unknown option {k:?} (known: {})", KNOWN.join(", "))));
        }
    }
    let o = &mut parsed.options;
    if let Ok(Some(v)) = obj.get::<Unknown>("memory64") {
        match type_of(&v) {
            ValueType::Undefined | ValueType::Null => {}
            ValueType::String => {
                // SAFETY: checked to be a string.
                let s: String = unsafe { v.cast() }.map_err(|e| invalid_option(e.to_string()))?;
                o.memory64 = match s.as_str() {
                    "auto" => Memory64Option::Auto,
                    "always" => Memory64Option::Always,
                    "never" => Memory64Option::Never,
                    other => return Err(invalid_option(format!("memory64 must be 'auto', 'always' or 'never', got {other:?}"))),
                };
            }
            ValueType::Boolean => {
                // SAFETY: checked to be a boolean.
                let b: bool = unsafe { v.cast() }.map_err(|e| invalid_option(e.to_string()))?;
                o.memory64 = if b { Memory64Option::Always } else { Memory64Option::Never };
            }
            t => return Err(invalid_option(format!("memory64 must be 'auto', 'always' or 'never', got a {t}"))),
        }
    }
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    o.memory64_threshold = number(&obj, "memory64Threshold", 0.0, MAX_SAFE)?.map_or(DEFAULT_MEMORY64_THRESHOLD, |n| n as u64);
    o.cache = CacheConfig {
        layers: number(&obj, "cacheLayers", 1.0, 1_000_000.0)?.map(|n| n as u32),
        bytes: number(&obj, "cacheBytes", 1.0, MAX_SAFE)?.map(|n| n as u64),
    };
    o.context_length = number(&obj, "contextLength", 1.0, 1_048_576.0)?.map(|n| n as u32);
    o.reference_threads = number(&obj, "referenceThreads", 1.0, 1024.0)?.map(|n| n as u32);
    o.threads = number(&obj, "threads", 1.0, 1024.0)?.map(|n| n as u32);
    if let Ok(Some(v)) = obj.get::<Unknown>("onLoadProgress") {
        match type_of(&v) {
            ValueType::Undefined | ValueType::Null => {}
            ValueType::Function => {
                // SAFETY: checked to be a function.
                let f: Function<f64, Unknown> = unsafe { v.cast() }.map_err(|e| invalid_option(e.to_string()))?;
                let tsfn = f
                    .build_threadsafe_function::<f64>()
                    .callee_handled::<false>()
                    .weak::<true>()
                    .build()
                    .map_err(|e| invalid_option(format!("onLoadProgress: {e}")))?;
                parsed.progress = Some(Arc::new(tsfn));
            }
            t => return Err(invalid_option(format!("onLoadProgress must be a function, got {t}"))),
        }
    }
    if let Ok(Some(v)) = obj.get::<Unknown>("signal") {
        match type_of(&v) {
            ValueType::Undefined | ValueType::Null => {}
            ValueType::Object => watch_signal(env, &v, aborted)?,
            t => return Err(invalid_option(format!("signal must be an AbortSignal, got {t}"))),
        }
    }
    Ok(parsed)
}

/// Sets `flag` now if `signal.aborted`, and when it fires `abort` later (without replacing any
/// listener the application installed).
pub fn watch_signal(env: &Env, signal: &Unknown, flag: Arc<AtomicBool>) -> std::result::Result<(), ChordError> {
    let bad = |e: Error| invalid_option(format!("signal: {e}"));
    // SAFETY: the caller checked that `signal` is an object.
    let obj: Object = unsafe { signal.cast() }.map_err(bad)?;
    let add: Option<Function<FnArgs<(Unknown, Unknown, Unknown)>, Unknown>> = obj.get("addEventListener").ok().flatten();
    let Some(add) = add else { return Err(invalid_option("signal must be an AbortSignal (no addEventListener)")) };
    if obj.get::<bool>("aborted").ok().flatten().unwrap_or(false) {
        flag.store(true, Ordering::SeqCst);
        return Ok(());
    }
    let listener = env
        .create_function_from_closure::<(), (), _>("onWasmChordAbort", move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .map_err(bad)?;
    let mut once = Object::new(env).map_err(bad)?;
    once.set("once", true).map_err(bad)?;
    let args = (env.create_string("abort").map_err(bad)?.to_unknown(), listener.to_unknown(), once.to_unknown());
    let _: Unknown = add.apply(obj, FnArgs::from(args)).map_err(bad)?;
    Ok(())
}

/// Calls the progress callback without blocking.
pub fn report(progress: &Option<Arc<ProgressFn>>, fraction: f64) {
    if let Some(p) = progress {
        p.call(fraction, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Options of `Model.load` (read field by field; this struct declares their TypeScript shape).
#[allow(dead_code)] // reason: TypeScript shape only; `parse_load_options` reads the JS object itself
#[napi_derive::napi(object)]
pub struct LoadOptions {
    /// `'auto'` (default): Memory64 when tensor data exceeds `memory64Threshold` or cannot fit a
    /// wasm32 guest; `'always'`;
    /// `'never'` (WHOLE mode: every tensor copied into the wasm32 guest; fails early with
    /// `ERR_MODEL_TOO_LARGE_FOR_WASM32` when it cannot fit).
    #[napi(ts_type = "'auto' | 'always' | 'never' | boolean")]
    pub memory64: Option<String>,
    /// Bytes of tensor data above which `'auto'` chooses Memory64. Default 3 GiB (3221225472).
    pub memory64_threshold: Option<f64>,
    /// Layer cache capacity in layers (Memory64 mode). Default 4 when `cacheBytes` is not given.
    pub cache_layers: Option<u32>,
    /// Layer cache capacity in bytes (Memory64 mode); with `cacheLayers`, the smaller wins.
    pub cache_bytes: Option<f64>,
    /// KV cache positions for generation. Default: the model's context length capped at 4096
    /// (halved until it fits the wasm32 guest). A value that cannot fit rejects the load with
    /// `ERR_CONTEXT_TOO_LARGE`.
    pub context_length: Option<u32>,
    /// Threads the model's matrix products are split over: the generation thread and
    /// `threads − 1` workers, which watch for the next product for 100 µs, then sleep (between
    /// calls they never spin). Results are bit-identical at every count. Default: the machine's
    /// available parallelism.
    pub threads: Option<u32>,
    /// The thread count of the llama.cpp run whose output generation reproduces bit for bit.
    /// llama.cpp's CPU flash attention splits a generated token's attention into one chunk per
    /// thread once 512+ cache cells are in view; each chunk keeps its own f16 running sum, so the
    /// result changes with the thread count (token probabilities by up to ~1 %, and so,
    /// sometimes, a token). wasm-chord mirrors that split whatever its own thread count.
    /// Default: node-llama-cpp's default for a CPU context, max(4, physical cores).
    pub reference_threads: Option<u32>,
    /// Called with the load progress, 0..1.
    #[napi(ts_type = "(progress: number) => void")]
    pub on_load_progress: Option<String>,
    /// Aborts the load (rejects with `ERR_ABORTED`).
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<String>,
}
