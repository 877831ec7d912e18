//! The generation loop on the host: prompt in batches through the guest, then one token at a time
//! — sample, stream complete UTF-8 text, stop on an end-of-generation token, a stop string,
//! `maxTokens`, a full context or an abort.

use std::time::Instant;

use super::sampler::{Sampler, SamplerOptions};
use crate::error::{ErrorCode as E, Result, fail};

/// Options of one generation (JS names in brackets).
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// `maxTokens` (default: until the context is full).
    pub max_tokens: Option<usize>,
    /// Sampling.
    pub sampler: SamplerOptions,
    /// `stop`: strings that end generation; the text stops before the first one found.
    pub stop: Vec<String>,
    /// `stopOnAbortSignal`: an abort ends the generation with what it has so far
    /// ([`StopReason::Abort`]) instead of failing with `ERR_ABORTED`.
    pub stop_on_abort: bool,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `maxTokens` tokens were generated.
    MaxTokens,
    /// The model produced an end-of-generation token.
    EogToken,
    /// A `stop` string appeared.
    StopString,
    /// The context (KV cache) is full.
    ContextFull,
    /// Aborted, with `stopOnAbortSignal`: the text so far.
    Abort,
}

impl StopReason {
    /// The JS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxTokens => "maxTokens",
            Self::EogToken => "eogToken",
            Self::StopString => "stopString",
            Self::ContextFull => "contextFull",
            Self::Abort => "abort",
        }
    }
}

/// Where time went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values the cache already held (a chat session's earlier
    /// turns): not evaluated again. 0 for a plain generation.
    pub cached_tokens: usize,
    /// Milliseconds spent on the prompt (up to the first sampled token).
    pub prompt_ms: f64,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Milliseconds spent generating after the prompt.
    pub generate_ms: f64,
}

/// The result of a generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Generated text (without the stop string or end-of-generation token).
    pub text: String,
    /// Generated token ids (without an end-of-generation token).
    pub tokens: Vec<u32>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Timings.
    pub timings: Timings,
}

/// What the loop needs from a model: a forward pass and a detokenizer.
pub trait Runner {
    /// Context positions.
    fn n_ctx(&self) -> usize;
    /// Largest batch per forward call.
    fn n_batch(&self) -> usize;
    /// The ubatch size of the llama.cpp run whose rounding is mirrored (a prompt is cut into
    /// ubatches of this many tokens; see [`crate::infer::arch::REF_UBATCH`]).
    fn n_ubatch(&self) -> usize;
    /// Runs `tokens` at `pos..`, part of a llama.cpp ubatch of `ubatch` tokens, and leaves the
    /// last token's logits in `logits`.
    fn eval(&mut self, tokens: &[u32], pos: usize, ubatch: usize, logits: &mut Vec<f32>) -> Result<()>;
    /// Whether `id` ends generation.
    fn is_eog(&self, id: u32) -> bool;
    /// Feeds one generated token to the streaming detokenizer; returns the complete text it
    /// now can emit (possibly empty).
    fn push_text(&mut self, id: u32) -> String;
    /// Flushes whatever the detokenizer still holds.
    fn finish_text(&mut self) -> String;
}

/// Runs `prompt` then generates. `on_text` gets each piece of final text as soon as it is known
/// (the concatenation equals `Generation::text`); `aborted` is polled between forward calls.
pub fn generate(r: &mut dyn Runner, prompt: &[u32], opts: &GenerateOptions, on_text: &mut dyn FnMut(&str), aborted: &dyn Fn() -> bool) -> Result<Generation> {
    generate_continuing(r, prompt, Continuation::default(), opts, on_text, &mut |_| {}, aborted).map(|(g, _)| g)
}

/// What a generation may reuse and use of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuation {
    /// The cache already holds the keys and values of `prompt[..cached]` at positions
    /// `0..cached`, as the full evaluation rounds them (< the prompt's length: the last prompt
    /// token is always evaluated, for its logits; a batch boundary: see [`continuation_start`]).
    pub cached: usize,
    /// Positions the generation may fill (at most the runner's context; `None`: all of it).
    pub context_limit: Option<usize>,
}

