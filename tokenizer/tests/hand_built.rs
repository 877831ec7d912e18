//! Model-free tests on tiny hand-built vocabularies, through the public API only.
//! (The model-dependent conformance test — ids identical to node-llama-cpp 3.21.1 on
//! `__test__/fixtures/tokenizer-corpus.json` — lives with the addon's vitest suite.)

use std::sync::Arc;

use wasm_chord_tokenizer::*;

fn bytes(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|t| t.as_bytes().to_vec()).collect()
}

/// SentencePiece: ids 3-5 are the bytes of "€", 11 a user-defined token.
fn spm() -> Vocab {
    let tokens = [
        "<unk>",
        "<s>",
        "</s>",
        "<0xE2>",
        "<0x82>",
        "<0xAC>",
        "▁",
        "h",
        "i",
        "▁h",
        "▁hi",
        "[USER]",
        "<0x0A>",
        "<end_of_turn>",
    ];
    Vocab::new(VocabData {
        model: "llama".into(),
        tokens: bytes(&tokens),
        scores: Some(vec![
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -2.0, -0.5, 0.0, 0.0, 0.0,
        ]),
        token_types: Some(vec![2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 4, 6, 3]),
        ..Default::default()
    })
    .unwrap()
}

/// GPT-2 byte-level BPE with a handful of merges.
fn bpe(pre: &str) -> Vocab {
    let tokens = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "h",
        "e",
        "l",
        "o",
        "Ġ",
        "w",
        "r",
        "d",
        "?",
        "he",
        "ll",
        "hell",
        "hello",
        "Ġw",
        "or",
        "Ġwor",
        "ld",
        "Ġworld",
        "Ċ",
        "Ġ?",
    ];
    let merges = [
        "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ġ ?",
    ];
    let mut types = vec![1; tokens.len()];
    types[..3].copy_from_slice(&[3, 3, 3]);
    Vocab::new(VocabData {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens: bytes(&tokens),
        token_types: Some(types),
        merges: Some(bytes(&merges)),
        bos_token_id: Some(0),
        eos_token_id: Some(0),
        ..Default::default()
    })
    .unwrap()
}

fn stream(vocab: &Vocab, ids: &[u32]) -> Vec<String> {
    let mut d = Detokenizer::new(vocab, false);
    let mut parts: Vec<String> = ids.iter().map(|&id| d.push(id)).collect();
    parts.push(d.finish());
    parts
}

#[test]
fn spm_space_prefix_scores_and_byte_fallback() {
    let v = spm();
    assert_eq!(v.kind(), VocabKind::Spm);
    assert!(v.add_bos() && v.add_space_prefix());
    assert_eq!(v.tokenize("hi €", false, false), [10, 6, 3, 4, 5]);
    assert_eq!(v.tokenize("hi €", true, false), [1, 10, 6, 3, 4, 5]);
    assert_eq!(v.tokenize("", true, false), [1]);
    assert!(v.tokenize("", false, false).is_empty());
    assert_eq!(v.newline(), Some(12));
    // The first piece loses the prefix space, unless BOS came first.
    assert_eq!(v.detokenize(&[10, 6, 3, 4, 5]), "hi €");
    assert_eq!(v.detokenize(&[1, 10]), " hi");
    let opts = DetokenizeOptions {
        remove_special: true,
        unparse_special: false,
    };
    // llama.cpp keeps the space when it drops a leading BOS (remove_special).
    assert_eq!(v.detokenize_with(&[1, 10], opts), b" hi");
    assert_eq!(v.detokenize_with(&[10, 2], opts), b"hi");
    // A lone byte of a multi-byte character is invalid UTF-8.
    assert_eq!(v.detokenize(&[3]), "\u{FFFD}");
    assert_eq!(v.piece(3, false), [0xE2]);
}

#[test]
fn spm_special_tokens_and_prefix_after_them() {
    let v = spm();
    // User-defined tokens match without parse_special; the text after a special token gets the prefix again.
    assert_eq!(v.tokenize("hi[USER]hi", false, false), [10, 11, 10]);
    // Control tokens only with parse_special.
    assert_eq!(v.tokenize("hi<s>hi", false, true), [10, 1, 10]);
    assert!(!v.tokenize("hi<s>hi", false, false).contains(&1));
    // Rendering: control only on request, user-defined always.
    assert_eq!(v.piece(1, false), b"");
    assert_eq!(v.piece(1, true), b"<s>");
    assert_eq!(v.piece(11, false), b"[USER]");
    assert_eq!(
        v.detokenize_with(
            &[10, 13],
            DetokenizeOptions {
                remove_special: false,
                unparse_special: true
            }
        ),
        b"hi<end_of_turn>"
    );
    // EOG: EOS plus the detected end-of-turn token.
    assert_eq!(v.eot(), Some(13));
    assert!(v.is_eog(2) && v.is_eog(13) && !v.is_eog(1));
    assert_eq!(v.eog_tokens(), [2, 13]);
}

#[test]
fn spm_streaming_waits_for_whole_characters() {
    let v = spm();
    assert_eq!(stream(&v, &[10, 6, 3, 4, 5]), ["hi", " ", "", "", "€", ""]);
    // An unfinished character is flushed as U+FFFD, like detokenize.
    assert_eq!(stream(&v, &[10, 3, 4]), ["hi", "", "", "\u{FFFD}"]);
    assert_eq!(v.detokenize(&[10, 3, 4]), "hi\u{FFFD}");
    // Works with a shared vocabulary too.
    let shared = Arc::new(spm());
    let mut d = Detokenizer::new(shared.clone(), true);
    assert_eq!(d.push(1), "<s>");
}

