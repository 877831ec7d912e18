// Model-free tests: synthetic GGUF files written by the addon's own writer, loaded in both memory
// modes; the guest's view of every unit must match the file.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { writeGguf } from '../testing.js'
import { llamaSpec, rejection, tempDir } from './helpers.mjs'

const dir = tempDir('synthetic')
const file = path.join(dir, 'synthetic.gguf')
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
beforeAll(async () => {
  await writeGguf(file, llamaSpec({ layers: 6, embd: 128, ff: 256, vocab: 2000, type: 'Q8_0' }))
})

async function verifyAll(model) {
  const results = []
  for (let u = 0; u < model.unitCount; u++) results.push(await model.verifyUnit(u))
  return results
}

describe('both memory modes on a synthetic model', () => {
  it('the guest sees the file bytes of every unit, WHOLE and Memory64 with a small cache', async () => {
    const whole = await Model.load(file, { memory64: 'never' })
    const m64 = await Model.load(file, { memory64: 'always', cacheLayers: 2 })
    expect(whole.info.mode).toBe('whole')
    expect(m64.info.mode).toBe('memory64')
    expect(whole.unitCount).toBe(6 + 3)
    const a = await verifyAll(whole)
    const b = await verifyAll(m64)
    for (const r of [...a, ...b]) expect(r.ok, `${r.name}: guest ${r.guest} file ${r.file}`).toBe(true)
    expect(a.map((r) => r.guest)).toEqual(b.map((r) => r.guest))
    const s = await m64.cacheStats()
    expect(s).toMatchObject({ mode: 'memory64', policy: 'lru', capacityLayers: 2, hits: 0, misses: 6, evictions: 4, loads: 6 })
    expect(s.resident).toEqual([5, 4])
    await m64.verifyUnit(5)
    expect((await m64.cacheStats()).hits).toBe(1)
    expect(await m64.acquireLayer(4)).toMatchObject({ index: 4, hit: true })
    expect(await m64.acquireLayer(0)).toMatchObject({ index: 0, hit: false })
    expect((await m64.cacheStats()).resident).toEqual([0, 4])
    expect((await rejection(m64.acquireLayer(6))).code).toBe('ERR_NO_SUCH_LAYER')
    expect((await whole.acquireLayer(3)).hit).toBe(true)
    const mem = await m64.memoryStats()
    expect(mem.bridge.enabled).toBe(true)
    expect(mem.bridge.reads).toBeGreaterThanOrEqual(3)
    expect(mem.regions.map((r) => r.name)).toEqual(['embeddings', 'layers_0_5', 'output'])
    expect((await whole.cacheStats()).mode).toBe('whole')
    expect((await whole.memoryStats()).bridge.enabled).toBe(false)
    await Promise.all([whole.dispose(), m64.dispose()])
  })

  it('info, metadata and layers describe the file', async () => {
    const m = await Model.load(file)
    expect(m.info).toMatchObject({
      architecture: 'llama',
      name: 'synthetic-6x128',
      layerCount: 6,
      embeddingLength: 128,
      headCount: 8,
      headCountKv: 4,
      contextLength: 2048,
      vocabSize: 2000,
      fileType: 7,
      fileTypeName: 'Q8_0',
      mode: 'whole',
      memory64Threshold: 3 * 2 ** 30,
      ggufVersion: 3,
    })
    expect(m.info.tensorTypes.map((t) => t.type)).toEqual(['Q8_0', 'F32'])
    const meta = m.metadata
    expect(meta['llama.block_count']).toBe(6)
    expect(meta['llama.rope.freq_base']).toBeCloseTo(10000.5)
    expect(meta['test.big']).toBe(2n ** 60n)
    expect(meta['tokenizer.ggml.tokens']).toEqual({ type: 'array', elementType: 'string', length: 2000 })
    expect(m.getMetadataArray('tokenizer.ggml.tokens', 1998)).toEqual(['tok1998', 'tok1999'])
    expect(rejectionSync(() => m.getMetadataArray('general.name')).code).toBe('ERR_INVALID_OPTION')
    const layer = await m.getLayer(2)
    expect(layer.index).toBe(2)
    expect(layer.resident).toBe(true)
    expect(layer.tensors.map((t) => t.name)).toContain('blk.2.ffn_down.weight')
    expect(layer.tensors.find((t) => t.name === 'blk.2.ffn_down.weight')).toEqual({ name: 'blk.2.ffn_down.weight', type: 'Q8_0', shape: [256, 128] })
    expect((await rejection(m.getLayer(6))).code).toBe('ERR_NO_SUCH_LAYER')
    expect((await rejection(m.getLayer(-1))).code).toBe('ERR_INVALID_OPTION')
    await m.dispose()
  })

  it('preloadAllLayers fills the cache or says why it cannot; clearCache empties it', async () => {
    const small = await Model.load(file, { memory64: 'always', cacheLayers: 3 })
    const e = await rejection(small.preloadAllLayers())
    expect(e.code).toBe('ERR_CACHE_TOO_SMALL')
    expect(e.message).toMatch(/6 layers/)
    const big = await Model.load(file, { memory64: 'always', cacheLayers: 6 })
    await big.preloadAllLayers()
    expect((await big.cacheStats()).resident).toHaveLength(6)
    expect((await big.getLayer(0)).resident).toBe(true)
    await big.clearCache()
    expect((await big.cacheStats()).resident).toHaveLength(0)
    expect((await big.getLayer(0)).resident).toBe(false)
    const layer = (await big.getLayer(0)).bytes
    const byBytes = await Model.load(file, { memory64: 'always', cacheBytes: 2 * layer + 1 })
    expect((await byBytes.cacheStats()).capacityLayers).toBe(2)
    expect((await rejection(Model.load(file, { memory64: 'always', cacheBytes: 100 }))).code).toBe('ERR_CACHE_TOO_SMALL')
    await Promise.all([small.dispose(), big.dispose(), byBytes.dispose()])
  })

  it('concurrent calls on one model are safe and give what each gives alone', async () => {
    const m = await Model.load(file, { memory64: 'always', cacheLayers: 2 })
    const alone = await verifyAll(m)
    const together = await Promise.all(Array.from({ length: 3 }, () => Promise.all(alone.map((_, u) => m.verifyUnit(u)))))
    for (const run of together) expect(run.map((r) => r.guest)).toEqual(alone.map((r) => r.guest))
    await m.dispose()
  })

  it('dispose is idempotent; afterwards calls reject with ERR_DISPOSED; Symbol.asyncDispose works', async () => {
    const m = await Model.load(file)
    // Settled handler attached at once: the call may lose the race and reject before dispose resolves.
    const pending = m.verifyUnit(0).then((r) => r, (e) => e)
    await Promise.all([m.dispose(), m.dispose()])
    // A call racing dispose either completes or rejects with ERR_DISPOSED; it never crashes.
    const raced = await pending
    expect(raced.ok === true || raced.code === 'ERR_DISPOSED').toBe(true)
    expect(m.disposed).toBe(true)
    for (const call of [() => m.getLayer(0), () => m.verifyUnit(0), () => m.cacheStats(), () => m.preloadAllLayers(), () => m.clearCache(), () => m.memoryStats()]) {
      expect((await rejection(call())).code).toBe('ERR_DISPOSED')
    }
    // The metadata is freed at once: its getter and getMetadataArray throw; info stays readable.
    expect(() => m.metadata).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }))
    expect(() => m.getMetadataArray('tokenizer.ggml.tokens')).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }))
    expect((await rejection(m.tokenize('x'))).code).toBe('ERR_DISPOSED')
    await m.dispose()
    expect(m.info.layerCount).toBe(6)
    expect(m.unitCount).toBe(6 + 3)
    const n = await Model.load(file)
    expect(typeof n[Symbol.asyncDispose]).toBe('function')
    await n[Symbol.asyncDispose]()
    expect(n.disposed).toBe(true)
  })

  it('reports load progress and honours an AbortSignal', async () => {
    const seen = []
    const m = await Model.load(file, { memory64: 'never', onLoadProgress: (p) => seen.push(p) })
    // The load settles after its last progress call was delivered.
    expect(seen.length).toBeGreaterThan(2)
    expect(seen[0]).toBe(0)
    expect(seen.at(-1)).toBe(1)
    expect([...seen].sort((a, b) => a - b)).toEqual(seen)
    await m.dispose()
    const ac = new AbortController()
    ac.abort()
    const e = await rejection(Model.load(file, { signal: ac.signal }))
    expect(e.code).toBe('ERR_ABORTED')
  })

  it('a throwing onLoadProgress rejects the load once with ERR_CALLBACK (cause: the thrown value)', async () => {
    const boom = new Error('boom')
    for (const throwAt of [0, 1]) {
      let calls = 0
      const onLoadProgress = (p) => {
        calls++
        if (p === throwAt) throw boom
      }
      const e = await rejection(Model.load({ modelPath: file, memory64: 'never', onLoadProgress }))
      expect(e.code).toBe('ERR_CALLBACK')
      expect(e.cause).toBe(boom)
      expect(e.message).toBe('onLoadProgress threw: boom')
      if (throwAt === 0) expect(calls).toBe(1)
    }
    expect((await rejection(Model.load(file, { onLoadProgress: () => {}, signal: {} }))).code).toBe('ERR_INVALID_OPTION')
  })

  it('rejects wrong options with ERR_INVALID_OPTION naming the option', async () => {
    const cases = [
      [{ memory64: 'sometimes' }, /memory64/],
      [{ memory64: 3 }, /memory64/],
      [{ cacheLayers: 0 }, /cacheLayers/],
      [{ cacheLayers: 1.5 }, /cacheLayers/],
      [{ cacheBytes: -1 }, /cacheBytes/],
      [{ memory64Threshold: 'big' }, /memory64Threshold/],
      [{ onLoadProgress: 42 }, /onLoadProgress/],
      [{ signal: 'stop' }, /signal/],
      [{ signal: {} }, /signal/],
      [{ contextLength: 0 }, /contextLength/],
      [{ referenceThreads: 0 }, /referenceThreads/],
      [{ referenceThreads: 2.5 }, /referenceThreads/],
      [{ bogus: true }, /bogus/],
    ]
    for (const [opts, re] of cases) {
      const e = await rejection(Model.load(file, opts))
      expect(e.code, JSON.stringify(opts)).toBe('ERR_INVALID_OPTION')
      expect(e.message).toMatch(re)
    }
    expect((await rejection(Model.load(42))).code).toBe('ERR_INVALID_OPTION')
    expect((await rejection(Model.load(file, 'x'))).code).toBe('ERR_INVALID_OPTION')
    expect((await rejection(Model.load(path.join(dir, 'missing.gguf')))).code).toBe('ERR_IO')
    const m = await Model.load({ modelPath: file, memory64: 'always' })
    expect(m.info.mode).toBe('memory64')
    await m.dispose()
  })
})

