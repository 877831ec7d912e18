//! Text generation: architecture resolution from GGUF metadata ([`arch`]), the sampler
//! ([`sampler`]) and the generation loop ([`generate`]). The forward pass itself runs in the
//! guest (`guest/src/forward.rs`); this module drives it.

pub mod arch;
pub mod chat;
pub mod generate;
pub mod sampler;
pub mod vocab;

pub use chat::{CHAT_TEMPLATE_KEY, ChatMessage, ChatTemplateContext, render_chat_template, tokenize_chat};
pub use arch::{ArchConfig, DEFAULT_BATCH, DEFAULT_CONTEXT_CAP, resolve};
pub use generate::{Continuation, GenerateOptions, Generation, Runner, StopReason, Timings, continuation_start, eval_prompt, generate, generate_continuing, prompt_rounding, rounding_class};
pub use sampler::{Sampler, SamplerOptions, argmax};
pub use vocab::{TextStream, Tokenizer, model_tokenizer, tokenizer_from_gguf};
