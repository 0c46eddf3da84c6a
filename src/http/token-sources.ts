/**
 * Where forward-auth finds the ID token: `Authorization: Bearer`, and when configured a named cookie or a
 * named header carrying the raw token. Another Authorization scheme (Basic for the app behind the proxy) is
 * not a token and is ignored. Two different tokens are ambiguous and refused: the upstream might use the
 * one we did not verify.
 */
import type { IncomingMessage } from 'node:http'
import type { ForwardAuthConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import { authorizationHeader, bearerToken, repeatedHeader } from './bearer.js'

export type TokenSource = 'authorization' | 'cookie' | 'header'

export interface FoundToken {
  token: string
  /** Every place that carried it (the same token may come twice). */
  sources: TokenSource[]
}

/** Values of every cookie named `name` in a Cookie header (RFC 6265 §5.4: "; "-separated pairs). */
export function cookieValues (header: string | undefined, name: string): string[] {
  if (header === undefined || header === '') return []
  const found: string[] = []
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue
    let value = pair.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    found.push(value)
  }
  return found
}

const firstValue = (value: string | string[] | undefined): string | undefined => Array.isArray(value) ? value.join(', ') : value

/**
 * Throws token_missing, token_ambiguous, or request_invalid (a malformed Bearer value). Several Authorization
 * lines, or several lines of the token header, are ambiguous too: Node keeps the first Authorization (and
 * joins the others), while the app behind the proxy may read another.
 */
export function findToken (message: Pick<IncomingMessage, 'headers' | 'rawHeaders'>, config: Pick<ForwardAuthConfig, 'tokenCookie' | 'tokenHeader'>): FoundToken {
  const headers = message.headers
  const seen = new Map<string, TokenSource[]>()
  const add = (token: string, source: TokenSource): void => {
    const sources = seen.get(token)
    if (sources === undefined) seen.set(token, [source])
    else if (!sources.includes(source)) sources.push(source)
  }
  const authorization = authorizationHeader(message)
  if (authorization !== undefined && /^\s*bearer(\s|$)/i.test(authorization)) {
    const token = bearerToken(authorization)
    if (token !== undefined) add(token, 'authorization')
  }
  if (config.tokenCookie !== undefined) {
    for (const value of cookieValues(firstValue(headers.cookie), config.tokenCookie)) {
      if (value !== '') add(value, 'cookie')
    }
  }
  if (config.tokenHeader !== undefined) {
    if (headers[config.tokenHeader] !== undefined && repeatedHeader(message.rawHeaders, config.tokenHeader)) throw new VerificationError('token_ambiguous')
    const value = firstValue(headers[config.tokenHeader])?.trim()
    if (value !== undefined && value !== '') add(value, 'header')
  }
  if (seen.size === 0) throw new VerificationError('token_missing')
  if (seen.size > 1) throw new VerificationError('token_ambiguous')
  const [token, sources] = [...seen][0]!
  return { token, sources }
}
