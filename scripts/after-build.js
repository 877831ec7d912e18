#!/usr/bin/env node
// After `napi build --platform`: copy the addon into its platform package (npm/<triple>/) and
// complete index.d.ts with what napi-rs cannot declare itself: `[Symbol.asyncDispose]` on Model
// (installed at runtime by the addon's module init) and the `GgufMetadataValue` type.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
for (const f of fs.readdirSync(root).filter((f) => /^wasm-chord\..+\.node$/.test(f))) {
  const triple = f.slice('wasm-chord.'.length, -'.node'.length)
  const dir = path.join(root, 'npm', triple)
  if (fs.existsSync(dir)) fs.copyFileSync(path.join(root, f), path.join(dir, f))
}

const dts = path.join(root, 'index.d.ts')
let text = fs.readFileSync(dts, 'utf8')
const marker = '[Symbol.asyncDispose](): Promise<void>'
if (!text.includes(marker)) {
  text = text.replace(
    /(export declare class Model \{\n)/,
    `$1  /** Same as \`dispose()\`: enables \`await using model = await Model.load(...)\`. */\n  ${marker}\n`,
  )
}
const gen = 'generate(prompt: string | number[], options?: GenerateOptions): Promise<GenerateResult>'
if (!text.includes(gen)) {
  text = text.replace(
    /(export declare class Model \{\n)/,
    `$1  /**
   * Generates text from a prompt (text, tokenized with the model's tokenizer — BOS/EOS as the
   * model says, special-token text recognised — or token ids) on a thread of the addon's own.
   * Rejects with \`ERR_ABORTED\` (signal), \`ERR_DISPOSED\`, \`ERR_INVALID_OPTION\`,
   * \`ERR_CONTEXT_TOO_LARGE\` (prompt longer than the context), \`ERR_UNSUPPORTED_ARCH\`, …
   */
  ${gen}
  /**
   * Like \`generate\`, as an async iterator of text chunks (complete UTF-8); leaving the loop early
   * (\`break\`) stops the generation. \`result\` resolves to what \`generate\` would give.
   */
  stream(prompt: string | number[], options?: GenerateOptions): AsyncIterableIterator<string> & { result: Promise<GenerateResult> }
`,
  )
}
if (!text.includes('export type GgufMetadataValue')) {
  text += `
/** A GGUF metadata value: integers beyond 2^53 are BigInts; long arrays are summarised. */
export type GgufMetadataValue =
  | number
  | bigint
  | boolean
  | string
  | GgufMetadataValue[]
  | { type: 'array'; elementType: string; length: number }
`
}
fs.writeFileSync(dts, text)
