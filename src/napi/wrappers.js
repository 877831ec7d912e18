// Installed on Model.prototype and ChatSession.prototype by the addon's module init
// (src/napi/model.rs). The native `_generate`, `_chat` and `_prompt` run a generation on a thread
// of the addon's own and report, in order, text chunks and then the result or the error through
// one callback; these wrappers turn that into a Promise (`generate`, `chat`, `session.prompt`)
// and an async iterator (`stream`), and add `[Symbol.asyncDispose]`; `Model.load` wraps the
// native `_load` the same way for `onLoadProgress`.
;(function (Model, ChatSession) {
  'use strict'
  const toError = (info) => Object.assign(new Error(info.message), { code: info.code })
  // A user callback threw: the call stops and rejects once with this, the thrown value as cause.
  const callbackError = (name, thrown) =>
    Object.assign(new Error(`${name} threw: ${thrown instanceof Error ? thrown.message : String(thrown)}`, { cause: thrown }), { code: 'ERR_CALLBACK' })

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

  // Runs native `name` of `self` on `input` with `options` (onTextChunk and onToken delivered
  // here, signal linked) and resolves to its result. An abort by the caller's signal rejects
  // with ERR_ABORTED whose `cause` is `signal.reason`.
  function run(self, name, input, options) {
    return new Promise((resolve, reject) => {
      const opts = options == null ? {} : options
      if (typeof opts !== 'object' || Array.isArray(opts)) {
        throw Object.assign(new TypeError(`options must be an object, got ${Array.isArray(opts) ? 'an array' : typeof opts}`), { code: 'ERR_INVALID_OPTION' })
      }
      const callbacks = { onTextChunk: opts.onTextChunk, onToken: opts.onToken }
      for (const [key, f] of Object.entries(callbacks)) {
        if (f != null && typeof f !== 'function') {
          throw Object.assign(new TypeError(`${key} must be a function`), { code: 'ERR_INVALID_OPTION' })
        }
      }
      const ac = linkedController(opts.signal)
      let thrown = null
      const deliver = (key, value) => {
        if (callbacks[key] && thrown === null) {
          try {
            callbacks[key](value)
          } catch (e) {
            thrown = callbackError(key, e)
            ac.abort()
          }
        }
      }
      self[name](input, { ...opts, onTextChunk: undefined, signal: ac.signal }, (kind, text, result, error, tokens) => {
        if (kind === 'chunk') deliver('onTextChunk', text)
        else if (kind === 'tokens') deliver('onToken', tokens)
        else if (kind === 'done') {
          if (thrown !== null) reject(thrown)
          else resolve(result)
        } else if (thrown !== null) {
          reject(thrown)
        } else {
          const err = toError(error)
          if (error.code === 'ERR_ABORTED' && opts.signal && opts.signal.aborted) err.cause = opts.signal.reason
          reject(err)
        }
      })
    })
  }

  function generate(prompt, options) {
    return run(this, '_generate', prompt, options)
  }

  // A chat reply: the generation's result plus the assistant message it makes.
  const withMessage = (result) => ({ ...result, message: { role: 'assistant', content: result.text } })

  function chat(messages, options) {
    return run(this, '_chat', messages, options).then(withMessage)
  }

  function prompt(text, options) {
    return run(this, '_prompt', text, options).then(withMessage)
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

  // Model.load with an onLoadProgress: the native load reports progress asynchronously (from a
  // pool thread); this wrapper calls the user's callback, and if it throws, stops calling it,
  // aborts the load and rejects once with ERR_CALLBACK. The load settles only after its last
  // progress call (1) was delivered, so a throw from that call still rejects it.
  const nativeLoad = Model._load
  function load(path, options) {
    const objectForm = path !== null && typeof path === 'object'
    const opts = objectForm ? path : options
    const onLoadProgress = opts == null || typeof opts !== 'object' ? undefined : opts.onLoadProgress
    if (typeof onLoadProgress !== 'function') return nativeLoad.call(this, path, options)
    let ac
    try {
      ac = linkedController(opts.signal)
    } catch (e) {
      return Promise.reject(e)
    }
    let thrown = null
    let lastDelivered
    const delivered = new Promise((r) => (lastDelivered = r))
    const wrapped = {
      ...opts,
      signal: ac.signal,
      onLoadProgress: (fraction) => {
        if (thrown === null) {
          try {
            onLoadProgress(fraction)
          } catch (e) {
            thrown = callbackError('onLoadProgress', e)
            ac.abort()
          }
        }
        if (fraction >= 1) lastDelivered()
      },
    }
    return (objectForm ? nativeLoad.call(this, wrapped) : nativeLoad.call(this, path, wrapped)).then(
      async (model) => {
        // The native load reports 1 before it resolves; the timer only guards against a lost call.
        let timer
        await Promise.race([delivered, new Promise((r) => (timer = setTimeout(r, 1000)))])
        clearTimeout(timer)
        if (thrown === null) return model
        await model.dispose()
        throw thrown
      },
      (e) => {
        throw thrown !== null ? thrown : e
      },
    )
  }
  Object.defineProperty(Model, 'load', { value: load, writable: true, configurable: true, enumerable: false })

  const define = (Class, name, value) => Object.defineProperty(Class.prototype, name, { value, writable: true, configurable: true })
  define(Model, 'generate', generate)
  define(Model, 'stream', stream)
  define(Model, 'chat', chat)
  define(ChatSession, 'prompt', prompt)
  if (typeof Symbol.asyncDispose === 'symbol') {
    for (const Class of [Model, ChatSession]) {
      define(Class, Symbol.asyncDispose, function () {
        return this.dispose()
      })
    }
  }
})
