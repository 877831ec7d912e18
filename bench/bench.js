#!/usr/bin/env node
// Memory64 machinery benchmark (not a test): load time, RSS added, cold and warm layer access,
// bridge throughput and hit rate, per model, each measured in a fresh child process.
//
//   npm run bench                 # SmolLM2-135M (+ the 7.1 GB F32 model when present)
//   npm run bench -- path/to.gguf # any models
//
// Prints a markdown table and writes bench-results/memory64.json.
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const MODELS_DIR = process.env.WASM_CHORD_MODELS ?? path.join(os.homedir(), '.cache', 'wasm-chord', 'models')
const DEFAULT = ['SmolLM2-135M-Instruct.Q4_1.gguf', 'qwen2.5-coder-1.5b-instruct-f32-from-q4km.gguf']

function child(file, mode) {
  const { Model } = require('..')
  const rss = () => process.memoryUsage().rss
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  return (async () => {
    const out = { file: path.basename(file), mode }
    const opts = mode === 'memory64' ? { memory64: 'always', cacheLayers: 4 } : { memory64: 'never' }
    let r0 = rss()
    let t = performance.now()
    let m = await Model.load(file, opts)
    out.firstLoadMs = performance.now() - t
    out.firstLoadRssMiB = (rss() - r0) / 2 ** 20
    await m.dispose()
    r0 = rss()
    t = performance.now()
    m = await Model.load(file, opts)
    out.loadMs = performance.now() - t
    out.loadRssMiB = (rss() - r0) / 2 ** 20
    out.tensorGiB = m.info.tensorBytes / 2 ** 30
    out.layers = m.info.layerCount
    const layerBytes = (await m.getLayer(0)).bytes
    out.layerMiB = layerBytes / 2 ** 20
    if (mode === 'memory64') {
      for (const pass of [1, 2]) {
        await m.clearCache()
        const us = []
        for (let l = 0; l < out.layers; l++) us.push((await m.acquireLayer(l)).micros)
        out[`coldPass${pass}Ms`] = median(us) / 1000
        out[`coldPass${pass}GBs`] = layerBytes / (median(us) / 1e6) / 1e9
      }
      const warm = []
      for (let i = 0; i < 50; i++) warm.push((await m.acquireLayer(out.layers - 1)).micros)
      out.warmUs = median(warm)
      await m.clearCache()
      const before = await m.cacheStats()
      for (let pass = 0; pass < 2; pass++) for (let l = 0; l < out.layers; l++) await m.acquireLayer(l)
      const cyc = await m.cacheStats()
      out.hitRateCyclic = (cyc.hits - before.hits) / (cyc.hits + cyc.misses - before.hits - before.misses)
      for (let i = 0; i < 10; i++) for (let l = 0; l < 4; l++) await m.acquireLayer(l)
      const loc = await m.cacheStats()
      out.hitRateLocal = (loc.hits - cyc.hits) / (loc.hits + loc.misses - cyc.hits - cyc.misses)
    }
    const mem = await m.memoryStats()
    out.peakRssMiB = mem.rssBytes / 2 ** 20
    out.guestMiB = mem.guestMemoryBytes / 2 ** 20
    await m.dispose()
    process.stdout.write(JSON.stringify(out))
  })()
}

function run(file, mode) {
  return JSON.parse(execFileSync(process.execPath, [__filename, '--child', file, mode], { encoding: 'utf8', maxBuffer: 1 << 20 }))
}

function main() {
  const args = process.argv.slice(2)
  if (args[0] === '--child') return child(args[1], args[2]).catch((e) => { console.error(e); process.exit(1) })
  const files = args.length ? args : DEFAULT.map((f) => path.join(MODELS_DIR, f)).filter((f) => fs.existsSync(f))
  if (!files.length) throw new Error(`no models found in ${MODELS_DIR}: run scripts/fetch-models.sh`)
  const load = os.loadavg()[0]
  const rows = []
  for (const f of files) {
    const size = fs.statSync(f).size
    if (size < 3.5 * 2 ** 30) rows.push(run(f, 'whole'))
    rows.push(run(f, 'memory64'))
  }
  const fmt = (x, d = 1) => (x === undefined ? '—' : x.toFixed(d))
  console.log(`\nwasm-chord Memory64 benchmark — ${new Date().toISOString()}, ${os.cpus().length} CPUs, load average ${load.toFixed(2)} at start\n`)
  console.log('| model | mode | tensors GiB | load ms (1st / 2nd) | RSS added MiB (1st / 2nd) | layer MiB | cold miss ms (GB/s), 1st pass | cold miss ms (GB/s), 2nd pass | warm hit µs | hit rate cyclic / local | peak RSS MiB |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) {
    console.log(
      `| ${r.file} | ${r.mode} | ${fmt(r.tensorGiB, 2)} | ${fmt(r.firstLoadMs)} / ${fmt(r.loadMs)} | ${fmt(r.firstLoadRssMiB)} / ${fmt(r.loadRssMiB)} | ${fmt(r.layerMiB)} | ` +
        `${fmt(r.coldPass1Ms, 2)} (${fmt(r.coldPass1GBs)}) | ${fmt(r.coldPass2Ms, 2)} (${fmt(r.coldPass2GBs)}) | ${fmt(r.warmUs)} | ` +
        `${r.hitRateCyclic === undefined ? '—' : `${(100 * r.hitRateCyclic).toFixed(0)} % / ${(100 * r.hitRateLocal).toFixed(1)} %`} | ${fmt(r.peakRssMiB)} |`,
    )
  }
  fs.mkdirSync('bench-results', { recursive: true })
  fs.writeFileSync('bench-results/memory64.json', JSON.stringify({ date: new Date().toISOString(), loadAverage: load, rows }, null, 2))
}

main()
