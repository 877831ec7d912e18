//! BPE pre-tokenizers: the word splitting that runs before byte-level BPE merges.
//!
//! Ported from llama.cpp `src/unicode.cpp` (`unicode_regex_split` and its hand-written splitters
//! `unicode_regex_split_custom_gpt2/_llama3/_qwen2`) and the per-`tokenizer.ggml.pre` regex lists in
//! `src/llama-vocab.cpp` (`llm_tokenizer_bpe`). llama.cpp runs a *list* of regexes; each one refines
//! the pieces the previous ones produced, and the text between matches becomes a piece of its own.
//! The regexes it does not hand-code run through `std::regex` on a "collapsed" text where every
//! non-ASCII code point is replaced by one byte standing for its category; the splits below that
//! replace those (`Split::NumberEach`, `Split::NumberRuns`, `Split::PunctRuns`, `Split::ThreeDigits`)
//! reproduce what that regex matches on the collapsed text.
//!
//! Everything works on code-point indices: `cpts` is the decoded text, a piece list is a list of
//! lengths in code points that add up to `cpts.len()`.

use crate::unicode::{Flags, flags, to_lower_ascii};

/// The `tokenizer.ggml.pre` values this crate accepts for `tokenizer.ggml.model = "gpt2"`
/// (an absent or empty value means `default`, as in llama.cpp).
pub const SUPPORTED_PRE: &[&str] = &[
    "default",
    "gpt-2",
    "phi-2",
    "mpt",
    "olmo",
    "smollm",
    "starcoder",
    "refact",
    "codeshell",
    "command-r",
    "exaone",
    "minerva-7b",
    "mellum2",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "megrez",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
];

/// Which splitter chain a BPE vocabulary uses (llama.cpp `llama_vocab_pre_type`, the supported subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// llama.cpp `LLAMA_VOCAB_PRE_TYPE_DEFAULT`: punctuation runs, GPT-2 regex, number runs, digit triples.
    Default,
    /// GPT-2's regex alone (`gpt-2`, `phi-2`, `mpt`, `olmo`).
    Gpt2,
    /// Every number code point isolated, then GPT-2's regex (`smollm`, `starcoder`, `refact`, ...).
    Smollm,
    /// Qwen2's regex: like llama3 but one digit per piece (`qwen2`, `deepseek-r1-qwen`, `megrez`, ...).
    Qwen2,
    /// Llama 3's regex: case-insensitive contractions, digits in groups of up to three (`llama3`, `llama-bpe`, `dbrx`, ...).
    Llama3,
}

/// What a `tokenizer.ggml.pre` value sets in llama.cpp's `llama_vocab::impl::load`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreConfig {
    pub pre: PreTokenizer,
    /// `clean_up_tokenization_spaces` applied by detokenize.
    pub clean_spaces: bool,
    /// A word that is itself a token is emitted whole, without merges.
    pub ignore_merges: bool,
    /// Default of `add_bos` when `tokenizer.ggml.add_bos_token` is absent.
    pub add_bos: bool,
}

