//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`), ported from llama.cpp `src/llama-vocab.cpp`
//! (`llm_tokenizer_bpe_session::tokenize`): pre-tokenize, map each byte to the GPT-2 alphabet, then
//! per word merge the adjacent pair of lowest merge rank (ties: leftmost) until none is left.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::pretokenize::PreTokenizer;
use crate::unicode::{cpts_from_utf8, push_utf8, utf8_len};

/// Merge ranks keyed by interned part ids: `tokenizer.ggml.merges[i] = "left right"` has rank `i`.
pub(crate) struct MergeRanks {
    parts: HashMap<Box<[u8]>, u32>,
    ranks: HashMap<(u32, u32), u32>,
}

impl MergeRanks {
    /// Parse merges like llama.cpp: split at the first space after byte 0; a line without one yields the
    /// pair `("", "")`, which never matches. Duplicate pairs keep their first (lowest) rank.
    pub(crate) fn new(merges: &[Vec<u8>]) -> Self {
        let mut parts: HashMap<Box<[u8]>, u32> = HashMap::new();
        let mut ranks = HashMap::with_capacity(merges.len());
        let mut intern = |s: &[u8]| -> u32 {
            let next = parts.len() as u32;
            *parts.entry(s.into()).or_insert(next)
        };
        for (rank, line) in merges.iter().enumerate() {
            let split = line.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1);
            let (left, right): (&[u8], &[u8]) = match split {
                Some(p) => (&line[..p], &line[p + 1..]),
                None => (b"", b""),
            };
            let key = (intern(left), intern(right));
            ranks.entry(key).or_insert(rank as u32);
        }
        Self { parts, ranks }
    }

    /// Number of distinct pairs.
    pub(crate) fn len(&self) -> usize {
        self.ranks.len()
    }

    #[inline]
    fn rank(&self, left: &[u8], right: &[u8]) -> Option<u32> {
        let l = *self.parts.get(left)?;
        let r = *self.parts.get(right)?;
        self.ranks.get(&(l, r)).copied()
    }
}

