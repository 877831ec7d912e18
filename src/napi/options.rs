//! Every JavaScript options object, declared once: a `#[napi(object)]` struct is its TypeScript
//! interface (with the docs) and what napi converts the JS object into; its `FIELDS` give each
//! field's JS name and kind; one method validates it into the core's options.
//!
//! [`read`] does what napi's conversion does not: a key that is not a field (a typo) is
//! `ERR_INVALID_OPTION` naming it and the known ones; a value of the wrong JS type is
//! `ERR_INVALID_OPTION` naming the option, what it must be and what it is (napi would take any
//! value as a function or an object, and a string as nothing at all); `null` counts as absent.
//! Ranges and enumerations are checked by the validating methods, which name the option and the
//! numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use super::errors::invalid_option;
use crate::ChordError;
use crate::infer::GenerateOptions as CoreGenerateOptions;
use crate::memory64::CacheConfig;
use crate::model::{DEFAULT_MEMORY64_THRESHOLD, LoadOptions as CoreLoadOptions, Memory64Option};

type CoreResult<T> = std::result::Result<T, ChordError>;

/// The largest integer a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// What an option's value must be, as JS sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A number (ranges are checked when validating).
    Number,
    /// A boolean.
    Boolean,
    /// A string.
    String,
    /// A function.
    Function,
    /// An `AbortSignal` (an object; `addEventListener` is checked when it is watched).
    Signal,
    /// `memory64`: a string or a boolean.
    StringOrBoolean,
    /// `stop`: a string or an array of strings.
    StringOrStrings,
    /// `repeatPenalty`: a number or a [`RepeatPenaltyOptions`] object.
    NumberOrObject,
}

impl Kind {
    fn accepts(self, t: ValueType, is_array: bool) -> bool {
        match self {
            Self::Number => t == ValueType::Number,
            Self::Boolean => t == ValueType::Boolean,
            Self::String => t == ValueType::String,
            Self::Function => t == ValueType::Function,
            Self::Signal => t == ValueType::Object && !is_array,
            Self::StringOrBoolean => matches!(t, ValueType::String | ValueType::Boolean),
            Self::StringOrStrings => t == ValueType::String || is_array,
            Self::NumberOrObject => t == ValueType::Number || (t == ValueType::Object && !is_array),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Number => "a number",
            Self::Boolean => "a boolean",
            Self::String => "a string",
            Self::Function => "a function",
            Self::Signal => "an AbortSignal",
            Self::StringOrBoolean => "a string or a boolean",
            Self::StringOrStrings => "a string or an array of strings",
            Self::NumberOrObject => "a number or an object",
        }
    }
}

/// A JS options object: its `#[napi(object)]` declaration and its fields.
pub trait JsOptions: FromNapiValue + Default {
    /// Each field's JS name (as napi names it: camelCase) and kind.
    const FIELDS: &'static [(&'static str, Kind)];
}

fn type_of(v: &Unknown) -> ValueType {
    v.get_type().unwrap_or(ValueType::Unknown)
}

/// What `v` is, as JS's `typeof` says it (`null` and arrays named as such).
pub(super) fn js_type(t: ValueType, is_array: bool) -> &'static str {
    match t {
        _ if is_array => "an array",
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object | ValueType::External => "object",
        ValueType::Function => "function",
        ValueType::BigInt => "bigint",
        _ => "an unknown value",
    }
}

