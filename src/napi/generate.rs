//! Generation from JavaScript: option parsing, the generation thread, and the one event channel
//! (a threadsafe function) that carries text chunks and then the result, in order. The
//! `generate` / `stream` methods JS calls are thin wrappers installed by `model::init`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use super::errors::invalid_option;
use super::job::Job;
use super::model::{Model, Shared, disposed};
use super::options::watch_signal;
use crate::error::{ChordError, ErrorCode};
use crate::infer::{GenerateOptions as CoreGenerateOptions, Generation, StopReason};
use crate::model::SequenceId;

/// Timings of one generation.
#[napi(object)]
#[derive(Clone)]
pub struct GenerateTimings {
    /// Prompt tokens evaluated.
    pub prompt_tokens: u32,
    /// Prompt tokens a chat session's KV cache already held from earlier turns (not evaluated
    /// again); 0 for `generate` and `chat`.
    pub cached_tokens: u32,
    /// Milliseconds for the prompt (until the first token could be sampled).
    pub prompt_ms: f64,
    /// Tokens generated.
    pub generated_tokens: u32,
    /// Milliseconds spent generating after the prompt.
    pub generate_ms: f64,
}

/// What `model.generate` resolves to.
#[napi(object)]
#[derive(Clone)]
pub struct GenerateResult {
    /// The generated text (without a stop string or end-of-generation token).
    pub text: String,
    /// The generated token ids.
    pub tokens: Vec<u32>,
    /// Why generation stopped: an end-of-generation token, `maxTokens`, a `stop` string, a full
    /// context, or an abort with `stopOnAbortSignal`.
    #[napi(ts_type = "'eogToken' | 'maxTokens' | 'stopString' | 'contextFull' | 'abort'")]
    pub stop_reason: String,
    /// Timings.
    pub timings: GenerateTimings,
}

impl From<Generation> for GenerateResult {
    fn from(g: Generation) -> Self {
        Self {
            text: g.text,
            tokens: g.tokens,
            stop_reason: g.stop_reason.as_str().to_string(),
            timings: GenerateTimings {
                prompt_tokens: g.timings.prompt_tokens as u32,
                cached_tokens: g.timings.cached_tokens as u32,
                prompt_ms: g.timings.prompt_ms,
                generated_tokens: g.timings.generated_tokens as u32,
                generate_ms: g.timings.generate_ms,
            },
        }
    }
}

/// An error as the event channel carries it (the JS wrapper makes it an `Error` with `code`).
#[napi(object)]
#[derive(Clone)]
pub struct ErrorInfo {
    /// Stable `ERR_*` code.
    pub code: String,
    /// Message with the numbers.
    pub message: String,
}

impl From<ChordError> for ErrorInfo {
    fn from(e: ChordError) -> Self {
        Self { code: e.code_str().to_string(), message: e.message }
    }
}

