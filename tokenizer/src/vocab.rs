//! The vocabulary: loading (`llama_vocab::impl::load`), special-token partitioning
//! (`tokenizer_st_partition`), tokenize, pieces and detokenize — all ported from llama.cpp
//! `src/llama-vocab.cpp` as bundled with node-llama-cpp 3.21.1.

use std::collections::{BTreeSet, HashMap};

use crate::bpe::{self, MergeRanks, TokenLookup};
use crate::error::TokenizerError;
use crate::pretokenize::{PreTokenizer, pre_config};
use crate::spm::{self, SpmVocab};
use crate::unicode::{byte_to_cpt_table, cpt_to_byte_table, cpts_from_utf8, push_utf8};

/// Token attributes, a bit set with llama.cpp's `llama_token_attr` values (so they can be compared with
/// `llama_vocab_get_attr` / node-llama-cpp's `getTokenAttributes` bit for bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenAttr(pub u32);

impl TokenAttr {
    /// No attribute (`tokenizer.ggml.token_type` 0 or unknown values).
    pub const UNDEFINED: u32 = 0;
    /// The unknown token (`token_type` 2).
    pub const UNKNOWN: u32 = 1 << 0;
    /// Unused slot (`token_type` 5, or a control token whose text contains "unused").
    pub const UNUSED: u32 = 1 << 1;
    /// Ordinary text token (`token_type` 1; all tokens when the file has no types).
    pub const NORMAL: u32 = 1 << 2;
    /// Control token such as BOS/EOS/`<|im_start|>` (`token_type` 3): rendered only on request,
    /// recognized in input text only with `parse_special`.
    pub const CONTROL: u32 = 1 << 3;
    /// User-defined token (`token_type` 4): always rendered, and matched in input text before the
    /// normal tokenizer runs, even without `parse_special`.
    pub const USER_DEFINED: u32 = 1 << 4;
    /// Byte-fallback token `<0xXX>` (`token_type` 6).
    pub const BYTE: u32 = 1 << 5;
    /// Whitespace left of this token in the input is dropped when it is matched as special.
    pub const LSTRIP: u32 = 1 << 7;
    /// Whitespace right of this token in the input is dropped when it is matched as special.
    pub const RSTRIP: u32 = 1 << 8;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u32) -> bool {
        self.0 & mask == mask && mask != 0
    }
    /// Whether any bit of `mask` is set.
    pub fn any(self, mask: u32) -> bool {
        self.0 & mask != 0
    }
    fn from_token_type(t: i32) -> u32 {
        match t {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        }
    }
}

