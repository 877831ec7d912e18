// The npm packaging: the platform package holds a loadable addon, and the CLI's main job runs.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeGguf } from '../index.js'
import { llamaSpec, tempDir } from './helpers.mjs'

const require = createRequire(import.meta.url)
const root = path.join(import.meta.dirname, '..')
const dir = tempDir('package')
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('packaging', () => {
  it('npm/linux-x64-gnu holds the addon named in its package.json', () => {
    const pkgDir = path.join(root, 'npm', 'linux-x64-gnu')
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
    expect(pkg.name).toBe('wasm-chord-linux-x64-gnu')
    const addon = require(path.join(pkgDir, pkg.main))
    expect(typeof addon.Model.load).toBe('function')
    expect(typeof addon.writeGguf).toBe('function')
  })

  it('`wasm-chord info` prints metadata, the plan and a verified layer-cache run', async () => {
    const file = path.join(dir, 'cli.gguf')
    await writeGguf(file, llamaSpec({ layers: 5 }))
    const out = execFileSync(process.execPath, [path.join(root, 'bin', 'wasm-chord.js'), 'info', file, '--memory64', 'always', '--cache-layers', '2'], { encoding: 'utf8' })
    expect(out).toMatch(/plan\s+MEMORY64/)
    expect(out).toMatch(/cache pass 2 5 layers verified .* misses 10/)
    expect(out).toMatch(/^ok: /m)
  })

  it('`wasm-chord info` on a bad file exits 1 with the error code', () => {
    const file = path.join(dir, 'bad.gguf')
    fs.writeFileSync(file, 'not a model')
    let err
    try {
      execFileSync(process.execPath, [path.join(root, 'bin', 'wasm-chord.js'), 'info', file], { encoding: 'utf8', stdio: 'pipe' })
    } catch (e) {
      err = e
    }
    expect(err.status).toBe(1)
    expect(err.stderr).toMatch(/^ERR_GGUF_BAD_MAGIC: /)
  })
})