/// Reads `value` (undefined, null or an object) as `T`, accepting only `fields` (a subset of
/// `T::FIELDS`; see the module doc). `name` is the object's name in messages: `options`, or the
/// option that holds it (`repeatPenalty`), which then prefixes its keys.
pub fn read<T: JsOptions>(env: &Env, value: Option<Unknown>, fields: &[(&str, Kind)], name: &str) -> CoreResult<T> {
    let Some(value) = value else { return Ok(T::default()) };
    let is_array = value.is_array().unwrap_or(false);
    match type_of(&value) {
        ValueType::Undefined | ValueType::Null => return Ok(T::default()),
        ValueType::Object if !is_array => {}
        t => return Err(invalid_option(format!("{name} must be an object, got {}", js_type(t, is_array)))),
    }
    let key = |k: &str| if name == "options" { k.to_string() } else { format!("{name}.{k}") };
    let bad = |e: Error| invalid_option(format!("{name}: {}", e.reason));
    // SAFETY: checked to be an object.
    let obj: Object = unsafe { value.cast() }.map_err(bad)?;
    if let Some(k) = Object::keys(&obj).unwrap_or_default().into_iter().find(|k| !fields.iter().any(|(f, _)| f == k)) {
        let known: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
        return Err(invalid_option(format!("unknown option {:?} (known: {})", key(&k), known.join(", "))));
    }
    // What napi converts: the fields given, each of the right JS type.
    let mut given = Object::new(env).map_err(bad)?;
    for &(field, kind) in fields {
        let Some(v) = obj.get::<Unknown>(field).ok().flatten() else { continue };
        let t = type_of(&v);
        if matches!(t, ValueType::Undefined | ValueType::Null) {
            continue;
        }
        let is_array = v.is_array().unwrap_or(false);
        if !kind.accepts(t, is_array) {
            return Err(invalid_option(format!("{} must be {}, got {}", key(field), kind.what(), js_type(t, is_array))));
        }
        given.set(field, v).map_err(bad)?;
    }
    // SAFETY: `given` is a live object of this call's scope.
    unsafe { T::from_napi_value(env.raw(), given.raw()) }.map_err(|e| {
        // napi names the field last: "… on GenerateOptions.stop".
        let field = e.reason.rsplit_once(" on ").and_then(|(_, at)| at.split_once('.')).map(|(_, f)| f.to_string());
        match field.and_then(|f| fields.iter().find(|(k, _)| *k == f)) {
            Some(&(f, kind)) => invalid_option(format!("{} must be {} ({})", key(f), kind.what(), e.reason)),
            None => bad(e),
        }
    })
}

/// `value` as an integer in `[min, max]`, or absent.
fn integer(key: &str, value: Option<f64>, min: f64, max: f64) -> CoreResult<Option<f64>> {
    match value {
        Some(n) if !n.is_finite() || n.fract() != 0.0 || n < min || n > max => Err(invalid_option(format!("{key} must be an integer in [{min}, {max}], got {n}"))),
        v => Ok(v),
    }
}

/// `value` as a number in `[min, max]`, or absent.
fn number(key: &str, value: Option<f64>, min: f64, max: f64) -> CoreResult<Option<f64>> {
    match value {
        Some(n) if !n.is_finite() || n < min || n > max => Err(invalid_option(format!("{key} must be a number in [{min}, {max}], got {n}"))),
        v => Ok(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Model.load
// ---------------------------------------------------------------------------------------------

/// A progress callback callable from any thread.
pub type ProgressFn = ThreadsafeFunction<f64, Unknown<'static>, f64, Status, false, true>;

/// Options of `Model.load`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// `'auto'` (default): Memory64 when tensor data exceeds `memory64Threshold` or cannot fit a
    /// wasm32 guest; `'always'` (or `true`);
    /// `'never'` (or `false`: WHOLE mode, every tensor copied into the wasm32 guest; fails early
    /// with `ERR_MODEL_TOO_LARGE_FOR_WASM32` when it cannot fit).
    #[napi(ts_type = "'auto' | 'always' | 'never' | boolean")]
    pub memory64: Option<Either<String, bool>>,
    /// Bytes of tensor data above which `'auto'` chooses Memory64. Default 3 GiB (3221225472).
    pub memory64_threshold: Option<f64>,
    /// Layer cache capacity in layers (Memory64 mode), an integer ≥ 1. Default 4 when
    /// `cacheBytes` is not given.
    pub cache_layers: Option<f64>,
    /// Layer cache capacity in bytes (Memory64 mode); with `cacheLayers`, the smaller wins.
    pub cache_bytes: Option<f64>,
    /// KV cache positions for generation. Default: the model's context length capped at 4096
    /// (halved until it fits the wasm32 guest). A value that cannot fit rejects the load with
    /// `ERR_CONTEXT_TOO_LARGE`.
    pub context_length: Option<f64>,
    /// Threads the model's matrix products are split over: the generation thread and
    /// `threads − 1` workers, which watch for the next product for 100 µs, then sleep (between
    /// calls they never spin). Results are bit-identical at every count. Default: the machine's
    /// available parallelism.
    pub threads: Option<f64>,
    /// The thread count of the llama.cpp run whose output generation reproduces bit for bit.
    /// llama.cpp's CPU flash attention splits a generated token's attention into one chunk per
    /// thread once 512+ cache cells are in view; each chunk keeps its own f16 running sum, so the
    /// result changes with the thread count (token probabilities by up to ~1 %, and so,
    /// sometimes, a token). wasm-chord mirrors that split whatever its own thread count.
    /// Default: node-llama-cpp's default for a CPU context, max(4, physical cores).
    pub reference_threads: Option<f64>,
    /// Called with the load progress, 0..1.
    #[napi(ts_type = "(progress: number) => void")]
    pub on_load_progress: Option<Function<'a, f64, Unknown<'static>>>,
    /// Aborts the load (rejects with `ERR_ABORTED`).
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Object<'a>>,
}

impl JsOptions for LoadOptions<'_> {
    const FIELDS: &'static [(&'static str, Kind)] = &[
        ("memory64", Kind::StringOrBoolean),
        ("memory64Threshold", Kind::Number),
        ("cacheLayers", Kind::Number),
        ("cacheBytes", Kind::Number),
        ("contextLength", Kind::Number),
        ("threads", Kind::Number),
        ("referenceThreads", Kind::Number),
        ("onLoadProgress", Kind::Function),
        ("signal", Kind::Signal),
    ];
}

