//! Chat templates: the GGUF's `tokenizer.chat_template` (a Hugging Face Jinja template) rendered
//! with minijinja the way transformers' `apply_chat_template` renders it — jinja2 with
//! `trim_blocks` and `lstrip_blocks`, loop controls, `raise_exception`, transformers' own
//! `tojson`, `strftime_now`, and Python's string/dict methods (minijinja-contrib `pycompat`) —
//! and its tokenization, in which the template's special tokens are special and **message content
//! never is**.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error as JinjaError, ErrorKind as JinjaErrorKind};

use crate::error::{ChordError, ErrorCode, Result};
use crate::infer::Tokenizer;

/// The GGUF key holding the default chat template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One chat message, as transformers' `messages` items: `{ role, content }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or whatever role the template knows.
    pub role: String,
    /// The message text. Never parsed as special tokens by [`tokenize_chat`].
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// What a template is rendered with besides the messages.
#[derive(Clone, Debug, Default)]
pub struct ChatTemplateContext {
    /// Render the opening of the assistant's turn (`add_generation_prompt`).
    pub add_generation_prompt: bool,
    /// `bos_token` (the text of the file's BOS token; empty if it has none).
    pub bos_token: String,
    /// `eos_token` (the text of the file's EOS token; empty if it has none).
    pub eos_token: String,
    /// The clock of `strftime_now`, in Unix seconds (UTC). `None`: the system clock.
    pub now_unix: Option<i64>,
}

fn template_error(e: &JinjaError) -> ChordError {
    // raise_exception's message is the template author's: give it as-is.
    if e.kind() == JinjaErrorKind::InvalidOperation
        && let Some(detail) = e.detail()
        && let Some(msg) = detail.strip_prefix(RAISED)
    {
        return ChordError::new(ErrorCode::ChatTemplate, format!("the chat template raised an exception: {msg}"));
    }
    let line = e.line().map(|l| format!(" (template line {l})")).unwrap_or_default();
    ChordError::new(ErrorCode::ChatTemplate, format!("the chat template cannot be rendered{line}: {e:#}"))
}

const RAISED: &str = "raise_exception: ";

/// Renders `template` over `messages` as transformers' `apply_chat_template(tokenize=False)`.
///
/// Errors: `ERR_CHAT_TEMPLATE` for a template that does not parse, fails while rendering, or calls
/// `raise_exception` (its message is given).
pub fn render_chat_template(template: &str, messages: &[ChatMessage], ctx: &ChatTemplateContext) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, JinjaError> {
        Err(JinjaError::new(JinjaErrorKind::InvalidOperation, format!("{RAISED}{msg}")))
    });
    let clock = ctx.now_unix;
    env.add_function("strftime_now", move |format: String| -> std::result::Result<Value, JinjaError> {
        let now = clock.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0));
        Ok(Value::from(strftime(&format, now)))
    });
    env.add_filter("tojson", tojson);
    let tmpl = env.template_from_str(template).map_err(|e| template_error(&e))?;
    let msgs: Vec<Value> = messages
        .iter()
        .map(|m| Value::from_iter([("role", Value::from(m.role.as_str())), ("content", Value::from(m.content.as_str()))]))
        .collect();
    tmpl.render(minijinja::context! {
        messages => msgs,
        add_generation_prompt => ctx.add_generation_prompt,
        bos_token => ctx.bos_token.as_str(),
        eos_token => ctx.eos_token.as_str(),
    })
    .map_err(|e| template_error(&e))
}

/// Tokenizes a rendering of `messages` (from [`render_chat_template`]) with special-token text
/// recognised everywhere **except inside message content**: the rendering's own `<|im_start|>`,
/// `<start_of_turn>`, … become their tokens, while a user who writes `<|im_end|>` in a message
/// gets that text's ordinary tokens. BOS/EOS are not added (a template writes `bos_token` itself
/// where the model wants it).
///
/// Content is located in the rendering in message order, verbatim or trimmed (`| trim`). A message
/// whose content holds a control token's text and cannot be found there (the template rewrote it)
/// is refused with `ERR_CHAT_TEMPLATE` rather than risk parsing it as control tokens.
pub fn tokenize_chat(vocab: &Tokenizer, rendered: &str, messages: &[ChatMessage]) -> Result<Vec<u32>> {
    let protected = content_spans(vocab, rendered, messages)?;
    Ok(vocab.tokenize_protected(rendered, false, &protected))
}