/// What the BPE session needs from the vocabulary.
pub(crate) trait TokenLookup {
    fn lookup(&self, text: &[u8]) -> Option<u32>;
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

/// Tokenize one raw-text fragment, appending ids to `out`.
pub(crate) fn tokenize(
    text: &[u8],
    pre: PreTokenizer,
    ignore_merges: bool,
    byte_to_cpt: &[char; 256],
    merges: &MergeRanks,
    vocab: &impl TokenLookup,
    out: &mut Vec<u32>,
) {
    let cpts = cpts_from_utf8(text);
    let pieces = pre.split(&cpts);
    let mut utf8 = Vec::new();
    let mut word = Vec::new();
    let mut start = 0;
    for n in pieces {
        // Re-encode the piece, then map every byte to the GPT-2 alphabet (`unicode_byte_encoding_process`).
        utf8.clear();
        for &c in &cpts[start..start + n] {
            push_utf8(c, &mut utf8);
        }
        start += n;
        word.clear();
        let mut buf = [0u8; 4];
        for &b in &utf8 {
            word.extend_from_slice(byte_to_cpt[b as usize].encode_utf8(&mut buf).as_bytes());
        }
        tokenize_word(&word, ignore_merges, merges, vocab, out);
    }
}

fn tokenize_word(
    word: &[u8],
    ignore_merges: bool,
    merges: &MergeRanks,
    vocab: &impl TokenLookup,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges && let Some(id) = vocab.lookup(word) {
        out.push(id);
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut offset = 0;
    while offset < word.len() {
        let len = utf8_len(word[offset]).min(word.len() - offset);
        let index = symbols.len() as isize;
        symbols.push(Symbol {
            start: offset,
            len,
            prev: index - 1,
            next: -1,
        });
        offset += len;
        if offset < word.len() {
            symbols[index as usize].next = index + 1;
        }
    }

    // Min-heap on (rank, left): lowest rank first, ties to the leftmost pair (llama.cpp `llm_bigram_bpe::comparator`).
    let mut queue: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
    let push_pair = |queue: &mut BinaryHeap<Reverse<(u32, usize, usize, usize)>>,
                     symbols: &[Symbol],
                     left: isize,
                     right: isize| {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let lt = &word[l.start..l.start + l.len];
        let rt = &word[r.start..r.start + r.len];
        if let Some(rank) = merges.rank(lt, rt) {
            queue.push(Reverse((
                rank,
                left as usize,
                right as usize,
                l.len + r.len,
            )));
        }
    };
    for i in 1..symbols.len() {
        push_pair(&mut queue, &symbols, i as isize - 1, i as isize);
    }
    while let Some(Reverse((_, left, right, size))) = queue.pop() {
        let (l, r) = (symbols[left], symbols[right]);
        // Outdated entry: one side was merged away or grew (llama.cpp compares the texts; with
        // contiguous symbols that is the same test).
        if l.len == 0 || r.len == 0 || l.next != right as isize || l.len + r.len != size {
            continue;
        }
        symbols[left].len += r.len;
        symbols[right].len = 0;
        symbols[left].next = r.next;
        if r.next >= 0 {
            symbols[r.next as usize].prev = left as isize;
        }
        let prev = symbols[left].prev;
        let next = symbols[left].next;
        push_pair(&mut queue, &symbols, prev, left as isize);
        push_pair(&mut queue, &symbols, left as isize, next);
    }

    for s in symbols.iter().filter(|s| s.len > 0) {
        let text = &word[s.start..s.start + s.len];
        match vocab.lookup(text) {
            Some(id) => out.push(id),
            None => {
                // llama.cpp falls back to single-byte tokens of the (already byte-encoded) text.
                for &b in text {
                    if let Some(id) = vocab.lookup(&[b]) {
                        out.push(id);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unicode::byte_to_cpt_table;

    struct V(HashMap<Vec<u8>, u32>);
    impl TokenLookup for V {
        fn lookup(&self, t: &[u8]) -> Option<u32> {
            self.0.get(t).copied()
        }
    }

    #[test]
    fn merges_by_rank_then_leftmost() {
        let toks = ["a", "b", "c", "ab", "bc", "abc", "Ġ", "Ġa"];
        let v = V(toks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_bytes().to_vec(), i as u32))
            .collect());
        // "b c" outranks "a b": "abc" → a + bc (no "a bc" merge) → [a, bc].
        let m = MergeRanks::new(&[b"b c".to_vec(), b"a b".to_vec(), b"ab c".to_vec()]);
        let mut out = Vec::new();
        tokenize(
            b"abc",
            PreTokenizer::Gpt2,
            false,
            &byte_to_cpt_table(),
            &m,
            &v,
            &mut out,
        );
        assert_eq!(out, [0, 4]);
        // With "a b" first: ab, then "ab c" → abc.
        let m = MergeRanks::new(&[
            b"a b".to_vec(),
            b"b c".to_vec(),
            b"ab c".to_vec(),
            "Ġ a".as_bytes().to_vec(),
        ]);
        out.clear();
        tokenize(
            b"abc a",
            PreTokenizer::Gpt2,
            false,
            &byte_to_cpt_table(),
            &m,
            &v,
            &mut out,
        );
        assert_eq!(out, [5, 7]);
        // Equal ranks resolve leftmost first: "aaa" with only "a a" → [aa, a].
        let v2 = V([("a", 0u32), ("aa", 1)]
            .iter()
            .map(|(t, i)| (t.as_bytes().to_vec(), *i))
            .collect());
        let m2 = MergeRanks::new(&[b"a a".to_vec()]);
        out.clear();
        tokenize(
            b"aaa",
            PreTokenizer::Gpt2,
            false,
            &byte_to_cpt_table(),
            &m2,
            &v2,
            &mut out,
        );
        assert_eq!(out, [1, 0]);
    }

    #[test]
    fn bad_merge_lines_are_inert() {
        let m = MergeRanks::new(&[
            b"nospace".to_vec(),
            b"".to_vec(),
            b" x".to_vec(),
            b"a b".to_vec(),
            b"a b".to_vec(),
        ]);
        assert_eq!(m.rank(b"a", b"b"), Some(3));
        // " x": the split starts at byte 1, so there is no separator → ("", "").
        assert_eq!(m.rank(b"", b"x"), None);
    }
}