/// `Model.load`'s options validated, plus the hooks taken from them.
pub struct ParsedLoad {
    /// Core options.
    pub options: CoreLoadOptions,
    /// `onLoadProgress`.
    pub progress: Option<Arc<ProgressFn>>,
    /// Set when `signal` aborts.
    pub aborted: Arc<AtomicBool>,
}

impl LoadOptions<'_> {
    /// Reads and validates `Model.load`'s `options`.
    pub fn parse(env: &Env, options: Option<Unknown>) -> CoreResult<ParsedLoad> {
        read_all::<LoadOptions>(env, options)?.validate(env)
    }

    fn validate(self, env: &Env) -> CoreResult<ParsedLoad> {
        let memory64 = match self.memory64 {
            None => Memory64Option::Auto,
            Some(Either::B(b)) => if b { Memory64Option::Always } else { Memory64Option::Never },
            Some(Either::A(s)) => match s.as_str() {
                "auto" => Memory64Option::Auto,
                "always" => Memory64Option::Always,
                "never" => Memory64Option::Never,
                other => return Err(invalid_option(format!("memory64 must be 'auto', 'always' or 'never', got {other:?}"))),
            },
        };
        let options = CoreLoadOptions {
            memory64,
            memory64_threshold: integer("memory64Threshold", self.memory64_threshold, 0.0, MAX_SAFE)?.map_or(DEFAULT_MEMORY64_THRESHOLD, |n| n as u64),
            cache: CacheConfig {
                layers: integer("cacheLayers", self.cache_layers, 1.0, 1_000_000.0)?.map(|n| n as u32),
                bytes: integer("cacheBytes", self.cache_bytes, 1.0, MAX_SAFE)?.map(|n| n as u64),
            },
            context_length: integer("contextLength", self.context_length, 1.0, 1_048_576.0)?.map(|n| n as u32),
            reference_threads: integer("referenceThreads", self.reference_threads, 1.0, 1024.0)?.map(|n| n as u32),
            threads: integer("threads", self.threads, 1.0, 1024.0)?.map(|n| n as u32),
        };
        let progress = match self.on_load_progress {
            None => None,
            Some(f) => {
                let tsfn = f.build_threadsafe_function::<f64>().callee_handled::<false>().weak::<true>().build().map_err(|e| invalid_option(format!("onLoadProgress: {e}")))?;
                Some(Arc::new(tsfn))
            }
        };
        let aborted = Arc::new(AtomicBool::new(false));
        if let Some(signal) = self.signal {
            watch_signal(env, &signal, aborted.clone())?;
        }
        Ok(ParsedLoad { options, progress, aborted })
    }
}

