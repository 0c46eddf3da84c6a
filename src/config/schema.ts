/**
 * The shape of the configuration FILE (YAML or JSON), as a TypeBox schema with descriptions and defaults.
 *
 * This schema is the single source of truth for the file's structure: src/config/load.ts walks it to check
 * types, ranges, required and unknown options (reporting every problem with a path), then applies the rules a
 * schema cannot express (URLs, cross-field checks, secrets) and fills in the defaults below.
 *
 * Non-standard keywords: `x-expected` is the phrase used in error messages ("expected …"); `x-sensitive` keeps
 * the value out of messages (a secret pasted into the wrong option must not end up in logs).
 */
import { Type, type Static } from 'typebox'
import {
  DEFAULT_ALGORITHMS,
  SUPPORTED_ALGORITHMS,
  type FetchConfig,
  type JwksCacheConfig,
  type RateLimitConfig,
  type ServerConfig,
  type TokenCacheConfig
} from './types.js'

// ---------------------------------------------------------------------------------------------------------
// Defaults: the contract. Everything not set in the file (or the environment) takes these values.
// ---------------------------------------------------------------------------------------------------------

export const SERVER_DEFAULTS: Readonly<ServerConfig> = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  logLevel: 'info',
  bodyLimit: 65536,
  maxTokenBytes: 16384,
  shutdownGraceSeconds: 10,
  trustProxy: false
})

export const RATE_LIMIT_DEFAULTS: Readonly<RateLimitConfig> = Object.freeze({
  enabled: true,
  // ≈16,000 requests a second per caller: above what one process can verify, so only a runaway caller hits it.
  max: 1000000,
  windowSeconds: 60
})

export const JWKS_DEFAULTS: Readonly<JwksCacheConfig> = Object.freeze({
  maxEntries: 100,
  defaultFreshnessSeconds: 600,
  minFreshnessSeconds: 60,
  maxFreshnessSeconds: 86400,
  staleIfErrorSeconds: 21600,
  unknownKidCooldownSeconds: 5,
  unknownKidRefreshesPerMinute: 6,
  backoffInitialSeconds: 1,
  backoffMaxSeconds: 300
})

export const TOKEN_CACHE_DEFAULTS: Readonly<TokenCacheConfig> = Object.freeze({
  enabled: true,
  maxEntries: 50000,
  maxBytes: 64 * 1024 * 1024,
  maxTtlSeconds: 300
})

export const FETCH_DEFAULTS: Readonly<FetchConfig> = Object.freeze({
  timeoutMs: 5000,
  maxResponseBytes: 524288
})

/** Per-issuer defaults (algorithms default to DEFAULT_ALGORITHMS from types.ts). */
export const ISSUER_DEFAULTS = Object.freeze({
  authorizedParties: [] as readonly string[],
  algorithms: DEFAULT_ALGORITHMS,
  clockToleranceSeconds: 30
})

/** Default issuer id in environment-only mode (OIDC_ISSUER_ID). */
export const DEFAULT_ENV_ISSUER_ID = 'default'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const ISSUER_ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$'

/** Minimum client secret length in bytes per HMAC algorithm (the key must be at least as long as the hash). */
export const MIN_SECRET_BYTES = Object.freeze({ HS256: 32, HS384: 48, HS512: 64 })

/** JWK members that only a private or symmetric key has; they must never appear in a configured JWKS. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

const DAY = 86400
const WEEK = 7 * DAY

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/** An integer in [minimum, maximum]; the message says the range. */
function Int (minimum: number, maximum: number, description: string, fallback?: number) {
  return Type.Integer({
    minimum,
    maximum,
    description,
    ...(fallback === undefined ? {} : { default: fallback }),
    'x-expected': `an integer from ${minimum} to ${maximum}`
  })
}

function NonEmptyString (description: string, expected = 'a non-empty string') {
  return Type.String({ minLength: 1, description, 'x-expected': expected })
}

const HttpsUrl = (description: string) =>
  Type.String({
    minLength: 1,
    description,
    'x-expected': 'an https URL (http only for loopback hosts)'
  })

