#!/usr/bin/env node
// wasm-chord CLI (`wasm-chord --help`):
//   generate <model.gguf> "<prompt>"  streams a continuation to stdout, the timings to stderr;
//   chat <model.gguf>                 an interactive chat with the file's template (a session:
//                                     each turn evaluates only what is new), /reset and /exit;
//   info <model.gguf>                 inspects the file: metadata, special tokens, chat template,
//                                     KV cache bytes per context size, the memory plan;
//   verify <model.gguf>               the Memory64 self-check: every layer acquired by the guest
//                                     through the layer cache and checked against the file, twice.
// A load progress bar is drawn on stderr when it is a terminal.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { parseArgs } = require('node:util')
const { Model } = require('..')

const VERSION = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version

const USAGE = `usage: wasm-chord <command> <model.gguf> [options]

commands:
  generate <model.gguf> "<prompt>"   stream a continuation of the prompt
  chat <model.gguf>                  chat with the model (its chat template); /reset, /exit
  info <model.gguf>                  metadata, special tokens, chat template, KV cache sizes, memory plan
  verify <model.gguf>                check every layer the guest sees through the layer cache against the file

generation (generate, chat):
  --max-tokens N        most tokens to generate (generate: 128; chat: until the end of the turn)
  --temperature T       0 = greedy (default); with T > 0: --top-k K, --top-p P, --min-p P, --seed S
  --repeat-penalty X    penalty for recently seen tokens (1 = off)
  --stop TEXT           end the text before TEXT (repeatable)
  --system TEXT         (chat) the system prompt
  --template FILE       (chat) a Jinja chat template, for files without tokenizer.chat_template

loading:
  --context N           KV cache positions (default: the model's, capped at 4096)
  --memory64 MODE       auto | always | never
  --cache-layers N      layer cache slots (Memory64)
  --cache-bytes N       layer cache bytes (Memory64)
  --threshold BYTES     tensor bytes above which 'auto' picks Memory64
  --threads N           threads for the matrix products

  -h, --help            this help
  --version             the version`

// Flag → [JS option, kind]. One table for parsing, validation and naming errors after the flag.
const LOAD = { context: ['contextLength', 'int'], memory64: ['memory64', 'string'], 'cache-layers': ['cacheLayers', 'int'], 'cache-bytes': ['cacheBytes', 'int'], threshold: ['memory64Threshold', 'int'], threads: ['threads', 'int'] }
const GEN = { 'max-tokens': ['maxTokens', 'int'], temperature: ['temperature', 'number'], 'top-k': ['topK', 'int'], 'top-p': ['topP', 'number'], 'min-p': ['minP', 'number'], 'repeat-penalty': ['repeatPenalty', 'number'], seed: ['seed', 'int'] }

const usageError = (message) => Object.assign(new Error(`${message}\n(wasm-chord --help for usage)`), { code: 'ERR_USAGE' })

function parse(argv) {
  const options = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' }, stop: { type: 'string', multiple: true }, system: { type: 'string' }, template: { type: 'string' } }
  for (const flag of [...Object.keys(LOAD), ...Object.keys(GEN)]) options[flag] = { type: 'string' }
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (e) {
    throw usageError(e.message)
  }
  const { values, positionals } = parsed
  const pick = (table) => {
    const out = {}
    for (const [flag, [key, kind]] of Object.entries(table)) {
      const v = values[flag]
      if (v === undefined) continue
      if (kind === 'string') out[key] = v
      else {
        const n = Number(v)
        if (v.trim() === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) throw usageError(`--${flag} must be ${kind === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`)
        out[key] = n
      }
    }
    return out
  }
  const gen = pick(GEN)
  if (values.stop) gen.stop = values.stop
  return { values, positionals, load: pick(LOAD), gen }
}

// An error from the library names JS options (`maxTokens`); say the flag instead.
function flagNames(e) {
  if (e.code !== 'ERR_INVALID_OPTION' || typeof e.message !== 'string') return e
  let message = e.message
  for (const [flag, [key]] of [...Object.entries(LOAD), ...Object.entries(GEN)]) message = message.replace(new RegExp(`\\b${key}\\b`, 'g'), `--${flag}`)
  return Object.assign(new Error(message), { code: e.code })
}

