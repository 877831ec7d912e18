//! The model's tokenizer, built from GGUF metadata (`tokenizer.ggml.*`) with the
//! `wasm-chord-tokenizer` crate (a port of llama.cpp's tokenizers; ids identical to llama.cpp's).

use std::sync::Arc;

use wasm_chord_tokenizer::{TokenizerError, Vocab, VocabData};

use crate::error::{ChordError, ErrorCode as E, Result, fail};
use crate::gguf::{GgufFile, GgufValue};

/// The tokenizer of a model.
pub type Tokenizer = Vocab;

/// Streaming detokenizer over a shared tokenizer (never splits a UTF-8 character).
pub type TextStream = wasm_chord_tokenizer::Detokenizer<Arc<Tokenizer>>;

/// Builds the tokenizer from `gguf`'s metadata. Errors: `ERR_UNSUPPORTED_TOKENIZER` (model or
/// pre-tokenizer named), `ERR_GGUF_BAD_TOKENIZER` (malformed vocabulary), `ERR_GGUF_BAD_METADATA`.
pub fn tokenizer_from_gguf(gguf: &GgufFile) -> Result<Arc<Tokenizer>> {
    let Some(model) = gguf.get_str("tokenizer.ggml.model") else {
        return fail(E::UnsupportedTokenizer, "the file has no tokenizer (tokenizer.ggml.model is missing)");
    };
    let tokens = strings(gguf, "tokenizer.ggml.tokens")?.ok_or_else(|| ChordError::new(E::GgufBadTokenizer, "tokenizer.ggml.tokens is missing"))?;
    let mut data = VocabData {
        model: model.to_string(),
        pre: gguf.get_str("tokenizer.ggml.pre").map(str::to_string),
        tokens,
        scores: numbers(gguf, "tokenizer.ggml.scores")?.map(|v| v.into_iter().map(|x| x as f32).collect()),
        token_types: numbers(gguf, "tokenizer.ggml.token_type")?.map(|v| v.into_iter().map(|x| x as i32).collect()),
        merges: strings(gguf, "tokenizer.ggml.merges")?,
        add_bos_token: flag(gguf, "add_bos_token"),
        add_eos_token: flag(gguf, "add_eos_token"),
        add_space_prefix: flag(gguf, "add_space_prefix"),
        general_name: gguf.get_str("general.name").map(str::to_string),
        ..VocabData::default()
    };
    for (key, field) in SPECIAL_IDS {
        if let Some(v) = id(gguf, key) {
            *field(&mut data) = Some(v);
        }
    }
    Vocab::new(data).map(Arc::new).map_err(map_error)
}

/// The `VocabData` field a special-token id goes to.
type IdField = fn(&mut VocabData) -> &mut Option<u32>;

/// Every special-token key (`tokenizer.ggml.{key}`) and the field its id sets; each id must name
/// a token of the vocabulary. A later key overrides an earlier one for the same field: llama.cpp
/// lets the deprecated prefix/suffix/middle keys win over `fim_pre`/`fim_suf`/`fim_mid`.
const SPECIAL_IDS: &[(&str, IdField)] = &[
    ("bos_token_id", |d| &mut d.bos_token_id),
    ("eos_token_id", |d| &mut d.eos_token_id),
    ("eot_token_id", |d| &mut d.eot_token_id),
    ("eom_token_id", |d| &mut d.eom_token_id),
    ("unknown_token_id", |d| &mut d.unknown_token_id),
    ("seperator_token_id", |d| &mut d.separator_token_id),
    ("padding_token_id", |d| &mut d.padding_token_id),
    ("mask_token_id", |d| &mut d.mask_token_id),
    ("fim_pre_token_id", |d| &mut d.fim_pre_token_id),
    ("fim_suf_token_id", |d| &mut d.fim_suf_token_id),
    ("fim_mid_token_id", |d| &mut d.fim_mid_token_id),
    ("prefix_token_id", |d| &mut d.fim_pre_token_id),
    ("suffix_token_id", |d| &mut d.fim_suf_token_id),
    ("middle_token_id", |d| &mut d.fim_mid_token_id),
    ("fim_pad_token_id", |d| &mut d.fim_pad_token_id),
    ("fim_rep_token_id", |d| &mut d.fim_rep_token_id),
    ("fim_sep_token_id", |d| &mut d.fim_sep_token_id),
];

/// The tokenizer of a model whose embedding table has `n_vocab` rows, checked at load. A file
/// without a tokenizer, or with one of a kind not implemented here, still loads (token-level
/// calls work; text calls get the kept `ERR_UNSUPPORTED_TOKENIZER`). A defective one is a load
/// error, `ERR_GGUF_BAD_TOKENIZER`: a malformed vocabulary, a special-token id out of range (llama.cpp
/// ignores such an id and falls back to a default; here the file is said to be wrong instead), or
/// more tokens than the embedding has rows.
pub fn model_tokenizer(gguf: &GgufFile, n_vocab: u32) -> Result<std::result::Result<Arc<Tokenizer>, ChordError>> {
    let tok = match tokenizer_from_gguf(gguf) {
        Ok(t) => t,
        Err(e) if e.code == E::UnsupportedTokenizer => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    let n = tok.n_tokens();
    for (key, _) in SPECIAL_IDS {
        let key = format!("tokenizer.ggml.{key}");
        if let Some(v) = gguf.get(&key)
            && v.as_u64().is_none_or(|id| id >= u64::from(n))
        {
            return fail(E::GgufBadTokenizer, format!("{key} is {v}, not a token id (the vocabulary has {n} tokens)"));
        }
    }
    if n > n_vocab {
        return fail(E::GgufBadTokenizer, format!("the vocabulary has {n} tokens but token_embd.weight has {n_vocab} rows"));
    }
    Ok(Ok(tok))
}

fn map_error(e: TokenizerError) -> ChordError {
    let code = match e.code() {
        "ERR_UNSUPPORTED_TOKENIZER" => E::UnsupportedTokenizer,
        _ => E::GgufBadTokenizer,
    };
    // The tokenizer crate's messages start with their code; the ChordError carries it already.
    let text = e.to_string();
    let message = text.strip_prefix(e.code()).and_then(|t| t.strip_prefix(": ")).unwrap_or(&text);
    ChordError::new(code, message)
}

fn id(gguf: &GgufFile, key: &str) -> Option<u32> {
    gguf.get_u64(&format!("tokenizer.ggml.{key}")).and_then(|v| u32::try_from(v).ok())
}

fn flag(gguf: &GgufFile, key: &str) -> Option<bool> {
    gguf.get(&format!("tokenizer.ggml.{key}")).and_then(GgufValue::as_bool)
}

fn strings(gguf: &GgufFile, key: &str) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(v) = gguf.get(key) else { return Ok(None) };
    let GgufValue::Array(a) = v else { return fail(E::GgufBadMetadata, format!("{key} is not an array")) };
    (0..a.len())
        .map(|i| a.str_at(i).map(|s| s.as_bytes().to_vec()).ok_or_else(|| ChordError::new(E::GgufBadMetadata, format!("{key}[{i}] is not a string"))))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn numbers(gguf: &GgufFile, key: &str) -> Result<Option<Vec<f64>>> {
    let Some(v) = gguf.get(key) else { return Ok(None) };
    let GgufValue::Array(a) = v else { return fail(E::GgufBadMetadata, format!("{key} is not an array")) };
    a.iter()
        .enumerate()
        .map(|(i, x)| x.as_f64().ok_or_else(|| ChordError::new(E::GgufBadMetadata, format!("{key}[{i}] is not a number"))))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
