// Installed on Model.prototype by the addon's module init (src/napi/model.rs). The native
// `_generate` runs a generation on a thread of the addon's own and reports, in order, text chunks
// and then the result or the error through one callback; these wrappers turn that into a Promise
// (`generate`) and an async iterator (`stream`), and add `[Symbol.asyncDispose]`.
;(function (Model) {
  'use strict'
  const toError = (info) => Object.assign(new Error(info.message), { code: info.code })

  // Links an optional user AbortSignal to a controller of our own, so that the wrappers can
  // stop a generation too (a throwing onTextChunk, a `break` out of `stream`).
  function linkedController(signal) {
    const ac = new AbortController()
    if (signal && typeof signal.addEventListener === 'function') {
      if (signal.aborted) ac.abort()
      else signal.addEventListener('abort', () => ac.abort(), { once: true })
    } else if (signal !== undefined && signal !== null) {
      throw Object.assign(new TypeError('signal must be an AbortSignal'), { code: 'ERR_INVALID_OPTION' })
    }
    return ac
  }

  function generate(prompt, options) {
    return new Promise((resolve, reject) => {
      const opts = options == null ? {} : options
      if (typeof opts !== 'object') {
        throw Object.assign(new TypeError('options must be an object'), { code: 'ERR_INVALID_OPTION' })
      }
      const onTextChunk = opts.onTextChunk
      if (onTextChunk != null && typeof onTextChunk !== 'function') {
        throw Object.assign(new TypeError('onTextChunk must be a function'), { code: 'ERR_INVALID_OPTION' })
      }
      const ac = linkedController(opts.signal)
      let callbackError = null
      this._generate(prompt, { ...opts, onTextChunk: undefined, signal: ac.signal }, (kind, text, result, error) => {
        if (kind === 'chunk') {
          if (onTextChunk && callbackError === null) {
            try {
              onTextChunk(text)
            } catch (e) {
              callbackError = e
              ac.abort()
            }
          }
        } else if (kind === 'done') {
          if (callbackError !== null) reject(callbackError)
          else resolve(result)
        } else {
          reject(callbackError !== null ? callbackError : toError(error))
        }
      })
    })
  }

  function stream(prompt, options) {
    const opts = options == null ? {} : options
    const ac = linkedController(opts.signal)
    const queue = []
    let finished = false
    let failure = null
    let wake = null
    const notify = () => {
      if (wake) {
        const w = wake
        wake = null
        w()
      }
    }
    const result = this.generate(prompt, {
      ...opts,
      signal: ac.signal,
      onTextChunk: (t) => {
        if (typeof opts.onTextChunk === 'function') opts.onTextChunk(t)
        queue.push(t)
        notify()
      },
    })
    const settled = result.then(
      () => {
        finished = true
        notify()
      },
      (e) => {
        finished = true
        failure = e
        notify()
      },
    )
    return {
      /** Resolves to the same object `generate` gives (rejects like it). */
      result,
      [Symbol.asyncIterator]() {
        return this
      },
      async next() {
        for (;;) {
          if (queue.length > 0) return { value: queue.shift(), done: false }
          if (finished) {
            if (failure !== null) throw failure
            return { value: undefined, done: true }
          }
          await new Promise((r) => (wake = r))
        }
      },
      async return() {
        ac.abort()
        await settled
        return { value: undefined, done: true }
      },
    }
  }

  const define = (name, value) => Object.defineProperty(Model.prototype, name, { value, writable: true, configurable: true })
  define('generate', generate)
  define('stream', stream)
  if (typeof Symbol.asyncDispose === 'symbol') {
    define(Symbol.asyncDispose, function () {
      return this.dispose()
    })
  }
})
