// model.chat and chat sessions on a real instruct model: a session keeps its history and its own
// KV cache (turn N evaluates only what is new since turn N−1), several sessions on one model keep
// theirs apart, and errors are typed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { realModel } from './helpers.mjs'

const SMOL = realModel('SmolLM2-135M-Instruct.Q4_1.gguf')
const GEMMA = realModel('gemma-3-270m-q4_k_m.gguf')
const QA = ['What is the capital of France?', 'And of Italy?', 'Name a river there.']
// A system prompt long enough that every turn's prompt is past llama.cpp's 64-token attention
// tiling threshold (below it positions round otherwise, and nothing can be reused exactly).
const SYSTEM = 'You are a helpful, concise assistant who answers questions about geography, history and science in one short sentence, without lists, without greetings and without repeating the question. '.repeat(2).trim()

describe.skipIf(!SMOL)('model.chat and createSession (SmolLM2-135M-Instruct)', () => {
  let model
  let modelWhole
  beforeAll(async () => { model = modelWhole = await Model.load(SMOL, { contextLength: 1024 }) })
  afterAll(async () => { await model?.dispose() })

  it('chat answers as generate does from the template ids, with the assistant message', async () => {
    const messages = [{ role: 'user', content: QA[0] }]
    const r = await model.chat(messages, { maxTokens: 16 })
    const ids = await model.applyChatTemplate(messages, { tokenize: true })
    const g = await model.generate(ids, { maxTokens: 16 })
    expect(r.tokens).toEqual(g.tokens)
    expect(r.message).toEqual({ role: 'assistant', content: g.text })
    expect(r.timings.promptTokens).toBe(ids.length)
    expect(r.timings.cachedTokens).toBe(0)
    await expect(model.chat(messages, { addSpecial: false })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('addSpecial') })
    await expect(model.chat('hi')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
  })

  it('a 3-turn session evaluates only what follows the previous prompt and answers exactly as generate on the whole rendered prompt', async () => {
    const s = model.createSession({ systemPrompt: SYSTEM })
    const expectHistory = [{ role: 'system', content: SYSTEM }]
    let previous = 0
    for (const q of QA) {
      const r = await s.prompt(q, { maxTokens: 12 })
      expect(r.message).toEqual({ role: 'assistant', content: r.text })
      // What this turn rendered: the history so far plus the question.
      const all = await model.applyChatTemplate([...expectHistory, { role: 'user', content: q }], { tokenize: true })
      const full = await model.generate(all, { maxTokens: 12 })
      expect(r.tokens).toEqual(full.tokens)
      expect(r.text).toBe(full.text)
      expect(r.timings.cachedTokens + r.timings.promptTokens).toBe(all.length)
      if (previous > 0) {
        // The previous prompt came from the cache, but for its last batch (< 32 tokens, rounded
        // otherwise in a longer ubatch); the previous reply is evaluated again as prompt.
        expect(r.timings.cachedTokens).toBeGreaterThan(previous - 32)
        expect(r.timings.promptTokens).toBeLessThan(all.length - previous + 32)
      } else {
        expect(r.timings.cachedTokens).toBe(0)
      }
      previous = all.length
      expectHistory.push({ role: 'user', content: q }, { role: 'assistant', content: r.text })
      expect(s.history).toEqual(expectHistory)
    }
    s.reset()
    expect(s.history).toEqual([{ role: 'system', content: SYSTEM }])
    const again = await s.prompt(QA[0], { maxTokens: 4 })
    // The system prompt's tokens are still in the cache.
    expect(again.timings.cachedTokens).toBeGreaterThanOrEqual(64)
    await s.dispose()
  })

  it.each(['whole', 'memory64'])('sessions keep their own KV caches: interleaved turns answer as uninterrupted ones (%s)', async (mode) => {
    const model = mode === 'whole' ? modelWhole : await Model.load(SMOL, { contextLength: 1024, memory64: 'always', cacheLayers: 4 })
    expect(model.info.mode).toBe(mode)
    const solo = model.createSession({ systemPrompt: SYSTEM })
    const soloReplies = []
    for (const q of QA.slice(0, 2)) soloReplies.push((await solo.prompt(q, { maxTokens: 16 })).tokens)
    await solo.dispose()

    const a = model.createSession({ systemPrompt: SYSTEM })
    const b = model.createSession({ systemPrompt: `${SYSTEM} Answer in French.` })
    const a1 = await a.prompt(QA[0], { maxTokens: 16 })
    await b.prompt('Hello!', { maxTokens: 8 })
    await model.generate('Once upon a time', { maxTokens: 4 }) // a plain generation in between
    const a2 = await a.prompt(QA[1], { maxTokens: 16 })
    expect([a1.tokens, a2.tokens]).toEqual(soloReplies)
    // a's cache was brought back, not recomputed.
    expect(a2.timings.cachedTokens).toBeGreaterThan(a1.timings.promptTokens - 32)
    const b2 = await b.prompt('How are you?', { maxTokens: 4 })
    expect(b2.timings.cachedTokens).toBeGreaterThan(0)
    // a's cache waits in host memory while b's is in the guest; dispose frees both.
    const before = await model.memoryStats()
    expect(before.sessionCacheBytes).toBeGreaterThan(a2.timings.cachedTokens * 1000)
    // V8 was told about it as external memory, and is told when it goes.
    await Promise.all([a.dispose(), b.dispose()])
    const after = await model.memoryStats()
    expect(after.sessionCacheBytes).toBe(0)
    expect(before.externalBytes - after.externalBytes).toBe(before.sessionCacheBytes)
    expect(after.externalBytes).toBeGreaterThanOrEqual(after.guestMemoryBytes)
    if (model !== modelWhole) await model.dispose()
  })

  it('turns of one session queue; an aborted turn leaves the history as it was', async () => {
    const s = model.createSession({ systemPrompt: SYSTEM })
    // Turns run in call order; a call that fails before it starts does not hold up the next.
    const bad = expect(s.prompt(QA[2], { bogus: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
    const [r1, r2] = await Promise.all([s.prompt(QA[0], { maxTokens: 6 }), s.prompt(QA[1], { maxTokens: 6 })])
    await bad
    expect(s.history.map((m) => m.content)).toEqual([SYSTEM, QA[0], r1.text, QA[1], r2.text])
    const ac = new AbortController()
    const p = s.prompt(QA[2], { signal: ac.signal, onTextChunk: () => ac.abort() })
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(s.history).toHaveLength(5)
    const r3 = await s.prompt(QA[2], { maxTokens: 4 })
    expect(r3.timings.cachedTokens).toBeGreaterThan(0)
    await s.dispose()
  })

  it('context limits, options and disposal are typed', async () => {
    expect(() => model.createSession({ contextLength: 4096 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('1024') }))
    expect(() => model.createSession({ systemprompt: 'x' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('systemprompt') }))
    const small = model.createSession({ contextLength: 16 })
    expect(small.contextLength).toBe(16)
    await expect(small.prompt(QA[0])).rejects.toMatchObject({ code: 'ERR_CONTEXT_TOO_LARGE', message: expect.stringContaining('16') })
    expect(small.history).toEqual([])
    const first = await model.applyChatTemplate([{ role: 'user', content: QA[0] }], { tokenize: true })
    const tight = model.createSession({ contextLength: first.length + 4 })
    const full = await tight.prompt(QA[0])
    expect(full.stopReason).toBe('contextFull')
    await expect(tight.prompt(QA[1])).rejects.toMatchObject({ code: 'ERR_CONTEXT_TOO_LARGE' })
    await expect(tight.prompt(QA[1], { parseSpecial: true })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
    await tight.dispose()
    expect(tight.disposed).toBe(true)
    await expect(tight.prompt(QA[1])).rejects.toMatchObject({ code: 'ERR_DISPOSED' })
    expect(() => tight.history).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }))
    // The model is unaffected.
    expect((await model.generate('The capital of France is', { maxTokens: 2 })).tokens).toHaveLength(2)
    await small.dispose()
  })

  it('a session whose model is disposed rejects with ERR_DISPOSED', async () => {
    const m = await Model.load(SMOL, { contextLength: 256 })
    const s = m.createSession()
    const running = expect(s.prompt(QA[0], { maxTokens: 200 })).rejects.toMatchObject({ code: 'ERR_DISPOSED' })
    await m.dispose()
    await running
    await expect(s.prompt(QA[1])).rejects.toMatchObject({ code: 'ERR_DISPOSED' })
    expect(() => m.createSession()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }))
  })
})

