// The generation API on a real model (SmolLM2-135M, fetched by scripts/fetch-models.sh): generate,
// stream, onTextChunk, stop strings, sampling with seeds, abort, concurrency, dispose, bad options.
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { realModel, rejection } from './helpers.mjs'

const smollm2 = realModel('SmolLM2-135M-Instruct.Q4_1.gguf')
const PROMPT = 'The capital of France is'

describe.runIf(smollm2)('generation API (SmolLM2-135M)', () => {
  let m
  beforeAll(async () => {
    m = await Model.load(smollm2, { contextLength: 256 })
  })
  afterAll(async () => {
    await m?.dispose()
  })

  it('generate returns text, tokens, stop reason and timings; onTextChunk pieces add up to the text', async () => {
    const chunks = []
    const r = await m.generate(PROMPT, { maxTokens: 16, onTextChunk: (t) => chunks.push(t) })
    expect(r.stopReason).toBe('maxTokens')
    expect(r.tokens).toHaveLength(16)
    expect(chunks.join('')).toBe(r.text)
    expect(r.text).toBe(await m.detokenize(r.tokens))
    expect(r.text.length).toBeGreaterThan(0)
    expect(r.timings).toMatchObject({ promptTokens: (await m.tokenize(PROMPT)).length, generatedTokens: 16 })
    expect(r.timings.promptMs).toBeGreaterThan(0)
    expect(r.timings.generateMs).toBeGreaterThan(0)
  })

  it('a text prompt and its token ids give the same continuation; greedy is deterministic', async () => {
    const ids = await m.tokenize(PROMPT)
    const [a, b] = [await m.generate(PROMPT, { maxTokens: 12 }), await m.generate(ids, { maxTokens: 12 })]
    expect(b.tokens).toEqual(a.tokens)
    expect(b.text).toBe(a.text)
  })

  it('stream yields the same text as generate, and breaking out stops generation', async () => {
    const full = await m.generate(PROMPT, { maxTokens: 20 })
    let streamed = ''
    const s = m.stream(PROMPT, { maxTokens: 20 })
    for await (const piece of s) streamed += piece
    expect(streamed).toBe(full.text)
    expect((await s.result).tokens).toEqual(full.tokens)

    const long = m.stream(PROMPT, { maxTokens: 200 })
    let n = 0
    for await (const _ of long) if (++n === 3) break
    const e = await rejection(long.result)
    expect(e.code).toBe('ERR_ABORTED')
    // The model is free again and still gives the same text.
    expect((await m.generate(PROMPT, { maxTokens: 20 })).text).toBe(full.text)
  })

  it('stop strings end the text before the stop string', async () => {
    const full = await m.generate(PROMPT, { maxTokens: 24 })
    const cut = full.text.indexOf('\n')
    expect(cut).toBeGreaterThan(0)
    const chunks = []
    const r = await m.generate(PROMPT, { maxTokens: 24, stop: ['\n'], onTextChunk: (t) => chunks.push(t) })
    expect(r.stopReason).toBe('stopString')
    expect(r.text).toBe(full.text.slice(0, cut))
    expect(chunks.join('')).toBe(r.text)
  })

  it('sampling: the same seed gives the same text, another seed (usually) another', async () => {
    const opts = { maxTokens: 24, temperature: 1.2, topK: 0, topP: 1, seed: 42 }
    const [a, b] = [await m.generate(PROMPT, opts), await m.generate(PROMPT, opts)]
    expect(b.tokens).toEqual(a.tokens)
    const others = await Promise.all([1, 2, 3].map((seed) => m.generate(PROMPT, { ...opts, seed })))
    expect(others.some((o) => o.text !== a.text)).toBe(true)
    const greedy = await m.generate(PROMPT, { maxTokens: 24 })
    const topK1 = await m.generate(PROMPT, { maxTokens: 24, temperature: 2, topK: 1, seed: 9 })
    expect(topK1.tokens).toEqual(greedy.tokens)
  })

  it('an AbortSignal stops a generation promptly (also before it starts) with ERR_ABORTED', async () => {
    const ac = new AbortController()
    const p = m.generate(PROMPT, { maxTokens: 500, signal: ac.signal, onTextChunk: () => ac.abort() })
    expect((await rejection(p)).code).toBe('ERR_ABORTED')
    expect((await rejection(m.generate(PROMPT, { signal: AbortSignal.abort() }))).code).toBe('ERR_ABORTED')
    // During a long prompt (several batches).
    const ac2 = new AbortController()
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(20)
    const q = m.generate(long, { maxTokens: 1, signal: ac2.signal })
    ac2.abort()
    expect((await rejection(q)).code).toBe('ERR_ABORTED')
  })

  it('an abort inside a guest call (mid-batch, mid-layer copy) leaves the model as it was', async () => {
    // The guest polls the abort between layers and row chunks; an aborted batch's KV cells must
    // not leak into the next call. Both modes; Memory64 with 2 slots copies layers all the time.
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(20)
    const m64 = await Model.load(smollm2, { contextLength: 512, memory64: 'always', cacheLayers: 2 })
    try {
      for (const model of [m, m64]) {
        const solo = await model.generate(long, { maxTokens: 8 })
        for (const delay of [5, 60, 250]) {
          const ac = new AbortController()
          const run = model.generate(long, { maxTokens: 8, signal: ac.signal })
          setTimeout(() => ac.abort(), delay)
          const out = await run.then((r) => r, (e) => e)
          if (out instanceof Error) expect(out.code).toBe('ERR_ABORTED')
          else expect(out.tokens).toEqual(solo.tokens)
          expect((await model.generate(long, { maxTokens: 8 })).tokens).toEqual(solo.tokens)
        }
      }
    } finally {
      await m64.dispose()
    }
  }, 120_000)

  it('concurrent calls on one model each give the text they give alone', async () => {
    const prompts = [PROMPT, 'def add(a, b):', 'Once upon a time']
    const alone = []
    for (const p of prompts) alone.push((await m.generate(p, { maxTokens: 10 })).text)
    const together = await Promise.all(prompts.map((p) => m.generate(p, { maxTokens: 10 })))
    expect(together.map((r) => r.text)).toEqual(alone)
  })

  it('a throwing onTextChunk rejects once with ERR_CALLBACK (cause: the thrown value) and stops generation', async () => {
    const boom = new Error('boom')
    let calls = 0
    const e = await rejection(m.generate(PROMPT, { maxTokens: 100, onTextChunk: () => { calls++; throw boom } }))
    expect(e.code).toBe('ERR_CALLBACK')
    expect(e.cause).toBe(boom)
    expect(e.message).toBe('onTextChunk threw: boom')
    expect(calls).toBe(1)
    expect((await rejection(m.detokenize([1e9]))).code).toBe('ERR_INVALID_OPTION')
  })

  it("an abort rejects with ERR_ABORTED whose cause is signal.reason; stopOnAbortSignal resolves with the text so far", async () => {
    const reason = new Error('user pressed stop')
    const ac = new AbortController()
    const e = await rejection(m.generate(PROMPT, { maxTokens: 100, signal: ac.signal, onTextChunk: () => ac.abort(reason) }))
    expect(e.code).toBe('ERR_ABORTED')
    expect(e.cause).toBe(reason)
    const ac2 = new AbortController()
    const chunks = []
    const r = await m.generate(PROMPT, { maxTokens: 100, signal: ac2.signal, stopOnAbortSignal: true, onTextChunk: (t) => { chunks.push(t); if (chunks.length === 3) ac2.abort() } })
    expect(r.stopReason).toBe('abort')
    expect(r.tokens.length).toBeGreaterThanOrEqual(3)
    expect(r.tokens.length).toBeLessThan(100)
    expect(r.text).toBe(chunks.join(''))
    expect(r.text).toBe(await m.detokenize(r.tokens))
    // Aborted before the prompt ran: an empty reply, not an error.
    const before = await m.generate(PROMPT, { signal: AbortSignal.abort(), stopOnAbortSignal: true })
    expect([before.stopReason, before.tokens]).toEqual(['abort', []])
    // The model goes on as before.
    expect((await m.generate(PROMPT, { maxTokens: 8 })).tokens).toEqual((await m.generate(PROMPT, { maxTokens: 8 })).tokens)
  })

  it('onToken sees each generated id as it is sampled; a throwing onToken is ERR_CALLBACK', async () => {
    const seen = []
    const r = await m.generate(PROMPT, { maxTokens: 12, onToken: (ids) => seen.push(...ids) })
    expect(seen).toEqual(r.tokens)
    const boom = new Error('boom')
    const e = await rejection(m.generate(PROMPT, { maxTokens: 50, onToken: () => { throw boom } }))
    expect([e.code, e.cause, e.message]).toEqual(['ERR_CALLBACK', boom, 'onToken threw: boom'])
  })

  it('frequencyPenalty and presencePenalty follow llama.cpp; unknown repeatPenalty keys are rejected', async () => {
    const prompt = '1, 1, 1, 1, 1, 1, 1, 1,'
    const plain = (await m.generate(prompt, { maxTokens: 12 })).tokens
    const freq = (await m.generate(prompt, { maxTokens: 12, repeatPenalty: { frequencyPenalty: 1.5 } })).tokens
    const presence = (await m.generate(prompt, { maxTokens: 12, repeatPenalty: { presencePenalty: 5, lastTokens: 16 } })).tokens
    expect(freq).not.toEqual(plain)
    expect(presence).not.toEqual(plain)
    // Zero penalties change nothing.
    expect((await m.generate(prompt, { maxTokens: 12, repeatPenalty: { penalty: 1, frequencyPenalty: 0, presencePenalty: 0 } })).tokens).toEqual(plain)
    const e = await rejection(m.generate(prompt, { repeatPenalty: { penalty: 1.1, frequencyPenalti: 0.5 } }))
    expect(e.code).toBe('ERR_INVALID_OPTION')
    expect(e.message).toContain('repeatPenalty.frequencyPenalti')
  })

  it('bad options and prompts are ERR_INVALID_OPTION; a too-long prompt is ERR_CONTEXT_TOO_LARGE', async () => {
    for (const bad of [{ temperature: -1 }, { topP: 2 }, { maxTokens: 1.5 }, { stop: 3 }, { seed: 'x' }, { nope: 1 }, { repeatPenalty: { lastTokens: 3 } }, { repeatPenalty: { frequencyPenalty: 'x' } }, { onTextChunk: 5 }, { onToken: 1 }, { stopOnAbortSignal: 'yes' }]) {
      expect((await rejection(m.generate(PROMPT, bad))).code, JSON.stringify(bad)).toBe('ERR_INVALID_OPTION')
    }
    expect((await rejection(m.generate(42))).code).toBe('ERR_INVALID_OPTION')
    expect((await rejection(m.generate([1, -2]))).code).toBe('ERR_INVALID_OPTION')
    expect((await rejection(m.generate([49152]))).code).toBe('ERR_INVALID_OPTION')
    expect((await rejection(m.generate(''))).code).toBe('ERR_INVALID_OPTION')
    const tooLong = Array.from({ length: 300 }, () => 504)
    expect((await rejection(m.generate(tooLong))).code).toBe('ERR_CONTEXT_TOO_LARGE')
  })

  it('tokenize/detokenize round-trip; special tokens follow the options', async () => {
    const text = 'Hello, wörld! 你好 🙂\n\tcode()'
    expect(await m.detokenize(await m.tokenize(text))).toBe(text)
    const special = '<|im_start|>user'
    const parsed = await m.tokenize(special)
    const raw = await m.tokenize(special, { parseSpecial: false })
    expect(parsed.length).toBeLessThan(raw.length)
    expect(await m.detokenize(parsed)).toBe('user')
    expect(await m.detokenize(parsed, { renderSpecial: true })).toBe(special)
  })

  it('disposing during a generation rejects it with ERR_DISPOSED; calls after dispose too', async () => {
    const m2 = await Model.load(smollm2, { contextLength: 128 })
    const pending = rejection(m2.generate(PROMPT, { maxTokens: 100 }))
    await new Promise((r) => setTimeout(r, 20))
    await m2.dispose()
    const e = await pending
    expect(['ERR_DISPOSED']).toContain(e.code)
    expect((await rejection(m2.generate(PROMPT))).code).toBe('ERR_DISPOSED')
    expect((await rejection(m2.tokenize('x'))).code).toBe('ERR_DISPOSED')
    expect((await rejection(m2.detokenize([1]))).code).toBe('ERR_DISPOSED')
  })

  it('dispose frees the model at once: 100 load/generate/dispose cycles without GC add < 48 MiB RSS', () => {
    // In a fresh process without --expose-gc: nothing but dispose() can free the models. Before
    // dispose freed the metadata and vocabulary, SmolLM2 kept ~10 MiB per cycle until GC; before
    // dispose gave glibc's free pages back (malloc_trim), RSS still grew in steps (35-48 MiB over
    // 50 cycles). Now 100 cycles add ~4 MiB. Two checks: the bound over the whole run,
    // and the growth over the last 50 cycles, which a leak of 0.3 MiB per cycle fails.
    const child = path.join(import.meta.dirname, 'child', 'cycles.mjs')
    const out = JSON.parse(execFileSync(process.execPath, [child, smollm2, '100'], { encoding: 'utf8', maxBuffer: 1 << 20 }))
    expect(out.loadMs).toHaveLength(100)
    expect(out.rssMiB).toHaveLength(100)
    const series = `RSS after each cycle (MiB): ${JSON.stringify(out.rssMiB.map(Math.round))}`
    expect(out.rssAfterMiB - out.rssBeforeMiB, series).toBeLessThan(48)
    expect(out.rssMiB[99] - out.rssMiB[49], series).toBeLessThan(16)
  }, 240_000)
})
