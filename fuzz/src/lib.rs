//! Mutation fuzzers for wasm-chord on stable Rust (no sanitizer runtime, no nightly): a small
//! deterministic mutator over seed files written by the project's own GGUF writer, four targets,
//! and a loop that counts executions, typed rejections and findings.
//!
//! | target | what one execution does | a finding is |
//! |---|---|---|
//! | `gguf` | `read_gguf_bytes` on a mutated file | a panic, `ERR_INTERNAL`, or > 1 s |
//! | `model` | reader → unit table → memory plan → architecture descriptor → tokenizer, all the load-time validation before tensor bytes are read | the same |
//! | `load` | a mutated file written to disk and loaded into the guest (WHOLE and Memory64 mode alternately), then one token evaluated | the same, or `ERR_GUEST_TRAP` (a guest that traps on a file the host let through) |
//! | `bridge` | a hostile guest calls `memory64_load_layer` / `memory64_read` / `memory64_stats` / `memory64_is_enabled` with random layers, pointers, lengths and offsets | a panic, a status outside abi's, a write outside the call's destination, or granted bytes that differ from the file |
//!
//! Findings are written to `fuzz/findings/` (ignored by git). `cargo run --release -p
//! wasm-chord-fuzz -- help` gives the long-run command; `src/short.rs` runs every
//! target for a few seconds in CI.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasm_chord::ErrorCode as E;
use wasm_chord::gguf::{GgmlType, GgufArray, GgufValue, GgufValueType, GgufWriter, ReaderLimits, TensorData, TensorSpec, read_gguf_bytes};
use wasm_chord::infer::{GenerateOptions, model_tokenizer, resolve};
use wasm_chord::model::{LoadOptions, Memory64GGUFLoader, Memory64Option, UnitTable, plan_memory};
use wasm_chord::{CacheConfig, ChordError};

/// xorshift64*: deterministic, seedable, fast.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Integers that break parsers: boundaries of every width, and small counts.
const INTERESTING: &[u64] = &[
    0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 63, 64, 127, 128, 255, 256, 512, 1000, 1024, 4096, 65535, 65536, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
    0x1_0000_0000, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX, u64::MAX - 1,
];

/// Applies 1–8 stacked mutations to `data` (1–2 half the time): bit flips, interesting bytes and 32/64-bit integers
/// (at any offset, so lengths, counts, type ids and offsets all get hit), chunk deletion,
/// duplication and truncation, and splices from `other`.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let most = if rng.one_in(2) { 2 } else { 8 };
    for _ in 0..1 + rng.below(most) {
        let len = data.len();
        if len == 0 {
            data.extend_from_slice(&other[..other.len().min(64)]);
            continue;
        }
        // Half the time aim at the header (counts, keys, types, shapes, offsets); tensor bytes
        // are mostly opaque to the code under test.
        let at = |rng: &mut Rng| if rng.one_in(2) { rng.below(len.min(1024)) } else { rng.below(len) };
        match rng.below(16) {
            0..=2 => {
                let i = at(rng);
                data[i] ^= 1 << rng.below(8);
            }
            3..=4 => {
                let i = at(rng);
                data[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            5..=9 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let v = if rng.one_in(4) { v.wrapping_add(rng.below(5) as u64).wrapping_sub(2) } else { v };
                let width = if rng.one_in(2) { 4 } else { 8 };
                if len >= width {
                    let i = at(rng).min(len - width);
                    data[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
                }
            }
            10 => {
                let i = at(rng);
                let n = 1 + rng.below((len - i).min(64));
                data.drain(i..i + n);
            }
            11 => {
                let i = at(rng);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = data[i..i + n].to_vec();
                let to = at(rng);
                data.splice(to..to, chunk);
            }
            12 => data.truncate(rng.below(len)),
            13 => {
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - i).min(256));
                    let to = at(rng);
                    let end = (to + n).min(len);
                    data.splice(to..end, other[i..i + n].iter().copied());
                }
            }
            _ => {
                // Random bytes over a short run (a string's text, a float).
                let i = at(rng);
                for b in data.iter_mut().skip(i).take(1 + rng.below(8)) {
                    *b = rng.next_u64() as u8;
                }
            }
        }
    }
}

fn tokenizer(w: &mut GgufWriter, n: usize, gpt2: bool) {
    let tokens = (0..n).map(|i| GgufValue::String(match (i, gpt2) {
        (0, false) => "<unk>".into(),
        (1, _) => "<s>".into(),
        (2, _) => "</s>".into(),
        (i, true) if i < 3 + 26 => ((b'a' + (i - 3) as u8) as char).to_string(),
        (i, _) => format!("t{i}"),
    }));
    w.kv("tokenizer.ggml.model", GgufValue::String(if gpt2 { "gpt2" } else { "llama" }.into()));
    w.kv("tokenizer.ggml.tokens", GgufValue::Array(GgufArray::new(GgufValueType::String, tokens.collect()).expect("strings")));
    if gpt2 {
        let merges = vec![GgufValue::String("a b".into()), GgufValue::String("c d".into())];
        w.kv("tokenizer.ggml.merges", GgufValue::Array(GgufArray::new(GgufValueType::String, merges).expect("strings")));
    } else {
        let scores = (0..n).map(|i| GgufValue::F32(-(i as f32))).collect();
        w.kv("tokenizer.ggml.scores", GgufValue::Array(GgufArray::new(GgufValueType::F32, scores).expect("floats")));
    }
    w.kv("tokenizer.ggml.bos_token_id", GgufValue::U32(1));
    w.kv("tokenizer.ggml.eos_token_id", GgufValue::U32(2));
}

