//! SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`), ported from llama.cpp
//! `src/llama-vocab.cpp` (`llm_tokenizer_spm_session`): start from UTF-8 characters, repeatedly merge
//! the adjacent pair whose concatenation is the token with the highest score (ties: leftmost), then
//! emit each symbol as its token or, failing that, as byte tokens `<0xXX>`.
//!
//! The caller has already escaped spaces to U+2581 and added the prefix space.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use crate::unicode::utf8_len;

/// What the SPM session needs from the vocabulary.
pub(crate) trait SpmVocab {
    /// Token whose text is exactly `text`, with its score.
    fn lookup_scored(&self, text: &[u8]) -> Option<(u32, f32)>;
    /// Token for one byte (`<0xXX>`, else the one-byte text); llama.cpp throws when neither exists.
    fn byte_token(&self, byte: u8) -> Option<u32>;
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

/// Queue entry, ordered so that the max-heap pops the highest score, then the lowest `left`
/// (llama.cpp `llm_bigram_spm::comparator`; `total_cmp` keeps hostile NaN scores orderly).
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| Reverse(self.left).cmp(&Reverse(other.left)))
    }
}

/// Tokenize one escaped fragment, appending ids to `out`. `unk` is pushed for a byte that has no
/// token (llama.cpp aborts the whole call there); with no `unk` either, the byte is dropped.
pub(crate) fn tokenize(text: &[u8], vocab: &impl SpmVocab, unk: Option<u32>, out: &mut Vec<u32>) {
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut offset = 0;
    while offset < text.len() {
        let len = utf8_len(text[offset]).min(text.len() - offset);
        let index = symbols.len() as isize;
        offset += len;
        let next = if offset == text.len() { -1 } else { index + 1 };
        symbols.push(Symbol {
            start: offset - len,
            len,
            prev: index - 1,
            next,
        });
    }

    let mut queue = BinaryHeap::new();
    // Which two symbols formed a merged text (llama.cpp `rev_merge`, used by `resegment`).
    let mut rev_merge: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for i in 1..symbols.len() {
        try_add_bigram(
            text,
            vocab,
            &mut queue,
            &mut rev_merge,
            &symbols,
            i as isize - 1,
            i as isize,
        );
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        symbols[b.left].len += r.len;
        symbols[b.right].len = 0;
        symbols[b.left].next = r.next;
        if r.next >= 0 {
            symbols[r.next as usize].prev = b.left as isize;
        }
        let (prev, next) = (symbols[b.left].prev, symbols[b.left].next);
        try_add_bigram(
            text,
            vocab,
            &mut queue,
            &mut rev_merge,
            &symbols,
            prev,
            b.left as isize,
        );
        try_add_bigram(
            text,
            vocab,
            &mut queue,
            &mut rev_merge,
            &symbols,
            b.left as isize,
            next,
        );
    }

    let mut i: isize = if symbols.is_empty() { -1 } else { 0 };
    while i >= 0 {
        resegment(text, &symbols, i as usize, &rev_merge, vocab, unk, out, 0);
        i = symbols[i as usize].next;
    }
}

/// Queue the pair `(left, right)` if its concatenation is a token (llama.cpp `try_add_bigram`).
#[allow(clippy::too_many_arguments)] // reason: a helper over the session's state; a struct adds nothing
fn try_add_bigram<'a>(
    text: &'a [u8],
    vocab: &impl SpmVocab,
    queue: &mut BinaryHeap<Bigram>,
    rev_merge: &mut HashMap<&'a [u8], (usize, usize)>,
    symbols: &[Symbol],
    left: isize,
    right: isize,
) {
    if left < 0 || right < 0 {
        return;
    }
    let (l, r) = (symbols[left as usize], symbols[right as usize]);
    let end = (l.start + l.len + r.len).min(text.len());
    let piece = &text[l.start..end];
    let Some((_, score)) = vocab.lookup_scored(piece) else {
        return;
    };
    queue.push(Bigram {
        score,
        left: left as usize,
        right: right as usize,
        size: piece.len(),
    });
    rev_merge.insert(piece, (left as usize, right as usize));
}

#[allow(clippy::too_many_arguments)] // reason: a recursive helper over the session's state; a struct adds nothing
fn resegment(
    text: &[u8],
    symbols: &[Symbol],
    index: usize,
    rev_merge: &HashMap<&[u8], (usize, usize)>,
    vocab: &impl SpmVocab,
    unk: Option<u32>,
    out: &mut Vec<u32>,
    depth: u32,
) {
    let s = symbols[index];
    let piece = &text[s.start..(s.start + s.len).min(text.len())];
    if let Some((id, _)) = vocab.lookup_scored(piece) {
        out.push(id);
        return;
    }
    // A merged symbol's text is always a token, so this path serves only pathological inputs; the
    // depth bound keeps a self-referencing entry from recursing forever.
    if let (Some(&(l, r)), true) = (rev_merge.get(piece), depth < 64) {
        resegment(text, symbols, l, rev_merge, vocab, unk, out, depth + 1);
        resegment(text, symbols, r, rev_merge, vocab, unk, out, depth + 1);
        return;
    }
    for &b in piece {
        if let Some(id) = vocab.byte_token(b).or(unk) {
            out.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V(Vec<(&'static str, f32)>);
    impl SpmVocab for V {
        fn lookup_scored(&self, t: &[u8]) -> Option<(u32, f32)> {
            self.0
                .iter()
                .position(|(s, _)| s.as_bytes() == t)
                .map(|i| (i as u32, self.0[i].1))
        }
        fn byte_token(&self, b: u8) -> Option<u32> {
            self.lookup_scored(format!("<0x{b:02X}>").as_bytes())
                .map(|(id, _)| id)
        }
    }

    #[test]
    fn merges_by_score() {
        let v = V(vec![
            ("▁", -1.0),
            ("a", -1.0),
            ("b", -1.0),
            ("▁a", -2.0),
            ("ab", -0.5),
            ("▁ab", -3.0),
            ("<0xC3>", 0.0),
            ("<0xA9>", 0.0),
        ]);
        let mut out = Vec::new();
        // "ab" (-0.5) beats "▁a" (-2); then "▁" + "ab" → "▁ab".
        tokenize("▁ab".as_bytes(), &v, None, &mut out);
        assert_eq!(out, [5]);
        // Unknown character: byte fallback.
        out.clear();
        tokenize("é".as_bytes(), &v, None, &mut out);
        assert_eq!(out, [6, 7]);
    }

    #[test]
    fn ties_go_leftmost() {
        let v = V(vec![("a", 0.0), ("aa", 1.0)]);
        let mut out = Vec::new();
        tokenize(b"aaa", &v, None, &mut out);
        assert_eq!(out, [1, 0]);
    }

    #[test]
    fn missing_byte_token_uses_unk() {
        let v = V(vec![("<unk>", 0.0)]);
        let mut out = Vec::new();
        tokenize(b"z", &v, Some(0), &mut out);
        assert_eq!(out, [0]);
        out.clear();
        tokenize(b"z", &v, None, &mut out);
        assert!(out.is_empty());
    }
}