#[test]
fn bpe_merges_pre_tokenizer_and_special_parsing() {
    let v = bpe("gpt-2");
    assert_eq!(v.kind(), VocabKind::Bpe);
    assert_eq!(v.pre_tokenizer(), Some(PreTokenizer::Gpt2));
    assert_eq!(v.tokenize("hello world?", false, false), [15, 20, 11]);
    assert_eq!(
        v.tokenize("<|im_start|>hello<|im_end|>", false, true),
        [1, 15, 2]
    );
    let plain = v.tokenize("<|im_start|>hello", false, false);
    assert!(!plain.contains(&1) && plain.ends_with(&[15]));
    assert_eq!(v.newline(), Some(21));
    assert!(v.is_eog(0) && v.is_eog(2) && !v.is_eog(1));
    assert_eq!(
        v.token_attr(2).map(|a| a.has(TokenAttr::CONTROL)),
        Some(true)
    );
    assert_eq!(v.detokenize(&[15, 20, 11]), "hello world?");
    assert_eq!(v.detokenize(&[1, 15]), "hello");
}

#[test]
fn bpe_clean_up_spaces_depends_on_pre() {
    // gpt-2 cleans " ?" → "?"; smollm does not.
    let cleaning = bpe("gpt-2");
    assert_eq!(cleaning.tokenize("hello ?", false, false), [15, 22]);
    assert_eq!(cleaning.detokenize(&[15, 22]), "hello?");
    let plain = bpe("smollm");
    assert_eq!(plain.detokenize(&[15, 22]), "hello ?");
    // Streaming holds the space back until it knows whether it survives.
    let parts = stream(&cleaning, &[15, 7, 11, 20]);
    assert_eq!(parts.concat(), cleaning.detokenize(&[15, 7, 11, 20]));
    assert_eq!(parts.concat(), "hello? world");
    assert_eq!(parts[1], "", "a trailing space must wait");
}

#[test]
fn unsupported_and_malformed_inputs_are_typed_errors() {
    let err = |d: VocabData| Vocab::new(d).err().expect("must fail");
    let e = err(VocabData {
        model: "bert".into(),
        tokens: bytes(&["a"]),
        ..Default::default()
    });
    assert_eq!(e.code(), "ERR_UNSUPPORTED_TOKENIZER");
    assert!(e.to_string().contains("bert"));
    let e = err(VocabData {
        model: "gpt2".into(),
        pre: Some("tekken".into()),
        tokens: bytes(&["a"]),
        merges: Some(vec![]),
        ..Default::default()
    });
    assert_eq!(e.code(), "ERR_UNSUPPORTED_TOKENIZER");
    assert!(e.to_string().contains("tekken"));
    let bad = [
        VocabData {
            model: "llama".into(),
            ..Default::default()
        },
        VocabData {
            model: "llama".into(),
            tokens: bytes(&["a", "b"]),
            scores: Some(vec![0.0]),
            ..Default::default()
        },
        VocabData {
            model: "llama".into(),
            tokens: bytes(&["a", "b"]),
            token_types: Some(vec![1]),
            ..Default::default()
        },
        VocabData {
            model: "llama".into(),
            tokens: bytes(&["a", "a"]),
            ..Default::default()
        },
        VocabData {
            model: "gpt2".into(),
            pre: Some("qwen2".into()),
            tokens: bytes(&["a"]),
            ..Default::default()
        },
    ];
    for d in bad {
        assert_eq!(err(d).code(), "ERR_GGUF_BAD_TOKENIZER");
    }
}

#[test]
fn hostile_ids_never_panic() {
    let mut data = VocabData {
        model: "gpt2".into(),
        pre: None,
        tokens: bytes(&["a", "b", "ab", ""]),
        token_types: Some(vec![1, 1, 1, 99]),
        merges: Some(bytes(&["a b", "nospace", "", "x y z"])),
        bos_token_id: Some(1_000_000),
        eos_token_id: Some(u32::MAX),
        ..Default::default()
    };
    let v = Vocab::new(data.clone()).unwrap();
    // Out-of-range ids fall back to llama.cpp's defaults (11 for gpt2), which are out of range too.
    assert_eq!((v.bos(), v.eos()), (None, None));
    assert_eq!(v.token_text(3), Some(&b"[EMPTY_3]"[..]));
    assert_eq!(v.tokenize("ab", true, true), [2]);
    assert_eq!(v.detokenize(&[2, 3, 7, u32::MAX]), "ab");
    assert!(v.piece(u32::MAX, true).is_empty());
    assert_eq!(v.token_attr(99), None);
    // NaN scores and odd texts in SentencePiece.
    data.model = "llama".into();
    data.scores = Some(vec![f32::NAN, 0.0, f32::INFINITY, -1.0]);
    let v = Vocab::new(data).unwrap();
    let _ = v.tokenize("abab \u{0}\u{1F600}", true, true);
}

#[test]
fn phi3_special_tokens_strip_whitespace() {
    let v = Vocab::new(VocabData {
        model: "llama".into(),
        tokens: bytes(&["<unk>", "<s>", "</s>", "<|end|>", "▁", "a"]),
        token_types: Some(vec![2, 3, 3, 3, 1, 1]),
        general_name: Some("Phi-3 mini".into()),
        add_space_prefix: Some(false),
        ..Default::default()
    })
    .unwrap();
    assert!(v.token_attr(3).unwrap().has(TokenAttr::RSTRIP));
    // "<|end|>" swallows the whitespace after it.
    assert_eq!(v.tokenize("a<|end|>  a", false, true), [5, 3, 5]);
    // Without parse_special the control token is plain text: no RSTRIP either.
    assert!(!v.tokenize("a<|end|>  a", false, false).contains(&3));
}