/// [`generate`] continuing from what the KV cache holds: evaluates `prompt[c.cached..]` only;
/// `on_token` gets each generated token id as it is sampled. Also returns how many tokens of
/// prompt + generated text the cache holds afterwards (positions `0..n`; the last sampled token
/// is not evaluated).
pub fn generate_continuing(
    r: &mut dyn Runner,
    prompt: &[u32],
    c: Continuation,
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
    on_token: &mut dyn FnMut(u32),
    aborted: &dyn Fn() -> bool,
) -> Result<(Generation, usize)> {
    opts.sampler.validate()?;
    let n_ctx = c.context_limit.map_or(r.n_ctx(), |l| l.min(r.n_ctx()));
    if prompt.is_empty() {
        return fail(E::InvalidOption, "the prompt is empty (no tokens)");
    }
    if prompt.len() >= n_ctx {
        let advice = if c.context_limit.is_some() { "reset the session or create it with a larger contextLength" } else { "load with a larger contextLength" };
        return fail(E::ContextTooLarge, format!("the prompt has {} tokens but the context holds {n_ctx} (one more is needed to generate); {advice}", prompt.len()));
    }
    if c.cached >= prompt.len() {
        return fail(E::Internal, format!("{} cached tokens of a {}-token prompt (the last one must be evaluated)", c.cached, prompt.len()));
    }
    // With stopOnAbortSignal an abort (polled here, or inside a forward call) ends the loop.
    let stop_here = |e: &crate::error::ChordError| opts.stop_on_abort && e.code == E::Aborted;
    let t0 = Instant::now();
    let mut logits = Vec::new();
    let evaluated = eval_prompt_from(r, prompt, c.cached, &mut logits, aborted);
    let mut timings = Timings { prompt_tokens: prompt.len() - c.cached, cached_tokens: c.cached, prompt_ms: ms(t0), ..Timings::default() };
    if let Err(e) = evaluated {
        if !stop_here(&e) {
            return Err(e);
        }
        return Ok((Generation { text: String::new(), tokens: Vec::new(), stop_reason: StopReason::Abort, timings }, c.cached));
    }
    let t1 = Instant::now();
    let mut sampler = Sampler::new(opts.sampler.clone());
    let mut history: Vec<u32> = prompt.to_vec();
    let mut out = TextOut::new(&opts.stop);
    let mut tokens = Vec::new();
    let max = opts.max_tokens.unwrap_or(usize::MAX);
    let mut in_cache = prompt.len();
    let reason = loop {
        if tokens.len() >= max {
            break StopReason::MaxTokens;
        }
        let id = sampler.sample(&logits, &history);
        if r.is_eog(id) {
            break StopReason::EogToken;
        }
        tokens.push(id);
        history.push(id);
        on_token(id);
        if out.push(&r.push_text(id), on_text) {
            break StopReason::StopString;
        }
        if tokens.len() >= max {
            break StopReason::MaxTokens;
        }
        if history.len() >= n_ctx {
            break StopReason::ContextFull;
        }
        let step = if aborted() { fail(E::Aborted, "generation aborted") } else { r.eval(&[id], history.len() - 1, 1, &mut logits) };
        match step {
            Ok(()) => in_cache = history.len(),
            Err(e) if stop_here(&e) => break StopReason::Abort,
            Err(e) => return Err(e),
        }
    };
    if reason != StopReason::StopString {
        let rest = r.finish_text();
        if !out.push(&rest, on_text) {
            out.flush(on_text);
        }
    }
    let stop_reason = if out.stopped { StopReason::StopString } else { reason };
    timings.generated_tokens = tokens.len();
    timings.generate_ms = ms(t1);
    Ok((Generation { text: out.text, tokens, stop_reason, timings }, in_cache))
}

/// Runs `prompt` from position 0 — cut into llama.cpp's ubatches (`n_ubatch` tokens), each in
/// batches of `n_batch` — polling `aborted` before each batch, and leaves the last token's
/// logits in `logits`.
pub fn eval_prompt(r: &mut dyn Runner, prompt: &[u32], logits: &mut Vec<f32>, aborted: &dyn Fn() -> bool) -> Result<()> {
    eval_prompt_from(r, prompt, 0, logits, aborted)
}

