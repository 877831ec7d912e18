//! Semantic defects are rejected at load, against the architecture's descriptor, with a code
//! and a message naming the key or tensor and the numbers; each case starts from a synthetic
//! model that loads and generates, and breaks one thing.

mod common;

use wasm_chord::ErrorCode as E;
use wasm_chord::gguf::{GgmlType, GgufArray, GgufValue, GgufValueType, GgufWriter, TensorData, TensorSpec};
use wasm_chord::infer::GenerateOptions;
use wasm_chord::model::{LoadOptions, Memory64GGUFLoader};

const LAYERS: u32 = 2;
const EMBD: u64 = 64;
const FF: u64 = 128;
const VOCAB: u64 = 100;

/// A valid llama model: 2 layers, n_embd 64, 8 heads of 8 (kv heads 8), vocabulary 100.
fn base() -> GgufWriter {
    GgufWriter::synthetic_llama(LAYERS, EMBD, FF, VOCAB, GgmlType::F32, TensorData::Pattern)
}

/// The same with an SPM tokenizer of `n` tokens.
fn with_tokenizer(mut w: GgufWriter, n: usize) -> GgufWriter {
    let tokens = (0..n).map(|i| GgufValue::String(if i < 3 { ["<unk>", "<s>", "</s>"][i].into() } else { format!("t{i}") })).collect();
    let scores = (0..n).map(|i| GgufValue::F32(-(i as f32))).collect();
    w.kv("tokenizer.ggml.model", GgufValue::String("llama".into()));
    w.kv("tokenizer.ggml.tokens", GgufValue::Array(GgufArray::new(GgufValueType::String, tokens).unwrap()));
    w.kv("tokenizer.ggml.scores", GgufValue::Array(GgufArray::new(GgufValueType::F32, scores).unwrap()));
    w
}

fn set(w: &mut GgufWriter, key: &str, v: GgufValue) {
    w.metadata.retain(|(k, _)| k != key);
    w.kv(key, v);
}

fn unset(w: &mut GgufWriter, key: &str) {
    w.metadata.retain(|(k, _)| k != key);
}

fn shape(w: &mut GgufWriter, tensor: &str, shape: &[u64]) {
    let t = w.tensors.iter_mut().find(|t| t.name == tensor).expect("tensor in base");
    t.shape = shape.to_vec();
}

/// Loads `w`; returns the error (the test fails if it loads).
fn rejected(tag: &str, w: &GgufWriter) -> wasm_chord::ChordError {
    let dir = common::temp_dir(tag);
    let path = dir.join("m.gguf");
    w.write_to(&path).unwrap();
    let r = Memory64GGUFLoader::new(&path, LoadOptions::default()).load();
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok(_) => panic!("{tag}: a defective model loaded"),
        Err(e) => e,
    }
}

fn assert_rejected(tag: &str, w: &GgufWriter, code: E, says: &[&str]) {
    let e = rejected(tag, w);
    assert_eq!(e.code, code, "{tag}: {e}");
    for s in says {
        assert!(e.message.contains(s), "{tag}: {:?} does not say {s:?}", e.message);
    }
}

