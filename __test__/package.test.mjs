// The npm packaging: the platform package holds a loadable addon; the CLI's commands and flags.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeGguf } from '../testing.js'
import { llamaSpec, realModel, tempDir } from './helpers.mjs'

const require = createRequire(import.meta.url)
const root = path.join(import.meta.dirname, '..')
const dir = tempDir('package')
const SMOL = realModel('SmolLM2-135M-Instruct.Q4_1.gguf')
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('packaging', () => {
  it('npm/linux-x64-gnu holds the addon named in its package.json', () => {
    const pkgDir = path.join(root, 'npm', 'linux-x64-gnu')
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
    expect(pkg.name).toBe('wasm-chord-linux-x64-gnu')
    const addon = require(path.join(pkgDir, pkg.main))
    expect(typeof addon.Model.load).toBe('function')
    expect(typeof addon._writeGguf).toBe('function')
    // The test helpers live on their own subpath, not on the main entry.
    expect(require(path.join(root, 'index.js')).writeGguf).toBeUndefined()
    expect(typeof require(path.join(root, 'testing.js')).writeGguf).toBe('function')
  })

  const cli = path.join(root, 'bin', 'wasm-chord.js')
  const run = (args, input) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input })

  it('`wasm-chord verify` checks every layer through the layer cache; `info` inspects the file', async () => {
    const file = path.join(dir, 'cli.gguf')
    await writeGguf(file, llamaSpec({ layers: 5 }))
    const out = run(['verify', file, '--memory64', 'always', '--cache-layers', '2']).stdout
    expect(out).toMatch(/plan\s+MEMORY64/)
    expect(out).toMatch(/cache pass 2 5 layers verified .* misses 10/)
    expect(out).toMatch(/^ok: /m)
    const info = run(['info', file, '--memory64=always'])
    expect(info.status).toBe(0)
    expect(info.stdout).toMatch(/plan\s+MEMORY64/)
    expect(info.stdout).toMatch(/^KV cache\s+\d/m)
    expect(info.stdout).toMatch(/^chat\s+no tokenizer.chat_template/m)
    expect(info.stdout).not.toMatch(/cache pass/)
  })

  it('the CLI: --help exits 0, --version, errors name the flag (exit 2)', () => {
    const help = run(['--help'])
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/^usage: wasm-chord/)
    expect(run(['-h']).status).toBe(0)
    expect(run(['--version']).stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version)
    const bad = run(['generate', 'm.gguf', 'hi', '--max-tokens=many'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/^ERR_USAGE: --max-tokens must be an integer, got "many"/)
    expect(run(['info', 'm.gguf', '--bogus', '1']).stderr).toMatch(/--bogus/)
    expect(run(['frob', 'm.gguf']).status).toBe(2)
  })

  it.runIf(SMOL)('`wasm-chord generate` streams with --stop and --temperature; `chat` answers lines from stdin', () => {
    const g = run(['generate', SMOL, 'The capital of France is', '--max-tokens', '24', '--temperature=0', '--stop', '.', '--context', '256'])
    expect(g.status).toBe(0)
    expect(g.stdout).not.toContain('.')
    expect(g.stderr).toMatch(/stop: (stopString|eogToken)/)
    const bad = run(['generate', SMOL, 'x', '--top-p', '2'])
    expect(bad.status).toBe(1)
    expect(bad.stderr).toMatch(/^ERR_INVALID_OPTION: --top-p/)
    const c = run(['chat', SMOL, '--system', 'You are terse.', '--max-tokens', '8', '--context', '512'], 'What is the capital of France?\n/reset\nHi\n/exit\nnot read\n')
    expect(c.status).toBe(0)
    expect(c.stdout.trim().length).toBeGreaterThan(0)
    expect(c.stderr).toContain('(history cleared)')
  })

  // What `npm publish` would ship: the root package with the optionalDependencies napi-rs's
  // `napi pre-publish` writes (here for the one platform package built on this machine) and the
  // platform package, packed, then installed with no network beyond the two tarballs.
  it.runIf(SMOL)('the packed tarballs install offline, load and generate; without the platform package the error names it', () => {
    const npm = (args, cwd) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', stdio: 'pipe', env: { ...process.env, npm_config_offline: 'true' } })
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
    const stage = path.join(dir, 'stage')
    fs.mkdirSync(stage)
    for (const f of pkg.files) fs.cpSync(path.join(root, f), path.join(stage, f), { recursive: true })
    const platform = JSON.parse(fs.readFileSync(path.join(root, 'npm', 'linux-x64-gnu', 'package.json'), 'utf8'))
    fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify({ ...pkg, optionalDependencies: { [platform.name]: platform.version } }, null, 2))
    const packs = path.join(dir, 'tarballs')
    fs.mkdirSync(packs)
    const pack = (from) => path.join(packs, JSON.parse(npm(['pack', '--json', '--pack-destination', packs], from))[0].filename)
    const rootTgz = pack(stage)
    const platformTgz = pack(path.join(root, 'npm', 'linux-x64-gnu'))
    const script = `const { Model } = require('wasm-chord')
      Model.load(${JSON.stringify(SMOL)}, { contextLength: 64 }).then(async (m) => {
        const r = await m.generate('The capital of France is', { maxTokens: 3 })
        console.log(JSON.stringify({ n: r.tokens.length, version: require('wasm-chord/package.json').version }))
        await m.dispose()
      })`
    const project = (name, tarballs) => {
      const p = path.join(dir, name)
      fs.mkdirSync(p)
      fs.writeFileSync(path.join(p, 'package.json'), JSON.stringify({ name, private: true }))
      npm(['install', '--ignore-scripts', ...tarballs], p)
      return spawnSync(process.execPath, ['-e', script], { cwd: p, encoding: 'utf8' })
    }
    const ok = project('with-platform', [rootTgz, platformTgz])
    expect(ok.stderr).toBe('')
    expect(JSON.parse(ok.stdout)).toEqual({ n: 3, version: pkg.version })
    const missing = project('without-platform', [rootTgz])
    expect(missing.status).not.toBe(0)
    expect(missing.stderr).toContain(`the platform package ${platform.name}`)
    expect(missing.stderr).toContain('ERR_NO_NATIVE_BINARY')
  }, 120_000)

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
