//! GGUF tokenizers for wasm-chord, token-for-token identical to llama.cpp.
//!
//! Two families, chosen by `tokenizer.ggml.model`:
//! - `"llama"`: SentencePiece-style BPE over scores with `<0xXX>` byte fallback (Llama 2, Gemma, ...).
//! - `"gpt2"`: byte-level BPE over merges, after a pre-tokenizer picked by `tokenizer.ggml.pre`
//!   (`default`, `gpt-2`, `smollm`, `qwen2`, `llama3`/`llama-bpe` and their aliases; see
//!   [`PreTokenizer`]).
//!
//! Behaviour is ported from llama.cpp (`src/llama-vocab.cpp`, `src/unicode.cpp`) as bundled with
//! node-llama-cpp 3.21.1, the project's reference: [`Vocab::tokenize`] is
//! `llama_tokenize(vocab, text, add_special, parse_special)`, [`Vocab::piece`] is
//! `llama_token_to_piece`, [`Vocab::detokenize`] is node-llama-cpp's `model.detokenize(ids)`.
//!
//! Known, deliberate differences (all outside what real files and valid input reach):
//! - When several tokens have texts llama.cpp uses to *guess* EOT/EOM/FIM ids (e.g. both `<|im_end|>`
//!   and `<|endoftext|>`), llama.cpp's pick depends on `std::unordered_map` order; here the lowest id
//!   wins. Seen on Qwen2.5 (no `eot_token_id` key): llama.cpp reports EOT 151645 (`<|im_end|>`), this
//!   crate 151643 (`<|endoftext|>`); on SmolLM2 both say 0. Only [`Vocab::eot`] is affected: the
//!   end-of-generation set ([`Vocab::is_eog`]) and all token ids are not.
//! - Where llama.cpp aborts or throws (a SentencePiece byte with no `<0xXX>` token, BOS/EOS requested
//!   but absent, out-of-range ids given to detokenize), this crate substitutes the unknown token /
//!   skips the token / renders nothing, and never panics.
//! - Duplicate token texts, which trip an assertion in llama.cpp, are a load error here.
//!
//! ```
//! use wasm_chord_tokenizer::{Vocab, VocabData};
//! let texts = ["<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "▁hi"];
//! let vocab = Vocab::new(VocabData {
//!     model: "llama".into(),
//!     tokens: texts.iter().map(|t| t.as_bytes().to_vec()).collect(),
//!     scores: Some(vec![0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0, -0.5]),
//!     token_types: Some(vec![2, 3, 3, 1, 1, 1, 1, 1]),
//!     ..Default::default()
//! })?;
//! // BOS, then "▁hi" (the space prefix is added, then merged by score).
//! assert_eq!(vocab.tokenize("hi", true, false), [1, 7]);
//! // BOS renders as nothing; the prefix space stays because BOS came first (as in llama.cpp).
//! assert_eq!(vocab.detokenize(&[1, 7]), " hi");
//! assert_eq!(vocab.detokenize(&[7]), "hi");
//! # Ok::<(), wasm_chord_tokenizer::TokenizerError>(())
//! ```

mod bpe;
mod detokenizer;
mod error;
mod pretokenize;
mod spm;
mod unicode;
mod unicode_data;
mod vocab;

pub use detokenizer::Detokenizer;
pub use error::TokenizerError;
pub use pretokenize::{PreTokenizer, SUPPORTED_PRE};
pub use vocab::{DetokenizeOptions, TokenAttr, Vocab, VocabData, VocabKind};
