//! Streaming detokenization: ids in one at a time, complete UTF-8 text out.

use std::ops::Deref;

use crate::vocab::{Vocab, clean_up_spaces};

/// Incremental detokenizer. Feed ids with [`push`](Self::push) as they are generated; each call returns
/// the text that is now final — never half a character (byte-fallback `<0xE2>` pieces and partial
/// GPT-2 byte sequences are held until the character is complete) and, for models with
/// `clean_up_tokenization_spaces`, never a space that a later `?`, `.` or `'s` would remove.
/// [`finish`](Self::finish) returns the rest.
///
/// The concatenation of all returned strings equals [`Vocab::detokenize`] of the same ids
/// (`unparse_special = false`) or `detokenize_with(ids, {remove_special: false, unparse_special})`:
/// the first token's leading space is stripped when the model adds a space prefix, exactly as there.
///
/// `V` is `&Vocab`, `Arc<Vocab>` or anything else that derefs to a [`Vocab`].
pub struct Detokenizer<V: Deref<Target = Vocab>> {
    vocab: V,
    unparse_special: bool,
    first: bool,
    /// Raw piece bytes since the last point where space cleaning can no longer change the output.
    raw: Vec<u8>,
    /// Final bytes not yet returned (an incomplete UTF-8 sequence at most, between calls).
    ready: Vec<u8>,
    piece: Vec<u8>,
}

impl<V: Deref<Target = Vocab>> Detokenizer<V> {
    /// A detokenizer for `vocab`. `unparse_special`: render control tokens as their text (default in
    /// node-llama-cpp: false).
    pub fn new(vocab: V, unparse_special: bool) -> Self {
        Self {
            vocab,
            unparse_special,
            first: true,
            raw: Vec::new(),
            ready: Vec::new(),
            piece: Vec::new(),
        }
    }

    /// Add one token; returns the text that became final (often empty).
    pub fn push(&mut self, id: u32) -> String {
        self.piece.clear();
        let lstrip = self.first && self.vocab.add_space_prefix();
        self.vocab
            .append_piece(id, self.unparse_special, lstrip, &mut self.piece);
        self.first = false;
        if !self.vocab.clean_spaces() {
            self.ready.extend_from_slice(&self.piece);
        } else {
            self.raw.extend_from_slice(&self.piece);
            // Cleaning looks at most one byte back and two ahead, and only around spaces and quotes:
            // the text up to a point preceded by two bytes that are neither cleans the same whether or
            // not more text follows.
            let safe = (2..=self.raw.len()).rev().find(|&p| {
                let (a, b) = (self.raw[p - 2], self.raw[p - 1]);
                !matches!(a, b' ' | b'\'') && !matches!(b, b' ' | b'\'')
            });
            if let Some(p) = safe {
                let mut done: Vec<u8> = self.raw.drain(..p).collect();
                clean_up_spaces(&mut done);
                self.ready.extend_from_slice(&done);
            }
        }
        take_complete_utf8(&mut self.ready, false)
    }

    /// Flush everything still held (an unfinished character becomes U+FFFD, as in `detokenize`).
    pub fn finish(mut self) -> String {
        if !self.raw.is_empty() {
            let mut rest = std::mem::take(&mut self.raw);
            clean_up_spaces(&mut rest);
            self.ready.extend_from_slice(&rest);
        }
        take_complete_utf8(&mut self.ready, true)
    }
}

/// Decode the longest prefix of `buf` that is final: valid UTF-8, plus U+FFFD for each invalid
/// sequence (maximal-subpart rule, like `String::from_utf8_lossy` and V8). An incomplete sequence at
/// the end stays in `buf` unless `flush`.
fn take_complete_utf8(buf: &mut Vec<u8>, flush: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    loop {
        match std::str::from_utf8(&buf[i..]) {
            Ok(s) => {
                out.push_str(s);
                i = buf.len();
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // The prefix was just validated, so this never falls back to the default.
                out.push_str(std::str::from_utf8(&buf[i..i + valid]).unwrap_or_default());
                i += valid;
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        i += n;
                    }
                    None if flush => {
                        out.push('\u{FFFD}');
                        i = buf.len();
                        break;
                    }
                    None => break,
                }
            }
        }
    }
    buf.drain(..i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_incomplete_characters() {
        let mut buf = vec![b'a', 0xE2, 0x82];
        assert_eq!(take_complete_utf8(&mut buf, false), "a");
        assert_eq!(buf, [0xE2, 0x82]);
        buf.push(0xAC);
        assert_eq!(take_complete_utf8(&mut buf, false), "€");
        assert!(buf.is_empty());
        let mut bad = vec![0xFF, b'b', 0xE2];
        assert_eq!(take_complete_utf8(&mut bad, false), "\u{FFFD}b");
        assert_eq!(take_complete_utf8(&mut bad, true), "\u{FFFD}");
        // Same result as lossy decoding of the whole.
        let all = [0xE2, 0x82, b'x', 0xF0, 0x9F, 0x98, 0x80, 0xC3];
        let mut buf = all.to_vec();
        let mut s = take_complete_utf8(&mut buf, false);
        s += &take_complete_utf8(&mut buf, true);
        assert_eq!(s, String::from_utf8_lossy(&all));
    }
}
