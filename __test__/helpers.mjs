// Shared helpers for the vitest suite: synthetic models (written by the addon's own GGUF writer),
// temp dirs, and the real-model cache.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function tempDir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `wasm-chord-${name}-`))
}

/** A llama-shaped spec for writeGguf: `n` layers of the usual tensors plus embeddings/output (`tied`: no output.weight, the head is the embedding). */
export function llamaSpec({ layers = 4, embd = 128, ff = 256, vocab = 300, type = 'F32', data = 'pattern', embdShape, tied = false } = {}) {
  const tensors = []
  let seed = 0
  const add = (name, t, shape) => tensors.push({ name, type: t, shape, data, seed: seed++ })
  add('token_embd.weight', type, embdShape ?? [embd, vocab])
  for (let l = 0; l < layers; l++) {
    add(`blk.${l}.attn_norm.weight`, 'F32', [embd])
    // 8 query heads, 4 key/value heads: keys and values are half as wide as queries.
    add(`blk.${l}.attn_q.weight`, type, [embd, embd])
    add(`blk.${l}.attn_k.weight`, type, [embd, embd / 2])
    add(`blk.${l}.attn_v.weight`, type, [embd, embd / 2])
    add(`blk.${l}.attn_output.weight`, type, [embd, embd])
    add(`blk.${l}.ffn_norm.weight`, 'F32', [embd])
    add(`blk.${l}.ffn_gate.weight`, type, [embd, ff])
    add(`blk.${l}.ffn_up.weight`, type, [embd, ff])
    add(`blk.${l}.ffn_down.weight`, type, [ff, embd])
  }
  add('output_norm.weight', 'F32', [embd])
  if (!tied) add('output.weight', type, [embd, vocab])
  return {
    metadata: {
      'general.architecture': 'llama',
      'general.name': `synthetic-${layers}x${embd}`,
      'llama.block_count': layers,
      'llama.context_length': 2048,
      'llama.embedding_length': embd,
      'llama.feed_forward_length': ff,
      'llama.attention.head_count': 8,
      'llama.attention.head_count_kv': 4,
      'llama.rope.freq_base': { type: 'f32', value: 10000.5 },
      'general.file_type': { type: 'u32', value: type === 'F32' ? 0 : 7 },
      'tokenizer.ggml.tokens': Array.from({ length: vocab }, (_, i) => `tok${i}`),
      'test.big': { type: 'u64', value: 2 ** 60 },
    },
    tensors,
  }
}

export const MODELS_DIR = process.env.WASM_CHORD_MODELS ?? path.join(os.homedir(), '.cache', 'wasm-chord', 'models')

/** Path of a cached real model, or null. With WASM_CHORD_REQUIRE_MODELS=1 a missing file throws. */
export function realModel(file, { required = process.env.WASM_CHORD_REQUIRE_MODELS === '1' } = {}) {
  const p = path.join(MODELS_DIR, file)
  if (fs.existsSync(p)) return p
  if (required) throw new Error(`${file} is missing from ${MODELS_DIR}: run scripts/fetch-models.sh`)
  return null
}

/** Catches the rejection of `promise` and returns the error (fails if it resolves). */
export async function rejection(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  throw new Error('expected a rejection')
}
