//! The one error type of this crate.

use std::fmt;

/// Why a [`crate::Vocab`] could not be built. Every variant has a stable [`code`](Self::code) string
/// that the JS layer exposes as `error.code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerError {
    /// `tokenizer.ggml.model` names a tokenizer family this crate does not implement
    /// (supported: `"llama"` = SentencePiece, `"gpt2"` = byte-level BPE).
    /// Code `ERR_UNSUPPORTED_TOKENIZER`.
    UnsupportedModel {
        /// The `tokenizer.ggml.model` value as found.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    /// Code `ERR_UNSUPPORTED_TOKENIZER`.
    UnsupportedPre {
        /// The `tokenizer.ggml.model` value (always `"gpt2"` today).
        model: String,
        /// The `tokenizer.ggml.pre` value as found.
        pre: String,
    },
    /// The tokenizer data is malformed (missing, inconsistent or out of range), e.g. fewer scores than
    /// tokens, no merges for a BPE vocabulary, duplicate token texts. Code `ERR_GGUF_BAD_TOKENIZER`.
    Invalid {
        /// What is wrong, with the numbers involved.
        reason: String,
    },
}

impl TokenizerError {
    /// Stable machine-readable code: `ERR_UNSUPPORTED_TOKENIZER` or `ERR_GGUF_BAD_TOKENIZER`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedModel { .. } | Self::UnsupportedPre { .. } => {
                "ERR_UNSUPPORTED_TOKENIZER"
            }
            Self::Invalid { .. } => "ERR_GGUF_BAD_TOKENIZER",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedModel { model } => write!(
                f,
                "{}: tokenizer.ggml.model '{}' is not supported (supported: 'llama', 'gpt2')",
                self.code(),
                model.escape_debug()
            ),
            Self::UnsupportedPre { model, pre } => write!(
                f,
                "{}: tokenizer.ggml.pre '{}' is not supported for tokenizer.ggml.model '{}' (supported: {})",
                self.code(),
                pre.escape_debug(),
                model.escape_debug(),
                crate::pretokenize::SUPPORTED_PRE.join(", ")
            ),
            Self::Invalid { reason } => write!(f, "{}: {}", self.code(), reason),
        }
    }
}

impl std::error::Error for TokenizerError {}
