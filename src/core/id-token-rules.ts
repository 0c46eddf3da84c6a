/**
 * The ID-token rules of OpenID Connect Core 1.0 §3.1.3.7 and RFC 8725 that apply after the signature
 * has been verified: claim presence and types, audience and authorized party, time checks with clock
 * tolerance, explicit typing, required claim values, and the optional per-request checks.
 */
import { VerificationError } from '../errors.js'
import type { Algorithm } from '../config/types.js'
import { atHashMatches } from './at-hash.js'
import { BACKCHANNEL_LOGOUT_EVENT } from './logout-token-rules.js'
import { MAX_NUMERIC_DATE } from './numeric-date.js'

/** What the rules need to know about the issuer; built once per configured issuer. */
export interface IssuerRules {
  id: string
  audiences: ReadonlySet<string>
  authorizedParties: ReadonlySet<string>
  clockToleranceSeconds: number
  maxTokenAgeSeconds: number | undefined
  requiredClaims: ReadonlyMap<string, ReadonlySet<string>>
  /**
   * Whether a present azp must be one of our clients (Core §3.1.3.7 step 5, a SHOULD). False for GCP service
   * identity tokens, whose azp is the calling service account, not a client of ours.
   */
  checkAuthorizedParty: boolean
  /**
   * Claims only the provider's access tokens carry, for providers that sign access tokens for our own client id
   * as audience with the same keys and no explicit type (Entra ID: scp, appid, ...): a token with any of them
   * present is token_is_access_token. Decided once per issuer from its preset; empty for the others.
   */
  accessTokenClaims: readonly string[]
}

/** What the token is being verified for. */
export type VerificationMode = 'id_token' | 'id_token_hint'

/** Optional checks a caller asks for per request. */
export interface RequestChecks {
  /** The nonce sent in the authorization request; the token's must be equal. */
  nonce?: string
  /** OIDC max_age in seconds: auth_time must be present and no older than this. */
  maxAge?: number
  /** The access token from the same response; the ID token's at_hash must be present and match. */
  accessToken?: string
  /** The authorization code of a hybrid flow's response (Core §3.3.2.11): c_hash must be present and match it. */
  code?: string
  /** Narrow acceptance to this one configured audience. */
  audience?: string
  /**
   * id_token_hint: the token was presented as a hint (RP-initiated logout), where an expired token is
   * acceptable; exp and maxTokenAgeSeconds are not enforced, everything else is. Default id_token.
   */
  mode?: VerificationMode
}

export interface CheckedClaims {
  subject: string
  audiences: string[]
}

const MAX_SUB_LENGTH = 255
const CONTROL_CHARACTER = /\p{Cc}/u

function fail (code: ConstructorParameters<typeof VerificationError>[0], issuer: string, claim?: string): never {
  throw new VerificationError(code, claim === undefined ? { issuer } : { issuer, claim })
}

/** A time check failed: `seconds` is how far past its limit the token is, before the tolerance (rounded up). */
function failTime (code: ConstructorParameters<typeof VerificationError>[0], issuer: string, claim: string, seconds: number): never {
  throw new VerificationError(code, { issuer, claim, offBySeconds: Math.ceil(seconds) })
}

function numericDate (claims: Record<string, unknown>, name: string, issuer: string, required: boolean): number | undefined {
  const value = claims[name]
  if (value === undefined) {
    if (required) fail('claim_missing', issuer, name)
    return undefined
  }
  // JSON.parse turns 1e400 into Infinity: dates must be finite, not before the epoch and not past year 9999.
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_NUMERIC_DATE) fail('claim_invalid', issuer, name)
  return value
}

/**
 * A claim value as requiredClaims compares it (the configuration holds strings only): a string as it is, a boolean or
 * finite number as its JSON text. Providers type one claim differently (email_verified: true at Google and Okta,
 * "true" at Cognito for some users; Okta's ver is 1), and a required "true" must accept both, as emailVerified does.
 * An integer past 2^53 matches nothing, as in userKeyClaims: another id than the token's would match it.
 */
function requiredClaimText (value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value) && !isRoundedInteger(value))) return String(value)
  return undefined
}

/** An integer past 2^53: JSON.parse rounded it (9007199254740993 reads as 9007199254740992), so its text is not the token's. */
function isRoundedInteger (value: number): boolean {
  return Number.isInteger(value) && !Number.isSafeInteger(value)
}

