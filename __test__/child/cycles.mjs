// Child process for the dispose test: load / generate / dispose cycles without GC (a fresh process,
// no --expose-gc), printing the RSS growth after a warm-up cycle.
//   node cycles.mjs <model.gguf> <cycles> [memory64 option]
// Prints one JSON line: { rssBeforeMiB, rssAfterMiB, rssMiB: [after each cycle], loadWallMs: [..], loadMs: [..] }.
import { createRequire } from 'node:module'

const [file, n, mode] = process.argv.slice(2)
const { Model } = createRequire(import.meta.url)('../../index.js')
const options = mode ? { memory64: mode } : {}
const rss = () => process.memoryUsage().rss / 2 ** 20
const cycle = async (record) => {
  const t = performance.now()
  const m = await Model.load(file, options)
  if (record) record(performance.now() - t, m.info.loadMs)
  await m.generate('Hi', { maxTokens: 2 })
  await m.dispose()
}
await cycle()
const out = { rssBeforeMiB: rss(), rssMiB: [], loadWallMs: [], loadMs: [] }
for (let i = 0; i < Number(n); i++) {
  await cycle((wall, ms) => {
    out.loadWallMs.push(wall)
    out.loadMs.push(ms)
  })
  out.rssMiB.push(rss())
}
out.rssAfterMiB = rss()
console.log(JSON.stringify(out))