/// Options of `model.generate` / `model.stream` (this struct declares their TypeScript shape;
/// `parse_generate_options` reads the JS object itself).
#[allow(dead_code)] // reason: TypeScript shape only
#[napi(object)]
pub struct GenerateOptions {
    /// Most tokens to generate. Default: until an end-of-generation token or a full context.
    pub max_tokens: Option<u32>,
    /// Sampling temperature. Default 0 (greedy: always the most likely token).
    pub temperature: Option<f64>,
    /// Keep only the K most likely tokens (temperature > 0). Default 40; 0 = all.
    pub top_k: Option<u32>,
    /// Keep the smallest set of tokens whose probability reaches P (temperature > 0). Default 0.95.
    pub top_p: Option<f64>,
    /// Drop tokens less likely than minP × the most likely one (temperature > 0). Default 0 (off).
    pub min_p: Option<f64>,
    /// Penalties for recently seen tokens, as llama.cpp applies them: a number (the repeat
    /// penalty; 1 = off, the default), or `{ penalty?, frequencyPenalty?, presencePenalty?,
    /// lastTokens? }` — a recent token's logit is divided by `penalty` (default 1) if positive,
    /// else multiplied, then `count × frequencyPenalty + presencePenalty` (defaults 0) is
    /// subtracted, over the last `lastTokens` tokens (default 64).
    #[napi(ts_type = "number | { penalty?: number; frequencyPenalty?: number; presencePenalty?: number; lastTokens?: number }")]
    pub repeat_penalty: Option<f64>,
    /// Random seed: the same seed gives the same text. Default: from the clock.
    pub seed: Option<f64>,
    /// Strings that end generation; the text stops before the first one found.
    #[napi(ts_type = "string | string[]")]
    pub stop: Option<Vec<String>>,
    /// Add the model's BOS/EOS tokens around a text prompt as its `add_bos_token` says. Default true.
    pub add_special: Option<bool>,
    /// Recognise special-token text (e.g. `<|im_start|>`) in a text prompt. Default true.
    pub parse_special: Option<bool>,
    /// Called with each piece of generated text (complete UTF-8) as soon as it is final.
    #[napi(ts_type = "(chunk: string) => void")]
    pub on_text_chunk: Option<String>,
    /// Called with the ids of each generated token as it is sampled (before its text is final).
    #[napi(ts_type = "(tokens: number[]) => void")]
    pub on_token: Option<String>,
    /// Stops generation (also during the prompt); the call rejects with `ERR_ABORTED` whose
    /// `cause` is `signal.reason`.
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<String>,
    /// With `signal`: an abort resolves with the text generated so far and `stopReason: 'abort'`
    /// instead of rejecting. Default false.
    pub stop_on_abort_signal: Option<bool>,
}

/// Parsed generation options plus how to run them.
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

/// Which call the options are for: `generate`/`stream` take a prompt's `addSpecial` and
/// `parseSpecial`; `model.chat` takes a `template` instead; `session.prompt` neither (the
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

const SAMPLING: &[&str] = &["maxTokens", "temperature", "topK", "topP", "minP", "repeatPenalty", "seed", "stop", "onTextChunk", "onToken", "signal", "stopOnAbortSignal"];
const REPEAT_PENALTY: &[&str] = &["penalty", "frequencyPenalty", "presencePenalty", "lastTokens"];

impl OptionsOf {
    fn extra(self) -> &'static [&'static str] {
        match self {
            Self::Generate => &["addSpecial", "parseSpecial"],
            Self::Chat => &["template"],
            Self::SessionPrompt => &[],
        }
    }
}

fn get(obj: &Object, key: &str) -> Option<(Unknown<'static>, ValueType)> {
    let v: Unknown = obj.get(key).ok().flatten()?;
    let t = v.get_type().unwrap_or(ValueType::Unknown);
    if matches!(t, ValueType::Undefined | ValueType::Null) {
        return None;
    }
    // SAFETY: the value is used only during this synchronous call, while the object holding it
    // is alive on the JS stack.
    Some((unsafe { std::mem::transmute::<Unknown<'_>, Unknown<'static>>(v) }, t))
}

fn number(obj: &Object, key: &str, min: f64, max: f64, integer: bool) -> std::result::Result<Option<f64>, ChordError> {
    let Some((v, t)) = get(obj, key) else { return Ok(None) };
    if t != ValueType::Number {
        return Err(invalid_option(format!("{key} must be a number, got {t}")));
    }
    // SAFETY: checked to be a number.
    let n: f64 = unsafe { v.cast() }.map_err(|e| invalid_option(format!("{key}: {e}")))?;
    if !n.is_finite() || n < min || n > max || (integer && n.fract() != 0.0) {
        let kind = if integer { "an integer" } else { "a number" };
        return Err(invalid_option(format!("{key} must be {kind} in [{min}, {max}], got {n}")));
    }
    Ok(Some(n))
}

fn boolean(obj: &Object, key: &str) -> std::result::Result<Option<bool>, ChordError> {
    let Some((v, t)) = get(obj, key) else { return Ok(None) };
    if t != ValueType::Boolean {
        return Err(invalid_option(format!("{key} must be a boolean, got {t}")));
    }
    // SAFETY: checked to be a boolean.
    unsafe { v.cast::<bool>() }.map(Some).map_err(|e| invalid_option(format!("{key}: {e}")))
}

