//! The one error type of the core, and its stable codes.
//!
//! Every failure carries an [`ErrorCode`] (its string form, `ERR_*`, becomes `err.code` in
//! JavaScript through the one mapping in `src/napi/errors.rs`) and a message with the numbers.

use std::fmt;

/// Stable error codes. The string form (`ERR_*`) is part of the public API (listed in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The file does not start with `GGUF`.
    GgufBadMagic,
    /// GGUF version 1, or a version newer than 3.
    GgufUnsupportedVersion,
    /// A big-endian GGUF file (only little-endian is supported).
    GgufBigEndian,
    /// The header, metadata or tensor directory runs past the end of the file.
    GgufTruncated,
    /// A metadata value type id that GGUF does not define.
    GgufBadValueType,
    /// A string longer than the reader's cap.
    GgufStringTooLong,
    /// An array longer than the reader's cap or than the bytes left in the file.
    GgufArrayTooLong,
    /// Arrays nested deeper than the reader allows.
    GgufNestingTooDeep,
    /// A string that is not UTF-8.
    GgufBadUtf8,
    /// The same metadata key twice.
    GgufDuplicateKey,
    /// More key/values or tensors than the bytes left in the file could describe.
    GgufTooManyEntries,
    /// `general.alignment` is not a non-zero power of two, or has the wrong type.
    GgufBadAlignment,
    /// A tensor name longer than 64 bytes, or empty.
    GgufTensorNameTooLong,
    /// The same tensor name twice.
    GgufDuplicateTensor,
    /// `n_dims` is 0 or greater than 4.
    GgufBadDims,
    /// A dimension is negative, the element count overflows, or the row length is not a multiple
    /// of the type's block size.
    GgufBadShape,
    /// A ggml type id this reader does not know.
    GgufUnknownType,
    /// A tensor offset that is not a multiple of the alignment.
    GgufMisalignedTensor,
    /// A tensor whose data lies (partly) outside the file.
    GgufTensorOutOfBounds,
    /// Two tensors whose data overlap.
    GgufTensorOverlap,
    /// A metadata key has the wrong type or an impossible value.
    GgufBadMetadata,
    /// An I/O error (opening or reading the file).
    Io,
    /// The model file changed after it was loaded (its size, modification time, or the file its
    /// path names; the message says which): every later read of it fails.
    FileChanged,
    /// An option has the wrong type or value.
    InvalidOption,
    /// An invalid `MemoryLayout`.
    InvalidLayout,
    /// The model cannot fit a wasm32 guest memory in WHOLE mode.
    ModelTooLargeForWasm32,
    /// The layer cache cannot hold even one layer, or a preload does not fit.
    CacheTooSmall,
    /// A layer index out of range.
    NoSuchLayer,
    /// Creating or reading a Memory64 region failed.
    Memory64,
    /// The guest trapped.
    GuestTrap,
    /// The guest returned an error status.
    Guest,
    /// The model's architecture has no forward pass here (`general.architecture` named).
    UnsupportedArch,
    /// A tensor the architecture needs is missing (named in the message).
    MissingTensor,
    /// A hyperparameter of the architecture (`{arch}.block_count`, head counts, …) is missing,
    /// out of range or inconsistent with another (key and numbers named).
    ModelBadHparams,
    /// A tensor's type or shape is not what the architecture's descriptor expects from the
    /// hyperparameters (tensor, shape and expectation named).
    ModelTensorShape,
    /// The tokenizer model or pre-tokenizer of the file is not supported.
    UnsupportedTokenizer,
    /// The vocabulary in the file is malformed (no tokens, mismatched lengths, duplicates).
    GgufBadTokenizer,
    /// The requested context (KV cache) cannot fit the wasm32 guest, or a prompt plus
    /// `maxTokens` exceeds the context.
    ContextTooLarge,
    /// The file has no `tokenizer.chat_template` and no `template` was given.
    NoChatTemplate,
    /// A chat template does not parse, fails while rendering, or calls `raise_exception` (its
    /// message given); or message content holding control-token text was rewritten by the template.
    ChatTemplate,
    /// The operation was aborted through its `AbortSignal`.
    Aborted,
    /// A callback given to the call (`onLoadProgress`, `onTextChunk`) threw; the call stopped and
    /// the thrown value is the error's `cause` (raised by the JS wrappers, `src/napi/wrappers.js`).
    Callback,
    /// The model was disposed.
    Disposed,
    /// A bug: something the code believed impossible.
    Internal,
}

