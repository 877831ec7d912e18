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

// The loader's error when no binary loads: say which platform package is missing, for which
// platform (napi-rs's own message blames an npm bug).
const loader = path.join(root, 'index.js')
const napiMessage = /`Cannot find native binding\. ` \+\n\s+`npm has a bug[^\n]*\n\s+'Please try[^\n]*\n/
let js = fs.readFileSync(loader, 'utf8')
if (napiMessage.test(js)) {
  js = js.replace(
    napiMessage,
    `(() => {
        const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : process.platform === 'win32' ? '-msvc' : ''
        const pkg = \`wasm-chord-\${process.platform}-\${process.arch}\${abi}\`
        return \`wasm-chord: no native binary loaded for \${process.platform}-\${process.arch}\${abi}: the platform package \${pkg} \` +
          \`(an optionalDependency of wasm-chord) is not installed or does not load. Install it (npm install \${pkg}), \` +
          \`or reinstall without --omit=optional / --no-optional; the load errors are the cause.\`
      })(),
`,
  )
  js = js.replace("error.cause = createLoadErrorChain(loadErrors)\n", "error.cause = createLoadErrorChain(loadErrors)\n    error.code = 'ERR_NO_NATIVE_BINARY'\n")
  fs.writeFileSync(loader, js)
} else if (!js.includes('ERR_NO_NATIVE_BINARY')) {
  throw new Error("after-build: napi-rs's loader message changed; update the missing-binary patch")
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
const load = 'static load(path: string | (LoadOptions & { modelPath: string }), options?: LoadOptions): Promise<Model>'
if (!text.includes(load)) {
  text = text.replace(
    /(export declare class Model \{\n)/,
    `$1  /**
   * Loads a GGUF model. Parses the header (no tensor bytes), plans memory and fills the guest:
   * WHOLE mode copies every tensor into guest memory; Memory64 mode maps the file into Wasmtime
   * 64-bit memories and pages layers into the guest's layer cache on demand. Only regular files
   * load. \`onLoadProgress\` receives fractions 0..1 (the last, 1, before the promise settles).
   *
   * Also accepts a single options object with \`modelPath\`. Rejects with \`ERR_GGUF_*\` for bad
   * files, \`ERR_INVALID_OPTION\`, \`ERR_MODEL_TOO_LARGE_FOR_WASM32\` (\`memory64: 'never'\` on a
   * model a wasm32 memory cannot hold), \`ERR_CACHE_TOO_SMALL\`, \`ERR_ABORTED\`, \`ERR_IO\`,
   * \`ERR_CALLBACK\` (\`onLoadProgress\` threw: the load stops; \`cause\` is the thrown value).
   */
  ${load}
`,
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
   * \`ERR_CONTEXT_TOO_LARGE\` (prompt longer than the context), \`ERR_UNSUPPORTED_ARCH\`,
   * \`ERR_CALLBACK\` (\`onTextChunk\` threw: generation stops; \`cause\` is the thrown value), …
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
const chat = 'chat(messages: ChatMessage[], options?: ChatOptions): Promise<ChatResult>'
if (!text.includes(chat)) {
  text = text.replace(
    /(export declare class Model \{\n)/,
    `$1  /**
   * Answers as the assistant: renders \`messages\` with the chat template (as
   * \`applyChatTemplate(messages, { tokenize: true })\`: message content is never parsed as special
   * tokens) and generates from it. Nothing is kept between calls; for a conversation that keeps
   * its KV cache use \`createSession()\`. Resolves to what \`generate\` gives plus \`message\`.
   * Rejects like \`generate\` and \`applyChatTemplate\`.
   */
  ${chat}
`,
  )
}
const prompt = 'prompt(text: string, options?: SessionPromptOptions): Promise<ChatResult>'
if (!text.includes(prompt)) {
  text = text.replace(
    /(export declare class ChatSession \{\n)/,
    `$1  /** Same as \`dispose()\`: enables \`await using session = model.createSession()\`. */
  [Symbol.asyncDispose](): Promise<void>
  /**
   * Sends \`text\` as the user's next message and resolves to the assistant's reply (what
   * \`generate\` gives plus \`message\`); both are added to \`history\` (not when the call
   * rejects). Only what follows the previous turn's prompt is evaluated (\`timings.promptTokens\`;
   * \`timings.cachedTokens\` were reused), and the reply is exactly the text \`generate\` gives
   * on the whole rendered history. Turns of one session run one after another. Rejects
   * with \`ERR_CONTEXT_TOO_LARGE\` when the rendered history does not fit the session's
   * \`contextLength\` (\`reset()\` starts over), \`ERR_ABORTED\`, \`ERR_DISPOSED\` (session or
   * model), \`ERR_INVALID_OPTION\`, \`ERR_CHAT_TEMPLATE\`, \`ERR_CALLBACK\`.
   */
  ${prompt}
`,
  )
}
if (!text.includes('export type ChatOptions')) {
  text += `
/** Options of \`model.chat\`: those of \`generate\` (the template decides the special tokens) and a \`template\` to use instead of the file's. */
export type ChatOptions = Omit<GenerateOptions, 'addSpecial' | 'parseSpecial'> & { template?: string }

/** Options of \`session.prompt\`: those of \`generate\` (the session's template decides the special tokens). */
export type SessionPromptOptions = Omit<GenerateOptions, 'addSpecial' | 'parseSpecial'>

/** What \`model.chat\` and \`session.prompt\` resolve to: the generation and the assistant message it makes. */
export type ChatResult = GenerateResult & { message: ChatMessage }
`
}
if (!text.includes('export type ErrorCode')) {
  // The codes are the core's (src/error.rs, `ErrorCode::code_str`): one list, read from there.
  const codes = [...fs.readFileSync(path.join(root, 'src', 'error.rs'), 'utf8').matchAll(/=> "(ERR_[A-Z0-9_]+)"/g)].map((m) => m[1])
  // The loader's own (index.js, patched above), before any native code runs.
  codes.push('ERR_NO_NATIVE_BINARY')
  if (codes.length < 10) throw new Error('after-build: could not read the error codes from src/error.rs')
  text += `
/** The \`code\` of every error wasm-chord throws or rejects with (see the README's table). */
export type ErrorCode =
${[...new Set(codes)].map((c) => `  | '${c}'`).join('\n')}

/** An error from wasm-chord: \`err.code\` says what went wrong, \`err.message\` gives the numbers. */
export interface WasmChordError extends Error {
  code: ErrorCode
}
`
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