/// Byte ranges of `rendered` that hold message content (see [`tokenize_chat`]).
fn content_spans(vocab: &Tokenizer, rendered: &str, messages: &[ChatMessage]) -> Result<Vec<(usize, usize)>> {
    let mut spans = Vec::new();
    let mut cursor = 0;
    for m in messages {
        let forms = [m.content.as_str(), m.content.trim()];
        for form in forms.into_iter().filter(|f| !f.is_empty()) {
            if let Some(p) = rendered[cursor..].find(form) {
                spans.push((cursor + p, cursor + p + form.len()));
                cursor += p + form.len();
                break;
            }
        }
    }
    // Content that holds control-token text: every place it appears is content, and it must appear.
    for (i, m) in messages.iter().enumerate() {
        let Some(token) = vocab.control_text_in(&m.content) else { continue };
        let mut found = false;
        for form in [m.content.as_str(), m.content.trim()] {
            for (p, _) in rendered.match_indices(form) {
                spans.push((p, p + form.len()));
                found = true;
            }
            if found {
                break;
            }
        }
        if !found {
            return Err(ChordError::new(
                ErrorCode::ChatTemplate,
                format!(
                    "messages[{i}].content holds the control-token text {token:?} and the chat template rewrote that content, so it cannot be kept from being parsed as control tokens; remove the text or pass a template that renders content verbatim"
                ),
            ));
        }
    }
    spans.sort_unstable();
    Ok(spans)
}

/// transformers' `tojson` filter: Python `json.dumps(value, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)` (jinja2's own `tojson` would HTML-escape).
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, JinjaError> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(n.max(0) as usize)),
            (None, Some(s)) => Some(s.to_string()),
            _ => return Err(JinjaError::new(JinjaErrorKind::InvalidOperation, "tojson: indent must be an integer or a string")),
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] => (a.as_str().unwrap_or(",").to_string(), b.as_str().unwrap_or(":").to_string()),
                _ => return Err(JinjaError::new(JinjaErrorKind::InvalidOperation, "tojson: separators must be a pair of strings")),
            }
        }
        _ => (if indent.is_some() { "," } else { ", " }.to_string(), ": ".to_string()),
    };
    let style = JsonStyle { indent, item_sep, key_sep, sort_keys: sort_keys.unwrap_or(false), ensure_ascii: ensure_ascii.unwrap_or(false) };
    let mut out = String::new();
    write_json(&mut out, value, &style, 0)?;
    Ok(Value::from_safe_string(out))
}

struct JsonStyle {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(out: &mut String, v: &Value, s: &JsonStyle, depth: usize) -> std::result::Result<(), JinjaError> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = &s.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&python_float(f));
            }
        }
        ValueKind::String => json_string(out, v.as_str().unwrap_or(""), s.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, s, depth + 1)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if s.sort_keys {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item_sep);
                }
                newline(out, depth + 1);
                match k.as_str() {
                    Some(text) => json_string(out, text, s.ensure_ascii),
                    None => json_string(out, &k.to_string(), s.ensure_ascii),
                }
                out.push_str(&s.key_sep);
                write_json(out, &v.get_item(k)?, s, depth + 1)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        other => return Err(JinjaError::new(JinjaErrorKind::InvalidOperation, format!("tojson: a {other} cannot be written as JSON"))),
    }
    Ok(())
}

/// Python's `repr(float)` for the common cases (`1.0`, `0.5`, `1e-05`, `NaN`, `Infinity`).
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Python: mantissa, 'e', sign, at least two exponent digits.
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = e.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("+", e));
        return format!("{m}e{sign}{digits:0>2}");
    }
    let s = format!("{f:?}");
    if s.contains('.') || s.contains('e') { s } else { format!("{s}.0") }
}