// Loads with a progress bar on a terminal (nothing otherwise).
async function load(file, options) {
  const tty = process.stderr.isTTY
  const draw = (f) => {
    const width = 30
    const done = Math.round(f * width)
    process.stderr.write(`\rloading ${path.basename(file)} [${'#'.repeat(done)}${' '.repeat(width - done)}] ${Math.round(f * 100)}%`)
  }
  try {
    return await Model.load(file, tty ? { ...options, onLoadProgress: draw } : options)
  } finally {
    if (tty) process.stderr.write('\r\x1b[K')
  }
}

const rate = (n, ms) => (ms > 0 ? (n / ms) * 1000 : 0).toFixed(1)
const timings = (mode, r) => {
  const t = r.timings
  const cached = t.cachedTokens ? ` (+${t.cachedTokens} cached)` : ''
  return `[${mode}] prompt ${t.promptTokens} tokens${cached} in ${t.promptMs.toFixed(0)} ms (${rate(t.promptTokens, t.promptMs)} tok/s), generated ${t.generatedTokens} tokens in ${t.generateMs.toFixed(0)} ms (${rate(t.generatedTokens, t.generateMs)} tok/s), stop: ${r.stopReason}`
}

async function generate(file, prompt, opts) {
  const model = await load(file, opts.load)
  try {
    const result = await model.generate(prompt, { maxTokens: 128, ...opts.gen, onTextChunk: (t) => process.stdout.write(t) })
    process.stdout.write('\n')
    console.error(timings(model.info.mode, result))
  } finally {
    await model.dispose()
  }
}

async function chat(file, opts) {
  const options = {}
  if (opts.values.system !== undefined) options.systemPrompt = opts.values.system
  if (opts.values.template !== undefined) options.template = fs.readFileSync(opts.values.template, 'utf8')
  const model = await load(file, opts.load)
  let session
  try {
    session = model.createSession(options)
  } catch (e) {
    await model.dispose()
    throw e.code === 'ERR_NO_CHAT_TEMPLATE' ? Object.assign(new Error(`${e.message} (--template FILE)`), { code: e.code }) : e
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY })
  const interactive = process.stdin.isTTY
  if (interactive) console.error(`chatting with ${model.info.name ?? path.basename(file)} (${model.info.mode}); /reset starts over, /exit or Ctrl-D ends`)
  let turn = null
  // Ctrl-C stops a reply (what it said so far is kept), or else ends the chat.
  rl.on('SIGINT', () => (turn ? turn.abort() : rl.close()))
  rl.setPrompt('> ')
  const lines = rl[Symbol.asyncIterator]()
  try {
    for (;;) {
      if (interactive) rl.prompt()
      const { value: line, done } = await lines.next()
      if (done || line.trim() === '/exit') break
      if (line.trim() === '') continue
      if (line.trim() === '/reset') {
        session.reset()
        console.error('(history cleared)')
        continue
      }
      turn = new AbortController()
      const r = await session.prompt(line, { ...opts.gen, signal: turn.signal, stopOnAbortSignal: true, onTextChunk: (t) => process.stdout.write(t) })
      turn = null
      process.stdout.write('\n')
      if (interactive) console.error(timings(model.info.mode, r))
    }
  } finally {
    rl.close()
    await session.dispose()
    await model.dispose()
  }
}

