// Hostile GGUF files reach JavaScript as typed errors: each case is written by the addon's own
// writer (hostile fields) or patched afterwards, and must reject with its own err.code.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Model, writeGguf } from '../index.js'
import { rejection, tempDir } from './helpers.mjs'

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
  it('the valid base file loads', async () => {
    const file = path.join(dir, 'ok.gguf')
    await writeGguf(file, base())
    const m = await Model.load(file)
    expect(m.info.tensorCount).toBe(2)
    await m.dispose()
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