/// Everything a GGUF file says about its tokenizer, as plain data (the host reads the keys; this crate
/// never sees the file). Field ↔ key mapping is given on each field; absent key ⇒ `None`.
#[derive(Clone, Debug, Default)]
pub struct VocabData {
    /// `tokenizer.ggml.model`: `"llama"` (SentencePiece) or `"gpt2"` (byte-level BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: the BPE pre-tokenizer name (ignored for `"llama"`).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: token texts as raw bytes (GGUF strings are not guaranteed UTF-8).
    pub tokens: Vec<Vec<u8>>,
    /// `tokenizer.ggml.scores` (an INT32 array may be converted to f32). Must not be shorter than `tokens`.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    /// Must not be shorter than `tokens`.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` (`"left right"` per line, rank = index). Required for `"gpt2"`.
    pub merges: Option<Vec<Vec<u8>>>,
    /// `tokenizer.ggml.bos_token_id`. Absent ⇒ llama.cpp's default (1 for llama, 11 for gpt2, if in range).
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`. Absent ⇒ default (2 for llama, 11 for gpt2, if in range).
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`. Absent ⇒ detected by text (`<|im_end|>`, `<end_of_turn>`, ...).
    pub eot_token_id: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`. Absent ⇒ detected by text (`<|eom_id|>`).
    pub eom_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`. Absent ⇒ 0 for llama, none for gpt2.
    pub unknown_token_id: Option<u32>,
    /// `tokenizer.ggml.seperator_token_id` (sic).
    pub separator_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.mask_token_id`.
    pub mask_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_pre_token_id` (or the deprecated `tokenizer.ggml.prefix_token_id`, which
    /// llama.cpp lets win when both exist).
    pub fim_pre_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_suf_token_id` (or deprecated `tokenizer.ggml.suffix_token_id`).
    pub fim_suf_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_mid_token_id` (or deprecated `tokenizer.ggml.middle_token_id`).
    pub fim_mid_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_pad_token_id` (an end-of-generation token).
    pub fim_pad_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_rep_token_id` (an end-of-generation token).
    pub fim_rep_token_id: Option<u32>,
    /// `tokenizer.ggml.fim_sep_token_id` (an end-of-generation token).
    pub fim_sep_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`. Absent ⇒ true for llama and llama3-style BPE, else false.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`. Absent ⇒ false.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`. Absent ⇒ true for llama, false for gpt2.
    pub add_space_prefix: Option<bool>,
    /// `general.name`: llama.cpp gives Phi-3 models (name containing "phi-3"/"phi3") RSTRIP special tokens.
    pub general_name: Option<String>,
}

/// The tokenizer family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece-style BPE with scores and byte fallback (`tokenizer.ggml.model = "llama"`).
    Spm,
    /// Byte-level BPE with merges (`tokenizer.ggml.model = "gpt2"`).
    Bpe,
}

/// Options of [`Vocab::detokenize_with`] (llama.cpp `llama_detokenize` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetokenizeOptions {
    /// Drop a leading BOS (if the model adds one) and a trailing EOS (if it adds one). Default false.
    pub remove_special: bool,
    /// Render control/unknown tokens as their text (e.g. `<|im_end|>`) instead of nothing. Default false.
    pub unparse_special: bool,
}

enum Engine {
    Spm,
    Bpe {
        pre: PreTokenizer,
        ignore_merges: bool,
        merges: MergeRanks,
        byte_to_cpt: Box<[char; 256]>,
        cpt_to_byte: Box<[u16; 0x200]>,
    },
}

/// A loaded tokenizer vocabulary. Immutable, `Send + Sync`; share it behind an `Arc`.
pub struct Vocab {
    engine: Engine,
    texts: Vec<Box<[u8]>>,
    scores: Vec<f32>,
    attrs: Vec<u32>,
    text_to_id: HashMap<Box<[u8]>, u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    sep: Option<u32>,
    pad: Option<u32>,
    nl: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    eog: Vec<u32>,
    /// Control / user-defined / unknown tokens, longest text first (llama.cpp `cache_special_tokens`).
    special_cache: Vec<u32>,
}

/// llama.cpp's token texts that end generation (`special_eog_ids` detection).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

impl Vocab {
    /// Build a vocabulary from GGUF tokenizer data, applying llama.cpp's defaults and fix-ups.
    ///
    /// Errors: [`TokenizerError::UnsupportedModel`] / [`TokenizerError::UnsupportedPre`]
    /// (`ERR_UNSUPPORTED_TOKENIZER`) and [`TokenizerError::Invalid`] (`ERR_GGUF_BAD_TOKENIZER`) for
    /// malformed data: no tokens, more than `i32::MAX` tokens, scores/types shorter than the tokens,
    /// missing merges for `gpt2`, duplicate token texts. Out-of-range special-token ids are not errors:
    /// like llama.cpp, the default id is kept instead (or none, if the default is out of range too).
    pub fn new(data: VocabData) -> Result<Self, TokenizerError> {
        let n = data.tokens.len();
        if n == 0 {
            return Err(TokenizerError::invalid("tokenizer.ggml.tokens is empty"));
        }
        if n > i32::MAX as usize {
            return Err(TokenizerError::invalid(format!(
                "tokenizer.ggml.tokens has {n} entries, more than i32::MAX"
            )));
        }

        // Model type and the flags it implies (llama.cpp `load`, "determine vocab type").
        let (mut add_bos, clean_spaces, mut add_space_prefix);
        let mut engine = Engine::Spm;
        let (mut bos, mut eos, mut unk): (Option<u32>, Option<u32>, Option<u32>);
        match data.model.as_str() {
            "llama" => {
                add_bos = true;
                clean_spaces = false;
                add_space_prefix = true;
                (bos, eos, unk) = (Some(1), Some(2), Some(0));
            }
            "gpt2" => {
                let pre_name = data.pre.as_deref();
                let cfg = pre_config(pre_name).ok_or_else(|| TokenizerError::UnsupportedPre {
                    model: data.model.clone(),
                    pre: pre_name.unwrap_or("").to_string(),
                })?;
                let merges = data.merges.as_ref().ok_or_else(|| {
                    TokenizerError::invalid(
                        "tokenizer.ggml.merges is missing (required for a gpt2 tokenizer)",
                    )
                })?;
                let byte_to_cpt = Box::new(byte_to_cpt_table());
                let cpt_to_byte = Box::new(cpt_to_byte_table(&byte_to_cpt));
                engine = Engine::Bpe {
                    pre: cfg.pre,
                    ignore_merges: cfg.ignore_merges,
                    merges: MergeRanks::new(merges),
                    byte_to_cpt,
                    cpt_to_byte,
                };
                add_bos = cfg.add_bos;
                clean_spaces = cfg.clean_spaces;
                add_space_prefix = false;
                (bos, eos, unk) = (Some(11), Some(11), None);
            }
            other => {
                return Err(TokenizerError::UnsupportedModel {
                    model: other.to_string(),
                });
            }
        }
        if let Some(v) = data.add_space_prefix {
            add_space_prefix = v;
        }

        if let Some(s) = &data.scores
            && s.len() < n
        {
            return Err(TokenizerError::invalid(format!(
                "tokenizer.ggml.scores has {} entries for {n} tokens",
                s.len()
            )));
        }
        if let Some(t) = &data.token_types
            && t.len() < n
        {
            return Err(TokenizerError::invalid(format!(
                "tokenizer.ggml.token_type has {} entries for {n} tokens",
                t.len()
            )));
        }

        let mut texts = Vec::with_capacity(n);
        let mut text_to_id: HashMap<Box<[u8]>, u32> = HashMap::with_capacity(n);
        for (i, t) in data.tokens.into_iter().enumerate() {
            // llama.cpp renames empty tokens so that every text stays a unique key.
            let t: Box<[u8]> = if t.is_empty() {
                format!("[EMPTY_{i}]").into_bytes().into()
            } else {
                t.into()
            };
            if let Some(prev) = text_to_id.insert(t.clone(), i as u32) {
                return Err(TokenizerError::invalid(format!(
                    "tokenizer.ggml.tokens has duplicate text {:?} at ids {prev} and {i}",
                    String::from_utf8_lossy(&t)
                )));
            }
            texts.push(t);
        }
        let scores: Vec<f32> = match data.scores {
            Some(mut s) => {
                s.truncate(n);
                s
            }
            None => vec![0.0; n],
        };
        let mut attrs: Vec<u32> = match &data.token_types {
            Some(t) => t[..n]
                .iter()
                .map(|&t| TokenAttr::from_token_type(t))
                .collect(),
            None => vec![TokenAttr::NORMAL; n],
        };

        // Special ids: a default that is out of range is dropped; a key that is out of range is ignored.
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let apply = |default: Option<u32>, key: Option<u32>| -> Option<u32> {
            let default = in_range(default);
            match key {
                Some(k) if (k as usize) < n => Some(k),
                _ => default,
            }
        };
        bos = apply(bos, data.bos_token_id);
        eos = apply(eos, data.eos_token_id);
        unk = apply(unk, data.unknown_token_id);
        let mut eot = apply(None, data.eot_token_id);
        let mut eom = apply(None, data.eom_token_id);
        let sep = apply(None, data.separator_token_id);
        let pad = apply(None, data.padding_token_id);
        let _mask = apply(None, data.mask_token_id);
        let mut fim_pre = apply(None, data.fim_pre_token_id);
        let mut fim_suf = apply(None, data.fim_suf_token_id);
        let mut fim_mid = apply(None, data.fim_mid_token_id);
        let mut fim_pad = apply(None, data.fim_pad_token_id);
        let mut fim_rep = apply(None, data.fim_rep_token_id);
        let mut fim_sep = apply(None, data.fim_sep_token_id);

        if let Some(v) = data.add_bos_token {
            add_bos = v;
        }
        let add_eos = data.add_eos_token.unwrap_or(false);

        // Auto-detect special tokens by text. llama.cpp walks an unordered_map, so with several
        // candidates its pick is hash-order dependent; here the lowest id wins (see the crate docs).
        let find_first = |cands: &[&str]| -> Option<u32> {
            cands
                .iter()
                .filter_map(|c| text_to_id.get(c.as_bytes()).copied())
                .min()
        };
        for (slot, cands) in [
            (&mut eot, EOT_TEXTS),
            (&mut eom, EOM_TEXTS),
            (&mut fim_pre, FIM_PRE_TEXTS),
            (&mut fim_suf, FIM_SUF_TEXTS),
            (&mut fim_mid, FIM_MID_TEXTS),
            (&mut fim_pad, FIM_PAD_TEXTS),
            (&mut fim_rep, FIM_REP_TEXTS),
            (&mut fim_sep, FIM_SEP_TEXTS),
        ] {
            if slot.is_none()
                && let Some(id) = find_first(cands)
            {
                *slot = Some(id);
                attrs[id as usize] |= TokenAttr::CONTROL;
            }
        }
        let _ = (fim_pre, fim_suf, fim_mid);

        // Control tokens named "...unused..." are unused.
        for (i, t) in texts.iter().enumerate() {
            if attrs[i] & TokenAttr::CONTROL != 0 && contains(t, b"unused") {
                attrs[i] |= TokenAttr::UNUSED;
            }
        }

        // End-of-generation set.
        let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for text in EOG_TEXTS {
            if let Some(&id) = text_to_id.get(text.as_bytes()) {
                eog.insert(id);
                attrs[id as usize] |= TokenAttr::CONTROL;
            }
        }
        // gpt-oss: these always render.
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(&id) = text_to_id.get(text.as_bytes()) {
                attrs[id as usize] = TokenAttr::USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        let id_of = |t: &str| text_to_id.get(t.as_bytes()).copied();
        let in_eog = |t: &str, eog: &BTreeSet<u32>| id_of(t).filter(|id| eog.contains(id));
        // o200k_harmony / solar-open: "<|end|>" is not EOG there.
        if let Some(end) = in_eog("<|end|>", &eog) {
            let has = |t: &str| in_eog(t, &eog).is_some();
            let has_call = has("<|call|>") || has("<|calls|>");
            if has_call && (has("<|return|>") || has("<|flush|>")) {
                eog.remove(&end);
                attrs[end as usize] = TokenAttr::USER_DEFINED;
            }
        }
        // gemma4 / paddleocr: "</s>" is not EOG when "<|tool_response>" is.
        if let (Some(s), Some(_)) = (in_eog("</s>", &eog), in_eog("<|tool_response>", &eog)) {
            eog.remove(&s);
            attrs[s as usize] = TokenAttr::NORMAL;
        }

        // Special-token cache, longest text first (llama.cpp's sort is unstable; ties go by id here,
        // which only matters for two equal-length texts overlapping in the input).
        let mut special_cache: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize]
                    & (TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
                    != 0
            })
            .collect();
        special_cache.sort_by(|&a, &b| {
            texts[b as usize]
                .len()
                .cmp(&texts[a as usize].len())
                .then(a.cmp(&b))
        });

        // Per-model attributes (llama.cpp: by `general.name`).
        let name = data
            .general_name
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        if name.contains("phi-3") || name.contains("phi3") {
            for &id in &special_cache {
                attrs[id as usize] |= TokenAttr::RSTRIP;
            }
            if let Some(id) = id_of("</s>") {
                attrs[id as usize] |= TokenAttr::RSTRIP;
            }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = id_of(t) {
                    attrs[id as usize] &= !TokenAttr::RSTRIP;
                }
            }
        }

        let mut vocab = Vocab {
            engine,
            texts,
            scores,
            attrs,
            text_to_id,
            bos,
            eos,
            eot,
            eom,
            unk,
            sep,
            pad,
            nl: None,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            eog: eog.into_iter().collect(),
            special_cache,
        };
        vocab.nl = match vocab.engine {
            Engine::Spm => vocab.byte_token(b'\n').or(pad),
            Engine::Bpe { .. } => vocab.tokenize("\n", false, false).first().copied().or(pad),
        };
        Ok(vocab)
    }

    /// The tokenizer family.
    pub fn kind(&self) -> VocabKind {
        match self.engine {
            Engine::Spm => VocabKind::Spm,
            Engine::Bpe { .. } => VocabKind::Bpe,
        }
    }

    /// The BPE pre-tokenizer in use (`None` for SentencePiece).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match self.engine {
            Engine::Spm => None,
            Engine::Bpe { pre, .. } => Some(pre),
        }
    }

    /// Number of tokens (the vocabulary size; valid ids are `0..n_tokens()`).
    pub fn n_tokens(&self) -> u32 {
        self.texts.len() as u32
    }

    /// Number of distinct BPE merges (0 for SentencePiece).
    pub fn n_merges(&self) -> usize {
        match &self.engine {
            Engine::Spm => 0,
            Engine::Bpe { merges, .. } => merges.len(),
        }
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// End-of-turn token (from the file, else detected by text: `<|im_end|>`, `<end_of_turn>`, ...).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    /// End-of-message token (`<|eom_id|>`).
    pub fn eom(&self) -> Option<u32> {
        self.eom
    }
    /// Unknown token.
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    /// Separator token.
    pub fn sep(&self) -> Option<u32> {
        self.sep
    }
    /// Padding token.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Newline token (llama.cpp `linefeed_id`: `<0x0A>` for SentencePiece, the token of `"\n"` for BPE).
    pub fn newline(&self) -> Option<u32> {
        self.nl
    }
    /// Whether `tokenize(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `tokenize(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// Whether SentencePiece text gets a leading space (and detokenize strips it from the first token).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Whether generation should stop at `id` (llama.cpp `llama_vocab_is_eog`): EOS, EOT, EOM, FIM
    /// pad/repo/file-separator and tokens whose text is e.g. `<|im_end|>`, `<end_of_turn>`, `<|endoftext|>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, ascending.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog
    }

    /// Raw text of a token as stored in the file (`▁`/`Ġ` escapes included). `None` if out of range.
    pub fn token_text(&self, id: u32) -> Option<&[u8]> {
        self.texts.get(id as usize).map(|t| &t[..])
    }

    /// Score of a token (0 when the file has none). `None` if out of range.
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    /// Attributes of a token (after llama.cpp's load-time fix-ups). `None` if out of range.
    pub fn token_attr(&self, id: u32) -> Option<TokenAttr> {
        self.attrs.get(id as usize).map(|&a| TokenAttr(a))
    }

    /// The id whose raw text is exactly `text`.
    pub fn token_id(&self, text: &[u8]) -> Option<u32> {
        self.text_to_id.get(text).copied()
    }

    /// Tokenize `text` like llama.cpp `llama_tokenize(vocab, text, add_special, parse_special)`.
    ///
    /// - `add_special`: prepend BOS / append EOS as the model asks ([`Self::add_bos`], [`Self::add_eos`]).
    ///   node-llama-cpp's `model.tokenize` passes `false`.
    /// - `parse_special`: recognize the texts of control tokens (e.g. `<|im_start|>`) in `text`.
    ///   User-defined tokens are recognized either way.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.tokenize_fragments(text, add_special, parse_special, &[])
    }

