//! Chat sessions from JavaScript: `model.createSession()` and the `ChatSession` class. A session
//! keeps the chat history and its own KV cache (a sequence of the model's, see
//! `Memory64Model::generate_in_sequence`): each turn renders the whole history with the chat
//! template, and only what the cache does not hold as a fresh evaluation would is evaluated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::chat::{ChatRenderer, JsChatMessage};
use super::errors::{invalid_option, to_js};
use super::generate::{EventArgs, InSequence, event_fn, run_ids, spawn_generation};
use super::options::{CreateSessionOptions, GenerateOptions, OptionsOf, read_all};
use super::job::Job;
use super::model::{Model, Shared};
use crate::error::{ChordError, ErrorCode};
use crate::infer::ChatMessage;
use crate::model::SequenceId;

/// The history and a counter `reset()` bumps (a turn that started before a reset is not
/// recorded after it).
struct History {
    messages: Vec<ChatMessage>,
    epoch: u64,
}

/// A chat with a model that keeps its history and its own KV cache: each `prompt` evaluates only
/// what follows the previous turn's prompt (`timings.promptTokens`; the reused ones are
/// `timings.cachedTokens`), and its reply is exactly the text `generate` gives on the whole
/// rendered history. Several sessions on one model each keep their own cache (switching between
/// them copies the cache positions in use in and out of the guest). Create it with
/// `model.createSession()`.
#[napi]
pub struct ChatSession {
    shared: Arc<Shared>,
    seq: SequenceId,
    template: Option<String>,
    system_prompt: Option<String>,
    context_length: u32,
    history: Arc<Mutex<History>>,
    /// Turns of one session run one after another, in the order of the `prompt` calls.
    turns: Arc<Turns>,
    closing: Arc<AtomicBool>,
}

/// A queue of turns: each `prompt` call takes the next ticket; a turn runs when every earlier
/// ticket is done (ran, or was dropped unused because its call failed before it started).
#[derive(Default)]
struct Turns {
    /// (next ticket to hand out, the ticket whose turn it is, later tickets already done).
    state: Mutex<(u64, u64, BTreeSet<u64>)>,
    done: Condvar,
}

/// A place in a session's queue of turns; dropping it (run or not) lets the next turn go.
struct Ticket {
    turns: Arc<Turns>,
    id: u64,
}

impl Turns {
    fn ticket(turns: &Arc<Turns>) -> Ticket {
        let mut st = locked(&turns.state);
        st.0 += 1;
        Ticket { turns: turns.clone(), id: st.0 - 1 }
    }
}