/// [`eval_prompt`] of the batches of `prompt`'s schedule that start at `start` or later (a batch
/// boundary of that schedule; the cache holds the positions before it): each runs exactly as in
/// the full evaluation, so the logits are those of the full evaluation.
fn eval_prompt_from(r: &mut dyn Runner, prompt: &[u32], start: usize, logits: &mut Vec<f32>, aborted: &dyn Fn() -> bool) -> Result<()> {
    let (nu, nb) = (r.n_ubatch().max(1), r.n_batch().max(1));
    if !is_batch_boundary(start, nu, nb) {
        return fail(E::Internal, format!("a continuation from position {start}, which is no batch boundary (ubatches of {nu}, batches of {nb})"));
    }
    for (u, ubatch) in prompt.chunks(nu).enumerate() {
        for (i, batch) in ubatch.chunks(nb).enumerate() {
            let pos = u * nu + i * nb;
            if pos < start {
                continue;
            }
            if aborted() {
                return fail(E::Aborted, "generation aborted");
            }
            r.eval(batch, pos, ubatch.len(), logits)?;
        }
    }
    Ok(())
}

fn is_batch_boundary(pos: usize, nu: usize, nb: usize) -> bool {
    (pos % nu).is_multiple_of(nb)
}

/// What decides how the keys and values of a position were rounded, given where it sat in the
/// llama.cpp ubatch it was evaluated in (`index` of `ubatch` tokens): the guest mirrors
/// llama.cpp's paths, which differ by ubatch — Q4_K's grouped activation rows (the first
/// `ubatch − ubatch mod 4`), the tiled attention (ubatches of `FA_TILE_Q`+ tokens) and the
/// single-token path (a generated token). Positions of one class round alike.
pub fn rounding_class(index: usize, ubatch: usize) -> u8 {
    let grouped = index < ubatch - ubatch % 4;
    let tiled = ubatch >= wasm_chord_kernels::FA_TILE_Q;
    u8::from(grouped) | u8::from(tiled) << 1 | u8::from(ubatch == 1) << 2
}

/// [`rounding_class`] of each position of a `len`-token prompt evaluated from position 0.
pub fn prompt_rounding(len: usize, n_ubatch: usize) -> impl Iterator<Item = u8> {
    let nu = n_ubatch.max(1);
    (0..len).map(move |p| rounding_class(p % nu, nu.min(len - p / nu * nu)))
}

/// Where a generation of `prompt` may start when the cache holds `cached` tokens (keys and
/// values rounded as `classes` say): the last batch boundary of `prompt`'s schedule at or before
/// the end of the longest prefix that matches in tokens and rounding class, and before the last
/// token (whose logits are needed). Evaluating from there gives exactly the logits of a
/// generation of the whole prompt from position 0.
pub fn continuation_start(cached: &[u32], classes: &[u8], prompt: &[u32], n_ubatch: usize, n_batch: usize) -> usize {
    let (nu, nb) = (n_ubatch.max(1), n_batch.max(1));
    let fresh = prompt_rounding(prompt.len(), nu);
    let same = cached.iter().zip(classes).zip(prompt.iter().zip(fresh)).take_while(|&((t, c), (u, d))| t == u && *c == d).count();
    let mut start = same.min(prompt.len().saturating_sub(1));
    while !is_batch_boundary(start, nu, nb) {
        start -= 1;
    }
    start
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Final text with stop strings: holds back any tail that could still become a stop string.
struct TextOut<'a> {
    stop: &'a [String],
    pending: String,
    text: String,
    stopped: bool,
}

impl<'a> TextOut<'a> {
    fn new(stop: &'a [String]) -> Self {
        Self { stop, pending: String::new(), text: String::new(), stopped: false }
    }