/// Sets `flag` now if `signal.aborted`, and when it fires `abort` later (without replacing any
/// listener the application installed).
fn watch_signal(env: &Env, signal: &Object, flag: Arc<AtomicBool>) -> CoreResult<()> {
    let bad = |e: Error| invalid_option(format!("signal: {e}"));
    let add: Option<Function<FnArgs<(Unknown, Unknown, Unknown)>, Unknown>> = signal.get("addEventListener").ok().flatten();
    let Some(add) = add else { return Err(invalid_option("signal must be an AbortSignal (no addEventListener)")) };
    if signal.get::<bool>("aborted").ok().flatten().unwrap_or(false) {
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
    let _: Unknown = add.apply(signal, FnArgs::from(args)).map_err(bad)?;
    Ok(())
}

/// Calls the progress callback without blocking.
pub fn report(progress: &Option<Arc<ProgressFn>>, fraction: f64) {
    if let Some(p) = progress {
        p.call(fraction, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

// ---------------------------------------------------------------------------------------------
// generate / stream / chat / session.prompt
// ---------------------------------------------------------------------------------------------

/// Options of `model.generate` / `model.stream`. `model.chat` takes them without `addSpecial`
/// and `parseSpecial` and with `template` (`ChatOptions`); `session.prompt` without all three
/// (`SessionPromptOptions`).
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct GenerateOptions<'a> {
    /// Most tokens to generate, an integer ≥ 0. Default: until an end-of-generation token or a
    /// full context.
    pub max_tokens: Option<f64>,
    /// Sampling temperature. Default 0 (greedy: always the most likely token).
    pub temperature: Option<f64>,
    /// Keep only the K most likely tokens (temperature > 0). Default 40; 0 = all.
    pub top_k: Option<f64>,
    /// Keep the smallest set of tokens whose probability reaches P (temperature > 0). Default 0.95.
    pub top_p: Option<f64>,
    /// Drop tokens less likely than minP × the most likely one (temperature > 0). Default 0 (off).
    pub min_p: Option<f64>,
    /// Penalties for recently seen tokens, as llama.cpp applies them: a number (the repeat
    /// penalty; 1 = off, the default), or a `RepeatPenaltyOptions` object.
    #[napi(ts_type = "number | RepeatPenaltyOptions")]
    pub repeat_penalty: Option<Either<f64, Object<'a>>>,
    /// Random seed: the same seed gives the same text. Default: from the clock.
    pub seed: Option<f64>,
    /// Strings that end generation; the text stops before the first one found.
    #[napi(ts_type = "string | string[]")]
    pub stop: Option<Either<String, Vec<String>>>,
    /// Add the model's BOS/EOS tokens around a text prompt as its `add_bos_token` says. Default true.
    pub add_special: Option<bool>,
    /// Recognise special-token text (e.g. `<|im_start|>`) in a text prompt. Default true.
    pub parse_special: Option<bool>,
    /// `model.chat` only (declared on `ChatOptions`): a Jinja chat template to use instead of
    /// the file's.
    #[napi(skip_typescript)]
    pub template: Option<String>,
    /// Called with each piece of generated text (complete UTF-8) as soon as it is final.
    #[napi(ts_type = "(chunk: string) => void")]
    #[allow(dead_code)] // reason: called by the JS wrapper (src/napi/wrappers.js), which passes it on as undefined
    pub on_text_chunk: Option<Function<'a, String, ()>>,
    /// Called with the ids of each generated token as it is sampled (before its text is final).
    #[napi(ts_type = "(tokens: number[]) => void")]
    pub on_token: Option<Function<'a, Vec<u32>, ()>>,
    /// Stops generation (also during the prompt); the call rejects with `ERR_ABORTED` whose
    /// `cause` is `signal.reason`.
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Object<'a>>,
    /// With `signal`: an abort resolves with the text generated so far and `stopReason: 'abort'`
    /// instead of rejecting. Default false.
    pub stop_on_abort_signal: Option<bool>,
}

impl JsOptions for GenerateOptions<'_> {
    const FIELDS: &'static [(&'static str, Kind)] = &[
        ("maxTokens", Kind::Number),
        ("temperature", Kind::Number),
        ("topK", Kind::Number),
        ("topP", Kind::Number),
        ("minP", Kind::Number),
        ("repeatPenalty", Kind::NumberOrObject),
        ("seed", Kind::Number),
        ("stop", Kind::StringOrStrings),
        ("addSpecial", Kind::Boolean),
        ("parseSpecial", Kind::Boolean),
        ("template", Kind::String),
        ("onTextChunk", Kind::Function),
        ("onToken", Kind::Function),
        ("signal", Kind::Signal),
        ("stopOnAbortSignal", Kind::Boolean),
    ];
}

/// The penalties for recently seen tokens, as llama.cpp applies them: a recent token's logit
/// is divided by `penalty` if positive, else multiplied, then `count × frequencyPenalty +
/// presencePenalty` is subtracted, over the last `lastTokens` tokens. At least one of
/// `penalty`, `frequencyPenalty` and `presencePenalty` is given.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct RepeatPenaltyOptions {
    /// The repeat penalty, > 0. Default 1 (off).
    pub penalty: Option<f64>,
    /// Subtracted once per occurrence. Default 0.
    pub frequency_penalty: Option<f64>,
    /// Subtracted once for a token that occurred. Default 0.
    pub presence_penalty: Option<f64>,
    /// How many of the last tokens count, an integer ≥ 0. Default 64.
    pub last_tokens: Option<f64>,
}

