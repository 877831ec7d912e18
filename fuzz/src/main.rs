//! `wasm-chord-fuzz`: the long-run command line over the targets in the library.
//!
//! ```text
//! cargo run --release -p wasm-chord-fuzz -- <gguf|model|load|bridge|all> [--execs N] [--seconds S] [--seed X]
//! ```
//! Prints one report line per target and exits 1 if anything was found (inputs in
//! `fuzz/findings/`).

use std::time::Duration;

use wasm_chord_fuzz::{Budget, FileTarget, bridge::run_bridge_target, run_file_target};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<u64>().ok());
    let target = args.first().map(String::as_str).unwrap_or("help");
    let budget = Budget { execs: flag("--execs").unwrap_or(u64::MAX), time: Duration::from_secs(flag("--seconds").unwrap_or(60)) };
    let seed = flag("--seed").unwrap_or(1);
    let findings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("findings");
    let targets: Vec<&str> = match target {
        "all" => vec!["gguf", "model", "load", "bridge"],
        t @ ("gguf" | "model" | "load" | "bridge") => vec![t],
        _ => {
            eprintln!("usage: wasm-chord-fuzz <gguf|model|load|bridge|all> [--execs N] [--seconds S (default 60)] [--seed X]");
            std::process::exit(2);
        }
    };
    let mut found = 0;
    for t in targets {
        let report = match t {
            "gguf" => run_file_target(FileTarget::Gguf, seed, budget, &findings),
            "model" => run_file_target(FileTarget::Model, seed, budget, &findings),
            "load" => run_file_target(FileTarget::Load, seed, budget, &findings),
            _ => run_bridge_target(seed, budget, &findings),
        };
        println!("{t}: {report}");
        for f in report.findings.iter().take(20) {
            println!("  finding: {f}");
        }
        found += report.findings.len();
    }
    std::process::exit(i32::from(found > 0));
}