#[test]
fn the_base_models_load_and_generate() {
    for (tag, w) in [("base", base()), ("base-tok", with_tokenizer(base(), VOCAB as usize))] {
        let dir = common::temp_dir(tag);
        let path = dir.join("m.gguf");
        w.write_to(&path).unwrap();
        let mut m = Memory64GGUFLoader::new(&path, LoadOptions::default()).load().unwrap();
        let opts = GenerateOptions { max_tokens: Some(3), ..Default::default() };
        let g = m.generate_tokens(&[1, 5, 7], &opts, &mut |_| {}, &|| false).unwrap();
        assert_eq!(g.tokens.len(), 3, "{tag}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn hyperparameters_out_of_range_or_inconsistent() {
    let mut w = base();
    set(&mut w, "llama.block_count", GgufValue::U32(0));
    assert_rejected("bc0", &w, E::ModelBadHparams, &["llama.block_count = u32 0 is out of range (1..=256)"]);
    set(&mut w, "llama.block_count", GgufValue::U32(1_000_000));
    assert_rejected("bc1e6", &w, E::ModelBadHparams, &["llama.block_count = u32 1000000"]);
    set(&mut w, "llama.block_count", GgufValue::U32(3));
    assert_rejected("bc3", &w, E::ModelBadHparams, &["block_count is 3 but the file has 2 layers"]);
    set(&mut w, "llama.block_count", GgufValue::String("2".into()));
    assert_rejected("bcstr", &w, E::ModelBadHparams, &["llama.block_count is string \"2\", not a non-negative integer"]);

    let mut w = base();
    set(&mut w, "llama.attention.head_count_kv", GgufValue::U32(3));
    assert_rejected("heads", &w, E::ModelBadHparams, &["head_count = 8 is not a multiple of llama.attention.head_count_kv = 3"]);

    let mut w = base();
    set(&mut w, "llama.attention.head_count", GgufValue::U32(7));
    set(&mut w, "llama.attention.head_count_kv", GgufValue::U32(7));
    assert_rejected("embd-per-head", &w, E::ModelBadHparams, &["embedding_length = 64 is not a multiple of llama.attention.head_count = 7"]);

    let mut w = base();
    set(&mut w, "llama.attention.head_count", GgufValue::U32(1));
    set(&mut w, "llama.attention.head_count_kv", GgufValue::U32(1));
    set(&mut w, "llama.embedding_length", GgufValue::U32(1024));
    assert_rejected("head-size", &w, E::ModelBadHparams, &["key_length is missing and embedding_length / head_count = 1024 is out of its range (2..=512)"]);

    let mut w = base();
    unset(&mut w, "llama.embedding_length");
    assert_rejected("no-embd", &w, E::ModelBadHparams, &["llama.embedding_length is missing"]);

    let mut w = base();
    set(&mut w, "llama.rope.dimension_count", GgufValue::U32(10));
    assert_rejected("n_rot", &w, E::ModelBadHparams, &["rope.dimension_count = 10", "head size 8"]);

    let mut w = base();
    set(&mut w, "llama.attention.layer_norm_rms_epsilon", GgufValue::F32(f32::NAN));
    assert_rejected("eps", &w, E::ModelBadHparams, &["layer_norm_rms_epsilon = f32 NaN is out of range"]);

    let mut w = base();
    set(&mut w, "llama.vocab_size", GgufValue::U32(101));
    assert_rejected("vocab_size", &w, E::ModelBadHparams, &["vocab_size is u32 101 but token_embd.weight has 100 rows"]);
}

#[test]
fn tensors_missing_misshapen_or_unknown() {
    let mut w = base();
    w.tensors.retain(|t| t.name != "blk.1.ffn_up.weight");
    assert_rejected("missing", &w, E::MissingTensor, &["\"blk.1.ffn_up.weight\" is missing"]);

    let mut w = base();
    shape(&mut w, "blk.0.attn_k.weight", &[EMBD, EMBD / 2]);
    assert_rejected("shape", &w, E::ModelTensorShape, &["\"blk.0.attn_k.weight\" has shape [64, 32], expected [n_embd = 64, n_head_kv·head_dim = 64]"]);

    let mut w = base();
    shape(&mut w, "output.weight", &[EMBD, VOCAB + 1]);
    assert_rejected("head", &w, E::ModelTensorShape, &["\"output.weight\"", "n_vocab = 100"]);

    let mut w = base();
    w.tensors.iter_mut().find(|t| t.name == "blk.1.ffn_norm.weight").unwrap().type_id = GgmlType::F16.id();
    assert_rejected("norm-type", &w, E::ModelTensorShape, &["\"blk.1.ffn_norm.weight\" is F16, expected F32"]);

    let mut w = base();
    w.tensor(TensorSpec::new("rope_freqs.weight", GgmlType::F32, &[4], TensorData::Pattern(9)));
    assert_rejected("extra", &w, E::UnsupportedArch, &["\"rope_freqs.weight\" has no role in a llama model"]);

    let mut w = base();
    w.tensor(TensorSpec::new("blk.0.attn_q_norm.weight", GgmlType::F32, &[8], TensorData::Pattern(9)));
    assert_rejected("extra-layer", &w, E::UnsupportedArch, &["\"blk.0.attn_q_norm.weight\" has no role"]);
}

#[test]
fn architecture_unknown_or_with_unimplemented_features() {
    let mut w = base();
    set(&mut w, "general.architecture", GgufValue::String("mamba".into()));
    assert_rejected("arch", &w, E::UnsupportedArch, &["\"mamba\" is not supported (supported: llama, qwen2, gemma3)"]);
    unset(&mut w, "general.architecture");
    assert_rejected("no-arch", &w, E::UnsupportedArch, &["general.architecture is missing"]);

    let mut w = base();
    w.kv("llama.rope.scaling.type", GgufValue::String("yarn".into()));
    assert_rejected("yarn", &w, E::UnsupportedArch, &["rope.scaling.type is string \"yarn\""]);

    let mut w = base();
    w.kv("llama.attention.value_length", GgufValue::U32(4));
    assert_rejected("vlen", &w, E::UnsupportedArch, &["value_length = 4 differs from the key length 8"]);
}

/// The special-token ids a file gives reach the tokenizer, each from its own key.
#[test]
fn special_token_ids_from_their_keys() {
    let mut w = with_tokenizer(base(), VOCAB as usize);
    let ids = [("bos", 11), ("eos", 12), ("eot", 13), ("eom", 14), ("unknown", 15), ("seperator", 16), ("padding", 17), ("fim_pad", 18), ("fim_rep", 19), ("fim_sep", 20)];
    for (k, v) in ids {
        w.kv(&format!("tokenizer.ggml.{k}_token_id"), GgufValue::U32(v));
    }
    let dir = common::temp_dir("special-ids");
    let path = dir.join("m.gguf");
    w.write_to(&path).unwrap();
    let m = Memory64GGUFLoader::new(&path, LoadOptions::default()).load().unwrap();
    let t = m.tokenizer().unwrap();
    assert_eq!((t.bos(), t.eos(), t.eot(), t.eom(), t.unk(), t.sep(), t.pad()), (Some(11), Some(12), Some(13), Some(14), Some(15), Some(16), Some(17)));
    for id in [12, 13, 14, 18, 19, 20] {
        assert!(t.is_eog(id), "{id} should end generation");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokenizer_defects() {
    let mut w = with_tokenizer(base(), VOCAB as usize);
    w.kv("tokenizer.ggml.bos_token_id", GgufValue::U32(100));
    assert_rejected("bos", &w, E::GgufBadTokenizer, &["tokenizer.ggml.bos_token_id is u32 100, not a token id (the vocabulary has 100 tokens)"]);

    let w = with_tokenizer(base(), VOCAB as usize + 5);
    assert_rejected("vocab", &w, E::GgufBadTokenizer, &["the vocabulary has 105 tokens but token_embd.weight has 100 rows"]);

    let mut w = with_tokenizer(base(), VOCAB as usize);
    unset(&mut w, "tokenizer.ggml.scores");
    w.kv("tokenizer.ggml.scores", GgufValue::Array(GgufArray::new(GgufValueType::F32, vec![GgufValue::F32(0.0)]).unwrap()));
    assert_rejected("scores", &w, E::GgufBadTokenizer, &["scores"]);
}
