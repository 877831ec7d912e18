// Hostile GGUF files reach JavaScript as typed errors: each case is written by the addon's own
// writer (hostile fields) or patched afterwards, and must reject with its own err.code.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { writeGguf } from '../testing.js'
import { llamaSpec, rejection, tempDir } from './helpers.mjs'

const dir = tempDir('malformed')
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const base = () => ({
  metadata: { 'general.architecture': 'llama' },
  tensors: [
    { name: 'a.weight', type: 'F32', shape: [32, 2] },
    { name: 'b.weight', type: 'Q8_0', shape: [64, 2] },
  ],
})

let n = 0
async function codeOf(spec, patch) {
  const file = path.join(dir, `case${n++}.gguf`)
  await writeGguf(file, spec)
  if (patch) {
    const bytes = fs.readFileSync(file)
    patch(bytes)
    fs.writeFileSync(file, bytes)
  }
  const e = await rejection(Model.load(file))
  expect(e).toBeInstanceOf(Error)
  expect(e.message.length).toBeGreaterThan(10)
  return e.code
}

describe('malformed GGUF files', () => {
  it('the base file passes every container check and stops at the architecture check', async () => {
    const file = path.join(dir, 'ok.gguf')
    await writeGguf(file, base())
    const e = await rejection(Model.load(file))
    expect(e.code).toBe('ERR_MODEL_BAD_HPARAMS')
    expect(e.message).toBe('metadata key llama.block_count is missing (needed to run a llama model)')
  })

  const cases = [
    ['bad magic', { ...base(), magic: 'GGML' }, null, 'ERR_GGUF_BAD_MAGIC'],
    ['version 1', { ...base(), version: 1 }, null, 'ERR_GGUF_UNSUPPORTED_VERSION'],
    ['future version', { ...base(), version: 7 }, null, 'ERR_GGUF_UNSUPPORTED_VERSION'],
    ['big-endian', { ...base(), bigEndian: true }, null, 'ERR_GGUF_BIG_ENDIAN'],
    ['truncated header', { ...base(), truncateTo: 10 }, null, 'ERR_GGUF_TRUNCATED'],
    ['bad value type', base(), (b) => b.writeUInt32LE(99, 24 + 8 + 20), 'ERR_GGUF_BAD_VALUE_TYPE'],
    ['string too long', base(), (b) => b.writeBigUInt64LE(1n << 40n, 24), 'ERR_GGUF_STRING_TOO_LONG'],
    ['bad utf-8', { ...base(), metadata: { 'general.architecture': 'llama', 'general.name': 'abc' } }, (b) => (b[b.lastIndexOf('abc')] = 0xff), 'ERR_GGUF_BAD_UTF8'],
    ['too many key/values', { ...base(), kvCount: 2 ** 40 }, null, 'ERR_GGUF_TOO_MANY_ENTRIES'],
    ['too many tensors', { ...base(), tensorCount: 2 ** 40 }, null, 'ERR_GGUF_TOO_MANY_ENTRIES'],
    ['bad alignment', { ...base(), metadata: { 'general.architecture': 'llama', 'general.alignment': 48 } }, null, 'ERR_GGUF_BAD_ALIGNMENT'],
    ['tensor name too long', { ...base(), tensors: [{ name: 'x'.repeat(65), type: 'F32', shape: [32] }] }, null, 'ERR_GGUF_TENSOR_NAME_TOO_LONG'],
    ['duplicate tensor', { ...base(), tensors: [base().tensors[0], base().tensors[0]] }, null, 'ERR_GGUF_DUPLICATE_TENSOR'],
    ['five dims', { ...base(), tensors: [{ name: 'a', type: 'F32', shape: [32, 1, 1, 1, 1] }] }, null, 'ERR_GGUF_BAD_DIMS'],
    ['unknown type', { ...base(), tensors: [{ name: 'a', typeId: 4, shape: [32] }] }, null, 'ERR_GGUF_UNKNOWN_TYPE'],
    ['row not a block multiple', { ...base(), tensors: [{ name: 'a', type: 'Q8_0', shape: [48] }] }, null, 'ERR_GGUF_BAD_SHAPE'],
    ['misaligned tensor', { ...base(), tensors: [base().tensors[0], { ...base().tensors[1], offset: 264 }] }, null, 'ERR_GGUF_MISALIGNED_TENSOR'],
    ['tensor past end of file', { ...base(), truncateTo: 300 }, null, 'ERR_GGUF_TENSOR_OUT_OF_BOUNDS'],
    ['a dimension of 0', { ...base(), tensors: [{ name: 'a', type: 'F32', shape: [32, 0] }] }, null, 'ERR_GGUF_BAD_SHAPE'],
    ['an empty key', { ...base(), metadata: { 'general.architecture': 'llama', '': 1 } }, null, 'ERR_GGUF_BAD_METADATA'],
    ['overlapping tensors', { ...base(), tensors: [base().tensors[0], { ...base().tensors[1], offset: 128 }] }, null, 'ERR_GGUF_TENSOR_OVERLAP'],
  ]
  for (const [name, spec, patch, code] of cases) {
    it(`${name} → ${code}`, async () => {
      expect(await codeOf(spec, patch)).toBe(code)
    })
  }

  it('a header that promises 4.7 GB of tensors in a small file is rejected before any allocation', async () => {
    const spec = { metadata: { 'general.architecture': 'qwen2' }, tensors: [{ name: 'token_embd.weight', type: 'F32', shape: [4096, 300000], data: 'sparse' }], truncateTo: 1 << 20 }
    expect(await codeOf(spec)).toBe('ERR_GGUF_TENSOR_OUT_OF_BOUNDS')
  })
})

