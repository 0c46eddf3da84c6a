/**
 * The resolved configuration: what the rest of the service sees once a file and/or the environment have
 * been read, validated and completed with defaults (src/config/load.ts). Durations are in seconds unless
 * the name says otherwise.
 */

/** Asymmetric JWS algorithms the service can verify. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA', 'Ed25519'
] as const
/** HMAC algorithms, allowed only with a configured client secret (OIDC Core §10.1). */
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const
export const SUPPORTED_ALGORITHMS = [...ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS] as const

export type AsymmetricAlgorithm = typeof ASYMMETRIC_ALGORITHMS[number]
export type HmacAlgorithm = typeof HMAC_ALGORITHMS[number]
export type Algorithm = typeof SUPPORTED_ALGORITHMS[number]

/** Default allowlist: the asymmetric algorithms providers actually use for ID tokens. */
export const DEFAULT_ALGORITHMS: readonly Algorithm[] = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'
]

/** The normalized identity fields a claim mapping can fill. */
export const MAPPABLE_FIELDS = [
  'email', 'emailVerified', 'name', 'givenName', 'familyName', 'preferredUsername', 'picture', 'locale',
  'groups', 'roles', 'tenant'
] as const
export type MappableField = typeof MAPPABLE_FIELDS[number]

/** A public JWK as found in a JWKS (only the members we read are typed). */
export interface PublicJwk {
  kty: string
  kid?: string
  use?: string
  key_ops?: string[]
  alg?: string
  crv?: string
  n?: string
  e?: string
  x?: string
  y?: string
  [member: string]: unknown
}

export interface JsonWebKeySet {
  keys: PublicJwk[]
}

/** Where an issuer's keys come from: exactly one of these. */
export type KeySource =
  | { kind: 'discovery' }
  | { kind: 'jwksUri', jwksUri: string }
  | { kind: 'inline', jwks: JsonWebKeySet }

export interface IssuerConfig {
  /** Short stable name used in logs, metrics and responses: [a-z0-9][a-z0-9_-]{0,63}. */
  id: string
  /** The issuer URL, compared with the token's iss exactly. */
  issuer: string
  /** Client ids this service accepts tokens for (at least one). */
  audiences: string[]
  /** Extra values accepted in azp besides the audiences (for example Google's Android client ids). */
  authorizedParties: string[]
  algorithms: Algorithm[]
  keys: KeySource
  /** Client secret for HS* ID tokens; undefined when HMAC is not allowed. */
  clientSecret?: string
  clockToleranceSeconds: number
  maxTokenAgeSeconds?: number
  /** Claim name → allowed values (a token must carry one of them). */
  requiredClaims: Record<string, string[]>
  /** Normalized field → claim path (see src/core/claim-path.ts); overrides the defaults. */
  claimMapping: Partial<Record<MappableField, string>>
}

export interface JwksCacheConfig {
  /** Bound on the number of key sets held (one per JWKS URL). */
  maxEntries: number
  /** Freshness when the JWKS response has no usable Cache-Control max-age. */
  defaultFreshnessSeconds: number
  /** Cache-Control max-age is clamped into [minFreshnessSeconds, maxFreshnessSeconds]. */
  minFreshnessSeconds: number
  maxFreshnessSeconds: number
  /** How long past freshness the last good key set is still served while the IdP cannot be reached. */
  staleIfErrorSeconds: number
  /** An unknown kid triggers at most one refresh per this many seconds per JWKS URL… */
  unknownKidCooldownSeconds: number
  /** …and at most this many unknown-kid refreshes per minute per JWKS URL. */
  unknownKidRefreshesPerMinute: number
  /** Failed fetches back off exponentially from the initial to the maximum delay. */
  backoffInitialSeconds: number
  backoffMaxSeconds: number
}

export interface FetchConfig {
  timeoutMs: number
  maxResponseBytes: number
}

/** The verified-token cache: a token seen before skips signature verification (never its claim checks). */
export interface TokenCacheConfig {
  enabled: boolean
  /** Bound on entries. */
  maxEntries: number
  /** Bound on the estimated memory of all entries, in bytes. */
  maxBytes: number
  /** An entry lives no longer than the token's exp nor this. */
  maxTtlSeconds: number
}

export interface ServerConfig {
  host: string
  port: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** Maximum request body in bytes. */
  bodyLimit: number
  /** Maximum token length in bytes, checked before any parsing. */
  maxTokenBytes: number
  /** Seconds SIGTERM waits for requests in flight before exiting anyway. */
  shutdownGraceSeconds: number
  /** Fastify trustProxy setting: false, true, or a list of addresses/CIDRs. */
  trustProxy: boolean | string[]
}

export interface RateLimitConfig {
  enabled: boolean
  /** Requests allowed per caller (client address) per window. */
  max: number
  windowSeconds: number
}

export interface Config {
  server: ServerConfig
  rateLimit: RateLimitConfig
  jwks: JwksCacheConfig
  fetch: FetchConfig
  tokenCache: TokenCacheConfig
  issuers: IssuerConfig[]
  /** Where the configuration came from, for messages ("/etc/oidc-verifier.yaml", "environment"). */
  source: string
}