impl JsOptions for RepeatPenaltyOptions {
    const FIELDS: &'static [(&'static str, Kind)] = &[
        ("penalty", Kind::Number),
        ("frequencyPenalty", Kind::Number),
        ("presencePenalty", Kind::Number),
        ("lastTokens", Kind::Number),
    ];
}

/// Which call the generation options are for: `generate`/`stream` take a prompt's `addSpecial`
/// and `parseSpecial`; `model.chat` takes a `template` instead; `session.prompt` neither (the
/// session's template decides the special tokens).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OptionsOf {
    /// `model.generate` / `model.stream`.
    Generate,
    /// `model.chat`.
    Chat,
    /// `session.prompt`.
    SessionPrompt,
}

impl OptionsOf {
    /// The [`GenerateOptions`] fields this call does not take.
    fn excluded(self) -> &'static [&'static str] {
        match self {
            Self::Generate => &["template"],
            Self::Chat => &["addSpecial", "parseSpecial"],
            Self::SessionPrompt => &["addSpecial", "parseSpecial", "template"],
        }
    }
}

/// Generation options validated, plus how to run them.
pub struct ParsedGenerate {
    /// Core options.
    pub options: CoreGenerateOptions,
    /// `addSpecial`.
    pub add_special: bool,
    /// `parseSpecial`.
    pub parse_special: bool,
    /// Set when `signal` aborts.
    pub aborted: Arc<AtomicBool>,
    /// `template` (`model.chat` only).
    pub template: Option<String>,
    /// `onToken` was given: token events are sent.
    pub on_token: bool,
}

impl GenerateOptions<'_> {
    /// Reads and validates the `options` of `generate`, `chat` or `session.prompt`.
    pub fn parse(env: &Env, options: Option<Unknown>, of: OptionsOf) -> CoreResult<ParsedGenerate> {
        let fields: Vec<(&str, Kind)> = GenerateOptions::FIELDS.iter().filter(|(k, _)| !of.excluded().contains(k)).copied().collect();
        read::<GenerateOptions>(env, options, &fields, "options")?.validate(env)
    }

    fn validate(self, env: &Env) -> CoreResult<ParsedGenerate> {
        let mut o = CoreGenerateOptions { max_tokens: integer("maxTokens", self.max_tokens, 0.0, 1e9)?.map(|n| n as usize), ..CoreGenerateOptions::default() };
        let s = &mut o.sampler;
        s.temperature = number("temperature", self.temperature, 0.0, 1e6)?.map_or(s.temperature, |n| n as f32);
        s.top_k = integer("topK", self.top_k, 0.0, 1e9)?.map_or(s.top_k, |n| n as usize);
        s.top_p = number("topP", self.top_p, 0.0, 1.0)?.map_or(s.top_p, |n| n as f32);
        s.min_p = number("minP", self.min_p, 0.0, 1.0)?.map_or(s.min_p, |n| n as f32);
        s.seed = integer("seed", self.seed, 0.0, MAX_SAFE)?.map_or(s.seed, |n| n as u64);
        match self.repeat_penalty {
            None => {}
            Some(Either::A(n)) => s.repeat_penalty = number("repeatPenalty", Some(n), 1e-6, 1e6)?.unwrap_or(1.0) as f32,
            Some(Either::B(obj)) => {
                let rp: RepeatPenaltyOptions = read(env, Some(obj.to_unknown()), RepeatPenaltyOptions::FIELDS, "repeatPenalty")?;
                let penalty = number("repeatPenalty.penalty", rp.penalty, 1e-6, 1e6)?;
                let freq = number("repeatPenalty.frequencyPenalty", rp.frequency_penalty, -1e6, 1e6)?;
                let present = number("repeatPenalty.presencePenalty", rp.presence_penalty, -1e6, 1e6)?;
                if penalty.is_none() && freq.is_none() && present.is_none() {
                    return Err(invalid_option("repeatPenalty needs penalty, frequencyPenalty or presencePenalty"));
                }
                s.repeat_penalty = penalty.unwrap_or(1.0) as f32;
                s.frequency_penalty = freq.unwrap_or(0.0) as f32;
                s.presence_penalty = present.unwrap_or(0.0) as f32;
                s.repeat_last_n = integer("repeatPenalty.lastTokens", rp.last_tokens, 0.0, 1e9)?.map_or(s.repeat_last_n, |n| n as usize);
            }
        }
        o.stop = match self.stop {
            None => Vec::new(),
            Some(Either::A(one)) => vec![one],
            Some(Either::B(all)) => all,
        };
        o.stop_on_abort = self.stop_on_abort_signal.unwrap_or(false);
        o.sampler.validate()?;
        let aborted = Arc::new(AtomicBool::new(false));
        if let Some(signal) = self.signal {
            watch_signal(env, &signal, aborted.clone())?;
        }
        Ok(ParsedGenerate {
            options: o,
            add_special: self.add_special.unwrap_or(true),
            parse_special: self.parse_special.unwrap_or(true),
            aborted,
            template: self.template,
            on_token: self.on_token.is_some(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// applyChatTemplate / createSession / tokenize / detokenize
// ---------------------------------------------------------------------------------------------

/// Options of `model.applyChatTemplate`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ApplyChatTemplateOptions {
    /// End with the opening of the assistant's turn, so that generation continues as the
    /// assistant (transformers' `add_generation_prompt`). Default true.
    pub add_generation_prompt: Option<bool>,
    /// A Jinja chat template to use instead of the file's `tokenizer.chat_template`.
    pub template: Option<String>,
    /// Return token ids instead of text: the template's special tokens are special, message
    /// content never is (so a user's `<|im_end|>` stays text). Default false.
    pub tokenize: Option<bool>,
}

impl JsOptions for ApplyChatTemplateOptions {
    const FIELDS: &'static [(&'static str, Kind)] = &[("addGenerationPrompt", Kind::Boolean), ("template", Kind::String), ("tokenize", Kind::Boolean)];
}

/// Options of `model.createSession`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct CreateSessionOptions {
    /// A system message that opens the history (and stays after `reset()`).
    pub system_prompt: Option<String>,
    /// Positions the session may fill, an integer in [2, the model's `contextLength`] (the
    /// default). A turn whose rendered history does not fit rejects with
    /// `ERR_CONTEXT_TOO_LARGE`; a reply that fills it stops with `stopReason: 'contextFull'`.
    pub context_length: Option<f64>,
    /// A Jinja chat template to use instead of the file's `tokenizer.chat_template`.
    pub template: Option<String>,
}

