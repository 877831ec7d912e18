// `wasm-chord/testing`: helpers for tests, kept off the main entry. `writeGguf(path, spec)` writes
// a GGUF file with the project's own writer: synthetic models, and deliberately malformed files
// (`magic`, `bigEndian`, `tensorCount`, `kvCount`, `truncateTo`, …) for testing what a loader does
// with them.
'use strict'
const native = require('./index.js')

module.exports.writeGguf = native._writeGguf