// Semantic defects: a valid synthetic model (it loads and generates) with one thing broken is
// rejected at load, naming the key or tensor and the numbers.
describe('semantically broken models', () => {
  const spm = (spec, n = 300) => {
    spec.metadata['tokenizer.ggml.model'] = 'llama'
    spec.metadata['tokenizer.ggml.tokens'] = Array.from({ length: n }, (_, i) => (i < 3 ? ['<unk>', '<s>', '</s>'][i] : `t${i}`))
    spec.metadata['tokenizer.ggml.scores'] = { type: 'array', elementType: 'f32', value: Array.from({ length: n }, (_, i) => -i) }
    return spec
  }
  const tensor = (spec, name) => spec.tensors.find((t) => t.name === name)

  it('the unbroken model loads and generates', async () => {
    const file = path.join(dir, 'model-ok.gguf')
    await writeGguf(file, spm(llamaSpec({ layers: 2, embd: 64, ff: 128 })))
    const m = await Model.load(file)
    const r = await m.generate('t5 t6', { maxTokens: 2 })
    expect(['maxTokens', 'eogToken']).toContain(r.stopReason)
    expect(r.timings.promptTokens).toBeGreaterThan(0)
    await m.dispose()
  })

  const broken = [
    ['block_count 0', (s) => (s.metadata['llama.block_count'] = 0), 'ERR_MODEL_BAD_HPARAMS', 'llama.block_count = u32 0 is out of range (1..=256)'],
    ['block_count 10⁶', (s) => (s.metadata['llama.block_count'] = 1e6), 'ERR_MODEL_BAD_HPARAMS', 'llama.block_count = u32 1000000 is out of range'],
    ['heads not dividing', (s) => (s.metadata['llama.attention.head_count_kv'] = 3), 'ERR_MODEL_BAD_HPARAMS', 'head_count = 8 is not a multiple of llama.attention.head_count_kv = 3'],
    ['missing embedding length', (s) => delete s.metadata['llama.embedding_length'], 'ERR_MODEL_BAD_HPARAMS', 'llama.embedding_length is missing'],
    ['wrong tensor shape', (s) => (tensor(s, 'blk.1.attn_v.weight').shape = [64, 64]), 'ERR_MODEL_TENSOR_SHAPE', '"blk.1.attn_v.weight" has shape [64, 64], expected [n_embd = 64, n_head_kv·head_dim = 32]'],
    ['missing tensor', (s) => (s.tensors = s.tensors.filter((t) => t.name !== 'output_norm.weight')), 'ERR_MODEL_MISSING_TENSOR', '"output_norm.weight" is missing'],
    ['unknown architecture', (s) => (s.metadata['general.architecture'] = 'rwkv7'), 'ERR_UNSUPPORTED_ARCH', '"rwkv7" is not supported (supported: llama, qwen2, gemma3)'],
    ['BOS id out of range', (s) => (s.metadata['tokenizer.ggml.bos_token_id'] = 300), 'ERR_GGUF_BAD_TOKENIZER', 'tokenizer.ggml.bos_token_id is u32 300, not a token id (the vocabulary has 300 tokens)'],
    ['vocabulary longer than the embedding', (s) => (tensor(s, 'token_embd.weight').shape = [64, 200]), 'ERR_GGUF_BAD_TOKENIZER', 'the vocabulary has 300 tokens but token_embd.weight has 200 rows'],
  ]
  for (const [name, breakIt, code, says] of broken) {
    it(`${name} → ${code} at load`, async () => {
      const spec = spm(llamaSpec({ layers: 2, embd: 64, ff: 128 }))
      if (name.startsWith('vocabulary')) tensor(spec, 'output.weight').shape = [64, 200]
      breakIt(spec)
      const file = path.join(dir, `broken${n++}.gguf`)
      await writeGguf(file, spec)
      const e = await rejection(Model.load(file))
      expect(e.code).toBe(code)
      expect(e.message).toContain(says)
    })
  }
})