describe.skipIf(!GEMMA)('createSession on a file without a chat template (gemma-3-270m)', () => {
  it('throws ERR_NO_CHAT_TEMPLATE unless a template is given', async () => {
    const m = await Model.load(GEMMA, { contextLength: 256 })
    try {
      expect(() => m.createSession()).toThrow(expect.objectContaining({ code: 'ERR_NO_CHAT_TEMPLATE' }))
      await expect(m.chat([{ role: 'user', content: 'Hi' }])).rejects.toMatchObject({ code: 'ERR_NO_CHAT_TEMPLATE' })
      const template = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
      const s = m.createSession({ template })
      const long = 'Please tell me, in a few words and without any introduction, which city is the capital of France, which river flows through it, and which famous tower stands there.'
      const r = await s.prompt(long, { maxTokens: 4 })
      expect(r.tokens.length).toBeGreaterThan(0)
      const r2 = await s.prompt('Bye', { maxTokens: 4 })
      expect(r2.timings.cachedTokens).toBeGreaterThan(0)
      expect(r2.tokens).toEqual((await m.generate(await m.applyChatTemplate([...s.history.slice(0, 2), { role: 'user', content: 'Bye' }], { template, tokenize: true }), { maxTokens: 4 })).tokens)
      await s.dispose()
    } finally {
      await m.dispose()
    }
  })
})
