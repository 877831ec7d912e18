//! `Memory64Model`: a loaded model — its metadata, memory plan, guest and layer cache.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasm_chord_abi::{BridgeStats, Checksum, Chord64, chord64_combine};

use super::info::{LayerInfo, MemoryMode, MemoryStats, ModelInfo, current_rss};
use super::loader::MemoryPlan;
use super::units::UnitTable;
use crate::error::{ChordError, ErrorCode as E, Result, fail};
use crate::infer::{ArchConfig, Continuation, GenerateOptions, Generation, Runner, TextStream, Tokenizer, continuation_start, eval_prompt, generate_continuing, prompt_rounding, rounding_class};
use crate::gguf::{GgufFile, ModelFile};
use crate::host::{Guest, with_abort_poll};
use crate::memory64::CacheStats;

/// A loaded model (see the module docs).
pub struct Memory64Model {
    /// The file the model was loaded from (WHOLE mode reads it again only for `file_checksum`).
    file: Arc<ModelFile>,
    gguf: Arc<GgufFile>,
    units: UnitTable,
    plan: MemoryPlan,
    guest: Guest,
    info: ModelInfo,
    load_time: Duration,
    /// The forward pass configuration.
    arch: ArchConfig,
    /// The tokenizer, or why the file has none that works here (`ERR_UNSUPPORTED_TOKENIZER`).
    tokenizer: std::result::Result<Arc<Tokenizer>, ChordError>,
    /// Whose tokens the guest's KV cache holds, and the sequences' caches kept aside.
    kv: KvBook,
}

/// A sequence's cache kept aside: its tokens, their rounding classes and `Guest::kv_save` bytes.
#[derive(Debug)]
struct Saved {
    tokens: Vec<u32>,
    classes: Vec<u8>,
    bytes: Vec<u8>,
}

/// A sequence: a chat session's own KV cache (see [`Memory64Model::generate_in_sequence`]).
pub type SequenceId = u64;

/// The one KV cache in the guest and the sequences that take turns in it. When another sequence
/// (or a plain generation) needs the cache, the positions the owner uses are copied out to host
/// memory (`Guest::kv_save`) and copied back in on its next turn: each sequence keeps its own
/// cache, at the price of one copy per switch (n_tokens × 2·n_layer·n_head_kv·head_dim f16).
#[derive(Debug, Default)]
struct KvBook {
    /// The sequence whose tokens the guest's cache holds (`None`: a plain generation's, which
    /// nothing reuses).
    owner: Option<SequenceId>,
    /// The tokens at positions `0..tokens.len()` of the guest's cache (when `owner` is set).
    tokens: Vec<u32>,
    /// How each of those positions was rounded ([`crate::infer::rounding_class`]).
    classes: Vec<u8>,
    /// Caches of live sequences that are not in the guest: their tokens, classes and bytes.
    saved: HashMap<SequenceId, Saved>,
    /// Sequences that have run and were not dropped.
    live: HashSet<SequenceId>,
}

impl std::fmt::Debug for Memory64Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory64Model").field("path", &self.file.path()).field("mode", &self.plan.mode).finish()
    }
}

impl Memory64Model {
    #[allow(clippy::too_many_arguments)] // reason: one internal call site (the loader).
    pub(super) fn new(file: Arc<ModelFile>, gguf: GgufFile, units: UnitTable, plan: MemoryPlan, guest: Guest, info: ModelInfo, started: Instant, arch: ArchConfig, tokenizer: std::result::Result<Arc<Tokenizer>, ChordError>) -> Self {
        let load_time = started.elapsed();
        Self { file, gguf: Arc::new(gguf), units, plan, guest, info, load_time, arch, tokenizer, kv: KvBook::default() }
    }

    /// The model's tokenizer, or the typed error saying why the file's cannot be used.
    pub fn tokenizer(&self) -> Result<&Arc<Tokenizer>> {
        self.tokenizer.as_ref().map_err(Clone::clone)
    }