/// Map `tokenizer.ggml.pre` (for a `gpt2` model) to its configuration; `None` = unsupported.
pub(crate) fn pre_config(pre: Option<&str>) -> Option<PreConfig> {
    let c = |pre, clean_spaces, ignore_merges, add_bos| PreConfig {
        pre,
        clean_spaces,
        ignore_merges,
        add_bos,
    };
    use PreTokenizer::*;
    Some(match pre.unwrap_or("") {
        "" | "default" => c(Default, true, false, false),
        "gpt-2" | "phi-2" | "mpt" | "olmo" => c(Gpt2, true, false, false),
        "smollm" | "command-r" => c(Smollm, false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            c(Smollm, true, false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" => c(Qwen2, false, false, false),
        "megrez" => c(Qwen2, true, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => c(Llama3, true, true, true),
        "dbrx" | "smaug-bpe" => c(Llama3, true, false, false),
        _ => return None,
    })
}

/// One regex of llama.cpp's list, by what it matches.
#[derive(Clone, Copy, Debug)]
enum Split {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (+ llama.cpp's `\s+` fallback).
    Gpt2,
    /// llama3's regex (`\p{N}{1,3}`) or qwen2's (`\p{N}`), per `max_digits`.
    Llama3 { max_digits: usize },
    /// `\p{N}`: every number code point is a piece.
    NumberEach,
    /// `\p{N}+`.
    NumberRuns,
    /// `[\p{P}\$\+<=>\^~\|]+`.
    PunctRuns,
    /// `[0-9][0-9][0-9]`.
    ThreeDigits,
}

impl PreTokenizer {
    fn splits(self) -> &'static [Split] {
        match self {
            Self::Default => &[
                Split::PunctRuns,
                Split::Gpt2,
                Split::NumberRuns,
                Split::ThreeDigits,
            ],
            Self::Gpt2 => &[Split::Gpt2],
            Self::Smollm => &[Split::NumberEach, Split::Gpt2],
            Self::Qwen2 => &[Split::Llama3 { max_digits: 1 }],
            Self::Llama3 => &[Split::Llama3 { max_digits: 3 }],
        }
    }

    /// Split decoded text into pieces (lengths in code points, summing to `cpts.len()`).
    pub(crate) fn split(self, cpts: &[u32]) -> Vec<usize> {
        let mut pieces = vec![cpts.len()];
        if cpts.is_empty() {
            return Vec::new();
        }
        for split in self.splits() {
            pieces = match *split {
                Split::Gpt2 => split_gpt2(cpts, &pieces),
                Split::Llama3 { max_digits } => split_llama3(cpts, &pieces, max_digits),
                Split::NumberEach => split_class(cpts, &pieces, is_number, false),
                Split::NumberRuns => split_class(cpts, &pieces, is_number, true),
                Split::PunctRuns => split_class(cpts, &pieces, is_default_punct, true),
                Split::ThreeDigits => split_three_digits(cpts, &pieces),
            };
        }
        pieces
    }
}

const OUT_OF_RANGE: u32 = 0xFFFF_FFFF;

/// Cursor over one piece `[ini, end)` of the previous split, emitting sub-pieces
/// (llama.cpp's `_get_cpt`, `_get_flags` and `_add_token` lambdas).
struct Chunk<'a> {
    cpts: &'a [u32],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Chunk<'_> {
    #[inline]
    fn cpt(&self, pos: usize) -> u32 {
        if self.ini <= pos && pos < self.end {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    #[inline]
    fn flags(&self, pos: usize) -> Flags {
        if self.ini <= pos && pos < self.end {
            flags(self.cpts[pos])
        } else {
            Flags::default()
        }
    }
    /// Close the current sub-piece at `end`; returns its length.
    #[inline]
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (optionally case-insensitive): the match length.
    fn contraction(&self, pos: usize, ignore_case: bool) -> Option<usize> {
        if self.cpt(pos) != '\'' as u32 || pos + 1 >= self.end {
            return None;
        }
        let low = |c: u32| if ignore_case { to_lower_ascii(c) } else { c };
        let next = low(self.cpt(pos + 1));
        if [b's', b't', b'm', b'd'].iter().any(|&c| next == c as u32) {
            return Some(2);
        }
        if pos + 2 < self.end {
            let next2 = low(self.cpt(pos + 2));
            let pair = |a: u8, b: u8| next == a as u32 && next2 == b as u32;
            if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                return Some(3);
            }
        }
        None
    }
}

/// Run `f` over every piece of `pieces`, collecting the sub-pieces it emits.
fn for_each_chunk(cpts: &[u32], pieces: &[usize], mut f: impl FnMut(&mut Chunk<'_>)) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for &len in pieces {
        let mut chunk = Chunk {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        f(&mut chunk);
        start += len;
    }
    out
}

fn is_ws_letter_number(f: Flags) -> bool {
    f.is_whitespace() || f.is_letter() || f.is_number()
}

/// llama.cpp `unicode_regex_split_custom_gpt2`.
fn split_gpt2(cpts: &[u32], pieces: &[usize]) -> Vec<usize> {
    for_each_chunk(cpts, pieces, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            let cpt = c.cpt(pos);
            let f = c.flags(pos);
            if let Some(n) = c.contraction(pos, false) {
                pos += c.add(pos + n);
                continue;
            }
            let is_space = cpt == ' ' as u32;
            let mut f2 = if is_space { c.flags(pos + 1) } else { f };
            // ` ?\p{L}+`
            if f2.is_letter() {
                pos += is_space as usize;
                while f2.is_letter() {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                c.add(pos);
                continue;
            }
            // ` ?\p{N}+`
            if f2.is_number() {
                pos += is_space as usize;
                while f2.is_number() {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                c.add(pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+`
            if !is_ws_letter_number(f2) && f2.any() {
                pos += is_space as usize;
                while !is_ws_letter_number(f2) && f2.any() {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                c.add(pos);
                continue;
            }
            let mut n_ws = 0;
            while c.flags(pos + n_ws).is_whitespace() {
                n_ws += 1;
            }
            // `\s+(?!\S)`
            if n_ws > 1 && c.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                c.add(pos);
                continue;
            }
            // `\s+`
            if n_ws > 0 {
                pos += n_ws;
                c.add(pos);
                continue;
            }
            pos += 1;
            c.add(pos);
        }
    })
}

/// llama.cpp `unicode_regex_split_custom_llama3` (`max_digits = 3`) and
/// `unicode_regex_split_custom_qwen2` (`max_digits = 1`), which differ only in the digit rule.
fn split_llama3(cpts: &[u32], pieces: &[usize], max_digits: usize) -> Vec<usize> {
    let is_cr_lf = |c: u32| c == '\r' as u32 || c == '\n' as u32;
    for_each_chunk(cpts, pieces, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            let cpt = c.cpt(pos);
            let f = c.flags(pos);
            // `(?i:'s|'t|'re|'ve|'m|'ll|'d)`
            if let Some(n) = c.contraction(pos, true) {
                pos += c.add(pos + n);
                continue;
            }
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(is_cr_lf(cpt) || f.is_number()) && (f.is_letter() || c.flags(pos + 1).is_letter())
            {
                pos += 1;
                while c.flags(pos).is_letter() {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            // `\p{N}{1,3}` / `\p{N}`
            if f.is_number() {
                let mut ini = pos;
                while c.flags(pos).is_number() {
                    pos += 1;
                    if pos - ini >= max_digits {
                        c.add(pos);
                        ini = pos;
                    }
                }
                c.add(pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (llama.cpp tests `f`, not `f2`, for "any")
            let is_space = cpt == ' ' as u32;
            let mut f2 = if is_space { c.flags(pos + 1) } else { f };
            if !is_ws_letter_number(f2) && f.any() {
                pos += is_space as usize;
                while !is_ws_letter_number(f2) && f2.any() {
                    pos += 1;
                    f2 = c.flags(pos);
                }
                while is_cr_lf(c.cpt(pos)) {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            let mut n_ws = 0;
            let mut last_end_cr_lf = 0;
            while c.flags(pos + n_ws).is_whitespace() {
                if is_cr_lf(c.cpt(pos + n_ws)) {
                    last_end_cr_lf = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            // `\s*[\r\n]+`
            if last_end_cr_lf > 0 {
                pos = last_end_cr_lf;
                c.add(pos);
                continue;
            }
            // `\s+(?!\S)`
            if n_ws > 1 && c.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                c.add(pos);
                continue;
            }
            // `\s+`
            if n_ws > 0 {
                pos += n_ws;
                c.add(pos);
                continue;
            }
            pos += 1;
            c.add(pos);
        }
    })
}

/// `\p{N}` on llama.cpp's collapsed text: ASCII digits, or a non-ASCII number (collapsed to 0xD1).
fn is_number(cpt: u32) -> bool {
    flags(cpt).is_number()
}

/// `[\p{P}\$\+<=>\^~\|]` on the collapsed text: ASCII punctuation as llama.cpp's `k_ucat_map` lists it
/// plus `$+<=>^~|` (every ASCII punctuation/symbol except the backtick), or a non-ASCII, non-whitespace
/// code point whose category is punctuation (collapsed to 0xD3).
fn is_default_punct(cpt: u32) -> bool {
    if cpt < 128 {
        let b = cpt as u8;
        return b.is_ascii_punctuation() && b != b'`';
    }
    let f = flags(cpt);
    !f.is_whitespace() && f.category() == Flags::PUNCTUATION
}

/// A one-class regex (`[class]` or `[class]+`) as `unicode_regex_split_stl` applies it: each match is a
/// piece and so is each stretch of text between matches.
fn split_class(cpts: &[u32], pieces: &[usize], member: fn(u32) -> bool, runs: bool) -> Vec<usize> {
    for_each_chunk(cpts, pieces, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            if member(cpts[pos]) {
                c.add(pos); // the gap before the match, if any
                pos += 1;
                while runs && pos < c.end && member(cpts[pos]) {
                    pos += 1;
                }
                c.add(pos);
            } else {
                pos += 1;
            }
        }
        c.add(c.end);
    })
}

/// `[0-9][0-9][0-9]`: leftmost, non-overlapping ASCII digit triples.
fn split_three_digits(cpts: &[u32], pieces: &[usize]) -> Vec<usize> {
    let digit = |c: u32| (b'0' as u32..=b'9' as u32).contains(&c);
    for_each_chunk(cpts, pieces, |c| {
        let mut pos = c.ini;
        while pos < c.end {
            if pos + 3 <= c.end && cpts[pos..pos + 3].iter().all(|&x| digit(x)) {
                c.add(pos);
                pos += 3;
                c.add(pos);
            } else {
                pos += 1;
            }
        }
        c.add(c.end);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<String> {
        let cpts: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let mut start = 0;
        pre.split(&cpts)
            .into_iter()
            .map(|n| {
                let w: String = cpts[start..start + n]
                    .iter()
                    .map(|&c| char::from_u32(c).unwrap())
                    .collect();
                start += n;
                w
            })
            .collect()
    }

    #[test]
    fn gpt2_regex() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "Hello world's  end 123!!"),
            ["Hello", " world", "'s", " ", " end", " 123", "!!"]
        );
        assert_eq!(words(PreTokenizer::Gpt2, "a   \n"), ["a", "   \n"]);
        assert_eq!(words(PreTokenizer::Gpt2, "x  y"), ["x", " ", " y"]);
        // Contractions are case-sensitive for GPT-2.
        assert_eq!(words(PreTokenizer::Gpt2, "IT'S"), ["IT", "'", "S"]);
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(
            words(PreTokenizer::Smollm, "abc 2024x"),
            ["abc", " ", "2", "0", "2", "4", "x"]
        );
    }

    #[test]
    fn llama3_and_qwen2() {
        assert_eq!(
            words(PreTokenizer::Llama3, "IT'S 1234567"),
            ["IT", "'S", " ", "123", "456", "7"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "x 12"), ["x", " ", "1", "2"]);
        assert_eq!(
            words(PreTokenizer::Llama3, "a\n\n  b"),
            ["a", "\n\n", " ", " b"]
        );
        assert_eq!(
            words(PreTokenizer::Llama3, "hi!!\n\nthere"),
            ["hi", "!!\n\n", "there"]
        );
    }

    #[test]
    fn default_chain() {
        assert_eq!(
            words(PreTokenizer::Default, "a+=b 12345`"),
            ["a", "+=", "b", " ", "123", "45", "`"]
        );
    }

    #[test]
    fn pieces_cover_text() {
        for pre in [
            PreTokenizer::Default,
            PreTokenizer::Gpt2,
            PreTokenizer::Smollm,
            PreTokenizer::Qwen2,
            PreTokenizer::Llama3,
        ] {
            for text in ["", " ", "  a  ", "\r\n\t x", "日本語 12 ½!", "'''''"] {
                let cpts: Vec<u32> = text.chars().map(|c| c as u32).collect();
                let p = pre.split(&cpts);
                assert_eq!(p.iter().sum::<usize>(), cpts.len(), "{pre:?} {text:?}");
                assert!(p.iter().all(|&n| n > 0));
            }
        }
    }
}