fn string(v: Unknown, what: &str) -> std::result::Result<String, ChordError> {
    if v.get_type().ok() != Some(ValueType::String) {
        return Err(invalid_option(format!("{what} must be a string")));
    }
    // SAFETY: checked to be a string.
    unsafe { v.cast::<String>() }.map_err(|e| invalid_option(format!("{what}: {e}")))
}

/// Parses `options` (undefined, null or an object) of `generate`, `chat` or `session.prompt`.
pub fn parse_generate_options(env: &Env, options: Option<Unknown>, of: OptionsOf) -> std::result::Result<ParsedGenerate, ChordError> {
    let aborted = Arc::new(AtomicBool::new(false));
    let mut p = ParsedGenerate { options: CoreGenerateOptions::default(), add_special: true, parse_special: true, aborted: aborted.clone(), template: None, on_token: false };
    let Some(options) = options else { return Ok(p) };
    match options.get_type().unwrap_or(ValueType::Unknown) {
        ValueType::Undefined | ValueType::Null => return Ok(p),
        ValueType::Object => {}
        t => return Err(invalid_option(format!("options must be an object, got {t}"))),
    }
    // SAFETY: checked to be an object.
    let obj: Object = unsafe { options.cast() }.map_err(|e| invalid_option(e.to_string()))?;
    let known: Vec<&str> = SAMPLING.iter().chain(of.extra()).copied().collect();
    if let Some(k) = Object::keys(&obj).unwrap_or_default().into_iter().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid_option(format!("unknown option {k:?} (known: {})", known.join(", "))));
    }
    let o = &mut p.options;
    o.max_tokens = number(&obj, "maxTokens", 0.0, 1e9, true)?.map(|n| n as usize);
    let s = &mut o.sampler;
    s.temperature = number(&obj, "temperature", 0.0, 1e6, false)?.map_or(s.temperature, |n| n as f32);
    s.top_k = number(&obj, "topK", 0.0, 1e9, true)?.map_or(s.top_k, |n| n as usize);
    s.top_p = number(&obj, "topP", 0.0, 1.0, false)?.map_or(s.top_p, |n| n as f32);
    s.min_p = number(&obj, "minP", 0.0, 1.0, false)?.map_or(s.min_p, |n| n as f32);
    s.seed = number(&obj, "seed", 0.0, 9_007_199_254_740_991.0, true)?.map_or(s.seed, |n| n as u64);
    if let Some((v, t)) = get(&obj, "repeatPenalty") {
        match t {
            ValueType::Number => s.repeat_penalty = number(&obj, "repeatPenalty", 1e-6, 1e6, false)?.unwrap_or(1.0) as f32,
            ValueType::Object => {
                // SAFETY: checked to be an object.
                let rp: Object = unsafe { v.cast() }.map_err(|e| invalid_option(e.to_string()))?;
                if let Some(k) = Object::keys(&rp).unwrap_or_default().into_iter().find(|k| !REPEAT_PENALTY.contains(&k.as_str())) {
                    return Err(invalid_option(format!("unknown option repeatPenalty.{k} (known: {})", REPEAT_PENALTY.join(", "))));
                }
                let at = |key: &str, min: f64| number(&rp, key, min, 1e6, false).map_err(|e| invalid_option(format!("repeatPenalty.{}", e.message)));
                let (penalty, freq, present) = (at("penalty", 1e-6)?, at("frequencyPenalty", -1e6)?, at("presencePenalty", -1e6)?);
                if penalty.is_none() && freq.is_none() && present.is_none() {
                    return Err(invalid_option("repeatPenalty needs penalty, frequencyPenalty or presencePenalty"));
                }
                s.repeat_penalty = penalty.unwrap_or(1.0) as f32;
                s.frequency_penalty = freq.unwrap_or(0.0) as f32;
                s.presence_penalty = present.unwrap_or(0.0) as f32;
                s.repeat_last_n = number(&rp, "lastTokens", 0.0, 1e9, true).map_err(|e| invalid_option(format!("repeatPenalty.{}", e.message)))?.map_or(s.repeat_last_n, |n| n as usize);
            }
            t => return Err(invalid_option(format!("repeatPenalty must be a number or {{ penalty, frequencyPenalty, presencePenalty, lastTokens }}, got {t}"))),
        }
    }
    if let Some((v, t)) = get(&obj, "stop") {
        o.stop = match t {
            ValueType::String => vec![string(v, "stop")?],
            ValueType::Object if v.is_array().unwrap_or(false) => {
                // SAFETY: checked to be an array.
                let arr: Array = unsafe { v.cast() }.map_err(|e| invalid_option(e.to_string()))?;
                (0..arr.len()).map(|i| string(arr.get::<Unknown>(i).ok().flatten().ok_or_else(|| invalid_option("stop[] must hold strings"))?, "stop[]")).collect::<std::result::Result<_, _>>()?
            }
            t => return Err(invalid_option(format!("stop must be a string or an array of strings, got {t}"))),
        };
    }
    if let Some((v, _)) = get(&obj, "template") {
        p.template = Some(string(v, "template")?);
    }
    p.add_special = boolean(&obj, "addSpecial")?.unwrap_or(true);
    p.parse_special = boolean(&obj, "parseSpecial")?.unwrap_or(true);
    for key in ["onTextChunk", "onToken"] {
        if let Some((_, t)) = get(&obj, key)
            && t != ValueType::Function
        {
            return Err(invalid_option(format!("{key} must be a function, got {t}")));
        }
    }
    p.on_token = get(&obj, "onToken").is_some();
    p.options.stop_on_abort = boolean(&obj, "stopOnAbortSignal")?.unwrap_or(false);
    if let Some((v, t)) = get(&obj, "signal") {
        if t != ValueType::Object {
            return Err(invalid_option(format!("signal must be an AbortSignal, got {t}")));
        }
        watch_signal(env, &v, aborted)?;
    }
    p.options.sampler.validate()?;
    Ok(p)
}