function optionalString (claims: Record<string, unknown>, name: string, issuer: string): string | undefined {
  const value = claims[name]
  if (value === undefined) return undefined
  if (typeof value !== 'string') fail('claim_invalid', issuer, name)
  return value
}

/**
 * Whether `azp` names another client of the issuer's than `clients`: one of its audiences, not among `clients`
 * and not an authorized party (which may present tokens for our clients). Also with checkAuthorizedParty false:
 * that lets azp be a party that is none of ours, but an azp that is one of our audiences is still the client the
 * token was issued to (with that client's roles).
 */
export function isOtherClient (rules: Pick<IssuerRules, 'audiences' | 'authorizedParties'>, azp: string, clients: readonly string[]): boolean {
  return rules.audiences.has(azp) && !rules.authorizedParties.has(azp) && !clients.includes(azp)
}

/**
 * Explicit typing (RFC 8725 §3.11): access tokens and logout tokens are signed by the same keys and must
 * never pass as ID tokens. The header `typ` and the provider-specific type claims are all consulted.
 */
export function checkTokenType (header: Record<string, unknown>, claims: Record<string, unknown>, rules: Pick<IssuerRules, 'id' | 'accessTokenClaims'>): void {
  const issuer = rules.id
  const typ = header.typ
  if (typ !== undefined) {
    if (typeof typ !== 'string') fail('header_invalid', issuer)
    const mediaType = typ.toLowerCase().replace(/^application\//, '')
    if (mediaType === 'at+jwt') fail('token_is_access_token', issuer)
    if (mediaType === 'logout+jwt') fail('token_is_logout_token', issuer)
    if (mediaType !== 'jwt') fail('token_type_invalid', issuer)
  }
  const events = claims.events
  if (typeof events === 'object' && events !== null && Object.hasOwn(events, BACKCHANNEL_LOGOUT_EVENT)) {
    fail('token_is_logout_token', issuer)
  }
  // AWS Cognito: token_use is "id" or "access".
  const tokenUse = claims.token_use
  if (tokenUse !== undefined && tokenUse !== 'id') fail(tokenUse === 'access' ? 'token_is_access_token' : 'token_type_invalid', issuer, 'token_use')
  // Keycloak: typ claim is "ID" for ID tokens, "Bearer" for access tokens ("DPoP" for DPoP-bound ones), "Logout"
  // for logout tokens.
  const typClaim = claims.typ
  if (typClaim !== undefined) {
    const t = typeof typClaim === 'string' ? typClaim.toLowerCase() : ''
    if (t === 'bearer' || t === 'dpop') fail('token_is_access_token', issuer, 'typ')
    if (t === 'logout') fail('token_is_logout_token', issuer, 'typ')
    if (t !== 'id') fail('token_type_invalid', issuer, 'typ')
  }
  // The claims only the issuer's access tokens carry (preset entra: scp, appid, ...); present even as null.
  for (const name of rules.accessTokenClaims) {
    if (claims[name] !== undefined) fail('token_is_access_token', issuer, name)
  }
}

export function checkIdTokenClaims (
  claims: Record<string, unknown>,
  rules: IssuerRules,
  request: RequestChecks,
  alg: Algorithm,
  keyCurve: string | undefined,
  nowSeconds: number
): CheckedClaims {
  const issuer = rules.id
  const tolerance = rules.clockToleranceSeconds

  const sub = claims.sub
  if (sub === undefined) fail('claim_missing', issuer, 'sub')
  // A lone surrogate (JSON's "\ud800") has no UTF-8 form: in a header or a key it would become U+FFFD, like others.
  // Control characters (NUL, CR, LF, …) have no place in an identifier either.
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUB_LENGTH || !sub.isWellFormed() || CONTROL_CHARACTER.test(sub)) {
    fail('claim_invalid', issuer, 'sub')
  }

  const aud = claims.aud
  if (aud === undefined) fail('claim_missing', issuer, 'aud')
  let audiences: string[]
  if (typeof aud === 'string') {
    audiences = [aud]
  } else if (Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string')) {
    audiences = aud as string[]
  } else {
    fail('claim_invalid', issuer, 'aud')
  }

  const exp = numericDate(claims, 'exp', issuer, true) as number
  const iat = numericDate(claims, 'iat', issuer, true) as number
  const nbf = numericDate(claims, 'nbf', issuer, false)
  const authTime = numericDate(claims, 'auth_time', issuer, false)
  const azp = optionalString(claims, 'azp', issuer)
  const nonce = optionalString(claims, 'nonce', issuer)
  const atHash = optionalString(claims, 'at_hash', issuer)
  const cHash = optionalString(claims, 'c_hash', issuer)
  // Core §2: acr is a string. A list would meet requiredClaims' acr by any of its members, one of them "gold".
  optionalString(claims, 'acr', issuer)

  // Core §3.1.3.7 step 3: our client must be an audience, and no audience may be one we do not trust.
  if (!audiences.some((a) => rules.audiences.has(a)) || audiences.some((a) => !rules.audiences.has(a))) {
    fail('audience_mismatch', issuer, 'aud')
  }
  if (request.audience !== undefined && !audiences.includes(request.audience)) fail('audience_mismatch', issuer, 'aud')
  // Steps 4 and 5: azp is required with several audiences and, when present, must be one of ours.
  if (azp === undefined ? audiences.length > 1 : rules.checkAuthorizedParty && !(rules.audiences.has(azp) || rules.authorizedParties.has(azp))) {
    fail('authorized_party_mismatch', issuer, 'azp')
  }
  // Narrowed to one client: a token issued to another client of ours (azp) that lists this one among its audiences
  // is that other client's, with its roles (step 5: azp is the client's own id). An authorized party may present it.
  if (request.audience !== undefined && azp !== undefined && isOtherClient(rules, azp, [request.audience])) {
    fail('authorized_party_mismatch', issuer, 'azp')
  }

  // A hint identifies a session that may have ended long ago: its age and expiry do not matter, its origin does.
  const hint = request.mode === 'id_token_hint'
  if (!hint && nowSeconds >= exp + tolerance) failTime('token_expired', issuer, 'exp', nowSeconds - exp)
  if (nbf !== undefined && nbf > nowSeconds + tolerance) failTime('token_not_yet_valid', issuer, 'nbf', nbf - nowSeconds)
  if (iat > nowSeconds + tolerance) failTime('token_issued_in_future', issuer, 'iat', iat - nowSeconds)
  // Core §2: auth_time is when the End-User authenticated, which cannot be later than now. A future one would
  // satisfy any max_age, so it is refused whether or not maxAge is asked (like iat, within the tolerance).
  if (authTime !== undefined && authTime > nowSeconds + tolerance) failTime('claim_invalid', issuer, 'auth_time', authTime - nowSeconds)
  if (!hint && rules.maxTokenAgeSeconds !== undefined && nowSeconds - iat > rules.maxTokenAgeSeconds + tolerance) {
    failTime('token_too_old', issuer, 'iat', nowSeconds - iat - rules.maxTokenAgeSeconds)
  }

  for (const [name, allowed] of rules.requiredClaims) {
    const value = claims[name]
    const text = requiredClaimText(value)
    // A list claim (amr, groups) matches when one of its members is allowed: requiredClaims amr: [mfa].
    const matches = text !== undefined ? allowed.has(text) : Array.isArray(value) && value.some((member) => { const m = requiredClaimText(member); return m !== undefined && allowed.has(m) })
    if (!matches) fail('claim_value_mismatch', issuer, name)
  }

  if (request.nonce !== undefined && nonce !== request.nonce) fail('nonce_mismatch', issuer, 'nonce')
  if (request.maxAge !== undefined) {
    if (authTime === undefined) fail('auth_time_missing', issuer, 'auth_time')
    if (nowSeconds - authTime > request.maxAge + tolerance) failTime('authentication_too_old', issuer, 'auth_time', nowSeconds - authTime - request.maxAge)
  }
  if (request.accessToken !== undefined) {
    if (atHash === undefined) fail('at_hash_missing', issuer, 'at_hash')
    if (!atHashMatches(atHash, request.accessToken, alg, keyCurve)) fail('at_hash_mismatch', issuer, 'at_hash')
  }
  if (request.code !== undefined) {
    if (cHash === undefined) fail('c_hash_missing', issuer, 'c_hash')
    if (!atHashMatches(cHash, request.code, alg, keyCurve)) fail('c_hash_mismatch', issuer, 'c_hash')
  }

  return { subject: sub, audiences }
}