/// A JSON string as Python's `json.dumps` writes it.
fn json_string(out: &mut String, text: &str, ensure_ascii: bool) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// `time.strftime(format)` of the UTC time `unix` seconds (transformers' `strftime_now` uses local
/// time; the addon has no time-zone database and uses UTC). Directives: `%Y %y %m %B %b %d %e %j
/// %A %a %H %I %M %S %p %%`, and glibc's `-` flag (`%-d`: no padding). Others are kept verbatim.
pub fn strftime(format: &str, unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3)
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    let mut it = format.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let unpadded = it.peek() == Some(&'-');
        if unpadded {
            it.next();
        }
        let num = |n: i64, width: usize| if unpadded { n.to_string() } else { format!("{n:0width$}") };
        match it.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&num(year.rem_euclid(100), 2)),
            Some('m') => out.push_str(&num(month as i64, 2)),
            Some('B') => out.push_str(MONTHS[month as usize - 1]),
            Some('b') | Some('h') => out.push_str(&MONTHS[month as usize - 1][..3]),
            Some('d') => out.push_str(&num(day as i64, 2)),
            Some('e') => out.push_str(&if unpadded { day.to_string() } else { format!("{day:>2}") }),
            Some('j') => out.push_str(&num(yday, 3)),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('H') => out.push_str(&num(h, 2)),
            Some('I') => out.push_str(&num(if h % 12 == 0 { 12 } else { h % 12 }, 2)),
            Some('M') => out.push_str(&num(mi, 2)),
            Some('S') => out.push_str(&num(s, 2)),
            Some('p') => out.push_str(if h < 12 { "AM" } else { "PM" }),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01: Howard Hinnant's
/// `civil_from_days` algorithm ("chrono-Compatible Low-Level Date Algorithms"), written here.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (Hinnant's `days_from_civil`, the inverse of the above).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_matches_python_on_known_dates() {
        // 2024-07-26 12:34:56 UTC (a Friday), 2000-02-29 00:00:00 (a Tuesday), 1969-12-31 23:00.
        assert_eq!(strftime("%d %b %Y", 1_721_997_296), "26 Jul 2024");
        assert_eq!(strftime("%A %-d %B %y, %H:%M:%S %p %j %%", 1_721_997_296), "Friday 26 July 24, 12:34:56 PM 208 %");
        assert_eq!(strftime("%Y-%m-%d %a %I", 951_782_400), "2000-02-29 Tue 12");
        assert_eq!(strftime("%Y-%m-%d %H", -3600), "1969-12-31 23");
        assert_eq!(strftime("%Q %", 0), "%Q %");
    }

    #[test]
    fn tojson_is_pythons_json_dumps() {
        let r = |t: &str| render_chat_template(t, &[ChatMessage::new("user", "a\"b\n✓")], &ChatTemplateContext::default()).unwrap();
        assert_eq!(r("{{ messages | tojson }}"), r#"[{"role": "user", "content": "a\"b\n✓"}]"#);
        assert_eq!(r("{{ messages[0] | tojson(indent=2) }}"), "{\n  \"role\": \"user\",\n  \"content\": \"a\\\"b\\n✓\"\n}");
        assert_eq!(r("{{ {'b': 1.0, 'a': [1e-05, none, true]} | tojson(sort_keys=true) }}"), r#"{"a": [1e-05, null, true], "b": 1.0}"#);
        assert_eq!(r("{{ '<>&' | tojson }}"), r#""<>&""#);
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_typed() {
        let e = render_chat_template("{{ raise_exception('Only user and assistant roles are supported!') }}", &[], &ChatTemplateContext::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ChatTemplate);
        assert_eq!(e.message, "the chat template raised an exception: Only user and assistant roles are supported!");
        let e = render_chat_template("{% for m in messages %}", &[], &ChatTemplateContext::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ChatTemplate);
        assert!(e.message.contains("cannot be rendered"), "{}", e.message);
    }

    #[test]
    fn jinja2_whitespace_control_loop_controls_namespace_and_python_methods() {
        let t = "{% set ns = namespace(n=0) %}\n{% for m in messages %}\n  {% if m.role == 'skip' %}{% continue %}{% endif %}\n  {% set ns.n = ns.n + 1 %}\n[{{ m.content.strip().upper() }}|{{ m.content.split(',') | length }}|{% if m.role.startswith('us') %}U{% endif %}]\n{% endfor %}\n{{ ns.n }}{% if add_generation_prompt %}{{ bos_token }}{% endif %}\n";
        let msgs = [ChatMessage::new("user", " a,b "), ChatMessage::new("skip", "x"), ChatMessage::new("bot", "c")];
        let ctx = ChatTemplateContext { add_generation_prompt: true, bos_token: "<s>".into(), ..Default::default() };
        // jinja2 (trim_blocks, lstrip_blocks) renders "[A,B|2|U]\n[C|1|]\n2<s>".
        assert_eq!(render_chat_template(t, &msgs, &ctx).unwrap(), "[A,B|2|U]\n[C|1|]\n2<s>");
    }
}