    /// Tokenizes `text` (see [`Tokenizer::tokenize`]).
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        Ok(self.tokenizer()?.tokenize(text, add_special, parse_special))
    }

    /// Generates from a text prompt, tokenized with BOS/EOS as the model says and special-token
    /// text recognised.
    pub fn generate(&mut self, prompt: &str, opts: &GenerateOptions, on_text: &mut dyn FnMut(&str), aborted: &dyn Fn() -> bool) -> Result<Generation> {
        let ids = self.tokenize(prompt, true, true)?;
        self.generate_tokens(&ids, opts, on_text, aborted)
    }

    /// The forward pass configuration (validated against the architecture's descriptor at load).
    pub fn arch(&self) -> &ArchConfig {
        &self.arch
    }

    /// Context positions of the KV cache.
    pub fn context_length(&self) -> u32 {
        self.arch.cfg.n_ctx
    }

    /// Runs the forward pass on `tokens` starting at position 0 (in batches) and returns the
    /// logits (n_vocab) after the last one.
    pub fn eval_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut logits = Vec::new();
        let mut r = self.plain_runner()?;
        if tokens.is_empty() || tokens.len() > r.n_ctx() {
            return fail(E::ContextTooLarge, format!("{} tokens for a context of {}", tokens.len(), r.n_ctx()));
        }
        eval_prompt(&mut r, tokens, &mut logits, &|| false)?;
        Ok(logits)
    }

    /// Debug: runs `tokens` from position 0 recording layer `layer`'s intermediate tensors
    /// (stage name, values for all tokens, row-major), for stage-by-stage comparison with
    /// another implementation.
    pub fn debug_layer(&mut self, tokens: &[u32], layer: u32) -> Result<Vec<(String, Vec<f32>)>> {
        self.guest.debug_tap(Some(layer))?;
        let r = self.eval_logits(tokens);
        let records = self.guest.debug_tap_records();
        self.guest.debug_tap(None)?;
        r?;
        records
    }

    /// Generates from prompt token ids (see [`crate::infer::generate`]). `aborted` is polled
    /// between forward calls and, inside them, by the guest between layers and between row
    /// chunks of a batch's matrix products and layer copies (a few milliseconds apart).
    pub fn generate_tokens(&mut self, prompt: &[u32], opts: &GenerateOptions, on_text: &mut dyn FnMut(&str), aborted: &dyn Fn() -> bool) -> Result<Generation> {
        self.generate_streaming(None, prompt, opts, on_text, &mut |_| {}, aborted)
    }

    /// Generates in sequence `seq` (a chat session): its own KV cache is brought into the guest
    /// if another sequence or generation used it since, then only the tokens of `prompt` after
    /// the prefix the cache holds exactly as a fresh evaluation of `prompt` would compute it are
    /// evaluated (`timings.cachedTokens` says how many were reused; see
    /// [`crate::infer::continuation_start`]): the result equals [`Self::generate_tokens`]'s.
    /// `context_limit` caps the positions the sequence may fill.
    pub fn generate_in_sequence(&mut self, seq: SequenceId, prompt: &[u32], context_limit: Option<usize>, opts: &GenerateOptions, on_text: &mut dyn FnMut(&str), aborted: &dyn Fn() -> bool) -> Result<Generation> {
        self.generate_streaming(Some((seq, context_limit)), prompt, opts, on_text, &mut |_| {}, aborted)
    }

    /// [`Self::generate_tokens`] (`sequence` `None`) or [`Self::generate_in_sequence`], with
    /// `on_token` given each generated token id as it is sampled.
    pub fn generate_streaming(
        &mut self,
        sequence: Option<(SequenceId, Option<usize>)>,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
        on_token: &mut dyn FnMut(u32),
        aborted: &dyn Fn() -> bool,
    ) -> Result<Generation> {
        let Some((seq, context_limit)) = sequence else {
            let mut r = self.plain_runner()?;
            let c = Continuation::default();
            return with_abort_poll(aborted, || generate_continuing(&mut r, prompt, c, opts, on_text, on_token, aborted)).map(|(g, _)| g);
        };
        self.kv.live.insert(seq);
        self.take_cache_for(Some(seq))?;
        let result = {
            let (nu, nb) = self.schedule();
            // Only positions rounded as a full evaluation of `prompt` rounds them are reused, and
            // the rest runs on that evaluation's schedule: the logits are exactly those of a
            // plain generation of the whole prompt.
            let start = continuation_start(&self.kv.tokens, &self.kv.classes, prompt, nu, nb);
            let c = Continuation { cached: start, context_limit };
            let mut r = self.runner_for_owner()?;
            let out = with_abort_poll(aborted, || generate_continuing(&mut r, prompt, c, opts, on_text, on_token, aborted));
            (out, start, nu)
        };
        match result {
            (Ok((g, in_cache)), _, nu) => {
                let kv = &mut self.kv;
                kv.tokens = prompt.iter().chain(&g.tokens).copied().take(in_cache).collect();
                kv.classes = prompt_rounding(prompt.len(), nu).chain(std::iter::repeat(rounding_class(0, 1))).take(in_cache).collect();
                Ok(g)
            }
            (Err(e), start, _) => {
                // Positions before the evaluated part are untouched.
                self.kv.tokens.truncate(start);
                self.kv.classes.truncate(start);
                Err(e)
            }
        }
    }

    /// Forgets sequence `seq` and its cache (a disposed session).
    pub fn drop_sequence(&mut self, seq: SequenceId) {
        self.kv.live.remove(&seq);
        self.kv.saved.remove(&seq);
        if self.kv.owner == Some(seq) {
            self.kv.owner = None;
            self.kv.tokens.clear();
            self.kv.classes.clear();
        }
    }

    /// Makes `seq` (`None`: a plain generation) the owner of the guest's KV cache: the current
    /// owner's positions are saved first, `seq`'s saved ones restored.
    fn take_cache_for(&mut self, seq: Option<SequenceId>) -> Result<()> {
        if seq.is_some() && self.kv.owner == seq {
            return Ok(());
        }
        if let Some(prev) = self.kv.owner.take()
            && self.kv.live.contains(&prev)
        {
            let (tokens, classes) = (std::mem::take(&mut self.kv.tokens), std::mem::take(&mut self.kv.classes));
            let bytes = self.guest.kv_save(&self.arch.cfg, tokens.len())?;
            self.kv.saved.insert(prev, Saved { tokens, classes, bytes });
        }
        self.kv.tokens.clear();
        self.kv.classes.clear();
        if let Some(s) = seq {
            if let Some(saved) = self.kv.saved.remove(&s) {
                self.guest.kv_restore(&self.arch.cfg, saved.tokens.len(), &saved.bytes)?;
                (self.kv.tokens, self.kv.classes) = (saved.tokens, saved.classes);
            }
            self.kv.owner = Some(s);
        }
        Ok(())
    }

    /// A runner for a plain generation from position 0 (after saving a sequence's cache).
    fn plain_runner(&mut self) -> Result<GuestRunner<'_>> {
        self.take_cache_for(None)?;
        self.runner_for_owner()
    }

    /// The prompt schedule: (ubatch, batch) sizes.
    fn schedule(&self) -> (usize, usize) {
        let n_ctx = self.arch.cfg.n_ctx as usize;
        ((crate::infer::arch::REF_UBATCH as usize).min(n_ctx), self.arch.cfg.n_batch as usize)
    }

    fn runner_for_owner(&mut self) -> Result<GuestRunner<'_>> {
        let arch = &self.arch;
        let (n_ctx, n_vocab) = (arch.cfg.n_ctx as usize, arch.cfg.n_vocab);
        let (n_ubatch, n_batch) = self.schedule();
        let tokenizer = self.tokenizer.as_ref().ok().cloned();
        let stream = tokenizer.clone().map(|t| TextStream::new(t, false));
        Ok(GuestRunner { guest: &mut self.guest, n_ctx, n_batch, n_ubatch, n_vocab, tokenizer, stream })
    }

    /// Facts about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The parsed GGUF header and metadata.
    pub fn gguf(&self) -> &GgufFile {
        &self.gguf
    }

    /// The parsed GGUF header, shared.
    pub fn gguf_arc(&self) -> Arc<GgufFile> {
        self.gguf.clone()
    }

    /// The tensor → unit mapping.
    pub fn units(&self) -> &UnitTable {
        &self.units
    }

    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Wall time the load took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Layer `i`: size, tensors, residency.
    pub fn layer_info(&self, i: u32) -> Result<LayerInfo> {
        let u = self.layer_unit(i)?;
        let resident = match self.guest.state().bridge() {
            None => true,
            Some(b) => b.manager().is_resident(i),
        };
        let tensors = u
            .tensors
            .iter()
            .map(|&t| {
                let ti = &self.gguf.tensors[t];
                (ti.name.clone(), ti.ggml_type.name(), ti.shape.clone())
            })
            .collect();
        Ok(LayerInfo { index: i, bytes: u.payload_bytes, tensors, resident })
    }

    fn layer_unit(&self, i: u32) -> Result<&super::units::Unit> {
        if i >= self.units.n_layers {
            return fail(E::NoSuchLayer, format!("layer {i} does not exist (the model has {} layers)", self.units.n_layers));
        }
        Ok(&self.units.units[i as usize])
    }

    /// The guest's checksum of unit `unit` (layers `0..layer_count`, then non-layer tensors), as
    /// seen from inside the guest: in Memory64 mode a layer is acquired through the layer cache
    /// (a real access) and a non-layer tensor is streamed through `memory64_read`.
    pub fn guest_checksum(&mut self, unit: u32) -> Result<Checksum> {
        if unit as usize >= self.units.units.len() {
            return fail(E::NoSuchLayer, format!("unit {unit} does not exist ({} units)", self.units.units.len()));
        }
        self.guest.unit_checksum(unit)
    }

    /// The guest acquires layer `i` as a forward pass would (a real cache access in Memory64
    /// mode). Returns whether it was already resident.
    pub fn acquire_layer(&mut self, i: u32) -> Result<bool> {
        self.layer_unit(i)?;
        self.guest.acquire_layer(i)
    }

    /// The same checksum computed independently on the host by reading the file with `pread`
    /// (no region, no bridge, no guest).
    pub fn file_checksum(&self, unit: u32) -> Result<Checksum> {
        file_checksum(&self.file, &self.gguf, &self.units, unit)
    }

    /// Makes every layer resident (Memory64 mode); errors with the numbers when the cache cannot
    /// hold them all. No-op in WHOLE mode.
    pub fn preload_all_layers(&mut self) -> Result<()> {
        let (data, state) = self.guest.memory_and_state();
        state.bridge_mut().map_or(Ok(()), |b| b.preload_all(data))
    }

    /// Cache statistics (`None` in WHOLE mode, where every layer is resident and no cache exists).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.guest.state().bridge().map(|b| b.manager().stats())
    }

    /// Forgets every cached layer (Memory64 mode).
    pub fn clear_cache(&mut self) {
        if let Some(b) = self.guest.memory_and_state().1.bridge_mut() {
            b.clear_cache();
        }
    }

    /// Bridge counters as kept by the host.
    pub fn bridge_stats(&self) -> BridgeStats {
        self.guest.bridge_stats()
    }

    /// Bridge counters as the guest reads them through `memory64_stats`.
    pub fn bridge_stats_from_guest(&mut self) -> Result<BridgeStats> {
        self.guest.bridge_stats_from_guest()
    }

    /// Host bytes holding the saved KV caches of sequences not in the guest (chat sessions
    /// waiting for their next turn): their positions' tokens and cache bytes.
    pub fn session_cache_bytes(&self) -> u64 {
        self.kv.saved.values().map(|s| (s.tokens.len() * 5 + s.bytes.len()) as u64).sum()
    }

    /// Memory accounting.
    pub fn memory_stats(&self) -> MemoryStats {
        let state = self.guest.state();
        let (regions, region_bytes) = match state.bridge() {
            Some(b) => (b.runtime().region_stats(), b.runtime().total_bytes()),
            None => (Vec::new(), 0),
        };
        let cache_arena_bytes = self.plan.slots.map_or(0, |s| s.arena_bytes());
        let resident_weight_bytes = match state.bridge() {
            None => self.plan.resident_bytes,
            Some(b) => b.manager().stats().resident.iter().map(|&l| self.units.units[l as usize].payload_bytes).sum(),
        };
        MemoryStats {
            mode: self.plan.mode,
            guest_memory_bytes: self.guest.memory_bytes(),
            cache_arena_bytes,
            resident_weight_bytes,
            session_cache_bytes: self.session_cache_bytes(),
            regions,
            region_bytes,
            bridge: self.guest.bridge_stats(),
            rss_bytes: current_rss(),
        }
    }

    /// Memory mode.
    pub fn mode(&self) -> MemoryMode {
        self.plan.mode
    }
}

