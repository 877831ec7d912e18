//! Decode loop for profiling: `cargo run --release --no-default-features --example decode -- model.gguf N [PROMPT_TOKENS [THREADS]]`.
use wasm_chord::infer::GenerateOptions;
use wasm_chord::model::{LoadOptions, Memory64GGUFLoader, Memory64Option};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let threads = a.get(4).and_then(|s| s.parse().ok());
    let memory64 = if std::env::var_os("MEMORY64").is_some() { Memory64Option::Always } else { Memory64Option::Never };
    let options = LoadOptions { memory64, context_length: Some(512), threads, ..Default::default() };
    let mut m = Memory64GGUFLoader::new(&a[1], options).load().expect("load");
    let base = [785u32, 6722, 315, 9625, 374, 12095, 13, 576];
    let plen: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(base.len());
    let prompt: Vec<u32> = base.iter().copied().cycle().take(plen).collect();
    let opts = GenerateOptions { max_tokens: Some(n), ..Default::default() };
    let t = std::time::Instant::now();
    let r = m.generate_tokens(&prompt, &opts, &mut |_| {}, &|| false).expect("generate");
    let dt = t.elapsed().as_secs_f64();
    eprintln!("tokens {:?}", &r.tokens[..r.tokens.len().min(16)]);
    eprintln!("{} tokens in {:.2}s = {:.1} tok/s ({} prompt tokens)", r.tokens.len(), dt, r.tokens.len() as f64 / dt, prompt.len());
}