/// Seed files, all valid models that load and generate: llama (F32, Q8_0, Q4_K rows; SPM and
/// BPE tokenizers), qwen2 with biases, gemma3 with its norms and sliding window.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = GgufWriter::synthetic_llama(2, 32, 64, 40, GgmlType::F32, TensorData::Pattern);
    tokenizer(&mut w, 40, false);
    out.push(w.to_bytes());
    let mut w = GgufWriter::synthetic_llama(2, 64, 64, 48, GgmlType::Q8_0, TensorData::Pattern);
    tokenizer(&mut w, 48, true);
    out.push(w.to_bytes());
    out.push(GgufWriter::synthetic_llama(1, 256, 256, 32, GgmlType::Q4_K, TensorData::Pattern).to_bytes());
    out.push(arch_variant("qwen2", 32, &["attn_q.bias", "attn_k.bias", "attn_v.bias"], &[]));
    out.push(arch_variant("gemma3", 32, &[], &["attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight"]));
    out
}

/// A 2-layer F32 model of architecture `arch`, n_embd 32 (8 heads of 4), with the extra
/// per-layer vectors `biases` (width n_embd) and `norms` (gemma3's: head-size or n_embd wide).
fn arch_variant(arch: &str, embd: u64, biases: &[&str], norms: &[&str]) -> Vec<u8> {
    let base = GgufWriter::synthetic_llama(2, embd, 64, 40, GgmlType::F32, TensorData::Pattern);
    let mut w = GgufWriter::new();
    for (k, v) in &base.metadata {
        let k = k.strip_prefix("llama.").map_or(k.clone(), |rest| format!("{arch}.{rest}"));
        w.kv(&k, if k == "general.architecture" { GgufValue::String(arch.into()) } else { v.clone() });
    }
    if arch == "gemma3" {
        w.kv("gemma3.attention.sliding_window", GgufValue::U32(4));
    }
    tokenizer(&mut w, 40, false);
    let mut seed = 100;
    for t in base.tensors {
        let layer = t.name.strip_prefix("blk.").and_then(|r| r.split('.').next()).map(str::to_string);
        w.tensor(t);
        if let Some(l) = layer.filter(|_| w.tensors.last().is_some_and(|t| t.name.ends_with("ffn_down.weight"))) {
            for b in biases {
                w.tensor(TensorSpec::new(&format!("blk.{l}.{b}"), GgmlType::F32, &[embd], TensorData::Pattern(seed)));
                seed += 1;
            }
            for n in norms {
                let width = if n.starts_with("attn_") { embd / 8 } else { embd };
                w.tensor(TensorSpec::new(&format!("blk.{l}.{n}"), GgmlType::F32, &[width], TensorData::Pattern(seed)));
                seed += 1;
            }
        }
    }
    w.to_bytes()
}

/// What one execution ended as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (parsed, validated or loaded).
    Accepted,
    /// Rejected with a typed error: its code and the message with digits and quoted names
    /// dropped (which check fired, as a cheap stand-in for coverage).
    Rejected(E, String),
    /// A bug: the message says what.
    Finding(String),
}

fn judge(r: wasm_chord::Result<()>, trap_is_finding: bool) -> Outcome {
    match r {
        Ok(()) => Outcome::Accepted,
        Err(ChordError { code: E::Internal, message }) => Outcome::Finding(format!("ERR_INTERNAL: {message}")),
        Err(ChordError { code: E::GuestTrap, message }) if trap_is_finding => Outcome::Finding(format!("ERR_GUEST_TRAP: {message}")),
        Err(e) => Outcome::Rejected(e.code, signature(&e.message)),
    }
}

/// Which check fired, roughly: the first four words of the message made of lowercase letters
/// only (names, numbers and values dropped).
fn signature(message: &str) -> String {
    message.split(' ').filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())).take(4).collect::<Vec<_>>().join(" ")
}

/// Target `gguf`: the container reader.
pub fn gguf_target(data: &[u8]) -> Outcome {
    judge(read_gguf_bytes(data, ReaderLimits::default()).map(|_| ()), false)
}

/// Target `model`: every load-time check before tensor bytes are read.
pub fn model_target(data: &[u8]) -> Outcome {
    let r = (|| {
        let gguf = read_gguf_bytes(data, ReaderLimits::default())?;
        let units = UnitTable::new(&gguf)?;
        plan_memory(&gguf, &units, &LoadOptions::default())?;
        let arch = resolve(&gguf, &units, None)?;
        // A file without a usable tokenizer loads (text calls reject later): accepted here too.
        let _tokenizer = model_tokenizer(&gguf, arch.cfg.n_vocab)?;
        Ok(())
    })();
    judge(r, false)
}