/// One event of a generation, delivered in order on the JS thread.
pub enum Event {
    /// A piece of final text.
    Chunk(String),
    /// Generated token ids (for `onToken`).
    Tokens(Vec<u32>),
    /// The generation finished.
    Done(GenerateResult),
    /// The generation failed.
    Failed(ErrorInfo),
}

/// The arguments of the event callback: `(kind, text, result, error, tokens)`.
pub type EventArgs = FnArgs<(&'static str, Option<String>, Option<GenerateResult>, Option<ErrorInfo>, Option<Vec<u32>>)>;

/// The event callback.
pub type EventFn = ThreadsafeFunction<Event, (), EventArgs, Status, false>;

/// Wraps the JS callback `(kind, text, result, error, tokens) => void` as an [`EventFn`].
pub fn event_fn(callback: Function<'_, EventArgs, ()>) -> Result<EventFn> {
    callback.build_threadsafe_function::<Event>().callee_handled::<false>().build_callback(|ctx| {
        Ok(FnArgs::from(match ctx.value {
            Event::Chunk(s) => ("chunk", Some(s), None, None, None),
            Event::Tokens(t) => ("tokens", None, None, None, Some(t)),
            Event::Done(r) => ("done", None, Some(r), None, None),
            Event::Failed(e) => ("error", None, None, Some(e), None),
        }))
    })
}

/// Sends an event (non-blocking; the queue is unbounded).
pub fn send(f: &EventFn, e: Event) {
    f.call(e, ThreadsafeFunctionCallMode::NonBlocking);
}

/// Whether the abort flag is set.
pub fn is_set(flag: &AtomicBool) -> bool {
    flag.load(Ordering::SeqCst)
}


/// Runs `work(input)` on a thread of the addon's own and reports its chunks (through the
/// [`EventFn`] it is given) and then its result on `events`; an `input` that failed to parse is
/// reported at once. Panics become `ERR_INTERNAL`.
pub fn spawn_generation<I: Send + 'static>(
    events: EventFn,
    input: std::result::Result<I, ChordError>,
    work: impl FnOnce(I, &EventFn) -> std::result::Result<Generation, ChordError> + Send + 'static,
) -> Result<()> {
    let input = match input {
        Ok(x) => x,
        Err(e) => {
            send(&events, Event::Failed(e.into()));
            return Ok(());
        }
    };
    let spawned = std::thread::Builder::new().name("wasm-chord-generate".into()).spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(input, &events)));
        let event = match outcome {
            Ok(Ok(g)) => Event::Done(g.into()),
            Ok(Err(e)) => Event::Failed(e.into()),
            Err(_) => Event::Failed(ChordError::new(ErrorCode::Internal, "internal panic during generation").into()),
        };
        send(&events, event);
    });
    spawned.map(drop).map_err(|e| Error::new(Status::GenericFailure, format!("cannot start a generation thread: {e}")))
}

