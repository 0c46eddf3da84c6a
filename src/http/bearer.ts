/** Reads a token from `Authorization: Bearer` (RFC 6750 §2.1), strictly. */
import { VerificationError } from '../errors.js'

// token68 (RFC 7235 §2.1): the characters a bearer token may use.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i

/** undefined when there is no Authorization header; throws request_invalid for another scheme or a bad value. */
export function bearerToken (authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization === '') return undefined
  const match = BEARER.exec(authorization.trim())
  if (match === null) throw new VerificationError('request_invalid')
  return match[1]
}

const TOKEN_QUERY_NAMES = ['token', 'id_token', 'access_token']

/** True when the query string tries to carry a token: such a token is leaked and never used. */
export function queryCarriesToken (query: unknown): boolean {
  if (typeof query !== 'object' || query === null) return false
  return TOKEN_QUERY_NAMES.some((name) => Object.hasOwn(query, name))
}
