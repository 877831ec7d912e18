//! Generation from JavaScript: the generation thread and the one event channel (a threadsafe
//! function) that carries text chunks and then the result, in order; the options are declared
//! and validated in `options.rs`. The
//! `generate` / `stream` methods JS calls are thin wrappers installed by `model::init`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use super::errors::invalid_option;
use super::job::Job;
use super::model::{Model, Shared, disposed};
use super::options::{DetokenizeOptions, GenerateOptions, OptionsOf, ParsedGenerate, TokenizeOptions, js_type, read_all};
use crate::error::{ChordError, ErrorCode};
use crate::infer::{Generation, StopReason};
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

/// Wraps the JS callback `(kind, text, result, error, tokens) => void` as an [`EventFn`]; when
/// the generation ends, V8 hears how `shared`'s saved session caches changed.
pub fn event_fn(callback: Function<'_, EventArgs, ()>, shared: Arc<Shared>) -> Result<EventFn> {
    callback.build_threadsafe_function::<Event>().callee_handled::<false>().build_callback(move |ctx| {
        if matches!(ctx.value, Event::Done(_) | Event::Failed(_)) {
            shared.sync_external(&ctx.env);
        }
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
        // SAFETY: checked to be a string.
        ValueType::String => Ok(Prompt::Text(unsafe { v.cast::<String>() }.map_err(|e| invalid_option(format!("prompt: {e}")))?)),
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
        t => Err(invalid_option(format!("prompt must be a string or an array of token ids, got {}", js_type(t, false)))),
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
        let events = event_fn(callback, self.shared.clone())?;
        let parsed = parse_prompt(prompt).and_then(|p| Ok((p, GenerateOptions::parse(&env, options, OptionsOf::Generate)?)));
        let shared = self.shared.clone();
        spawn_generation(events, parsed, move |(prompt, p), events| run_generation(&shared, prompt, &p, events))
    }

    /// Splits `text` into token ids with the model's tokenizer (identical to llama.cpp's).
    /// `addSpecial` (default true) adds BOS/EOS as the model's `add_bos_token`/`add_eos_token`
    /// say; `parseSpecial` (default true) turns special-token text such as `<|im_start|>` into
    /// its token. Rejects with `ERR_UNSUPPORTED_TOKENIZER` when the file's tokenizer is not supported.
    #[napi(ts_args_type = "text: string, options?: TokenizeOptions", ts_return_type = "Promise<number[]>")]
    pub fn tokenize(&self, env: Env, text: String, options: Option<Unknown>) -> AsyncTask<Job<Vec<u32>>> {
        let opts = read_all::<TokenizeOptions>(&env, options);
        let vocab = tokenizer(&self.shared);
        Job::task(move || {
            let o = opts?;
            Ok(vocab?.tokenize(&text, o.add_special.unwrap_or(true), o.parse_special.unwrap_or(true)))
        })
    }

    /// Turns token ids back into text, as llama.cpp's `llama_detokenize` does (and
    /// node-llama-cpp's `model.detokenize`): control tokens such as `<|im_end|>` render as
    /// nothing unless `renderSpecial` is true; invalid UTF-8 becomes U+FFFD. Rejects with
    /// `ERR_INVALID_OPTION` for an id outside the vocabulary, as `generate` does.
    #[napi(ts_args_type = "tokens: number[], options?: DetokenizeOptions", ts_return_type = "Promise<string>")]
    pub fn detokenize(&self, env: Env, tokens: Vec<u32>, options: Option<Unknown>) -> AsyncTask<Job<String>> {
        let render = read_all::<DetokenizeOptions>(&env, options).map(|o| o.render_special.unwrap_or(false));
        let vocab = tokenizer(&self.shared);
        Job::task(move || {
            let unparse_special = render?;
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
    shared.note_sessions(model);
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