/// A prompt: text (tokenized with the model's tokenizer) or token ids.
enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

fn parse_prompt(v: Unknown) -> std::result::Result<Prompt, ChordError> {
    match v.get_type().unwrap_or(ValueType::Unknown) {
        ValueType::String => Ok(Prompt::Text(string(v, "prompt")?)),
        ValueType::Object if v.is_array().unwrap_or(false) => {
            // SAFETY: checked to be an array.
            let arr: Array = unsafe { v.cast() }.map_err(|e| invalid_option(e.to_string()))?;
            let mut ids = Vec::with_capacity(arr.len() as usize);
            for i in 0..arr.len() {
                let n: Option<f64> = arr.get(i).ok().flatten();
                match n {
                    Some(n) if n.is_finite() && n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => ids.push(n as u32),
                    _ => return Err(invalid_option(format!("prompt[{i}] must be a token id (a non-negative integer)"))),
                }
            }
            Ok(Prompt::Tokens(ids))
        }
        t => Err(invalid_option(format!("prompt must be a string or an array of token ids, got {t}"))),
    }
}

fn tokenizer(shared: &Shared) -> std::result::Result<Arc<crate::infer::Tokenizer>, ChordError> {
    shared.view(|v| v.vocab.clone())
}

#[napi]
impl Model {
    /// Internal: starts a generation on a thread of the addon's own and reports through
    /// `callback(kind, text, result, error)`; `generate` and `stream` wrap it.
    #[napi(js_name = "_generate", skip_typescript)]
    pub fn generate_raw(&self, env: Env, prompt: Unknown, options: Option<Unknown>, callback: Function<'_, EventArgs, ()>) -> Result<()> {
        let events = event_fn(callback)?;
        let parsed = parse_prompt(prompt).and_then(|p| Ok((p, parse_generate_options(&env, options, OptionsOf::Generate)?)));
        let shared = self.shared.clone();
        spawn_generation(events, parsed, move |(prompt, p), events| run_generation(&shared, prompt, &p, events))
    }

    /// Splits `text` into token ids with the model's tokenizer (identical to llama.cpp's).
    /// `addSpecial` (default true) adds BOS/EOS as the model's `add_bos_token`/`add_eos_token`
    /// say; `parseSpecial` (default true) turns special-token text such as `<|im_start|>` into
    /// its token. Rejects with `ERR_UNSUPPORTED_TOKENIZER` when the file's tokenizer is not supported.
    #[napi(ts_args_type = "text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }", ts_return_type = "Promise<number[]>")]
    pub fn tokenize(&self, text: String, options: Option<Object>) -> AsyncTask<Job<Vec<u32>>> {
        let opts = options.map(|o| -> std::result::Result<(Option<bool>, Option<bool>), ChordError> { Ok((boolean(&o, "addSpecial")?, boolean(&o, "parseSpecial")?)) });
        let vocab = tokenizer(&self.shared);
        Job::task(move || {
            let (add, parse) = opts.transpose()?.unwrap_or((None, None));
            Ok(vocab?.tokenize(&text, add.unwrap_or(true), parse.unwrap_or(true)))
        })
    }

