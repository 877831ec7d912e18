// Every JS options object is declared once, as a #[napi(object)] struct (src/napi/options.rs):
// its TypeScript interface in index.d.ts and the keys the runtime accepts are the same list, and
// what napi's conversion would let through (a number as a function, a string as a signal, an
// array as an object) is ERR_INVALID_OPTION naming the option.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { realModel, rejection } from './helpers.mjs'

const SMOL = realModel('SmolLM2-135M-Instruct.Q4_1.gguf')
const dts = fs.readFileSync(path.join(import.meta.dirname, '..', 'index.d.ts'), 'utf8')

/** The member names of `export interface name` in index.d.ts. */
function members(name) {
  const body = dts.match(new RegExp(`export interface ${name} \\{\\n([\\s\\S]*?)\\n\\}`))
  expect(body, `interface ${name} in index.d.ts`).not.toBeNull()
  return [...body[1].matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]).sort()
}

/** The keys an ERR_INVALID_OPTION for an unknown key lists as known. */
async function known(promise) {
  const e = await rejection(promise)
  expect(e.code, e.message).toBe('ERR_INVALID_OPTION')
  const list = e.message.match(/\(known: (.*)\)$/)
  expect(list, e.message).not.toBeNull()
  return list[1].split(', ').sort()
}

const without = (keys, drop) => keys.filter((k) => !drop.includes(k))
const messages = [{ role: 'user', content: 'Hi' }]

describe.skipIf(!SMOL)('options objects (SmolLM2-135M-Instruct)', () => {
  let model
  let session
  beforeAll(async () => {
    model = await Model.load(SMOL, { contextLength: 512 })
    session = model.createSession()
  })
  afterAll(async () => {
    session?.dispose()
    await model?.dispose()
  })

  it('the keys accepted are the members of the TypeScript interface', async () => {
    const generate = members('GenerateOptions')
    expect(await known(Model.load(SMOL, { bogus: 1 }))).toEqual(members('LoadOptions'))
    expect(await known(model.generate('Hi', { bogus: 1 }))).toEqual(generate)
    expect(await known(model.chat(messages, { bogus: 1 }))).toEqual([...without(generate, ['addSpecial', 'parseSpecial']), 'template'].sort())
    expect(await known(session.prompt('Hi', { bogus: 1 }))).toEqual(without(generate, ['addSpecial', 'parseSpecial']))
    expect(await known(model.generate('Hi', { repeatPenalty: { bogus: 1 } }))).toEqual(members('RepeatPenaltyOptions'))
    expect(await known(model.applyChatTemplate(messages, { bogus: 1 }))).toEqual(members('ApplyChatTemplateOptions'))
    expect(await known(model.tokenize('Hi', { bogus: 1 }))).toEqual(members('TokenizeOptions'))
    expect(await known(model.detokenize([1], { bogus: 1 }))).toEqual(members('DetokenizeOptions'))
    let thrown
    try {
      model.createSession({ bogus: 1 })
    } catch (e) {
      thrown = e
    }
    expect(await known(Promise.reject(thrown))).toEqual(members('CreateSessionOptions'))
  })

  it('a value of the wrong JS type is ERR_INVALID_OPTION naming the option, what it must be and what it is', async () => {
    const cases = [
      [() => model.generate('Hi', { maxTokens: '4' }), 'maxTokens must be a number, got string'],
      [() => model.generate('Hi', { stop: 3 }), 'stop must be a string or an array of strings, got number'],
      [() => model.generate('Hi', { stop: ['a', 3] }), /^stop must be a string or an array of strings \(/],
      [() => model.generate('Hi', { repeatPenalty: [1] }), 'repeatPenalty must be a number or an object, got an array'],
      [() => model.generate('Hi', { repeatPenalty: { lastTokens: '8', penalty: 1.1 } }), 'repeatPenalty.lastTokens must be a number, got string'],
      [() => model.generate('Hi', { repeatPenalty: { penalty: 0 } }), /^repeatPenalty\.penalty must be a number in \[/],
      [() => model.generate('Hi', { maxTokens: 1.5 }), 'maxTokens must be an integer in [0, 1000000000], got 1.5'],
      [() => model.generate('Hi', { signal: 'stop' }), /signal/],
      [() => model.generate('Hi', { stopOnAbortSignal: 1 }), 'stopOnAbortSignal must be a boolean, got number'],
      [() => model.generate('Hi', [1]), /options must be an object/],
      [() => model.applyChatTemplate(messages, { template: 42 }), 'template must be a string, got number'],
      [() => model.tokenize('Hi', { addSpecial: 'no' }), 'addSpecial must be a boolean, got string'],
      [() => model.detokenize([1], 'x'), 'options must be an object, got string'],
      [() => Model.load(SMOL, { onLoadProgress: 42 }), 'onLoadProgress must be a function, got number'],
      [() => Model.load(SMOL, { memory64: 3 }), 'memory64 must be a string or a boolean, got number'],
      [() => Model.load(SMOL, { memory64: 'sometimes' }), `memory64 must be 'auto', 'always' or 'never', got "sometimes"`],
      [() => Model.load(SMOL, { threads: 0 }), 'threads must be an integer in [1, 1024], got 0'],
    ]
    for (const [call, message] of cases) {
      const e = await rejection(call())
      expect(e.code, e.message).toBe('ERR_INVALID_OPTION')
      if (typeof message === 'string') expect(e.message).toBe(message)
      else expect(e.message).toMatch(message)
    }
  })

  it('null and undefined values count as absent', async () => {
    const a = await model.generate('Hi', { maxTokens: 3, temperature: null, stop: undefined, signal: null, repeatPenalty: null })
    const b = await model.generate('Hi', { maxTokens: 3 })
    expect(a.tokens).toEqual(b.tokens)
    expect(await model.tokenize('Hi', { addSpecial: null })).toEqual(await model.tokenize('Hi'))
    const m = await Model.load(SMOL, { cacheLayers: null, memory64: undefined, onLoadProgress: null, contextLength: 64 })
    expect(m.info.contextSize).toBe(64)
    await m.dispose()
  })
})
