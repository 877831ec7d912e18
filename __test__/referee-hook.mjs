// Module resolve hook for referee.mjs: resolves one package specifier to another file.
let specifier
let url
export async function initialize(data) {
  specifier = data.specifier
  url = data.url
}
export async function resolve(spec, context, next) {
  if (spec === specifier) return { url, shortCircuit: true }
  return next(spec, context)
}
