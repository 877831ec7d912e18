// The referee: llama.cpp through node-llama-cpp@3.21.1's prebuilt CPU binaries, and which of its
// CPU variants computes the reference.
//
// The prebuilt package ships one ggml CPU library per x86 micro-architecture and ggml loads the
// best one the host supports. wasm-chord's kernels follow the float order of the AVX-512 variants
// (`zen4`, `icelake`, ...: ggml's own kernels plus its repacked Q4_K/Q4_0 layouts). On a host
// with AMX (Intel Sapphire Rapids and later) ggml picks `sapphirerapids`, whose AMX buffer type
// takes over every Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K matrix product with AMX tile and VNNI kernels
// of another float order, so its greedy tokens differ from the AVX-512 variants' after a few
// tokens. wasm-chord does not mirror the AMX kernels (a weak point, see docs/ARCHITECTURE.md).
// On such a host the referee is llama.cpp's same prebuilt package without its AMX variant: a copy
// of `@node-llama-cpp/linux-x64` minus `libggml-cpu-sapphirerapids.so` under `target/`, which a
// module resolve hook substitutes for the original, so ggml picks `zen4` (the same ISA minus
// AMX). `WASM_CHORD_REFEREE_AMX=1` keeps the AMX variant (to measure the agreement with it).
import fs from 'node:fs'
import module from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const require = module.createRequire(import.meta.url)

const ROOT = path.join(import.meta.dirname, '..')
const PKG = '@node-llama-cpp/linux-x64'
const AMX_VARIANT = 'libggml-cpu-sapphirerapids.so'

const cpuinfo = process.platform === 'linux' && fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : ''
/** The host has the AVX-512 foundation (the variants whose float order wasm-chord mirrors). */
export const HOST_AVX512 = process.arch === 'x64' && /\bavx512f\b/.test(cpuinfo)
/** The host has AMX tiles, so ggml would pick its AMX variant. */
export const HOST_AMX = process.arch === 'x64' && /\bamx_int8\b/.test(cpuinfo)

let pinned = false
/**
 * Make node-llama-cpp load the prebuilt CPU package without its AMX variant (on an AMX host, once
 * per process; before the first `getLlama`). Returns whether the AMX variant was set aside.
 */
export function pinRefereeVariant() {
  if (pinned || !HOST_AMX || process.env.WASM_CHORD_REFEREE_AMX === '1') return pinned
  const src = path.dirname(path.dirname(require.resolve(PKG)))
  const dst = path.join(ROOT, 'target', 'llama-referee', 'linux-x64')
  const stamp = path.join(dst, 'package.json')
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== fs.readFileSync(path.join(src, 'package.json'), 'utf8')) {
    fs.rmSync(dst, { recursive: true, force: true })
    fs.cpSync(src, dst + '.tmp', { recursive: true, dereference: true, filter: (f) => path.basename(f) !== AMX_VARIANT })
    fs.renameSync(dst + '.tmp', dst)
  }
  module.register(pathToFileURL(path.join(import.meta.dirname, 'referee-hook.mjs')), {
    data: { specifier: PKG, url: pathToFileURL(path.join(dst, 'dist', 'index.js')).href },
  })
  pinned = true
  return pinned
}

/** The ggml CPU libraries loaded into this process (after `getLlama`), e.g. `['libggml-cpu-zen4.so']`. */
export function loadedCpuVariants() {
  if (!fs.existsSync('/proc/self/maps')) return []
  const libs = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/).pop()).filter((p) => p && /libggml-cpu-[\w-]+\.so$/.test(p))
  return [...new Set(libs.map((p) => path.basename(p)))]
}
