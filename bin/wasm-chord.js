#!/usr/bin/env node
// wasm-chord CLI.
// `wasm-chord generate <model.gguf> "<prompt>" [--max-tokens N] [--temperature T] [--top-k K]
// [--top-p P] [--min-p P] [--seed S] [--context N] [--memory64 ...] [--cache-layers N] [--cache-bytes N]`
// streams the generated text to stdout, then the timings to stderr.
// `wasm-chord info <model.gguf> [--memory64 auto|always|never] [--cache-layers N]
// [--cache-bytes N] [--threshold BYTES]` prints the model's metadata, the memory plan, and a
// layer-cache run: every layer acquired by the guest through the cache and checked against the
// file, twice, with the cache statistics after each pass.
'use strict'
const { Model } = require('..')

const USAGE = `usage:
  wasm-chord generate <model.gguf> "<prompt>" [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
                      [--min-p P] [--repeat-penalty X] [--seed S] [--context N] [load flags]
  wasm-chord info <model.gguf> [load flags]
load flags: [--memory64 auto|always|never] [--cache-layers N] [--cache-bytes N] [--threshold BYTES]`

const LOAD_FLAGS = { '--memory64': 'memory64', '--cache-layers': 'cacheLayers', '--cache-bytes': 'cacheBytes', '--threshold': 'memory64Threshold', '--context': 'contextLength' }
const GEN_FLAGS = { '--max-tokens': 'maxTokens', '--temperature': 'temperature', '--top-k': 'topK', '--top-p': 'topP', '--min-p': 'minP', '--repeat-penalty': 'repeatPenalty', '--seed': 'seed' }

function parseArgs(argv) {
  const [command, path, ...rest] = argv
  const options = {}
  const gen = {}
  const positional = []
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]
    if (!flag.startsWith('--')) {
      positional.push(flag)
      continue
    }
    const value = rest[++i]
    if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`)
    if (flag in LOAD_FLAGS) options[LOAD_FLAGS[flag]] = flag === '--memory64' ? value : Number(value)
    else if (flag in GEN_FLAGS) gen[GEN_FLAGS[flag]] = Number(value)
    else throw new Error(`unknown flag ${flag}\n${USAGE}`)
  }
  return { command, path, options, gen, positional }
}

async function generate(path, prompt, options, gen) {
  const model = await Model.load(path, options)
  try {
    const result = await model.generate(prompt, { maxTokens: 128, ...gen, onTextChunk: (t) => process.stdout.write(t) })
    const t = result.timings
    const rate = (n, ms) => (ms > 0 ? (n / ms) * 1000 : 0).toFixed(1)
    process.stdout.write('\n')
    console.error(
      `[${model.info.mode}] prompt ${t.promptTokens} tokens in ${t.promptMs.toFixed(0)} ms (${rate(t.promptTokens, t.promptMs)} tok/s), ` +
        `generated ${t.generatedTokens} tokens in ${t.generateMs.toFixed(0)} ms (${rate(t.generatedTokens, t.generateMs)} tok/s), stop: ${result.stopReason}`,
    )
  } finally {
    await model.dispose()
  }
}

const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`

async function info(path, options) {
  const t0 = performance.now()
  const model = await Model.load(path, options)
  const loadMs = performance.now() - t0
  const i = model.info
  console.log(`model        ${i.name ?? '(unnamed)'} — ${i.architecture}, GGUF v${i.ggufVersion}, ${i.fileTypeName ?? i.fileType ?? '?'}`)
  console.log(`file         ${i.path} (${mib(i.fileSize)})`)
  console.log(`shape        ${i.layerCount} layers, embedding ${i.embeddingLength}, heads ${i.headCount}/${i.headCountKv} (kv), context ${i.contextLength}, vocab ${i.vocabSize}`)
  console.log(`tensors      ${i.tensorCount} (${mib(i.tensorBytes)}): ${i.tensorTypes.map((t) => `${t.type}×${t.count}`).join(', ')}`)
  const meta = model.metadata
  for (const key of ['tokenizer.ggml.model', 'tokenizer.ggml.pre', 'tokenizer.ggml.tokens', 'general.quantization_version']) {
    if (key in meta) console.log(`metadata     ${key} = ${JSON.stringify(meta[key], (_, v) => (typeof v === 'bigint' ? v.toString() : v))}`)
  }
  console.log(`plan         ${i.mode.toUpperCase()} (threshold ${mib(i.memory64Threshold)}), loaded in ${loadMs.toFixed(1)} ms`)
  const mem = await model.memoryStats()
  for (const r of mem.regions) console.log(`  region     ${r.name.padEnd(16)} ${mib(r.size).padStart(11)} at file offset ${r.fileOffset}`)
  console.log(`  guest      ${mib(mem.guestMemoryBytes)} wasm32 memory, cache arena ${mib(mem.cacheArenaBytes)}, RSS ${mib(mem.rssBytes ?? 0)}`)
  let bad = 0
  for (const pass of [1, 2]) {
    const t = performance.now()
    for (let layer = 0; layer < i.layerCount; layer++) {
      const c = await model.verifyUnit(layer)
      if (!c.ok) {
        bad++
        console.log(`  MISMATCH   layer ${layer}: guest ${c.guest} file ${c.file}`)
      }
    }
    const s = await model.cacheStats()
    console.log(
      `cache pass ${pass} ${i.layerCount} layers verified in ${(performance.now() - t).toFixed(0)} ms — ${s.policy}, ${s.capacityLayers} slots: ` +
        `hits ${s.hits}, misses ${s.misses}, evictions ${s.evictions}, loaded ${mib(s.bytesLoaded)}`,
    )
  }
  await model.dispose()
  if (bad) throw Object.assign(new Error(`${bad} layers did not match the file`), { code: 'ERR_MISMATCH' })
  console.log('ok: the guest saw the same bytes as the file for every layer')
}

async function main() {
  const { command, path, options, gen, positional } = parseArgs(process.argv.slice(2))
  if (command === 'info' && path && positional.length === 0) return info(path, options)
  if (command === 'generate' && path && positional.length === 1) return generate(path, positional[0], options, gen)
  throw new Error(USAGE)
}

main().catch((e) => {
  console.error(e.code ? `${e.code}: ${e.message}` : e.message)
  process.exit(1)
})