impl JsOptions for CreateSessionOptions {
    const FIELDS: &'static [(&'static str, Kind)] = &[("systemPrompt", Kind::String), ("contextLength", Kind::Number), ("template", Kind::String)];
}

impl CreateSessionOptions {
    /// The session's context length: `contextLength`, checked against the model's `n_ctx`, or
    /// `n_ctx`.
    pub fn context_length(&self, n_ctx: u32) -> CoreResult<u32> {
        match self.context_length {
            None => Ok(n_ctx),
            Some(c) if c.fract() == 0.0 && (2.0..=f64::from(n_ctx)).contains(&c) => Ok(c as u32),
            Some(c) => Err(invalid_option(format!("contextLength must be an integer in [2, {n_ctx}] (the model was loaded with contextLength {n_ctx}), got {c}"))),
        }
    }
}

/// Options of `model.tokenize`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct TokenizeOptions {
    /// Add BOS/EOS as the model's `add_bos_token`/`add_eos_token` say. Default true.
    pub add_special: Option<bool>,
    /// Turn special-token text such as `<|im_start|>` into its token. Default true.
    pub parse_special: Option<bool>,
}

impl JsOptions for TokenizeOptions {
    const FIELDS: &'static [(&'static str, Kind)] = &[("addSpecial", Kind::Boolean), ("parseSpecial", Kind::Boolean)];
}

/// Options of `model.detokenize`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct DetokenizeOptions {
    /// Render control tokens such as `<|im_end|>` as their text. Default false (as nothing).
    pub render_special: Option<bool>,
}

impl JsOptions for DetokenizeOptions {
    const FIELDS: &'static [(&'static str, Kind)] = &[("renderSpecial", Kind::Boolean)];
}

/// Reads an options object with every field of `T`.
pub fn read_all<T: JsOptions>(env: &Env, value: Option<Unknown>) -> CoreResult<T> {
    read(env, value, T::FIELDS, "options")
}
