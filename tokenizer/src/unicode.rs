//! Code-point classification and the GPT-2 byte↔unicode mapping, as llama.cpp's `src/unicode.cpp`
//! defines them (`unicode_cpt_flags_from_cpt`, `unicode_byte_to_utf8_map`, `unicode_utf8_to_byte_map`).

use crate::unicode_data::{CATEGORY_RANGES, WHITESPACE};

/// Category and helper bits of one code point (llama.cpp `unicode_cpt_flags`, minus the case/NFD
/// bits no supported pre-tokenizer reads). `Flags(0)` is what llama.cpp returns for a position outside
/// the current fragment; every real code point has exactly one category bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    pub const UNDEFINED: u16 = 0x0001;
    pub const NUMBER: u16 = 0x0002;
    pub const LETTER: u16 = 0x0004;
    pub const PUNCTUATION: u16 = 0x0020;
    pub const MASK_CATEGORIES: u16 = 0x00FF;
    pub const WHITESPACE: u16 = 0x0100;

    #[inline]
    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    #[inline]
    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    #[inline]
    pub fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    /// Any bit set (llama.cpp `as_uint() != 0`): false only for "outside the fragment".
    #[inline]
    pub fn any(self) -> bool {
        self.0 != 0
    }
    /// The category bits alone (llama.cpp `category_flag()`).
    #[inline]
    pub fn category(self) -> u16 {
        self.0 & Self::MASK_CATEGORIES
    }
}

/// Flags of a code point (llama.cpp `unicode_cpt_flags_from_cpt`).
pub(crate) fn flags(cpt: u32) -> Flags {
    if cpt >= 0x11_0000 {
        return Flags(Flags::UNDEFINED);
    }
    // Last range whose start is <= cpt. The table starts at 0, so the index is never negative.
    let idx = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cpt);
    let cat = CATEGORY_RANGES[idx.saturating_sub(1)].1 as u16;
    let ws = if WHITESPACE.binary_search(&cpt).is_ok() {
        Flags::WHITESPACE
    } else {
        0
    };
    Flags(cat | ws)
}

/// Simple lowercase, only as far as the contraction matchers need it: the targets (`s t m d r e v l`)
/// are reached from no code point other than their ASCII capitals in llama.cpp's lowercase table.
#[inline]
pub(crate) fn to_lower_ascii(cpt: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&cpt) {
        cpt + 32
    } else {
        cpt
    }
}

/// GPT-2 byte-level alphabet: byte → code point (llama.cpp `unicode_byte_to_utf8_map`).
/// Printable Latin-1 bytes map to themselves; the other 68 bytes to U+0100.. in byte order.
pub(crate) fn byte_to_cpt_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cpt = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        // Every value is below U+0200, a valid scalar.
        table[b as usize] = char::from_u32(cpt).unwrap_or('\u{FFFD}');
    }
    table
}

/// Build the reverse of [`byte_to_cpt_table`] once (llama.cpp `unicode_utf8_to_byte_map`): index = code point (< 0x200), value = byte + 1 (0 = not mapped).
pub(crate) fn cpt_to_byte_table(table: &[char; 256]) -> [u16; 0x200] {
    let mut rev = [0u16; 0x200];
    for (b, &c) in table.iter().enumerate() {
        rev[c as usize] = b as u16 + 1;
    }
    rev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_llama_cpp_spot_checks() {
        assert!(flags('a' as u32).is_letter());
        assert!(flags('é' as u32).is_letter());
        assert!(flags('中' as u32).is_letter());
        assert!(flags('7' as u32).is_number());
        assert!(flags('²' as u32).is_number());
        assert!(flags(' ' as u32).is_whitespace());
        assert!(flags('\n' as u32).is_whitespace());
        assert!(flags(0x3000).is_whitespace());
        assert!(!flags('x' as u32).is_whitespace());
        assert_eq!(flags('!' as u32).category(), Flags::PUNCTUATION);
        // Emoji are symbols: neither letter, number nor whitespace, but "any".
        let e = flags('😀' as u32);
        assert!(!e.is_letter() && !e.is_number() && !e.is_whitespace() && e.any());
        assert!(!Flags::default().any());
    }

    #[test]
    fn byte_alphabet_round_trips() {
        let t = byte_to_cpt_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0xAD], 'Ń'); // the 68th unprintable byte → U+0100 + 67
        let rev = cpt_to_byte_table(&t);
        for b in 0..256usize {
            assert_eq!(rev[t[b] as usize], b as u16 + 1);
        }
        assert_eq!(rev.iter().filter(|&&v| v != 0).count(), 256);
    }
}

