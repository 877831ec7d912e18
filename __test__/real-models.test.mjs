// Model-dependent tests on real GGUF files from the model cache (scripts/fetch-models.sh).
// SmolLM2-135M is required in CI (.ci/run sets WASM_CHORD_REQUIRE_MODELS=1 and fetches it);
// the 7.1 GB F32 Qwen2.5-1.5B runs only when present (scripts/fetch-models.sh --f32).
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { realModel } from './helpers.mjs'

const smollm2 = realModel('SmolLM2-135M-Instruct.Q4_1.gguf')
const qwenF32 = realModel('qwen2.5-coder-1.5b-instruct-f32-from-q4km.gguf', { required: false })

describe.runIf(smollm2)('SmolLM2-135M Q4_1 (real weights)', () => {
  it('every unit, in WHOLE mode and in Memory64 mode with 4 of 30 layers cached, matches the file', async () => {
    const whole = await Model.load(smollm2, { memory64: 'never' })
    const m64 = await Model.load(smollm2, { memory64: 'always', cacheLayers: 4 })
    expect(whole.info).toMatchObject({ architecture: 'llama', layerCount: 30, embeddingLength: 576, headCount: 9, headCountKv: 3, vocabSize: 49152, fileTypeName: 'Q4_1' })
    expect(whole.metadata['tokenizer.ggml.pre']).toBe('smollm')
    for (let u = 0; u < whole.unitCount; u++) {
      const [a, b] = [await whole.verifyUnit(u), await m64.verifyUnit(u)]
      expect(a.ok, `whole ${a.name}`).toBe(true)
      expect(b.ok, `memory64 ${b.name}`).toBe(true)
      expect(a.guest).toBe(b.guest)
    }
    const s = await m64.cacheStats()
    expect(s).toMatchObject({ capacityLayers: 4, misses: 30, hits: 0, evictions: 26 })
    expect(s.layerAccesses.every((x) => x === 1)).toBe(true)
    const mem = await m64.memoryStats()
    expect(mem.bridge.layerLoads).toBe(30)
    expect(mem.cacheArenaBytes).toBe(4 * s.slotBytes)
    await Promise.all([whole.dispose(), m64.dispose()])
  })
})

describe.runIf(qwenF32)('Qwen2.5-1.5B F32, 7.1 GB (real weights, > 4 GB)', () => {
  it('loads in Memory64 mode without copying the file and pages real layers', async () => {
    const warm = await Model.load(smollm2 ?? qwenF32, { memory64: 'always' }) // process-wide engine setup
    await warm.dispose()
    const rss0 = process.memoryUsage().rss
    const m = await Model.load(qwenF32, { cacheBytes: 2 ** 30 })
    const added = process.memoryUsage().rss - rss0
    expect(m.info.mode).toBe('memory64')
    expect(m.info.tensorBytes).toBeGreaterThan(7e9)
    // Metadata, the tokenizer (151k tokens and merges, ~35 MiB) and the guest; the KV cache is
    // reserved but untouched, and the 7.1 GB of weights are not copied.
    expect(added).toBeLessThan(96 * 2 ** 20)
    for (const u of [0, 13, 27, m.unitCount - 1]) {
      const r = await m.verifyUnit(u)
      expect(r.ok, r.name).toBe(true)
    }
    expect(process.memoryUsage().rss).toBeLessThan(2 * 2 ** 30)
    await m.dispose()
  })
})

describe.runIf(qwenF32)('Qwen2.5-1.5B F32, 7.1 GB: generation through the bridge', () => {
  it('greedy tokens equal llama.cpp\'s with a 1 GiB layer cache, peak RSS under 2 GiB', async () => {
    const m = await Model.load(qwenF32, { memory64: 'always', cacheBytes: 2 ** 30, contextLength: 256 })
    const ids = await m.tokenize('def fibonacci(n):')
    await m.dispose()
    // Each runtime in its own process, so that peak RSS is its own (llama.cpp maps the whole file).
    const run = (runtime) =>
      JSON.parse(execFileSync(process.execPath, [path.join(import.meta.dirname, 'child', 'greedy.mjs'), runtime, qwenF32, '8', JSON.stringify(ids)], { encoding: 'utf8', maxBuffer: 1 << 20 }))
    const ours = run('ours')
    const ref = run('llama')
    console.log(`[7.1 GB] ours: ${JSON.stringify(ours)}; llama.cpp: tokens ${JSON.stringify(ref.tokens)}, peak RSS ${ref.maxRssMiB.toFixed(0)} MiB`)
    expect(ours.mode).toBe('memory64')
    expect(ours.cache.capacityLayers).toBeLessThan(28)
    expect(ours.maxRssMiB).toBeLessThan(2048)
    expect(ours.tokens[0]).toBe(ref.tokens[0])
    if (process.env.WASM_CHORD_STRICT_CONFORMANCE === '1') expect(ours.tokens).toEqual(ref.tokens)
  }, 900_000)
})
