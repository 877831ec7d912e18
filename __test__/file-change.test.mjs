// A model file changed under a Memory64 model while it generates: truncated, overwritten in place,
// rewritten as `cp` does. Each trial must end with the text the unchanged file gives or with
// ERR_FILE_CHANGED — never a crash (SIGBUS) and never other text — and once the file has changed,
// every later read of it fails the same way.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Model } from '../index.js'
import { realModel, tempDir } from './helpers.mjs'

const smollm2 = realModel('SmolLM2-135M-Instruct.Q4_1.gguf')
const PROMPT = 'The capital of France is'
const TOKENS = 24
const TRIALS = 10 // per kind of change: 30 in all

/** Writes `bytes` at `offset` of the file at `p` (in place, same inode). */
function writeAt(p, bytes, offset) {
  const fd = fs.openSync(p, 'r+')
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset)
  } finally {
    fs.closeSync(fd)
  }
}

const CHANGES = {
  truncate: (p, size) => fs.truncateSync(p, Math.floor(size / 2)),
  // Bytes in the middle of the tensor data (layer weights), same size.
  overwrite: (p, size) => writeAt(p, Buffer.alloc(1 << 20, 0x5a), Math.floor(size / 2)),
  // What `cp other model.gguf` does to an existing file: truncate to 0, then write new contents.
  rewrite: (p, size, other) => {
    const fd = fs.openSync(p, 'w')
    try {
      for (let off = 0; off < size; off += 8 << 20) fs.writeSync(fd, other, off, Math.min(8 << 20, size - off), off)
    } finally {
      fs.closeSync(fd)
    }
  },
}

describe.runIf(smollm2)('a model file changed during Memory64 generation (SmolLM2-135M)', () => {
  const dir = tempDir('file-change')
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it.each(Object.keys(CHANGES))('%s: the unchanged text or ERR_FILE_CHANGED, then ERR_FILE_CHANGED on every read', async (kind) => {
    const original = fs.readFileSync(smollm2)
    // The rewrite's new contents: the same file with its second half of tensor bytes flipped.
    const other = Buffer.from(original)
    for (let i = other.length >> 1; i < other.length; i += 97) other[i] ^= 0xff
    const file = path.join(dir, `${kind}.gguf`)
    fs.writeFileSync(file, original)
    const solo = await Model.load(file, { memory64: 'always', cacheLayers: 2 })
    const expected = (await solo.generate(PROMPT, { maxTokens: TOKENS })).text
    const soloMs = (await solo.generate(PROMPT, { maxTokens: TOKENS })).timings
    await solo.dispose()
    const span = soloMs.promptMs + soloMs.generateMs
    const outcomes = { text: 0, changed: 0 }
    for (let t = 0; t < TRIALS; t++) {
      fs.writeFileSync(file, original)
      const m = await Model.load(file, { memory64: 'always', cacheLayers: 2 })
      // Spread the change over the whole generation, from before its first read to after its end.
      const delay = (t / (TRIALS - 1)) * span * 1.2
      const run = m.generate(PROMPT, { maxTokens: TOKENS }).then(
        (r) => ({ text: r.text }),
        (e) => ({ error: e }),
      )
      await new Promise((r) => setTimeout(r, delay))
      CHANGES[kind](file, original.length, other)
      const out = await run
      if (out.error) {
        expect(out.error.code, String(out.error)).toBe('ERR_FILE_CHANGED')
        outcomes.changed++
      } else {
        expect(out.text).toBe(expected)
        outcomes.text++
      }
      // The file has changed now: the next generation and verifyUnit fail, typed.
      const again = await m.generate(PROMPT, { maxTokens: 4 }).catch((e) => e)
      expect(again.code, String(again)).toBe('ERR_FILE_CHANGED')
      expect(again.message).toMatch(/changed after it was loaded/)
      const verify = await m.verifyUnit(0).catch((e) => e)
      expect(verify.code, String(verify)).toBe('ERR_FILE_CHANGED')
      await m.dispose()
    }
    // Both outcomes occur across the trials: changes land during generation and after it.
    expect(outcomes.changed, JSON.stringify(outcomes)).toBeGreaterThan(0)
  }, 120_000)
})