// ---------------------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------------------

export const ServerSchema = Type.Object({
  host: Type.Optional(NonEmptyString('Address to listen on. Environment HOST overrides it.', 'a non-empty host name or address')),
  port: Type.Optional(Int(0, 65535, 'TCP port to listen on (0 picks a free port). Environment PORT overrides it.', SERVER_DEFAULTS.port)),
  logLevel: Type.Optional(Type.Union(LOG_LEVELS.map((level) => Type.Literal(level)), {
    description: 'Log level. Environment LOG_LEVEL overrides it.',
    default: SERVER_DEFAULTS.logLevel,
    'x-expected': `one of ${LOG_LEVELS.join(', ')}`
  })),
  bodyLimit: Type.Optional(Int(1024, 10485760, 'Maximum request body in bytes.', SERVER_DEFAULTS.bodyLimit)),
  maxTokenBytes: Type.Optional(Int(512, 1048576, 'Maximum token length in bytes, checked before parsing; must be less than bodyLimit.', SERVER_DEFAULTS.maxTokenBytes)),
  shutdownGraceSeconds: Type.Optional(Int(0, 600, 'Seconds SIGTERM waits for requests in flight.', SERVER_DEFAULTS.shutdownGraceSeconds)),
  trustProxy: Type.Optional(Type.Union([
    Type.Boolean(),
    Type.Array(NonEmptyString('A proxy address or CIDR.', 'an IP address, a CIDR such as 10.0.0.0/8, or loopback/linklocal/uniquelocal'))
  ], {
    description: 'Fastify trustProxy: whether X-Forwarded-* headers are trusted, or from which proxy addresses/CIDRs.',
    default: SERVER_DEFAULTS.trustProxy,
    'x-expected': 'true, false or a list of addresses/CIDRs'
  }))
}, { additionalProperties: false, description: 'HTTP server settings.', 'x-expected': 'a mapping of server options' })

export const RateLimitSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Whether per-caller rate limiting is on.', default: RATE_LIMIT_DEFAULTS.enabled, 'x-expected': 'true or false' })),
  max: Type.Optional(Int(1, 1000000000, 'Requests allowed per caller per window.', RATE_LIMIT_DEFAULTS.max)),
  windowSeconds: Type.Optional(Int(1, DAY, 'Length of the rate limit window in seconds.', RATE_LIMIT_DEFAULTS.windowSeconds))
}, { additionalProperties: false, description: 'Per-caller rate limiting.', 'x-expected': 'a mapping of rate limit options' })

export const JwksCacheSchema = Type.Object({
  maxEntries: Type.Optional(Int(1, 100000, 'Maximum number of key sets held (one per JWKS URL).', JWKS_DEFAULTS.maxEntries)),
  defaultFreshnessSeconds: Type.Optional(Int(1, WEEK, 'Freshness when the JWKS response has no usable Cache-Control max-age.', JWKS_DEFAULTS.defaultFreshnessSeconds)),
  minFreshnessSeconds: Type.Optional(Int(0, WEEK, 'Lower clamp for Cache-Control max-age.', JWKS_DEFAULTS.minFreshnessSeconds)),
  maxFreshnessSeconds: Type.Optional(Int(1, WEEK, 'Upper clamp for Cache-Control max-age.', JWKS_DEFAULTS.maxFreshnessSeconds)),
  staleIfErrorSeconds: Type.Optional(Int(0, WEEK, 'How long past freshness the last good key set is served while the IdP is unreachable.', JWKS_DEFAULTS.staleIfErrorSeconds)),
  unknownKidCooldownSeconds: Type.Optional(Int(0, 3600, 'Minimum seconds between unknown-kid refreshes per JWKS URL.', JWKS_DEFAULTS.unknownKidCooldownSeconds)),
  unknownKidRefreshesPerMinute: Type.Optional(Int(0, 600, 'Maximum unknown-kid refreshes per minute per JWKS URL.', JWKS_DEFAULTS.unknownKidRefreshesPerMinute)),
  backoffInitialSeconds: Type.Optional(Int(1, 3600, 'First delay after a failed fetch.', JWKS_DEFAULTS.backoffInitialSeconds)),
  backoffMaxSeconds: Type.Optional(Int(1, DAY, 'Maximum delay between failed fetches.', JWKS_DEFAULTS.backoffMaxSeconds))
}, { additionalProperties: false, description: 'JWKS cache behaviour.', 'x-expected': 'a mapping of JWKS cache options' })

