/** Reads a token from `Authorization: Bearer` (RFC 6750 §2.1), strictly. */
import type { IncomingMessage } from 'node:http'
import { VerificationError } from '../errors.js'

// token68 (RFC 7235 §2.1): the characters a bearer token may use.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i

/** undefined when there is no Authorization header; throws request_invalid for another scheme or a bad value. */
export function bearerToken (authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization === '') return undefined
  const match = BEARER.exec(authorization.trim())
  if (match === null) throw new VerificationError('request_invalid', { parameter: 'header.authorization' })
  return match[1]
}

/**
 * True when the request has more than one line of the header `name` (lower case). Node keeps only the first
 * Authorization line and joins the lines of other headers with ", ", so two tokens would reach the app behind
 * us while we verified one (or a joined value that is no token at all). Looks only at names of the right
 * length, and allocates nothing: this runs on every /verify with a header token.
 */
export function repeatedHeader (rawHeaders: readonly string[], name: string): boolean {
  let seen = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i]!
    if (raw.length === name.length && sameName(raw, name)) {
      if (seen) return true
      seen = true
    }
  }
  return false
}

/** `raw` equals `name` (lower case, same length) ignoring ASCII case, without making a lower-case copy. */
function sameName (raw: string, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    let c = raw.charCodeAt(i)
    if (c >= 65 && c <= 90) c |= 0x20
    if (c !== name.charCodeAt(i)) return false
  }
  return true
}

/** The Authorization header; throws token_ambiguous when the request has several (Node would keep the first). */
export function authorizationHeader (message: Pick<IncomingMessage, 'headers' | 'rawHeaders'>): string | undefined {
  const authorization = message.headers.authorization
  if (authorization !== undefined && repeatedHeader(message.rawHeaders, 'authorization')) throw new VerificationError('token_ambiguous')
  return authorization
}

// id_token_hint: RP-initiated logout's name for the ID token, which a logout handler may pass on as it came;
// tokens: /verify/batch's body field, which a caller may write in the query as it writes it in the body.
const TOKEN_QUERY_NAMES = new Set(['token', 'tokens', 'id_token', 'id_token_hint', 'access_token'])

/**
 * A name before its brackets: `tokens[]`, `tokens[0]` are how clients write a list in a query (axios and qs by
 * default); the parser keeps the brackets in the name, and the token would be leaked all the same.
 */
function bracketBase (name: string): string {
  const bracket = name.indexOf('[')
  return bracket <= 0 ? name : name.slice(0, bracket)
}

/**
 * The per-request checks (and max_age, their OAuth spelling): body fields, never read from the query. Forward-auth
 * takes its audience in the query, and a caller that writes /verify?audience=… the same way must not get 200 for
 * a token that fails the check it asked for: such a query is request_invalid, as an unknown body field is.
 */
const CHECK_QUERY_NAMES = new Set(['nonce', 'maxAge', 'max_age', 'accessToken', 'code', 'audience', 'mode'])

/**
 * The query string of /verify, /verify/batch and /introspect, which carries nothing they read: a token there is
 * leaked and never used (token_in_query, whatever else the query holds), a check is request_invalid; any other
 * parameter is ignored. One pass over the names the query has (none, nearly always).
 */
export function refuseQueryInput (query: unknown): void {
  if (typeof query !== 'object' || query === null) return
  let check: string | undefined
  for (const name of Object.keys(query)) {
    if (TOKEN_QUERY_NAMES.has(name) || TOKEN_QUERY_NAMES.has(bracketBase(name))) throw new VerificationError('token_in_query')
    if (check === undefined && CHECK_QUERY_NAMES.has(name)) check = name
  }
  // One of our own names: the answer may repeat it.
  if (check !== undefined) throw new VerificationError('request_invalid', { parameter: `query.${check}` })
}
