#!/usr/bin/env node
// Runs the vitest suite and prints one plain closing line, `vitest: N passed, N failed`
// (CI reads it), exiting non-zero when anything failed or nothing ran.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wasm-chord-vitest-')), 'report.json')
const bin = path.join(__dirname, '..', 'node_modules', '.bin', 'vitest')
const run = spawnSync(bin, ['run', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: path.join(__dirname, '..'),
})
let passed = 0
let failed = 0
let skipped = 0
try {
  const r = JSON.parse(fs.readFileSync(report, 'utf8'))
  passed = r.numPassedTests
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0)
  skipped = r.numPendingTests + r.numTodoTests
} catch (e) {
  failed += 1
  console.error(`could not read the vitest report: ${e.message}`)
}
if (run.status !== 0 && failed === 0) {
  // vitest failed without a failing test: an unhandled error, a crash, or a failed file load.
  failed = 1
  console.error(`vitest exited with status ${run.status} (unhandled error or crash): counted as 1 failure`)
}
console.log(`vitest: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
process.exit(run.status === 0 && failed === 0 && passed > 0 ? 0 : 1)
