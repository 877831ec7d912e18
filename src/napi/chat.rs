//! Chat from JavaScript: `model.applyChatTemplate`. Converts the messages and options; the
//! rendering and its tokenization are the core's (`crate::infer::chat`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use super::errors::invalid_option;
use super::generate::{EventArgs, event_fn, run_ids, spawn_generation};
use super::options::{ApplyChatTemplateOptions, GenerateOptions, OptionsOf, ParsedGenerate, read_all};
use super::job::Job;
use super::model::{Model, Shared};
use crate::error::{ChordError, ErrorCode};
use crate::infer::{CHAT_TEMPLATE_KEY, ChatMessage, ChatTemplateContext, Tokenizer, render_chat_template, tokenize_chat};

/// One message of a chat, as Hugging Face chat templates take it.
#[napi(object, js_name = "ChatMessage")]
#[derive(Clone)]
pub struct JsChatMessage {
    /// `'system'`, `'user'`, `'assistant'` (or another role the template knows).
    pub role: String,
    /// The message text. With `tokenize: true` it is never parsed as special tokens.
    pub content: String,
}

impl From<ChatMessage> for JsChatMessage {
    fn from(m: ChatMessage) -> Self {
        Self { role: m.role, content: m.content }
    }
}

/// What rendering a chat needs: the template (the file's or one given), the file's BOS/EOS
/// text, and the tokenizer.
pub(super) struct ChatRenderer {
    template: String,
    context: ChatTemplateContext,
    vocab: std::result::Result<Arc<Tokenizer>, ChordError>,
}

impl ChatRenderer {
    /// The renderer for `shared`'s model with `template` or else the file's
    /// `tokenizer.chat_template` (`ERR_NO_CHAT_TEMPLATE` if neither; `ERR_DISPOSED`).
    pub(super) fn new(shared: &Shared, template: Option<String>, add_generation_prompt: bool) -> std::result::Result<Self, ChordError> {
        let (file_template, vocab) = shared.view(|v| Ok((v.gguf.get_str(CHAT_TEMPLATE_KEY).map(str::to_string), v.vocab.clone())))?;
        let Some(template) = template.or(file_template) else {
            return Err(ChordError::new(ErrorCode::NoChatTemplate, format!("the file has no {CHAT_TEMPLATE_KEY}; pass a template")));
        };
        let token_text = |id: Option<u32>| -> String {
            match (&vocab, id) {
                (Ok(v), Some(id)) => v.token_text(id).map(|t| String::from_utf8_lossy(t).into_owned()).unwrap_or_default(),
                _ => String::new(),
            }
        };
        let context = ChatTemplateContext {
            add_generation_prompt,
            bos_token: token_text(vocab.as_ref().ok().and_then(|v| v.bos())),
            eos_token: token_text(vocab.as_ref().ok().and_then(|v| v.eos())),
            now_unix: None,
        };
        Ok(Self { template, context, vocab })
    }

    /// The rendered text.
    pub(super) fn text(&self, messages: &[ChatMessage]) -> std::result::Result<String, ChordError> {
        render_chat_template(&self.template, messages, &self.context)
    }

    /// The rendering as token ids: the template's special tokens special, message content never.
    pub(super) fn ids(&self, messages: &[ChatMessage]) -> std::result::Result<Vec<u32>, ChordError> {
        let text = self.text(messages)?;
        let vocab = self.vocab.as_ref().map_err(Clone::clone)?;
        tokenize_chat(vocab, &text, messages)
    }
}

pub(super) fn parse_messages(v: Value) -> std::result::Result<Vec<ChatMessage>, ChordError> {
    let Value::Array(items) = v else { return Err(invalid_option("messages must be an array of { role, content } objects")) };
    items
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(mut m) = m else { return Err(invalid_option(format!("messages[{i}] must be an object {{ role, content }}"))) };
            if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "role" | "content")) {
                return Err(invalid_option(format!("messages[{i}] has the unknown key {k:?} (known: role, content)")));
            }
            let mut text = |key: &str| match m.remove(key) {
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(invalid_option(format!("messages[{i}].{key} must be a string, got {}", json_type(&other)))),
                None => Err(invalid_option(format!("messages[{i}].{key} is missing"))),
            };
            Ok(ChatMessage { role: text("role")?, content: text("content")? })
        })
        .collect()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[napi]
impl Model {
    /// Renders `messages` with the model's chat template (`tokenizer.chat_template` in the file,
    /// or `options.template`) exactly as Hugging Face transformers' `apply_chat_template` does
    /// (jinja2 with `trim_blocks`/`lstrip_blocks`; `bos_token`/`eos_token` are the file's).
    /// Resolves to the text, or with `tokenize: true` to token ids in which message content is
    /// never parsed as special tokens. Feed either to `generate` (ids as they are; text with
    /// `addSpecial: false`, since the template writes BOS itself).
    ///
    /// Rejects with `ERR_NO_CHAT_TEMPLATE` (the file has none and no `template` was given),
    /// `ERR_CHAT_TEMPLATE` (the template does not parse, fails, or calls `raise_exception`: its
    /// message is given), `ERR_INVALID_OPTION`, `ERR_UNSUPPORTED_TOKENIZER` (with `tokenize`),
    /// `ERR_DISPOSED`.
    #[napi(ts_args_type = "messages: ChatMessage[], options?: ApplyChatTemplateOptions", ts_return_type = "Promise<string | number[]>")]
    pub fn apply_chat_template(&self, env: Env, messages: Unknown, options: Option<Unknown>) -> AsyncTask<Job<Either<String, Vec<u32>>>> {
        let input = (|| -> std::result::Result<(Vec<ChatMessage>, ApplyChatTemplateOptions), ChordError> {
            let messages: Value = env.from_js_value(messages).map_err(|e| invalid_option(format!("messages: {e}")))?;
            Ok((parse_messages(messages)?, read_all(&env, options)?))
        })();
        let shared = self.shared.clone();
        Job::task(move || {
            let (messages, o) = input?;
            let renderer = ChatRenderer::new(&shared, o.template, o.add_generation_prompt.unwrap_or(true))?;
            if o.tokenize.unwrap_or(false) { renderer.ids(&messages).map(Either::B) } else { renderer.text(&messages).map(Either::A) }
        })
    }
    /// Internal: `model.chat` (`src/napi/wrappers.js`) runs on this like `generate` on
    /// `_generate`: renders `messages` with the template and generates from position 0.
    #[napi(js_name = "_chat", skip_typescript)]
    pub fn chat_raw(&self, env: Env, messages: Unknown, options: Option<Unknown>, callback: Function<'_, EventArgs, ()>) -> Result<()> {
        let events = event_fn(callback, self.shared.clone())?;
        let input = (|| -> std::result::Result<(Vec<ChatMessage>, ParsedGenerate), ChordError> {
            let messages: Value = env.from_js_value(messages).map_err(|e| invalid_option(format!("messages: {e}")))?;
            Ok((parse_messages(messages)?, GenerateOptions::parse(&env, options, OptionsOf::Chat)?))
        })();
        let shared = self.shared.clone();
        spawn_generation(events, input, move |(messages, p), events| {
            let ids = ChatRenderer::new(&shared, p.template.clone(), true)?.ids(&messages)?;
            run_ids(&shared, &ids, &p, events, None)
        })
    }
}