export const FetchSchema = Type.Object({
  timeoutMs: Type.Optional(Int(100, 60000, 'Timeout of discovery and JWKS requests in milliseconds.', FETCH_DEFAULTS.timeoutMs)),
  maxResponseBytes: Type.Optional(Int(1024, 16777216, 'Largest discovery or JWKS response accepted, in bytes.', FETCH_DEFAULTS.maxResponseBytes))
}, { additionalProperties: false, description: 'Outgoing HTTP requests to identity providers.', 'x-expected': 'a mapping of fetch options' })

const JwkString = (description: string) => Type.Optional(Type.String({ description, 'x-expected': 'a string' }))

export const PublicJwkSchema = Type.Object({
  kty: Type.String({ minLength: 1, description: 'Key type (RSA, EC, OKP).', 'x-expected': 'a non-empty string (the key type)' }),
  kid: JwkString('Key id.'),
  use: JwkString('Public key use.'),
  key_ops: Type.Optional(Type.Array(Type.String({ 'x-expected': 'a string' }), { 'x-expected': 'a list of strings' })),
  alg: JwkString('Algorithm.'),
  crv: JwkString('Curve.'),
  n: JwkString('RSA modulus.'),
  e: JwkString('RSA exponent.'),
  x: JwkString('EC/OKP x coordinate.'),
  y: JwkString('EC y coordinate.')
}, { additionalProperties: true, description: 'A public JWK (RFC 7517). Private members are rejected.', 'x-expected': 'a JWK object' })

export const JwksSchema = Type.Object({
  keys: Type.Array(PublicJwkSchema, { minItems: 1, description: 'The public keys.', 'x-expected': 'a non-empty list of JWK objects' })
}, { additionalProperties: true, description: 'Inline JSON Web Key Set, for air-gapped deployments.', 'x-expected': 'a JWKS object with a non-empty "keys" list' })

const ClaimPath = (field: string) =>
  Type.Optional(NonEmptyString(`Claim path for the normalized "${field}" field.`, 'a non-empty claim path'))

/** Keys are exactly MAPPABLE_FIELDS from types.ts (test/config.test.ts checks that they agree). */
export const ClaimMappingSchema = Type.Object({
  email: ClaimPath('email'),
  emailVerified: ClaimPath('emailVerified'),
  name: ClaimPath('name'),
  givenName: ClaimPath('givenName'),
  familyName: ClaimPath('familyName'),
  preferredUsername: ClaimPath('preferredUsername'),
  picture: ClaimPath('picture'),
  locale: ClaimPath('locale'),
  groups: ClaimPath('groups'),
  roles: ClaimPath('roles'),
  tenant: ClaimPath('tenant')
}, { additionalProperties: false, description: 'Normalized field -> claim path; overrides the default mapping.', 'x-expected': 'a mapping of normalized field names to claim paths' })

export const RequiredClaimsSchema = Type.Record(
  Type.String(),
  Type.Union([
    Type.String({ 'x-expected': 'a string' }),
    Type.Array(Type.String({ 'x-expected': 'a string' }), { minItems: 1, 'x-expected': 'a non-empty list of strings' })
  ], { 'x-expected': 'a string or a non-empty list of strings' }),
  { description: 'Claim name -> allowed value(s); a token must carry one of them.', 'x-expected': 'a mapping of claim names to a string or a non-empty list of strings' }
)