const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`
const json = (v) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x))

async function info(file, opts) {
  const t0 = performance.now()
  const model = await load(file, opts.load)
  const loadMs = performance.now() - t0
  try {
    const i = model.info
    const meta = model.metadata
    const arch = i.architecture
    console.log(`model        ${i.name ?? '(unnamed)'} — ${arch}, GGUF v${i.ggufVersion}, ${i.fileTypeName ?? i.fileType ?? '?'}`)
    console.log(`file         ${i.path} (${mib(i.fileSize)})`)
    console.log(`shape        ${i.layerCount} layers, embedding ${i.embeddingLength}, heads ${i.headCount}/${i.headCountKv} (kv), trained context ${i.contextLength}, vocab ${i.vocabSize}`)
    console.log(`tensors      ${i.tensorCount} (${mib(i.tensorBytes)}): ${i.tensorTypes.map((t) => `${t.type}×${t.count}`).join(', ')}`)
    for (const key of ['tokenizer.ggml.model', 'tokenizer.ggml.pre', 'general.quantization_version', `${arch}.rope.freq_base`, `${arch}.attention.sliding_window`]) {
      if (key in meta) console.log(`metadata     ${key} = ${json(meta[key])}`)
    }
    for (const [name, key] of [['bos', 'tokenizer.ggml.bos_token_id'], ['eos', 'tokenizer.ggml.eos_token_id'], ['eot', 'tokenizer.ggml.eot_token_id'], ['pad', 'tokenizer.ggml.padding_token_id'], ['unk', 'tokenizer.ggml.unknown_token_id']]) {
      if (!(key in meta)) continue
      const id = Number(meta[key])
      let text = '?'
      try {
        text = json(await model.detokenize([id], { renderSpecial: true }))
      } catch {}
      const add = name === 'bos' && 'tokenizer.ggml.add_bos_token' in meta ? ` (added: ${meta['tokenizer.ggml.add_bos_token']})` : ''
      console.log(`special      ${name.padEnd(4)} ${String(id).padStart(7)} ${text}${add}`)
    }
    const template = meta['tokenizer.chat_template']
    console.log(`chat         ${typeof template === 'string' ? `template present (${template.length} characters): wasm-chord chat works` : 'no tokenizer.chat_template (chat needs a template)'}`)
    const headDim = Number(meta[`${arch}.attention.key_length`] ?? i.embeddingLength / i.headCount)
    const perPosition = 2 * i.layerCount * i.headCountKv * headDim * 2
    const sizes = [512, 2048, 4096, 8192, 32768].filter((n) => !i.contextLength || n <= i.contextLength)
    if (perPosition > 0) console.log(`KV cache     ${(perPosition / 1024).toFixed(1)} KiB per position (f16): ${sizes.map((n) => `${n} → ${mib(n * perPosition)}`).join(', ')}`)
    console.log(`plan         ${i.mode.toUpperCase()} (threshold ${mib(i.memory64Threshold)}), loaded in ${loadMs.toFixed(1)} ms`)
    const mem = await model.memoryStats()
    for (const r of mem.regions) console.log(`  region     ${r.name.padEnd(16)} ${mib(r.size).padStart(11)} at file offset ${r.fileOffset}`)
    console.log(`  guest      ${mib(mem.guestMemoryBytes)} wasm32 memory, cache arena ${mib(mem.cacheArenaBytes)}, RSS ${mib(mem.rssBytes ?? 0)}`)
  } finally {
    await model.dispose()
  }
}

async function verify(file, opts) {
  const model = await load(file, opts.load)
  let bad = 0
  try {
    const layers = model.info.layerCount
    console.log(`plan         ${model.info.mode.toUpperCase()}`)
    for (const pass of [1, 2]) {
      const t = performance.now()
      for (let layer = 0; layer < layers; layer++) {
        const c = await model.verifyUnit(layer)
        if (!c.ok) {
          bad++
          console.log(`  MISMATCH   layer ${layer}: guest ${c.guest} file ${c.file}`)
        }
      }
      const s = await model.cacheStats()
      console.log(
        `cache pass ${pass} ${layers} layers verified in ${(performance.now() - t).toFixed(0)} ms — ${s.policy}, ${s.capacityLayers} slots: ` +
          `hits ${s.hits}, misses ${s.misses}, evictions ${s.evictions}, loaded ${mib(s.bytesLoaded)}`,
      )
    }
  } finally {
    await model.dispose()
  }
  if (bad) throw Object.assign(new Error(`${bad} layers did not match the file`), { code: 'ERR_MISMATCH' })
  console.log('ok: the guest saw the same bytes as the file for every layer')
}

async function main() {
  const opts = parse(process.argv.slice(2))
  if (opts.values.help) return console.log(USAGE)
  if (opts.values.version) return console.log(VERSION)
  const [command, file, ...rest] = opts.positionals
  const commands = { generate: 1, chat: 0, info: 0, verify: 0 }
  if (!(command in commands)) throw usageError(command ? `unknown command ${JSON.stringify(command)}` : 'no command given')
  if (!file) throw usageError(`${command} needs a model file`)
  if (rest.length !== commands[command]) throw usageError(command === 'generate' ? 'generate takes one prompt (quote it)' : `${command} takes no argument after the model file`)
  for (const flag of ['system', 'template']) {
    if (command !== 'chat' && opts.values[flag] !== undefined) throw usageError(`--${flag} is an option of chat`)
  }
  if (command === 'generate') return generate(file, rest[0], opts)
  if (command === 'chat') return chat(file, opts)
  if (command === 'info') return info(file, opts)
  return verify(file, opts)
}

main().catch((e) => {
  const err = flagNames(e)
  console.error(err.code ? `${err.code}: ${err.message}` : err.message)
  process.exit(err.code === 'ERR_USAGE' ? 2 : 1)
})
