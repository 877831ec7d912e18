#!/usr/bin/env node
// wasm-chord CLI. `wasm-chord info <model.gguf> [--memory64 auto|always|never] [--cache-layers N]
// [--cache-bytes N] [--threshold BYTES]` prints the model's metadata, the memory plan, and a
// layer-cache run: every layer acquired by the guest through the cache and checked against the
// file, twice, with the cache statistics after each pass.
'use strict'
const { Model } = require('..')

const USAGE = `usage: wasm-chord info <model.gguf> [--memory64 auto|always|never] [--cache-layers N] [--cache-bytes N] [--threshold BYTES]`

function parseArgs(argv) {
  const [command, path, ...rest] = argv
  const options = {}
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i], rest[i + 1]]
    if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`)
    if (flag === '--memory64') options.memory64 = value
    else if (flag === '--cache-layers') options.cacheLayers = Number(value)
    else if (flag === '--cache-bytes') options.cacheBytes = Number(value)
    else if (flag === '--threshold') options.memory64Threshold = Number(value)
    else throw new Error(`unknown flag ${flag}\n${USAGE}`)
  }
  return { command, path, options }
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
  const { command, path, options } = parseArgs(process.argv.slice(2))
  if (command !== 'info' || !path) throw new Error(USAGE)
  await info(path, options)
}

main().catch((e) => {
  console.error(e.code ? `${e.code}: ${e.message}` : e.message)
  process.exit(1)
})