impl ErrorCode {
    /// The stable string form, e.g. `ERR_GGUF_BAD_MAGIC`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            GgufBadMagic => "ERR_GGUF_BAD_MAGIC",
            GgufUnsupportedVersion => "ERR_GGUF_UNSUPPORTED_VERSION",
            GgufBigEndian => "ERR_GGUF_BIG_ENDIAN",
            GgufTruncated => "ERR_GGUF_TRUNCATED",
            GgufBadValueType => "ERR_GGUF_BAD_VALUE_TYPE",
            GgufStringTooLong => "ERR_GGUF_STRING_TOO_LONG",
            GgufArrayTooLong => "ERR_GGUF_ARRAY_TOO_LONG",
            GgufNestingTooDeep => "ERR_GGUF_NESTING_TOO_DEEP",
            GgufBadUtf8 => "ERR_GGUF_BAD_UTF8",
            GgufDuplicateKey => "ERR_GGUF_DUPLICATE_KEY",
            GgufTooManyEntries => "ERR_GGUF_TOO_MANY_ENTRIES",
            GgufBadAlignment => "ERR_GGUF_BAD_ALIGNMENT",
            GgufTensorNameTooLong => "ERR_GGUF_TENSOR_NAME_TOO_LONG",
            GgufDuplicateTensor => "ERR_GGUF_DUPLICATE_TENSOR",
            GgufBadDims => "ERR_GGUF_BAD_DIMS",
            GgufBadShape => "ERR_GGUF_BAD_SHAPE",
            GgufUnknownType => "ERR_GGUF_UNKNOWN_TYPE",
            GgufMisalignedTensor => "ERR_GGUF_MISALIGNED_TENSOR",
            GgufTensorOutOfBounds => "ERR_GGUF_TENSOR_OUT_OF_BOUNDS",
            GgufTensorOverlap => "ERR_GGUF_TENSOR_OVERLAP",
            GgufBadMetadata => "ERR_GGUF_BAD_METADATA",
            Io => "ERR_IO",
            FileChanged => "ERR_FILE_CHANGED",
            InvalidOption => "ERR_INVALID_OPTION",
            InvalidLayout => "ERR_INVALID_LAYOUT",
            ModelTooLargeForWasm32 => "ERR_MODEL_TOO_LARGE_FOR_WASM32",
            CacheTooSmall => "ERR_CACHE_TOO_SMALL",
            NoSuchLayer => "ERR_NO_SUCH_LAYER",
            Memory64 => "ERR_MEMORY64",
            GuestTrap => "ERR_GUEST_TRAP",
            Guest => "ERR_GUEST",
            UnsupportedArch => "ERR_UNSUPPORTED_ARCH",
            MissingTensor => "ERR_MODEL_MISSING_TENSOR",
            ModelBadHparams => "ERR_MODEL_BAD_HPARAMS",
            ModelTensorShape => "ERR_MODEL_TENSOR_SHAPE",
            UnsupportedTokenizer => "ERR_UNSUPPORTED_TOKENIZER",
            GgufBadTokenizer => "ERR_GGUF_BAD_TOKENIZER",
            ContextTooLarge => "ERR_CONTEXT_TOO_LARGE",
            NoChatTemplate => "ERR_NO_CHAT_TEMPLATE",
            ChatTemplate => "ERR_CHAT_TEMPLATE",
            Aborted => "ERR_ABORTED",
            Callback => "ERR_CALLBACK",
            Disposed => "ERR_DISPOSED",
            Internal => "ERR_INTERNAL",
        }
    }
}

/// The core's error: a stable code and a message that carries the numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChordError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable message with the numbers involved.
    pub message: String,
}

impl ChordError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The error's stable code string.
    pub fn code_str(&self) -> &'static str {
        self.code.as_str()
    }
}

impl fmt::Display for ChordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ChordError {}

/// Core result type.
pub type Result<T> = std::result::Result<T, ChordError>;

/// Shorthand: `Err(ChordError::new(code, msg))`.
pub fn fail<T>(code: ErrorCode, message: impl Into<String>) -> Result<T> {
    Err(ChordError::new(code, message))
}

/// Maps an I/O error with context.
pub fn io_err(context: impl fmt::Display, e: std::io::Error) -> ChordError {
    ChordError::new(ErrorCode::Io, format!("{context}: {e}"))
}
