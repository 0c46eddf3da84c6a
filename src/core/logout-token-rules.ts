/**
 * The rules of a back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.4 and §2.6) that apply
 * after its signature has been verified with the issuer's keys, exactly as an ID token's would be. A logout
 * token is not an ID token: it must carry the back-channel logout event and no nonce, so that neither kind can
 * pass as the other (src/core/id-token-rules.ts refuses logout tokens on the ID-token side).
 *
 * Every failure is logout_token_invalid, naming the claim; the spec asks for 400 Bad Request.
 */
import { VerificationError } from '../errors.js'
import { isRevocationValue } from '../revocation/revocation.js'
import type { IssuerRules } from './id-token-rules.js'
import { MAX_NUMERIC_DATE } from './numeric-date.js'

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'


/** What a verified logout token asks for. */
export interface LogoutClaims {
  /** The session to log out; when absent, every session of sub. */
  sid: string | undefined
  sub: string | undefined
  iat: number
  jti: string
}

function fail (issuer: string, claim?: string): never {
  throw new VerificationError('logout_token_invalid', claim === undefined ? { issuer } : { issuer, claim })
}

function identifier (claims: Record<string, unknown>, name: string, issuer: string): string | undefined {
  const value = claims[name]
  if (value === undefined) return undefined
  // What the revocation list holds: not longer, and well-formed.
  if (!isRevocationValue(value)) fail(issuer, name)
  return value
}

function numericDate (claims: Record<string, unknown>, name: string, issuer: string): number | undefined {
  const value = claims[name]
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_NUMERIC_DATE) fail(issuer, name)
  return value
}

/**
 * §2.6 step 3 (explicit typing, RFC 8725 §3.11, a recommendation): logout+jwt, or the generic JWT or no typ,
 * which providers built before explicit typing send (Keycloak before 25, among others). Any other type (at+jwt,
 * an ID token's own profile types) is refused. The kinds stay apart without the type: a logout token must carry
 * the logout event and no nonce, and an ID token with the logout event is refused (id-token-rules.ts).
 */
export function checkLogoutTokenType (header: Record<string, unknown>, issuer: string): void {
  const typ = header.typ
  if (typ === undefined) return
  const mediaType = typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : ''
  if (mediaType !== 'logout+jwt' && mediaType !== 'jwt') fail(issuer)
}

/**
 * §2.6 steps 4–9. aud must name configured audiences only (as for ID tokens); iat is required, not in the
 * future and not older than maxAgeSeconds; exp, when present (Back-Channel Logout 1.0 makes it required;
 * providers built on its drafts leave it out), must not have passed; nbf, when present, must have.
 */
export function checkLogoutTokenClaims (claims: Record<string, unknown>, rules: IssuerRules, maxAgeSeconds: number, nowSeconds: number): LogoutClaims {
  const issuer = rules.id
  const tolerance = rules.clockToleranceSeconds
  const aud = claims.aud
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string') ? aud as string[] : undefined
  if (audiences === undefined || audiences.some((a) => !rules.audiences.has(a))) fail(issuer, 'aud')

  const iat = numericDate(claims, 'iat', issuer)
  if (iat === undefined || iat > nowSeconds + tolerance || nowSeconds - iat > maxAgeSeconds + tolerance) fail(issuer, 'iat')
  const exp = numericDate(claims, 'exp', issuer)
  if (exp !== undefined && nowSeconds >= exp + tolerance) fail(issuer, 'exp')
  // RFC 7519 §4.1.5: a JWT must not be acted upon before its nbf, a logout token no more than an ID token.
  const nbf = numericDate(claims, 'nbf', issuer)
  if (nbf !== undefined && nbf > nowSeconds + tolerance) fail(issuer, 'nbf')

  const jti = identifier(claims, 'jti', issuer)
  if (jti === undefined) fail(issuer, 'jti')

  const events = claims.events
  if (typeof events !== 'object' || events === null || Array.isArray(events) || !Object.hasOwn(events, BACKCHANNEL_LOGOUT_EVENT)) fail(issuer, 'events')
  const event = (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT]
  if (typeof event !== 'object' || event === null || Array.isArray(event)) fail(issuer, 'events')

  // A nonce would let a logout token pass as an ID token at a verifier that does not check its type.
  if (claims.nonce !== undefined) fail(issuer, 'nonce')

  const sid = identifier(claims, 'sid', issuer)
  const sub = identifier(claims, 'sub', issuer)
  if (sid === undefined && sub === undefined) fail(issuer, 'sid')
  return { sid, sub, iat, jti }
}
