/**
 * The JSON answer of POST /verify for a token the Verifier answers from its verified-token cache, rendered once
 * per cache entry instead of on every request.
 *
 * On a cache hit the Verifier returns a copy of the cached identity whose nested objects (`claims` among them)
 * are the cached entry's own, and only `expiresIn` differs from one answer to the next. So on the first hit of
 * an entry the identity is serialized by the route's own compiled schema serializer with a placeholder for
 * expiresIn, split around it, and kept in a WeakMap keyed by that `claims` object: it lives exactly as long as
 * the cache entry does, and later hits only join three strings. Only hits come here (the route knows a hit:
 * the Verifier answers it without a promise), so a token verified in full costs nothing here.
 */
import fastJsonStringify from 'fast-json-stringify'
import type { VerifiedIdentity } from '../core/identity.js'
import { VerifiedIdentitySchema } from './schemas.js'

/** An integer no clock produces for expiresIn (seconds left, never negative), written as the placeholder. */
const PLACEHOLDER = -987654321012345
const MARKER = `"expiresIn":${PLACEHOLDER}`
const KEY = '"expiresIn":'

export class IdentityBodies {
  readonly #bodies = new WeakMap<object, readonly [string, string]>()
  /** The route's 200 serializer (compileIdentitySerializer); the route and the hit lane render with this one. */
  readonly serialize: (identity: VerifiedIdentity) => string

  constructor (serialize: (identity: VerifiedIdentity) => string = compileIdentitySerializer()) {
    this.serialize = serialize
  }

  /**
   * The serialized identity of a cache hit, rendered on the entry's first hit; undefined when it should be
   * serialized as usual (an identity whose rendering has no placeholder to split at).
   */
  body (identity: VerifiedIdentity): string | undefined {
    const entry = identity.claims
    const parts = this.#bodies.get(entry)
    if (parts !== undefined) return parts[0] + String(identity.expiresIn) + parts[1]
    const text = this.serialize({ ...identity, expiresIn: PLACEHOLDER })
    // The first occurrence is the top-level field: it comes before `claims`, and every string before it is
    // JSON-escaped, so the marker cannot be forged by a claim value.
    const at = text.indexOf(MARKER)
    if (at === -1) return undefined
    const rendered = [text.slice(0, at + KEY.length), text.slice(at + MARKER.length)] as const
    this.#bodies.set(entry, rendered)
    return rendered[0] + String(identity.expiresIn) + rendered[1]
  }
}

/**
 * The 200 serializer of POST /verify for rendered answers (the route's and the hit lane's, src/http/hit-lane.ts): the
 * route's schema compiled by fast-json-stringify, as Fastify compiles it for the route, so both write the same bytes.
 */
export function compileIdentitySerializer (): (identity: VerifiedIdentity) => string {
  return fastJsonStringify(VerifiedIdentitySchema)
}
