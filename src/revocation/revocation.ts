/**
 * A revocation: which ID tokens of one configured issuer must no longer be accepted, and until when we
 * remember it. Revocations come from the provider (OpenID Connect Back-Channel Logout, a logout token) or
 * from an operator (POST /revocations), and travel between processes (WORKERS=N, replicas) as JSON: every
 * entry read from a store or another process is checked with parseRevocation before it is applied.
 *
 *   sid     every token of that session (the sid claim): a logout of one session
 *   sub     every token of that user issued at or before `before`: a logout of all the user's sessions
 *   jti     the one token with that jti
 *   issuer  every token of the issuer issued at or before `before`: "log everyone out"
 */
import { ISSUER_ID_PATTERN } from '../config/schema.js'
import { MAX_NUMERIC_DATE } from '../core/numeric-date.js'

export const REVOCATION_KINDS = ['sid', 'sub', 'jti', 'issuer'] as const
export type RevocationKind = typeof REVOCATION_KINDS[number]

export const REVOCATION_SOURCES = ['backchannel-logout', 'api'] as const
export type RevocationSource = typeof REVOCATION_SOURCES[number]

/** sid, sub and jti values longer than this are refused: sub is at most 255 (id-token-rules), the others alike. */
export const MAX_REVOCATION_VALUE_LENGTH = 255

/** A UTF-16 surrogate that is not half of a pair: JSON can escape it ("\ud800"), UTF-8 and Redis's Lua cannot. */
const LONE_SURROGATE = /\p{Surrogate}/u

/**
 * Whether a sid, sub or jti can be a revocation's value: a non-empty string of at most
 * MAX_REVOCATION_VALUE_LENGTH, well-formed UTF-16 (the redis store's script cannot decode a lone surrogate, and a
 * value one store keeps and another refuses would make revocation depend on the store).
 */
export function isRevocationValue (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_REVOCATION_VALUE_LENGTH && !LONE_SURROGATE.test(value)
}


export interface Revocation {
  /** The configured issuer id (never an issuer URL taken from a token). */
  issuer: string
  kind: RevocationKind
  /** The sid, sub or jti; the empty string for kind "issuer". */
  value: string
  /** NumericDate (seconds): tokens issued at or before it are revoked. Kinds sub and issuer only; null otherwise. */
  before: number | null
  /**
   * Kind sid only, when known (the logout token named it): the user whose session it is. The list counts a
   * user's revoked sessions with it, so that one user cannot fill it (revocationOfLogout).
   */
  sub?: string
  /** NumericDate (seconds) after which the revocation is forgotten: no token it covers can still be valid. */
  expiresAt: number
  source: RevocationSource
}

/** One string per (issuer, kind, value): issuer ids are [a-z0-9_-], so the separator cannot occur in them. */
export function revocationKey (issuer: string, kind: RevocationKind, value: string): string {
  return `${issuer}\n${kind}\n${value}`
}

const ISSUER_ID = new RegExp(ISSUER_ID_PATTERN)

function isNumericDate (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_NUMERIC_DATE
}

/**
 * A revocation from outside this process (a store, another worker), checked member by member; undefined when
 * it is not one. Unknown members are ignored, so a newer version can add some.
 */
export function parseRevocation (input: unknown): Revocation | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined
  const r = input as Record<string, unknown>
  const { issuer, kind, value, before, expiresAt, source } = r
  if (typeof issuer !== 'string' || !ISSUER_ID.test(issuer)) return undefined
  if (typeof kind !== 'string' || !(REVOCATION_KINDS as readonly string[]).includes(kind)) return undefined
  if (typeof source !== 'string' || !(REVOCATION_SOURCES as readonly string[]).includes(source)) return undefined
  if (!isNumericDate(expiresAt)) return undefined
  if (typeof value !== 'string' || (kind === 'issuer' ? value !== '' : !isRevocationValue(value))) return undefined
  const cutoff = kind === 'sub' || kind === 'issuer'
  if (cutoff ? !isNumericDate(before) : before !== null) return undefined
  const parsed: Revocation = { issuer, kind: kind as RevocationKind, value, before: cutoff ? before as number : null, expiresAt, source: source as RevocationSource }
  // A sid's user: absent, or a string like any sub. Other kinds have none (dropped, not refused).
  const { sub } = r
  if (kind === 'sid' && sub !== undefined && sub !== null) {
    if (!isRevocationValue(sub)) return undefined
    parsed.sub = sub
  }
  return parsed
}

/** What a logout revokes, beside the logout token itself (revocation.retentionSeconds, revocation.maxSessionsPerUser). */
export interface LogoutRevocationPolicy {
  retentionSeconds: number
  maxSessionsPerUser: number
}

/** What the list holds already for a logout's user and session (RevocationList.sessionsOf and get). */
export interface HeldForLogout {
  /** How many of the user's sessions are revoked. */
  sessionsOfUser: number
  /** Whether this very session is revoked already (the same logout again, or a retry). */
  sessionRevoked: boolean
}

/**
 * What a verified logout token revokes: its session (sid), else every session of its user up to its iat (sub).
 * Kept retentionSeconds from the logout token's iat: every token it covers was issued before, so none outlives
 * that. Counted from iat, not from now, so that the same logout token again changes nothing (a replay does
 * not extend the revocation nor make cached tokens look it up again).
 *
 * From maxSessionsPerUser revoked sessions of the user on (`held`), a logout naming sid and sub revokes the
 * user's tokens up to its iat (sub) instead of one more session: one user logging in and out over and over
 * then holds at most maxSessionsPerUser + 1 entries, not one per logout, and cannot fill the list. The price
 * is that user's other sessions of before the logout, which must log in again. The cut-off is the logout
 * token's iat (up to the whole second, when it has a fraction), not padded: the provider stamps it and the ID tokens with the same clock, and a pad would
 * refuse a login right after the logout for the whole life of its tokens. A session revoked already is
 * recorded as a session again (unchanged): a retry or a replay changes nothing.
 */
export function revocationOfLogout (
  logout: { issuer: string, sid: string | undefined, sub: string | undefined, iat: number },
  policy: LogoutRevocationPolicy,
  held: HeldForLogout
): Revocation {
  const expiresAt = Math.ceil(logout.iat + policy.retentionSeconds)
  const { issuer, sid, sub } = logout
  if (sid !== undefined && (sub === undefined || held.sessionRevoked || held.sessionsOfUser < policy.maxSessionsPerUser)) {
    const revocation: Revocation = { issuer, kind: 'sid', value: sid, before: null, expiresAt, source: 'backchannel-logout' }
    if (sub !== undefined) revocation.sub = sub
    return revocation
  }
  // The logout-token rules require sid or sub.
  if (sub === undefined) throw new TypeError('a logout token names a sid or a sub')
  // A whole second, as every other cut-off (POST /revocations, whose answer says `before` is an integer): an iat
  // may have a fraction (RFC 7519 §2), and rounding up still covers every token issued up to the logout.
  return { issuer, kind: 'sub', value: sub, before: Math.ceil(logout.iat), expiresAt, source: 'backchannel-logout' }
}