/// Length of the UTF-8 sequence a lead byte announces (llama.cpp `unicode_len_utf8`): stray
/// continuation bytes count as 1, `0xF8..=0xFF` as 4. Callers clamp to the bytes left.
#[inline]
pub(crate) fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(lead >> 4) as usize]
}

/// Decode bytes to code points like llama.cpp `unicode_cpts_from_utf8`: a malformed sequence yields
/// U+FFFD and consumes one byte. (It does not reject overlong forms or surrogates; neither does this.)
pub(crate) fn cpts_from_utf8(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b0 = bytes[i] as u32;
        let cont = |k: usize| bytes.get(i + k).is_some_and(|&b| b & 0xC0 == 0x80);
        let c = |k: usize| (bytes[i + k] & 0x3F) as u32;
        let (cpt, n) = if b0 & 0x80 == 0 {
            (b0, 1)
        } else if b0 & 0x40 == 0 {
            (0xFFFD, 1)
        } else if b0 & 0x20 == 0 {
            if cont(1) {
                (((b0 & 0x1F) << 6) | c(1), 2)
            } else {
                (0xFFFD, 1)
            }
        } else if b0 & 0x10 == 0 {
            if cont(1) && cont(2) {
                (((b0 & 0x0F) << 12) | (c(1) << 6) | c(2), 3)
            } else {
                (0xFFFD, 1)
            }
        } else if b0 & 0x08 == 0 {
            if cont(1) && cont(2) && cont(3) {
                (((b0 & 0x07) << 18) | (c(1) << 12) | (c(2) << 6) | c(3), 4)
            } else {
                (0xFFFD, 1)
            }
        } else {
            (0xFFFD, 1)
        };
        out.push(cpt);
        i += n;
    }
    out
}

/// Append the UTF-8 encoding of `cpt` (llama.cpp `unicode_cpt_to_utf8`). Values past U+10FFFF, which
/// llama.cpp throws on, become U+FFFD here.
pub(crate) fn push_utf8(cpt: u32, out: &mut Vec<u8>) {
    let cpt = if cpt > 0x10FFFF { 0xFFFD } else { cpt };
    if cpt <= 0x7F {
        out.push(cpt as u8);
    } else if cpt <= 0x7FF {
        out.extend_from_slice(&[0xC0 | (cpt >> 6) as u8, 0x80 | (cpt & 0x3F) as u8]);
    } else if cpt <= 0xFFFF {
        out.extend_from_slice(&[
            0xE0 | (cpt >> 12) as u8,
            0x80 | ((cpt >> 6) & 0x3F) as u8,
            0x80 | (cpt & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (cpt >> 18) as u8,
            0x80 | ((cpt >> 12) & 0x3F) as u8,
            0x80 | ((cpt >> 6) & 0x3F) as u8,
            0x80 | (cpt & 0x3F) as u8,
        ]);
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::*;

    #[test]
    fn decodes_like_llama_cpp() {
        let s = "aé€😀";
        let cpts = cpts_from_utf8(s.as_bytes());
        assert_eq!(cpts, s.chars().map(|c| c as u32).collect::<Vec<_>>());
        // Truncated and stray bytes: one U+FFFD per byte consumed.
        assert_eq!(cpts_from_utf8(&[0xE2, 0x82]), [0xFFFD, 0xFFFD]);
        assert_eq!(cpts_from_utf8(&[0x80, b'a']), [0xFFFD, b'a' as u32]);
        let mut out = Vec::new();
        for c in cpts {
            push_utf8(c, &mut out);
        }
        assert_eq!(out, s.as_bytes());
        assert_eq!(utf8_len(0xE2), 3);
        assert_eq!(utf8_len(0x80), 1);
    }
}