export const IssuerSchema = Type.Object({
  id: Type.String({
    pattern: ISSUER_ID_PATTERN,
    description: 'Short stable name used in logs, metrics and responses; unique.',
    'x-expected': 'an id of 1 to 64 characters: lowercase letters, digits, "_" and "-", starting with a letter or digit'
  }),
  issuer: HttpsUrl('Issuer URL, compared with the token\'s iss exactly; unique across issuers.'),
  audiences: Type.Array(NonEmptyString('A client id.', 'a non-empty client id'), {
    minItems: 1,
    uniqueItems: true,
    description: 'Client ids this service accepts tokens for.',
    'x-expected': 'a non-empty list of client ids'
  }),
  authorizedParties: Type.Optional(Type.Array(NonEmptyString('A client id.', 'a non-empty client id'), {
    uniqueItems: true,
    description: 'Extra values accepted in azp besides the audiences.',
    default: [],
    'x-expected': 'a list of client ids'
  })),
  algorithms: Type.Optional(Type.Array(Type.String({ minLength: 1, 'x-expected': 'a non-empty algorithm name' }), {
    minItems: 1,
    uniqueItems: true,
    description: `Allowed JWS algorithms, from: ${SUPPORTED_ALGORITHMS.join(', ')}. HS* need a client secret; "none" is never allowed.`,
    default: [...DEFAULT_ALGORITHMS],
    'x-expected': 'a non-empty list of algorithm names'
  })),
  jwksUri: Type.Optional(HttpsUrl('JWKS URL; skips discovery. Exclusive with jwks.')),
  jwks: Type.Optional(JwksSchema),
  clientSecret: Type.Optional(Type.String({
    description: 'Client secret for HS* ID tokens (at least 32 bytes; 48 for HS384, 64 for HS512). Exclusive with clientSecretEnv.',
    'x-expected': 'a string',
    'x-sensitive': true
  })),
  clientSecretEnv: Type.Optional(Type.String({
    pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
    description: 'Name of an environment variable holding the client secret.',
    'x-expected': 'an environment variable name',
    'x-sensitive': true
  })),
  clockToleranceSeconds: Type.Optional(Int(0, 300, 'Allowed clock skew for exp/nbf/iat.', ISSUER_DEFAULTS.clockToleranceSeconds)),
  maxTokenAgeSeconds: Type.Optional(Int(1, 365 * DAY, 'Reject tokens issued (iat) longer ago than this.')),
  requiredClaims: Type.Optional(RequiredClaimsSchema),
  claimMapping: Type.Optional(ClaimMappingSchema)
}, { additionalProperties: false, description: 'A trusted OpenID Provider.', 'x-expected': 'a mapping of issuer options' })

export const TokenCacheSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Cache verified tokens (keyed by a hash of the token, never the token).', default: TOKEN_CACHE_DEFAULTS.enabled, 'x-expected': 'true or false' })),
  maxEntries: Type.Optional(Int(1, 10000000, 'Maximum number of cached verified tokens.', TOKEN_CACHE_DEFAULTS.maxEntries)),
  maxBytes: Type.Optional(Int(1048576, 17179869184, 'Bound on the estimated memory of the cache, in bytes.', TOKEN_CACHE_DEFAULTS.maxBytes)),
  maxTtlSeconds: Type.Optional(Int(1, 86400, 'An entry lives no longer than the token\'s exp nor this.', TOKEN_CACHE_DEFAULTS.maxTtlSeconds))
}, { additionalProperties: false, description: 'The verified-token cache.', 'x-expected': 'a mapping of token cache options' })

export const ConfigFileSchema = Type.Object({
  server: Type.Optional(ServerSchema),
  rateLimit: Type.Optional(RateLimitSchema),
  jwks: Type.Optional(JwksCacheSchema),
  fetch: Type.Optional(FetchSchema),
  tokenCache: Type.Optional(TokenCacheSchema),
  issuers: Type.Array(IssuerSchema, {
    minItems: 1,
    description: 'The trusted issuers (at least one).',
    'x-expected': 'a non-empty list of issuers'
  })
}, { additionalProperties: false, description: 'oidc-verifier configuration file.', 'x-expected': 'a mapping of configuration sections' })

export type ConfigFile = Static<typeof ConfigFileSchema>
export type IssuerFile = Static<typeof IssuerSchema>