    /// Turns token ids back into text, as llama.cpp's `llama_detokenize` does (and
    /// node-llama-cpp's `model.detokenize`): control tokens such as `<|im_end|>` render as
    /// nothing unless `renderSpecial` is true; invalid UTF-8 becomes U+FFFD. Rejects with
    /// `ERR_INVALID_OPTION` for an id outside the vocabulary, as `generate` does.
    #[napi(ts_args_type = "tokens: number[], options?: { renderSpecial?: boolean }", ts_return_type = "Promise<string>")]
    pub fn detokenize(&self, tokens: Vec<u32>, options: Option<Object>) -> AsyncTask<Job<String>> {
        let render = options.map(|o| boolean(&o, "renderSpecial"));
        let vocab = tokenizer(&self.shared);
        Job::task(move || {
            let unparse_special = render.transpose()?.flatten().unwrap_or(false);
            let vocab = vocab?;
            if let Some((i, t)) = tokens.iter().enumerate().find(|&(_, &t)| t >= vocab.n_tokens()) {
                return Err(invalid_option(format!("tokens[{i}] = {t} is out of range (vocabulary has {} tokens)", vocab.n_tokens())));
            }
            let bytes = vocab.detokenize_with(&tokens, wasm_chord_tokenizer::DetokenizeOptions { remove_special: false, unparse_special });
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}

fn run_generation(shared: &Shared, prompt: Prompt, p: &ParsedGenerate, events: &EventFn) -> std::result::Result<Generation, ChordError> {
    let ids = match prompt {
        Prompt::Tokens(ids) => ids,
        Prompt::Text(text) => tokenizer(shared)?.tokenize(&text, p.add_special, p.parse_special),
    };
    run_ids(shared, &ids, p, events, None)
}

/// A chat session's turn: its sequence (own KV cache), context and `dispose()` flag.
pub(super) struct InSequence<'a> {
    /// The session's sequence.
    pub seq: SequenceId,
    /// The session's `contextLength`.
    pub context_limit: usize,
    /// Set by the session's `dispose()`.
    pub closing: &'a AtomicBool,
}

/// Generates from `ids` under the model lock, streaming chunks to `events` — in a session's
/// sequence when `sequence` is given, else from position 0.
pub(super) fn run_ids(shared: &Shared, ids: &[u32], p: &ParsedGenerate, events: &EventFn, sequence: Option<InSequence>) -> std::result::Result<Generation, ChordError> {
    let mut guard = shared.lock();
    let Some(model) = guard.as_mut() else { return Err(disposed()) };
    let session_closing = || sequence.as_ref().is_some_and(|s| s.closing.load(Ordering::SeqCst));
    if session_closing() {
        return Err(ChordError::new(ErrorCode::Disposed, "the session was disposed"));
    }
    let aborted = || is_set(&p.aborted) || shared.closing.load(Ordering::SeqCst) || session_closing();
    let mut on_text = |text: &str| send(events, Event::Chunk(text.to_string()));
    let mut on_token = |id: u32| {
        if p.on_token {
            send(events, Event::Tokens(vec![id]));
        }
    };
    let seq = sequence.as_ref().map(|s| (s.seq, Some(s.context_limit)));
    let result = model.generate_streaming(seq, ids, &p.options, &mut on_text, &mut on_token, &aborted);
    // A dispose is never an abort the caller asked for, stopOnAbortSignal or not.
    let stopped = |r: &std::result::Result<Generation, ChordError>| match r {
        Ok(g) => g.stop_reason == StopReason::Abort,
        Err(e) => e.code == ErrorCode::Aborted,
    };
    match result {
        r if stopped(&r) && shared.closing.load(Ordering::SeqCst) => Err(ChordError::new(ErrorCode::Disposed, "the model was disposed during generation")),
        r if stopped(&r) && session_closing() => Err(ChordError::new(ErrorCode::Disposed, "the session was disposed during generation")),
        r => r,
    }
}