/// Target `load`: a real load into the guest from a file at `path`, then one evaluated token.
pub fn load_target(data: &[u8], path: &Path, memory64: bool) -> Outcome {
    let r = (|| {
        std::fs::write(path, data).map_err(|e| ChordError::new(E::Io, e.to_string()))?;
        let options = LoadOptions {
            memory64: if memory64 { Memory64Option::Always } else { Memory64Option::Never },
            cache: CacheConfig { layers: Some(1), bytes: None },
            context_length: Some(64),
            ..Default::default()
        };
        let mut m = Memory64GGUFLoader::new(path, options).load()?;
        let opts = GenerateOptions { max_tokens: Some(1), ..Default::default() };
        m.generate_tokens(&[1], &opts, &mut |_| {}, &|| false)?;
        Ok(())
    })();
    judge(r, true)
}

pub mod bridge;
#[cfg(test)]
mod short;

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Executions.
    pub execs: u64,
    /// Accepted inputs.
    pub accepted: u64,
    /// Typed rejections.
    pub rejected: u64,
    /// Findings (panics, untyped errors, hangs, broken invariants).
    pub findings: Vec<String>,
    /// Inputs in the corpus at the end.
    pub corpus: usize,
    /// Distinct outcomes seen (accepted, or each error code and check).
    pub outcomes: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} execs in {:.1} s ({rate:.0}/s): {} accepted, {} typed rejections ({} distinct outcomes, corpus {}), {} findings",
            self.execs,
            self.elapsed.as_secs_f64(),
            self.accepted,
            self.rejected,
            self.outcomes,
            self.corpus,
            self.findings.len()
        )
    }
}

/// How long a run goes.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Stop after this many executions.
    pub execs: u64,
    /// Or after this long.
    pub time: Duration,
}

/// The file-mutating targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTarget {
    /// [`gguf_target`].
    Gguf,
    /// [`model_target`].
    Model,
    /// [`load_target`].
    Load,
}

/// Runs a file target: mutates seeds and corpus entries, keeps an input that produced an outcome
/// (accepted or an error code) not seen before, counts, and writes findings to `findings`.
pub fn run_file_target(target: FileTarget, seed: u64, budget: Budget, findings: &Path) -> Report {
    let mut rng = Rng::new(seed);
    let mut corpus = seeds();
    let n_seeds = corpus.len();
    let mut seen: Vec<Outcome> = Vec::new();
    let mut report = Report::default();
    let scratch = std::env::temp_dir().join(format!("wasm-chord-fuzz-{}-{seed}.gguf", std::process::id()));
    let started = Instant::now();
    let mut input = Vec::new();
    while report.execs < budget.execs && (!report.execs.is_multiple_of(64) || started.elapsed() < budget.time) {
        // Half the time start again from a seed (valid files), else from anything kept.
        let a = if rng.one_in(2) { rng.below(n_seeds) } else { rng.below(corpus.len()) };
        let b = rng.below(corpus.len());
        input.clear();
        input.extend_from_slice(&corpus[a]);
        mutate(&mut rng, &mut input, &corpus[b]);
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| match target {
            FileTarget::Gguf => gguf_target(&input),
            FileTarget::Model => model_target(&input),
            FileTarget::Load => load_target(&input, &scratch, report.execs % 2 == 1),
        }))
        .unwrap_or_else(|p| Outcome::Finding(format!("panic: {}", panic_text(&p))));
        let outcome = if t0.elapsed() > Duration::from_secs(1) && !matches!(outcome, Outcome::Finding(_)) {
            Outcome::Finding(format!("slow: {:.1} s", t0.elapsed().as_secs_f64()))
        } else {
            outcome
        };
        report.execs += 1;
        match &outcome {
            Outcome::Accepted => report.accepted += 1,
            Outcome::Rejected(..) => report.rejected += 1,
            Outcome::Finding(what) => {
                let file = save_finding(findings, &format!("{target:?}").to_lowercase(), report.findings.len(), &input);
                report.findings.push(format!("{what} (input: {})", file.display()));
            }
        }
        if !seen.contains(&outcome) && !matches!(outcome, Outcome::Finding(_)) {
            seen.push(outcome);
            if corpus.len() < 1024 {
                corpus.push(input.clone());
            }
        }
    }
    let _ = std::fs::remove_file(&scratch);
    report.corpus = corpus.len();
    report.outcomes = seen.len();
    report.elapsed = started.elapsed();
    report
}

/// The text of a caught panic.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "(non-string panic)".into())
}

/// Writes a finding's input to `dir/<target>-<n>.bin` and returns the path.
pub fn save_finding(dir: &Path, target: &str, n: usize, input: &[u8]) -> PathBuf {
    let path = dir.join(format!("{target}-{n}.bin"));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, input);
    path
}