/** A sparse synthetic file larger than 4 GiB: a 4 GiB token embedding first, so every layer and
 * the output head lie past the 4 GiB offset. Only a few KiB per tensor are on disk. */
describe('a sparse > 4 GiB file', () => {
  const big = path.join(dir, 'sparse.gguf')
  beforeAll(async () => {
    const size = await writeGguf(big, llamaSpec({ layers: 4, embd: 512, ff: 1024, vocab: 1000, data: 'sparse', embdShape: [512, 2 ** 21], tied: true }))
    expect(size).toBeGreaterThan(4 * 2 ** 30)
  })
  afterAll(() => fs.rmSync(big, { force: true }))

  it('loads in Memory64 mode by threshold and pages layers past the 4 GiB offset', async () => {
    const m = await Model.load(big, { cacheLayers: 2 })
    expect(m.info.mode).toBe('memory64')
    expect(m.info.tensorBytes).toBeGreaterThan(4 * 2 ** 30)
    for (let l = 0; l < 4; l++) {
      const r = await m.verifyUnit(l)
      expect(r.ok, r.name).toBe(true)
    }
    const out = await m.verifyUnit(m.unitCount - 1) // output_norm.weight, past 4 GiB, through memory64_read
    expect(out).toMatchObject({ name: 'output_norm.weight', ok: true })
    const mem = await m.memoryStats()
    const past4g = mem.regions.filter((r) => r.fileOffset > 4 * 2 ** 30)
    expect(past4g.length).toBeGreaterThan(0)
    expect(past4g.every((r) => r.reads > 0)).toBe(true)
    expect(mem.guestMemoryBytes).toBeLessThan(2 ** 30)
    await m.dispose()
  })

  it("memory64: 'never' fails early with a typed error that suggests Memory64", async () => {
    const e = await rejection(Model.load(big, { memory64: 'never' }))
    expect(e.code).toBe('ERR_MODEL_TOO_LARGE_FOR_WASM32')
    expect(e.message).toMatch(/memory64: 'auto' or 'always'/)
  })
})

function rejectionSync(fn) {
  try {
    fn()
  } catch (e) {
    return e
  }
  throw new Error('expected a throw')
}
