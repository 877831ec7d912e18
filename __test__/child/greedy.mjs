// Child process for the > 4 GB test: greedy tokens from one runtime, plus its peak RSS.
//   node greedy.mjs ours|llama <model.gguf> <n> <prompt ids json>
// Prints one JSON line: { tokens, maxRssMiB, mode? }.
import { createRequire } from 'node:module'

const [runtime, file, n, idsJson] = process.argv.slice(2)
const ids = JSON.parse(idsJson)
const N = Number(n)
let out
if (runtime === 'ours') {
  const { Model } = createRequire(import.meta.url)('../../index.js')
  const m = await Model.load(file, { memory64: 'always', cacheBytes: 2 ** 30, contextLength: 256 })
  const r = await m.generate(ids, { maxTokens: N })
  const s = await m.cacheStats()
  out = { tokens: r.tokens, mode: m.info.mode, cache: { capacityLayers: s.capacityLayers, misses: s.misses }, timings: r.timings }
  await m.dispose()
} else {
  const { getLlama } = await import('node-llama-cpp')
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: 'error' })
  const model = await llama.loadModel({ modelPath: file })
  const ctx = await model.createContext({ contextSize: 256, threads: 1 })
  const tokens = []
  for await (const t of ctx.getSequence().evaluate(ids, { temperature: 0 })) {
    if (model.isEogToken(t)) break
    tokens.push(t)
    if (tokens.length >= N) break
  }
  out = { tokens }
}
out.maxRssMiB = process.resourceUsage().maxRSS / 1024
process.stdout.write(JSON.stringify(out))
process.exit(0)