    /// Adds `piece`; emits what is final. Returns true when a stop string was found.
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) -> bool {
        self.pending.push_str(piece);
        let found = self.stop.iter().filter(|s| !s.is_empty()).filter_map(|s| self.pending.find(s.as_str())).min();
        if let Some(at) = found {
            self.pending.truncate(at);
            self.flush(on_text);
            self.stopped = true;
            return true;
        }
        let keep = self.held_tail();
        let emit_to = self.pending.len() - keep;
        if emit_to > 0 {
            let emit: String = self.pending.drain(..emit_to).collect();
            on_text(&emit);
            self.text.push_str(&emit);
        }
        false
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn held_tail(&self) -> usize {
        let p = &self.pending;
        let mut best = 0;
        for s in self.stop {
            for (i, _) in p.char_indices() {
                let tail = &p[i..];
                if tail.len() > best && tail.len() < s.len() && s.starts_with(tail) {
                    best = tail.len();
                }
            }
        }
        best
    }

    fn flush(&mut self, on_text: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() {
            on_text(&self.pending);
            self.text.push_str(&self.pending);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner whose "model" always predicts token `(last + 1) % 10`, recording each eval.
    struct Counting {
        evals: Vec<(Vec<u32>, usize, usize)>,
    }

    impl Runner for Counting {
        fn n_ctx(&self) -> usize {
            64
        }
        fn n_batch(&self) -> usize {
            4
        }
        fn n_ubatch(&self) -> usize {
            8
        }
        fn eval(&mut self, tokens: &[u32], pos: usize, ubatch: usize, logits: &mut Vec<f32>) -> Result<()> {
            self.evals.push((tokens.to_vec(), pos, ubatch));
            *logits = vec![0.0; 10];
            logits[(*tokens.last().unwrap_or(&0) as usize + 1) % 10] = 1.0;
            Ok(())
        }
        fn is_eog(&self, _: u32) -> bool {
            false
        }
        fn push_text(&mut self, _: u32) -> String {
            String::new()
        }
        fn finish_text(&mut self) -> String {
            String::new()
        }
    }

    #[test]
    fn a_continuation_evaluates_only_the_uncached_tail_in_ubatches_from_there() {
        let mut r = Counting { evals: Vec::new() };
        let prompt: Vec<u32> = (0..13).map(|i| i % 10).collect();
        let opts = GenerateOptions { max_tokens: Some(3), ..GenerateOptions::default() };
        let c = Continuation { cached: 4, context_limit: None };
        let (g, in_cache) = generate_continuing(&mut r, &prompt, c, &opts, &mut |_| {}, &mut |_| {}, &|| false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.tokens, vec![3, 4, 5]);
        assert_eq!((g.timings.prompt_tokens, g.timings.cached_tokens), (9, 4));
        // The full prompt's schedule (ubatches of 8 from position 0, batches of 4) from position
        // 4 on, then two generated tokens (the third is sampled, never evaluated).
        let at: Vec<(usize, usize, usize)> = r.evals.iter().map(|(t, p, u)| (t.len(), *p, *u)).collect();
        assert_eq!(at, vec![(4, 4, 8), (4, 8, 5), (1, 12, 5), (1, 13, 1), (1, 14, 1)]);
        assert_eq!(in_cache, 15);
        let off_grid = Continuation { cached: 3, context_limit: None };
        let e = generate_continuing(&mut r, &prompt, off_grid, &opts, &mut |_| {}, &mut |_| {}, &|| false).err().map(|e| e.code);
        assert_eq!(e, Some(E::Internal));
    }

    #[test]
    fn a_continuation_reuses_only_positions_rounded_as_the_full_evaluation_rounds_them() {
        let (nu, nb) = (8, 4);
        // Turn 1: a 6-token prompt (one ubatch of 6: the last 2 positions are single rows) and 3
        // generated tokens (single-token ubatches).
        let turn1: Vec<u32> = (0..9).collect();
        let classes: Vec<u8> = prompt_rounding(6, nu).chain(std::iter::repeat_n(rounding_class(0, 1), 3)).collect();
        // Turn 2 extends it: positions 0..4 round alike in both (grouped, in a ubatch of 6 and of
        // 8), 4..6 do not (single rows before, grouped now), nor do the generated ones.
        let turn2: Vec<u32> = (0..12).collect();
        assert_eq!(continuation_start(&turn1, &classes, &turn2, nu, nb), 4);
        // A prompt that differs at position 2 reuses batch 0 only up to its boundary: nothing.
        let other = [0, 1, 9, 3, 4, 5, 6, 7, 8];
        assert_eq!(continuation_start(&turn1, &classes, &other, nu, nb), 0);
        // The same prompt again: all but the last batch (its last token's logits are needed).
        let p6: Vec<u32> = (0..6).collect();
        assert_eq!(continuation_start(&turn1[..6], &classes[..6], &p6, nu, nb), 4);
        // Whole ubatches of 8 round alike whatever follows.
        let long: Vec<u32> = (0..20).collect();
        let c16: Vec<u8> = prompt_rounding(16, nu).collect();
        assert_eq!(continuation_start(&long[..16], &c16, &long, nu, nb), 16);
    }

    #[test]
    fn a_context_limit_caps_the_prompt_and_the_generation() {
        let mut r = Counting { evals: Vec::new() };
        let opts = GenerateOptions::default();
        let limited = Continuation { cached: 0, context_limit: Some(6) };
        let e = generate_continuing(&mut r, &[1, 2, 3, 4, 5, 6], limited, &opts, &mut |_| {}, &mut |_| {}, &|| false).err().map(|e| (e.code, e.message.contains("holds 6")));
        assert_eq!(e, Some((E::ContextTooLarge, true)));
        let (g, in_cache) = generate_continuing(&mut r, &[1, 2, 3], limited, &opts, &mut |_| {}, &mut |_| {}, &|| false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.tokens.len(), g.stop_reason, in_cache), (3, StopReason::ContextFull, 5));
    }

    #[test]
    fn stop_on_abort_keeps_what_was_generated_and_on_token_sees_each_id() {
        let mut r = Counting { evals: Vec::new() };
        let evals = std::cell::Cell::new(0);
        // The fifth poll aborts: after the prompt and three generated tokens were evaluated.
        let aborted = || {
            evals.set(evals.get() + 1);
            evals.get() > 4
        };
        let mut seen = Vec::new();
        let opts = GenerateOptions { stop_on_abort: true, ..GenerateOptions::default() };
        let (g, in_cache) = generate_continuing(&mut r, &[1, 2], Continuation::default(), &opts, &mut |_| {}, &mut |t| seen.push(t), &aborted).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.stop_reason, g.tokens.clone(), in_cache), (StopReason::Abort, vec![3, 4, 5, 6], 5));
        assert_eq!(seen, g.tokens);
        evals.set(0);
        let opts = GenerateOptions::default();
        let e = generate_continuing(&mut r, &[1, 2], Continuation::default(), &opts, &mut |_| {}, &mut |_| {}, &aborted).err().map(|e| e.code);
        assert_eq!(e, Some(E::Aborted));
    }

    fn run(pieces: &[&str], stop: &[&str]) -> (String, Vec<String>, bool) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut out = TextOut::new(&stop);
        let mut seen = Vec::new();
        let mut stopped = false;
        for p in pieces {
            if out.push(p, &mut |s| seen.push(s.to_string())) {
                stopped = true;
                break;
            }
        }
        if !stopped {
            out.flush(&mut |s| seen.push(s.to_string()));
        }
        (out.text, seen, stopped)
    }

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let (text, seen, stopped) = run(&["Hello", " wor", "ld\nUs", "er: hi"], &["\nUser:"]);
        assert!(stopped);
        assert_eq!(text, "Hello world");
        assert_eq!(seen.concat(), text);
    }

    #[test]
    fn held_back_text_is_released_when_it_diverges() {
        let (text, seen, stopped) = run(&["a\nU", "nless"], &["\nUser:"]);
        assert!(!stopped);
        assert_eq!(text, "a\nUnless");
        assert_eq!(seen, vec!["a", "\nUnless"]);
    }

    #[test]
    fn no_stop_strings_streams_everything() {
        let (text, seen, _) = run(&["é", "🙂", " x"], &[]);
        assert_eq!(text, "é🙂 x");
        assert_eq!(seen.len(), 3);
    }
}
