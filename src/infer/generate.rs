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
}

impl StopReason {
    /// The JS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxTokens => "maxTokens",
            Self::EogToken => "eogToken",
            Self::StopString => "stopString",
            Self::ContextFull => "contextFull",
        }
    }
}

/// Where time went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
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
    opts.sampler.validate()?;
    let n_ctx = r.n_ctx();
    if prompt.is_empty() {
        return fail(E::InvalidOption, "the prompt is empty (no tokens)");
    }
    if prompt.len() >= n_ctx {
        return fail(E::ContextTooLarge, format!("the prompt has {} tokens but the context holds {n_ctx} (one more is needed to generate); load with a larger contextLength", prompt.len()));
    }
    let check = || if aborted() { fail(E::Aborted, "generation aborted") } else { Ok(()) };
    let t0 = Instant::now();
    let mut logits = Vec::new();
    eval_prompt(r, prompt, &mut logits, aborted)?;
    let mut timings = Timings { prompt_tokens: prompt.len(), prompt_ms: ms(t0), ..Timings::default() };
    let t1 = Instant::now();
    let mut sampler = Sampler::new(opts.sampler.clone());
    let mut history: Vec<u32> = prompt.to_vec();
    let mut out = TextOut::new(&opts.stop);
    let mut tokens = Vec::new();
    let max = opts.max_tokens.unwrap_or(usize::MAX);
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
        if out.push(&r.push_text(id), on_text) {
            break StopReason::StopString;
        }
        if tokens.len() >= max {
            break StopReason::MaxTokens;
        }
        if history.len() >= n_ctx {
            break StopReason::ContextFull;
        }
        check()?;
        r.eval(&[id], history.len() - 1, 1, &mut logits)?;
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
    Ok(Generation { text: out.text, tokens, stop_reason, timings })
}

/// Runs `prompt` from position 0 — cut into llama.cpp's ubatches (`n_ubatch` tokens), each in
/// batches of `n_batch` — polling `aborted` before each batch, and leaves the last token's
/// logits in `logits`.
pub fn eval_prompt(r: &mut dyn Runner, prompt: &[u32], logits: &mut Vec<f32>, aborted: &dyn Fn() -> bool) -> Result<()> {
    let (nu, nb) = (r.n_ubatch().max(1), r.n_batch().max(1));
    for (u, ubatch) in prompt.chunks(nu).enumerate() {
        for (i, batch) in ubatch.chunks(nb).enumerate() {
            if aborted() {
                return fail(E::Aborted, "generation aborted");
            }
            r.eval(batch, u * nu + i * nb, ubatch.len(), logits)?;
        }
    }
    Ok(())
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