impl Ticket {
    /// Blocks until every earlier ticket is done.
    fn wait(&self) {
        let mut st = locked(&self.turns.state);
        while st.1 != self.id {
            st = self.turns.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut guard = locked(&self.turns.state);
        let (_, current, done) = &mut *guard;
        done.insert(self.id);
        while done.remove(current) {
            *current += 1;
        }
        self.turns.done.notify_all();
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn session_disposed() -> ChordError {
    ChordError::new(ErrorCode::Disposed, "the session was disposed")
}

impl ChatSession {
    fn opening(system_prompt: &Option<String>) -> Vec<ChatMessage> {
        system_prompt.iter().map(|s| ChatMessage { role: "system".into(), content: s.clone() }).collect()
    }
}

impl Drop for ChatSession {
    /// A session collected without `dispose()`: its cache is freed at the model's next call.
    fn drop(&mut self) {
        if !self.closing.swap(true, Ordering::SeqCst) {
            locked(&self.shared.orphans).push(self.seq);
        }
    }
}

#[napi]
impl Model {
    /// Starts a chat session on this model: `await session.prompt(text)` answers as the
    /// assistant, keeping the history and the session's own KV cache. Uses the file's chat
    /// template unless `template` is given. Throws `ERR_NO_CHAT_TEMPLATE` (neither),
    /// `ERR_INVALID_OPTION`, `ERR_DISPOSED`.
    #[napi(ts_args_type = "options?: CreateSessionOptions")]
    pub fn create_session(&self, env: Env, options: Option<Unknown>) -> Result<ChatSession> {
        let make = || -> std::result::Result<ChatSession, ChordError> {
            let o: CreateSessionOptions = read_all(&env, options)?;
            let context_length = o.context_length(self.shared.n_ctx)?;
            // The template must exist now (it is rendered on each turn).
            ChatRenderer::new(&self.shared, o.template.clone(), true)?;
            let history = History { messages: ChatSession::opening(&o.system_prompt), epoch: 0 };
            Ok(ChatSession {
                shared: self.shared.clone(),
                seq: self.shared.next_sequence.fetch_add(1, Ordering::SeqCst),
                template: o.template,
                system_prompt: o.system_prompt,
                context_length,
                history: Arc::new(Mutex::new(history)),
                turns: Arc::new(Turns::default()),
                closing: Arc::new(AtomicBool::new(false)),
            })
        };
        make().map_err(|e| to_js(&env, e))
    }
}

#[napi]
impl ChatSession {
    /// Internal: `session.prompt` (`src/napi/wrappers.js`) runs on this like `generate` on
    /// `_generate`.
    #[napi(js_name = "_prompt", skip_typescript)]
    pub fn prompt_raw(&self, env: Env, text: Unknown, options: Option<Unknown>, callback: Function<'_, EventArgs, ()>) -> Result<()> {
        let events = event_fn(callback, self.shared.clone())?;
        let input = (|| -> std::result::Result<_, ChordError> {
            if text.get_type().ok() != Some(ValueType::String) {
                return Err(invalid_option("the prompt must be a string"));
            }
            // SAFETY: checked to be a string.
            let text: String = unsafe { text.cast() }.map_err(|e| invalid_option(e.to_string()))?;
            Ok((text, GenerateOptions::parse(&env, options, OptionsOf::SessionPrompt)?))
        })();
        // The ticket is taken here, on the JS thread, so that turns run in call order.
        let ticket = Turns::ticket(&self.turns);
        let (shared, history, closing) = (self.shared.clone(), self.history.clone(), self.closing.clone());
        let (seq, template, context_limit) = (self.seq, self.template.clone(), self.context_length as usize);
        spawn_generation(events, input, move |(text, p), events| {
            ticket.wait();
            if closing.load(Ordering::SeqCst) {
                return Err(session_disposed());
            }
            let user = ChatMessage { role: "user".into(), content: text };
            let (mut messages, epoch) = {
                let h = locked(&history);
                (h.messages.clone(), h.epoch)
            };
            messages.push(user.clone());
            let ids = ChatRenderer::new(&shared, template, true)?.ids(&messages)?;
            let g = run_ids(&shared, &ids, &p, events, Some(InSequence { seq, context_limit, closing: &closing }))?;
            let mut h = locked(&history);
            if h.epoch == epoch {
                h.messages.push(user);
                h.messages.push(ChatMessage { role: "assistant".into(), content: g.text.clone() });
            }
            Ok(g)
        })
    }

    /// The chat so far: the system prompt (if any), then each turn's user and assistant
    /// messages (a copy). Throws `ERR_DISPOSED` after `dispose()`.
    #[napi(getter)]
    pub fn history(&self, env: Env) -> Result<Vec<JsChatMessage>> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(to_js(&env, session_disposed()));
        }
        Ok(locked(&self.history).messages.iter().cloned().map(Into::into).collect())
    }

    /// Positions this session may fill (its `contextLength`).
    #[napi(getter)]
    pub fn context_length(&self) -> u32 {
        self.context_length
    }

    /// Starts the chat over: the history goes back to the system prompt. The KV cache is kept,
    /// so the next turn still reuses the system prompt's tokens. A turn running meanwhile
    /// finishes but is not recorded. Throws `ERR_DISPOSED` after `dispose()`.
    #[napi]
    pub fn reset(&self, env: Env) -> Result<()> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(to_js(&env, session_disposed()));
        }
        let mut h = locked(&self.history);
        h.messages = Self::opening(&self.system_prompt);
        h.epoch += 1;
        Ok(())
    }

    /// Frees the session's KV cache and history. A running `prompt` stops and rejects with
    /// `ERR_DISPOSED`; later calls reject with `ERR_DISPOSED`. The model stays usable.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispose(&self) -> AsyncTask<Job<()>> {
        self.closing.store(true, Ordering::SeqCst);
        locked(&self.history).messages.clear();
        let (shared, seq) = (self.shared.clone(), self.seq);
        let after = self.shared.clone();
        Job::task_then(
            move || {
                if let Some(m) = shared.lock().as_mut() {
                    m.drop_sequence(seq);
                    shared.note_sessions(m);
                }
                Ok(())
            },
            move |env| after.sync_external(env),
        )
    }

    /// Whether `dispose()` was called.
    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}
