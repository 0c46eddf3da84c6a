/**
 * Shape check of a JWKS document (RFC 7517 §5), fetched or inline in the configuration. It only makes sure
 * the document is a key set; whether each key is fit for verifying ID tokens is decided elsewhere, so every
 * key is kept as given.
 */
import type { JsonWebKeySet, PublicJwk } from '../config/types.js'
import { FetchError } from '../net/fetch-json.js'

/** Providers publish a handful of keys; a document with more is a mistake or an attack on our CPU. */
export const MAX_JWKS_KEYS = 100

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return `a ${typeof value}`
}

/** `url` names where the document came from (a URL, or a configuration path for inline key sets). */
export function parseJwks (body: unknown, url: string): JsonWebKeySet {
  const invalid = (problem: string): FetchError =>
    new FetchError('invalid_document', url, `The JWKS at ${url} is not usable: ${problem}`)

  if (!isObject(body)) throw invalid(`it is ${describe(body)}, not a JSON object`)
  const keys = body.keys
  if (!Array.isArray(keys)) throw invalid('it has no "keys" array')
  if (keys.length > MAX_JWKS_KEYS) throw invalid(`it has ${keys.length} keys, more than the ${MAX_JWKS_KEYS} accepted`)
  keys.forEach((key: unknown, i) => {
    if (!isObject(key)) throw invalid(`keys[${i}] is ${describe(key)}, not an object`)
    if (typeof key.kty !== 'string') throw invalid(`keys[${i}] has no string "kty"`)
  })
  return { keys: keys as PublicJwk[] }
}