    /// Like [`Self::tokenize`] with `parse_special = true`, except that no control-token text is
    /// recognised where it overlaps one of the `protected` byte ranges `(start, end)` of `text`
    /// (sorted by start): a chat rendering's message content, whose `<|im_end|>` stays text.
    pub fn tokenize_protected(&self, text: &str, add_special: bool, protected: &[(usize, usize)]) -> Vec<u32> {
        self.tokenize_fragments(text, add_special, true, protected)
    }

    /// The text of the first control token found in `text`, if any.
    pub fn control_text_in(&self, text: &str) -> Option<&str> {
        self.special_cache
            .iter()
            .filter(|&&id| self.attrs[id as usize] & (TokenAttr::CONTROL | TokenAttr::UNKNOWN) != 0)
            .map(|&id| &self.texts[id as usize][..])
            .find(|t| !t.is_empty() && find(text.as_bytes(), t).is_some())
            .and_then(|t| std::str::from_utf8(t).ok())
    }

    fn tokenize_fragments(&self, text: &str, add_special: bool, parse_special: bool, protected: &[(usize, usize)]) -> Vec<u32> {
        let raw = text.as_bytes();
        let mut out = Vec::new();
        let fragments = if raw.is_empty() {
            Vec::new()
        } else {
            self.partition(raw, parse_special, protected)
        };
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.engine {
            Engine::Spm => {
                let mut prev_special = true;
                let mut buf = Vec::new();
                for frag in fragments {
                    match frag {
                        Fragment::Text(start, len) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.extend_from_slice("▁".as_bytes());
                            }
                            for &b in &raw[start..start + len] {
                                if b == b' ' {
                                    buf.extend_from_slice("▁".as_bytes());
                                } else {
                                    buf.push(b);
                                }
                            }
                            spm::tokenize(&buf, self, self.unk, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Engine::Bpe {
                pre,
                ignore_merges,
                merges,
                byte_to_cpt,
                ..
            } => {
                for frag in fragments {
                    match frag {
                        Fragment::Text(start, len) => bpe::tokenize(
                            &raw[start..start + len],
                            *pre,
                            *ignore_merges,
                            byte_to_cpt,
                            merges,
                            self,
                            &mut out,
                        ),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Split the input at special-token texts (llama.cpp `tokenizer_st_partition`): for each special
    /// token, longest first, every occurrence inside a still-raw fragment becomes a token fragment.
    /// Control-token matches overlapping a `protected` range are skipped (see
    /// [`Self::tokenize_protected`]).
    fn partition(&self, raw: &[u8], parse_special: bool, protected: &[(usize, usize)]) -> Vec<Fragment> {
        let mut frags = vec![Fragment::Text(0, raw.len())];
        let mut next = Vec::new();
        for &id in &self.special_cache {
            let attr = self.attrs[id as usize];
            let control = attr & (TokenAttr::CONTROL | TokenAttr::UNKNOWN) != 0;
            if !parse_special && control {
                continue;
            }
            let text = &self.texts[id as usize][..];
            // The first match in raw[base..base + len] that may be taken.
            let allowed = |base: usize, len: usize| -> Option<usize> {
                let mut from = base;
                while let Some(m) = find(&raw[from..base + len], text).map(|p| from + p) {
                    let end = m + text.len();
                    if !control || !protected.iter().any(|&(s, e)| s < end && m < e) {
                        return Some(m);
                    }
                    from = m + 1;
                }
                None
            };
            next.clear();
            let mut changed = false;
            for &frag in &frags {
                let Fragment::Text(mut base, mut len) = frag else {
                    next.push(frag);
                    continue;
                };
                loop {
                    let Some(m) = allowed(base, len) else {
                        if len > 0 {
                            next.push(Fragment::Text(base, len));
                        }
                        break;
                    };
                    changed = true;
                    if m > base {
                        let mut left = m - base;
                        if attr & TokenAttr::LSTRIP != 0 {
                            while left > 0 && is_c_space(raw[base + left - 1]) {
                                left -= 1;
                            }
                        }
                        if left > 0 {
                            next.push(Fragment::Text(base, left));
                        }
                    }
                    next.push(Fragment::Token(id));
                    let end = m + text.len();
                    if end >= base + len {
                        break;
                    }
                    let mut r_off = end;
                    let mut r_len = base + len - end;
                    if attr & TokenAttr::RSTRIP != 0 {
                        while r_len > 0 && is_c_space(raw[r_off]) {
                            r_off += 1;
                            r_len -= 1;
                        }
                    }
                    base = r_off;
                    len = r_len;
                }
            }
            if changed {
                std::mem::swap(&mut frags, &mut next);
            }
        }
        frags
    }

    /// Text of one token (llama.cpp `llama_token_to_piece` with `lstrip = 0`).
    ///
    /// With `render_special = false`, control and unknown tokens render as nothing; with `true`, as
    /// their text. SentencePiece `▁` becomes a space, `<0xXX>` one raw byte; GPT-2 byte-level text is
    /// mapped back to bytes. A piece may be an incomplete UTF-8 sequence. Out-of-range ids (on which
    /// llama.cpp throws) and unused/undefined tokens give an empty piece.
    pub fn piece(&self, id: u32, render_special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.append_piece(id, render_special, false, &mut out);
        out
    }

    /// Append the piece of `id`; `lstrip` drops one leading space (llama.cpp's `lstrip = 1`).
    pub(crate) fn append_piece(
        &self,
        id: u32,
        render_special: bool,
        lstrip: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(&attr) = self.attrs.get(id as usize) else {
            return;
        };
        let special = TokenAttr::UNKNOWN | TokenAttr::CONTROL;
        if !render_special && attr & special != 0 {
            return;
        }
        let text = &self.texts[id as usize][..];
        let start = out.len();
        if attr & (special | TokenAttr::USER_DEFINED) != 0 {
            out.extend_from_slice(text);
        } else if attr & TokenAttr::NORMAL != 0 {
            match &self.engine {
                Engine::Spm => unescape_whitespace(text, out),
                Engine::Bpe { cpt_to_byte, .. } => decode_byte_level(text, cpt_to_byte, out),
            }
        } else if attr & TokenAttr::BYTE != 0 {
            out.push(hex_byte(text));
        }
        if lstrip && out.len() > start && out[start] == b' ' {
            out.remove(start);
        }
    }

    /// Detokenize like node-llama-cpp's `model.detokenize(ids)` (llama.cpp `llama_detokenize` with
    /// `remove_special = false, unparse_special = false`). Invalid UTF-8 becomes U+FFFD, as in JS.
    pub fn detokenize(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.detokenize_with(ids, DetokenizeOptions::default()))
            .into_owned()
    }

    /// Detokenize to raw bytes with explicit options (llama.cpp `llama_detokenize`): pieces are
    /// concatenated, the first one loses its leading space when the model adds a space prefix, and
    /// for models with `clean_up_tokenization_spaces` the spaces before `?!.,` and in ` 's`-style
    /// contractions are removed.
    pub fn detokenize_with(&self, ids: &[u32], opts: DetokenizeOptions) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if opts.remove_special
            && self.add_bos
            && self.bos.is_some()
            && ids.first().copied() == self.bos
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if opts.remove_special
            && self.add_eos
            && self.eos.is_some()
            && ids.last().copied() == self.eos
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for &id in ids {
            self.append_piece(id, opts.unparse_special, remove_space, &mut out);
            remove_space = false;
        }
        if self.clean_spaces {
            clean_up_spaces(&mut out);
        }
        out
    }

    /// Whether detokenize applies `clean_up_tokenization_spaces`.
    pub(crate) fn clean_spaces(&self) -> bool {
        self.clean_spaces
    }

    fn byte_token(&self, byte: u8) -> Option<u32> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let name = [
            b'<',
            b'0',
            b'x',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 15) as usize],
            b'>',
        ];
        self.token_id(&name).or_else(|| self.token_id(&[byte]))
    }
}

impl TokenLookup for Vocab {
    fn lookup(&self, text: &[u8]) -> Option<u32> {
        self.token_id(text)
    }
}

impl SpmVocab for Vocab {
    fn lookup_scored(&self, text: &[u8]) -> Option<(u32, f32)> {
        self.token_id(text).map(|id| (id, self.scores[id as usize]))
    }
    fn byte_token(&self, byte: u8) -> Option<u32> {
        Vocab::byte_token(self, byte)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fragment {
    /// `(offset, length)` into the input.
    Text(usize, usize),
    Token(u32),
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return if needle.is_empty() { Some(0) } else { None };
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// `▁` → space (llama.cpp `llama_unescape_whitespace`).
fn unescape_whitespace(text: &[u8], out: &mut Vec<u8>) {
    let esc = "▁".as_bytes();
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(esc) {
            out.push(b' ');
            i += esc.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
}

/// GPT-2 byte-level text → bytes (llama.cpp `llama_decode_text`), including its
/// `[UNK_BYTE_0x..<text>]` marker for code points outside the byte alphabet.
fn decode_byte_level(text: &[u8], cpt_to_byte: &[u16; 0x200], out: &mut Vec<u8>) {
    for cpt in cpts_from_utf8(text) {
        match cpt_to_byte.get(cpt as usize).copied().filter(|&b| b != 0) {
            Some(b) => out.push((b - 1) as u8),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut utf8 = Vec::new();
                push_utf8(cpt, &mut utf8);
                for b in utf8 {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
    }
}

/// The byte of a `<0xXX>` token (llama.cpp `token_to_byte`: `strtol(text.substr(3, 2), 16)`).
fn hex_byte(text: &[u8]) -> u8 {
    let digits = text.get(3..text.len().min(5)).unwrap_or(&[]);
    let mut v: u32 = 0;
    for &d in digits {
        match (d as char).to_digit(16) {
            Some(x) => v = v * 16 + x,
            None => break,
        }
    }
    v as u8
}

/// llama.cpp's `clean_spaces` post-processing of `llama_detokenize`, three in-place passes, kept
/// byte for byte (including the NUL it writes over the space after a lone quote).
pub(crate) fn clean_up_spaces(text: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ," lose the space.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);

    // Pass 2: " ' " becomes "'".
    let n = text.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = text[i];
        if x == b'\'' && i + 1 < n && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    text.truncate(total);

    // Pass 3: " 's", " 'm", " 're", " 've" lose the space.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = text[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if i + 2 < n {
                let x2 = text[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}