/// The generation loop's view of a loaded model.
struct GuestRunner<'a> {
    guest: &'a mut Guest,
    n_ctx: usize,
    n_batch: usize,
    n_ubatch: usize,
    n_vocab: u32,
    tokenizer: Option<Arc<Tokenizer>>,
    stream: Option<TextStream>,
}

impl Runner for GuestRunner<'_> {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn n_batch(&self) -> usize {
        self.n_batch
    }

    fn n_ubatch(&self) -> usize {
        self.n_ubatch
    }

    fn eval(&mut self, tokens: &[u32], pos: usize, ubatch: usize, logits: &mut Vec<f32>) -> Result<()> {
        if let Some(&t) = tokens.iter().find(|&&t| t >= self.n_vocab) {
            return fail(E::InvalidOption, format!("token id {t} is out of range (vocabulary has {} tokens)", self.n_vocab));
        }
        self.guest.eval(tokens, pos as u32, ubatch as u32)?;
        self.guest.logits(logits)
    }

    fn is_eog(&self, id: u32) -> bool {
        self.tokenizer.as_ref().is_some_and(|t| t.is_eog(id))
    }

    fn push_text(&mut self, id: u32) -> String {
        self.stream.as_mut().map(|s| s.push(id)).unwrap_or_default()
    }

    fn finish_text(&mut self) -> String {
        self.stream.take().map(TextStream::finish).unwrap_or_default()
    }
}

/// Checksum of a unit's tensors read straight from the file (the independent reference); a file
/// changed since load is `ERR_FILE_CHANGED`.
pub fn file_checksum(file: &ModelFile, gguf: &GgufFile, units: &UnitTable, unit: u32) -> Result<Checksum> {
    let Some(u) = units.units.get(unit as usize) else {
        return fail(E::NoSuchLayer, format!("unit {unit} does not exist ({} units)", units.units.len()));
    };
    let mut buf = vec![0u8; 8 << 20];
    let mut acc = 0u64;
    let mut bytes = 0u64;
    for &t in &u.tensors {
        let ti = &gguf.tensors[t];
        let mut h = Chord64::new();
        let mut done = 0u64;
        while done < ti.bytes {
            let n = (ti.bytes - done).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], ti.file_offset + done, &|| format!("tensor {:?}", ti.name))?;
            h.update(&buf[..n]);
            done += n as u64;
        }
        acc = chord64_combine(acc, h.finish());
        bytes += ti.bytes;
    }
    Ok(Checksum { hash: acc, bytes })
}
