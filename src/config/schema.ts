/**
 * The shape of the configuration FILE (YAML or JSON), as a TypeBox schema with descriptions and defaults.
 *
 * This schema is the single source of truth for the file's structure: src/config/schema-check.ts walks it to
 * check types, ranges, required and unknown options (reporting every problem with a path), then
 * src/config/load.ts applies the rules a schema cannot express (URLs, cross-field checks, secrets) and fills
 * in the defaults below.
 *
 * Non-standard keywords: `x-expected` is the phrase used in error messages ("expected …"); `x-sensitive` keeps
 * the value out of messages (a secret pasted into the wrong option must not end up in logs).
 */
import { Type, type Static } from 'typebox'
import {
  CONTENT_ENCRYPTION_ALGORITHMS,
  DEFAULT_ALGORITHMS,
  DEFAULT_KEY_MANAGEMENT_ALGORITHMS,
  PRESET_NAMES,
  SUPPORTED_ALGORITHMS,
  type FetchConfig,
  type JwksCacheConfig,
  type LoadSheddingConfig,
  type MetricsConfig,
  type RateLimitConfig,
  type ServerConfig,
  type TokenCacheConfig,
  type BatchConfig,
  type IdentityHeaderField
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
  trustProxy: false,
  clientIpv6PrefixLength: 64,
  connectionTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  headersTimeoutMs: 10_000,
  // Longer than the usual 60 s idle timeout of load balancers, so they close first.
  keepAliveTimeoutMs: 72_000,
  signatureChecks: 'auto',
  // One provider down must not take every replica out of the load balancer, and the other providers' users with it.
  readiness: 'any-issuer',
  certificateCheckSeconds: 60
})

export const RATE_LIMIT_DEFAULTS: Readonly<RateLimitConfig> = Object.freeze({
  enabled: true,
  // No max: the verify routes are not limited per caller unless one is set (rateLimit.max, or a caller's own).
  // One process answers at most ~40,000 verifications a second (docs/benchmarks.md), so a default limit above
  // that would never fire, and one below it would throttle a busy gateway: only the operator can choose it.
  // The limiter costs a few microseconds on every request it watches, a fifth of a cache hit. The open routes
  // (unknown routes, POST /backchannel-logout) keep limits of their own.
  windowSeconds: 60,
  headers: false
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
  backoffMaxSeconds: 300,
  rediscoverySeconds: 86400
})

export const TOKEN_CACHE_DEFAULTS: Readonly<TokenCacheConfig> = Object.freeze({
  enabled: true,
  maxEntries: 50000,
  maxBytes: 64 * 1024 * 1024,
  maxTtlSeconds: 300
})

export const REVOCATION_DEFAULTS = Object.freeze({
  // Off unless asked for: it opens a route to the provider, and with replicas it needs the redis store.
  enabled: false,
  store: 'memory' as const,
  // 170-300 bytes of heap each, counted as 400 (src/config/heap-budget.ts): 30,000 fit beside the default token
  // cache under the container image's old-generation cap, and the sidecars' smaller one.
  maxEntries: 30000,
  retentionSeconds: 86400,
  // More than a person logs out in a day (retentionSeconds), far below maxEntries: one user who logs in and out
  // over and over holds at most 21 entries.
  maxSessionsPerUser: 20,
  logoutTokenMaxAgeSeconds: 300,
  // 100 a second from one address: above a provider's burst of logouts, far below what the route can answer.
  logoutRateLimit: Object.freeze({ max: 6000, windowSeconds: 60 })
})

export const REDIS_REVOCATION_DEFAULTS = Object.freeze({
  keyPrefix: 'oidc-verifier:',
  maxStalenessSeconds: 10,
  commandTimeoutMs: 1000
})

export const METRICS_DEFAULTS: Readonly<MetricsConfig> = Object.freeze({ enabled: true })

/** With callers configured, /metrics on the main port needs a key unless protectMetrics is false. */
export const CALLERS_DEFAULTS = Object.freeze({ protectMetrics: true, maxFailuresPerMinute: 60 })

export const LOAD_SHEDDING_DEFAULTS: Readonly<LoadSheddingConfig> = Object.freeze({
  enabled: true,
  // A verification takes well under a millisecond: a second of event loop delay means requests are queueing.
  maxEventLoopDelayMs: 1000,
  // Off by default: a busy process near 100% is doing its job; turn on to shed before latency grows.
  maxEventLoopUtilization: 0,
  maxHeapUsedBytes: 0,
  maxRssBytes: 0,
  sampleIntervalMs: 1000,
  retryAfterSeconds: 10
})

/** Caller ids that name "no caller" in logs and metrics. */
export const RESERVED_CALLER_IDS = Object.freeze(['none', 'unknown'])

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

/** Encrypted ID tokens: the algorithm policy when an issuer has decryptionKeys. */
export const DECRYPTION_DEFAULTS = Object.freeze({
  keyManagementAlgorithms: DEFAULT_KEY_MANAGEMENT_ALGORITHMS,
  contentEncryptionAlgorithms: CONTENT_ENCRYPTION_ALGORITHMS,
  allowCompressedTokens: false,
  requireEncryption: false,
  // jose's own default: about a millisecond of PBKDF2 per thousand iterations, paid before any signature check.
  maxPbes2Count: 10000
})

/** Default issuer id in environment-only mode (OIDC_ISSUER_ID). */
export const DEFAULT_ENV_ISSUER_ID = 'default'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const ISSUER_ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$'

/** An environment variable's name, as the *Env options take it. */
export const ENV_VAR_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$'

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

/**
 * The name of an environment variable that holds a value kept out of the file. Never quoted in an error: what
 * is found where a name should be is often the value itself, pasted by mistake.
 */
function EnvVarName (description: string) {
  return Type.String({
    pattern: ENV_VAR_NAME_PATTERN,
    description,
    'x-expected': 'an environment variable name',
    'x-sensitive': true
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

export const TlsSchema = Type.Object({
  certFile: NonEmptyString('PEM certificate (chain) of the listener, its own certificate first.', 'a path to a PEM certificate file'),
  keyFile: NonEmptyString('PEM private key of the listener, unencrypted.', 'a path to a PEM private key file'),
  clientCaFile: Type.Optional(NonEmptyString('PEM CA bundle; when set, mutual TLS admits only clients whose certificate chains to it.', 'a path to a PEM CA certificate file'))
}, { additionalProperties: false, description: 'TLS for the main listener.', 'x-expected': 'a mapping with certFile, keyFile and optionally clientCaFile' })

export const OpsTlsSchema = Type.Object({
  certFile: NonEmptyString('PEM certificate (chain) of the ops listener, its own certificate first.', 'a path to a PEM certificate file'),
  keyFile: NonEmptyString('PEM private key of the ops listener, unencrypted.', 'a path to a PEM private key file')
}, {
  additionalProperties: false,
  description: 'TLS for the ops listener (server.opsPort); server authentication only: probes have no client certificate.',
  'x-expected': 'a mapping with certFile and keyFile'
})

export const ServerSchema = Type.Object({
  host: Type.Optional(NonEmptyString('Address to listen on (not the name "localhost", which would open a second listener for ::1). Environment HOST overrides it.', 'a non-empty host name or address')),
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
  })),
  clientIpv6PrefixLength: Type.Optional(Int(32, 128, 'Leading bits of an IPv6 client address that count as one client for the per-address bounds (failed caller key checks, per-address rate limits): 64, a host\'s usual share, or 128 where callers share a /64 (Kubernetes pods, Docker\'s IPv6 bridge).', SERVER_DEFAULTS.clientIpv6PrefixLength)),
  connectionTimeoutMs: Type.Optional(Int(1000, 600000, 'Idle socket timeout in milliseconds.', SERVER_DEFAULTS.connectionTimeoutMs)),
  requestTimeoutMs: Type.Optional(Int(1000, 600000, 'Time allowed to receive a whole request, in milliseconds.', SERVER_DEFAULTS.requestTimeoutMs)),
  headersTimeoutMs: Type.Optional(Int(1000, 600000, 'Time allowed to receive the request headers, in milliseconds; at most requestTimeoutMs.', SERVER_DEFAULTS.headersTimeoutMs)),
  keepAliveTimeoutMs: Type.Optional(Int(1000, 600000, 'How long an idle keep-alive connection is kept, in milliseconds.', SERVER_DEFAULTS.keepAliveTimeoutMs)),
  maxConnections: Type.Optional(Int(1, 10_000_000, 'Most open connections on the main listener; past it a new one is closed at once (default: three quarters of the open-file limit).')),
  signatureChecks: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('thread-pool'), Type.Literal('event-loop')], {
    description: 'Where signature checks run: thread-pool (libuv threads, beside the event loop), event-loop (batched, answers written together), or auto: thread-pool when the process has two cores or more to itself, else event-loop.',
    default: SERVER_DEFAULTS.signatureChecks,
    'x-expected': 'auto, thread-pool or event-loop'
  })),
  readiness: Type.Optional(Type.Union([Type.Literal('any-issuer'), Type.Literal('every-issuer')], {
    description: 'When /readyz is 200: any-issuer, once every issuer has been tried (keys fetched, or a fetch failed) and at least one has usable keys (tokens of an issuer without keys get 503 keys_unavailable); every-issuer, only while every issuer has usable keys (one provider down takes every replica out of the load balancer).',
    default: SERVER_DEFAULTS.readiness,
    'x-expected': 'any-issuer or every-issuer'
  })),
  opsPort: Type.Optional(Int(0, 65535, 'Serve /healthz, /readyz and /metrics on this port only (0 picks a free port); /verify stays on port.')),
  opsHost: Type.Optional(NonEmptyString('Address of the ops listener (default: host).', 'a non-empty host name or address')),
  certificateCheckSeconds: Type.Optional(Int(0, 86400, 'How often, in seconds, the files of tls and opsTls are looked at for a renewed certificate, which is then served without a restart (0: only on a configuration reload).', SERVER_DEFAULTS.certificateCheckSeconds)),
  tls: Type.Optional(TlsSchema),
  opsTls: Type.Optional(OpsTlsSchema)
}, { additionalProperties: false, description: 'HTTP server settings.', 'x-expected': 'a mapping of server options' })

export const RateLimitSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Whether rate limiting is on: per caller where a limit is set, per address on unknown routes and POST /backchannel-logout.', default: RATE_LIMIT_DEFAULTS.enabled, 'x-expected': 'true or false' })),
  max: Type.Optional(Int(1, 1000000000, 'Requests allowed per caller per window on /verify, /verify/batch, /introspect and /revocations; unset: no limit there, except for callers with their own.')),
  windowSeconds: Type.Optional(Int(1, DAY, 'Length of the rate limit window in seconds.', RATE_LIMIT_DEFAULTS.windowSeconds)),
  headers: Type.Optional(Type.Boolean({ description: 'Send x-ratelimit-limit/-remaining/-reset on every answer (true), or only on a 429 (false).', default: RATE_LIMIT_DEFAULTS.headers, 'x-expected': 'true or false' }))
}, { additionalProperties: false, description: 'Per-caller rate limiting.', 'x-expected': 'a mapping of rate limit options' })

export const JwksCacheSchema = Type.Object({
  maxEntries: Type.Optional(Int(1, 100000, 'Maximum number of key sets held (one per JWKS URL).', JWKS_DEFAULTS.maxEntries)),
  defaultFreshnessSeconds: Type.Optional(Int(1, WEEK, 'Freshness when the JWKS response has no usable Cache-Control max-age.', JWKS_DEFAULTS.defaultFreshnessSeconds)),
  minFreshnessSeconds: Type.Optional(Int(0, WEEK, 'Lower clamp for Cache-Control max-age.', JWKS_DEFAULTS.minFreshnessSeconds)),
  maxFreshnessSeconds: Type.Optional(Int(1, WEEK, 'Upper clamp for Cache-Control max-age.', JWKS_DEFAULTS.maxFreshnessSeconds)),
  staleIfErrorSeconds: Type.Optional(Int(0, WEEK, 'How long past freshness the last good key set is served while the IdP is unreachable.', JWKS_DEFAULTS.staleIfErrorSeconds)),
  unknownKidCooldownSeconds: Type.Optional(Int(0, 3600, 'Minimum seconds between unknown-kid refreshes per JWKS URL.', JWKS_DEFAULTS.unknownKidCooldownSeconds)),
  unknownKidRefreshesPerMinute: Type.Optional(Int(0, 600, 'Maximum unknown-kid refreshes per minute per JWKS URL for tokens, and as many again for back-channel logout tokens.', JWKS_DEFAULTS.unknownKidRefreshesPerMinute)),
  backoffInitialSeconds: Type.Optional(Int(1, 3600, 'First delay after a failed fetch.', JWKS_DEFAULTS.backoffInitialSeconds)),
  backoffMaxSeconds: Type.Optional(Int(1, DAY, 'Maximum delay between failed fetches, and the longest a provider\'s Retry-After (429, 503) holds a fetch back.', JWKS_DEFAULTS.backoffMaxSeconds)),
  rediscoverySeconds: Type.Optional(Int(0, WEEK, 'How often a discovered issuer\'s metadata is read again, so that a changed jwks_uri is followed (0: never).', JWKS_DEFAULTS.rediscoverySeconds))
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

const ClaimPathList = Type.Array(NonEmptyString('A claim path.', 'a non-empty claim path'), { minItems: 1, 'x-expected': 'a non-empty list of claim paths' })

/** A path; several paths; or { path, split } (split: space-separated strings become lists). */
const ClaimPath = (field: string) =>
  Type.Optional(Type.Union([
    NonEmptyString(`Claim path for the normalized "${field}" field.`, 'a non-empty claim path'),
    ClaimPathList,
    Type.Object({
      path: Type.Union([NonEmptyString('A claim path.', 'a non-empty claim path'), ClaimPathList], { 'x-expected': 'a claim path or a non-empty list of claim paths' }),
      split: Type.Optional(Type.Boolean({ description: 'Split string values on whitespace (space-separated scope strings).', 'x-expected': 'true or false' }))
    }, { additionalProperties: false, 'x-expected': 'a mapping with path and optionally split' })
  ], { description: `Claim path(s) for the normalized "${field}" field.`, 'x-expected': 'a claim path, a list of claim paths, or a mapping with path and split' }))

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
  { description: 'Claim name -> allowed value(s); a token must carry one of them (for a list claim such as amr, as one of its members). A boolean or number claim is compared by its JSON text ("true", "1"); an integer past 2^53 matches nothing.', 'x-expected': 'a mapping of claim names to a string or a non-empty list of strings' }
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
  clientSecretEnv: Type.Optional(EnvVarName('Name of an environment variable holding the client secret.')),
  clockToleranceSeconds: Type.Optional(Int(0, 300, 'Allowed clock skew for exp/nbf/iat/auth_time.', ISSUER_DEFAULTS.clockToleranceSeconds)),
  maxTokenAgeSeconds: Type.Optional(Int(1, 365 * DAY, 'Reject tokens issued (iat) longer ago than this.')),
  requiredClaims: Type.Optional(RequiredClaimsSchema),
  claimMapping: Type.Optional(ClaimMappingSchema),
  // Provider presets and their rules (src/config/presets.ts).
  preset: Type.Optional(Type.Union(PRESET_NAMES.map((name) => Type.Literal(name)), {
    description: 'Provider preset: fills in issuer rules, algorithms and claim mapping; every option set here still wins.',
    'x-expected': `one of ${PRESET_NAMES.join(', ')}`
  })),
  issuerAliases: Type.Optional(Type.Array(NonEmptyString('Another spelling of the issuer.', 'a non-empty issuer string'), {
    uniqueItems: true,
    description: 'Other spellings of the issuer accepted in iss, compared exactly (Google: accounts.google.com).',
    'x-expected': 'a list of issuer strings'
  })),
  discoveryUrl: Type.Optional(HttpsUrl('Metadata document to read instead of {issuer}/.well-known/openid-configuration; its issuer must still equal issuer (a {tenantid} template).')),
  allowedTenants: Type.Optional(Type.Array(NonEmptyString('A tenant.', 'a non-empty tenant id or domain'), {
    minItems: 1,
    uniqueItems: true,
    description: 'The normalized tenant (Entra tid, Google hd) must be one of these.',
    'x-expected': 'a non-empty list of tenant ids or domains'
  })),
  userKeyClaims: Type.Optional(Type.Array(NonEmptyString('A claim path.', 'a non-empty claim path'), {
    minItems: 1,
    maxItems: 4,
    description: 'Claims whose values, joined with ":", form the identity\'s userKey (default: sub).',
    'x-expected': 'a list of 1 to 4 claim paths'
  })),
  trustEmailVerified: Type.Optional(Type.Boolean({ description: 'Whether the provider\'s email_verified is believed (false: emailVerified is always false).', default: true, 'x-expected': 'true or false' })),
  checkAuthorizedParty: Type.Optional(Type.Boolean({ description: 'Whether a present azp must be one of the audiences or authorizedParties.', default: true, 'x-expected': 'true or false' })),
  // Encrypted ID tokens (JWE).
  decryptionKeys: Type.Optional(Type.Array(NonEmptyString('A key file.', 'a path to a PEM or JWK file'), {
    minItems: 1,
    uniqueItems: true,
    description: 'Files with the private keys that decrypt this issuer\'s encrypted ID tokens (PEM, JWK or JWK set); several for rotation.',
    'x-expected': 'a non-empty list of key file paths'
  })),
  keyManagementAlgorithms: Type.Optional(Type.Array(Type.String({ minLength: 1, 'x-expected': 'a non-empty algorithm name' }), {
    minItems: 1,
    uniqueItems: true,
    description: `JWE alg values accepted (default ${DEFAULT_KEY_MANAGEMENT_ALGORITHMS.join(', ')}; RSA1_5, dir and PBES2-* only when listed).`,
    'x-expected': 'a non-empty list of JWE algorithm names'
  })),
  contentEncryptionAlgorithms: Type.Optional(Type.Array(Type.String({ minLength: 1, 'x-expected': 'a non-empty algorithm name' }), {
    minItems: 1,
    uniqueItems: true,
    description: `JWE enc values accepted (default ${CONTENT_ENCRYPTION_ALGORITHMS.join(', ')}).`,
    'x-expected': 'a non-empty list of JWE content encryption algorithm names'
  })),
  allowCompressedTokens: Type.Optional(Type.Boolean({ description: 'Accept compressed (zip: DEF) encrypted tokens, inflated to at most server.maxTokenBytes.', default: DECRYPTION_DEFAULTS.allowCompressedTokens, 'x-expected': 'true or false' })),
  maxPbes2Count: Type.Optional(Int(1000, 1000000, 'Highest PBES2 iteration count (p2c) accepted.', DECRYPTION_DEFAULTS.maxPbes2Count)),
  requireEncryption: Type.Optional(Type.Boolean({ description: 'Refuse this issuer\'s unencrypted ID tokens (token_not_encrypted): for clients that agreed on encryption with the provider (OpenID Connect Core §3.1.3.7 step 1). Logout tokens are not concerned.', default: DECRYPTION_DEFAULTS.requireEncryption, 'x-expected': 'true or false' }))
}, { additionalProperties: false, description: 'A trusted OpenID Provider.', 'x-expected': 'a mapping of issuer options' })

export const TokenCacheSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Cache verified tokens (keyed by a hash of the token, never the token).', default: TOKEN_CACHE_DEFAULTS.enabled, 'x-expected': 'true or false' })),
  maxEntries: Type.Optional(Int(1, 10000000, 'Maximum number of cached verified tokens; also sizes the admission filter that caches a token on its second verification (about 10 bits per entry).', TOKEN_CACHE_DEFAULTS.maxEntries)),
  maxBytes: Type.Optional(Int(1048576, 17179869184, 'Bound on the estimated memory of the cache, in bytes.', TOKEN_CACHE_DEFAULTS.maxBytes)),
  maxTtlSeconds: Type.Optional(Int(1, 86400, 'An entry lives no longer than the token\'s exp nor this.', TOKEN_CACHE_DEFAULTS.maxTtlSeconds))
}, { additionalProperties: false, description: 'The verified-token cache.', 'x-expected': 'a mapping of token cache options' })

export const MetricsSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Serve GET /metrics in Prometheus text format.', default: METRICS_DEFAULTS.enabled, 'x-expected': 'true or false' }))
}, { additionalProperties: false, description: 'Prometheus metrics.', 'x-expected': 'a mapping of metrics options' })

export const CallerKeySchema = Type.Object({
  id: Type.String({
    pattern: ISSUER_ID_PATTERN,
    description: 'The calling service\'s name in logs, metrics and the rate limit; unique.',
    'x-expected': 'an id of 1 to 64 characters: lowercase letters, digits, "_" and "-", starting with a letter or digit'
  }),
  sha256: Type.Optional(Type.String({
    pattern: '^[0-9A-Fa-f]{64}$',
    description: 'SHA-256 of the API key in hex (printf %s "$KEY" | sha256sum). Never the key itself. Exclusive with sha256Env.',
    'x-expected': 'the SHA-256 of the key as 64 hex digits (printf %s "$KEY" | sha256sum), never the key itself',
    // A key pasted here by mistake must not end up in an error message.
    'x-sensitive': true
  })),
  sha256Env: Type.Optional(EnvVarName('Name of an environment variable holding the SHA-256 of the key in hex.')),
  rateLimit: Type.Optional(Type.Object({
    max: Type.Optional(Int(1, 1000000000, 'Requests allowed to this caller per window (default: rateLimit.max, which must then be set).')),
    windowSeconds: Type.Optional(Int(1, DAY, 'Length of this caller\'s window in seconds (default: rateLimit.windowSeconds).'))
  }, { additionalProperties: false, description: 'This caller\'s rate limit.', 'x-expected': 'a mapping with max and/or windowSeconds' })),
  revoke: Type.Optional(Type.Boolean({ description: 'Whether this caller may revoke tokens (POST /revocations).', default: false, 'x-expected': 'true or false' }))
}, { additionalProperties: false, description: 'A calling service and the hash of its API key.', 'x-expected': 'a mapping with id and sha256 (or sha256Env)' })

export const CallersSchema = Type.Object({
  keys: Type.Array(CallerKeySchema, {
    minItems: 1,
    description: 'The calling services. With at least one, every route but /healthz, /readyz and /backchannel-logout needs an X-Api-Key header.',
    'x-expected': 'a non-empty list of caller keys'
  }),
  protectMetrics: Type.Optional(Type.Boolean({ description: 'Whether /metrics on the main port needs a key too (it never does on server.opsPort).', default: CALLERS_DEFAULTS.protectMetrics, 'x-expected': 'true or false' })),
  maxFailuresPerMinute: Type.Optional(Int(0, 100000, 'Failed key checks allowed per client address in a minute; past them the address is refused (429) until the minute ends (0: no bound).', CALLERS_DEFAULTS.maxFailuresPerMinute))
}, { additionalProperties: false, description: 'Caller authentication by API key (off when absent).', 'x-expected': 'a mapping with keys' })

export const LoadSheddingSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Shed load with 503 overloaded when a threshold is passed.', default: LOAD_SHEDDING_DEFAULTS.enabled, 'x-expected': 'true or false' })),
  maxEventLoopDelayMs: Type.Optional(Int(0, 60000, 'Event loop delay above which requests are shed (0: off).', LOAD_SHEDDING_DEFAULTS.maxEventLoopDelayMs)),
  maxEventLoopUtilization: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Event loop utilization (0..1) above which requests are shed (0: off).', default: LOAD_SHEDDING_DEFAULTS.maxEventLoopUtilization, 'x-expected': 'a number from 0 to 1' })),
  maxHeapUsedBytes: Type.Optional(Int(0, 1099511627776, 'Heap used above which requests are shed (0: off).', LOAD_SHEDDING_DEFAULTS.maxHeapUsedBytes)),
  maxRssBytes: Type.Optional(Int(0, 1099511627776, 'Resident memory above which requests are shed (0: off).', LOAD_SHEDDING_DEFAULTS.maxRssBytes)),
  sampleIntervalMs: Type.Optional(Int(10, 60000, 'How often the thresholds are measured, in milliseconds.', LOAD_SHEDDING_DEFAULTS.sampleIntervalMs)),
  retryAfterSeconds: Type.Optional(Int(1, 3600, 'Retry-After of a shed request.', LOAD_SHEDDING_DEFAULTS.retryAfterSeconds))
}, { additionalProperties: false, description: 'Load shedding (@fastify/under-pressure).', 'x-expected': 'a mapping of load shedding options' })

// ---------------------------------------------------------------------------------------------------------
// Proxy integration: forward-auth (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz) and batch
// ---------------------------------------------------------------------------------------------------------

export const FORWARD_AUTH_DEFAULTS = Object.freeze({
  headerPrefix: 'x-auth-',
  identityHeader: false,
  stripToken: false,
  // Fail closed: a proxy that cannot tell "retry" from "deny" denies, and nginx turns anything but 401/403 into 500.
  keysUnavailableStatus: 401 as 401 | 403 | 503
})

/** Identity header names after forwardAuth.headerPrefix, by field (forwardAuth.headerNames replaces one whole). */
export const IDENTITY_HEADER_NAMES: Readonly<Record<IdentityHeaderField, string>> = Object.freeze({
  subject: 'subject',
  userKey: 'user-key',
  issuer: 'issuer',
  issuerId: 'issuer-id',
  email: 'email',
  emailVerified: 'email-verified',
  name: 'name',
  groups: 'groups',
  groupsOverage: 'groups-overage',
  roles: 'roles',
  tenant: 'tenant',
  identity: 'identity'
})

export const BATCH_DEFAULTS: Readonly<BatchConfig> = Object.freeze({
  maxTokens: 100,
  // 100 ID tokens of a few KiB each, with room for JSON overhead.
  maxBodyBytes: 1048576
})

const HEADER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$'

const HeaderName = (description: string) =>
  Type.String({ pattern: HEADER_NAME_PATTERN, description, 'x-expected': 'a header name of 1 to 64 letters, digits and "-"' })

// Not empty: an empty list would be no requirement at all, as if it were left out (a template rendering `groups: []`).
const RequirementList = (description: string, expected: string) =>
  Type.Optional(Type.Array(NonEmptyString(description, `a non-empty ${expected}`), {
    minItems: 1,
    uniqueItems: true,
    description,
    'x-expected': `a non-empty list of ${expected}s`
  }))

export const RequirementsSchema = Type.Object({
  groups: RequirementList('The identity must have one of these groups.', 'group name'),
  roles: RequirementList('The identity must have one of these roles.', 'role name'),
  audiences: RequirementList('The token\'s aud must contain one of these configured audiences.', 'configured audience'),
  issuers: RequirementList('The token must come from one of these configured issuer ids.', 'configured issuer id')
}, { additionalProperties: false, description: 'Requirements: any one value of a list, and every list.', 'x-expected': 'a mapping with groups, roles, audiences and/or issuers' })

export const ForwardAuthRuleSchema = Type.Object({
  pathPrefix: Type.Optional(Type.String({
    pattern: '^/[^\\s?#]{0,1023}$',
    description: 'Applies when the original path starts with this (plain string prefix, case-insensitive, also after decoding and dot-segment removal).',
    'x-expected': 'a path starting with "/", without spaces, "?" or "#"'
  })),
  methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]{1,20}$', 'x-expected': 'an upper-case HTTP method' }), {
    minItems: 1,
    uniqueItems: true,
    description: 'Applies to these original methods only.',
    'x-expected': 'a non-empty list of upper-case HTTP methods'
  })),
  hosts: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9.-]{1,253}$', 'x-expected': 'a host name without port' }), {
    minItems: 1,
    uniqueItems: true,
    description: 'Applies to these original hosts only (compared without port, case-insensitively).',
    'x-expected': 'a non-empty list of host names'
  })),
  require: RequirementsSchema
}, { additionalProperties: false, description: 'A per-route requirement.', 'x-expected': 'a mapping with pathPrefix, methods and/or hosts, and require' })

export const IdentityHeaderNamesSchema = Type.Object(
  Object.fromEntries(Object.keys(IDENTITY_HEADER_NAMES).map((field) =>
    [field, Type.Optional(HeaderName(`Full name of the "${field}" identity header.`))])),
  { additionalProperties: false, description: 'Identity field -> full header name, replacing prefix + default name.', 'x-expected': 'a mapping of identity fields to header names' }
)

export const ForwardAuthSchema = Type.Object({
  tokenCookie: Type.Optional(Type.String({
    pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]{1,128}$',
    description: 'A cookie that may carry the ID token.',
    'x-expected': 'a cookie name'
  })),
  tokenHeader: Type.Optional(HeaderName('A request header that may carry the raw ID token.')),
  headerPrefix: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9][A-Za-z0-9-]{0,47}$',
    description: 'Prefix of the identity header names.',
    default: FORWARD_AUTH_DEFAULTS.headerPrefix,
    'x-expected': 'a header name prefix of letters, digits and "-"'
  })),
  headerNames: Type.Optional(IdentityHeaderNamesSchema),
  identityHeader: Type.Optional(Type.Boolean({ description: 'Also set the normalized identity (without claims) as base64url JSON.', default: FORWARD_AUTH_DEFAULTS.identityHeader, 'x-expected': 'true or false' })),
  stripToken: Type.Optional(Type.Boolean({ description: 'Name the header that carried the token in x-envoy-auth-headers-to-remove.', default: FORWARD_AUTH_DEFAULTS.stripToken, 'x-expected': 'true or false' })),
  keysUnavailableStatus: Type.Optional(Type.Union([Type.Literal(401), Type.Literal(403), Type.Literal(503)], {
    description: 'Status when the token can be neither accepted nor rejected (keys unavailable, overload).',
    default: FORWARD_AUTH_DEFAULTS.keysUnavailableStatus,
    'x-expected': 'one of 401, 403, 503'
  })),
  require: Type.Optional(RequirementsSchema),
  rules: Type.Optional(Type.Array(ForwardAuthRuleSchema, { description: 'Per-route requirements, matched on the original request.', 'x-expected': 'a list of rules' }))
}, { additionalProperties: false, description: 'The forward-auth endpoint for proxies.', 'x-expected': 'a mapping of forward-auth options' })

export const RedisRevocationSchema = Type.Object({
  url: Type.Optional(Type.String({
    pattern: '^rediss?://',
    description: 'The Redis server: redis://[user:password@]host:port/db, or rediss:// for TLS. Exclusive with urlEnv.',
    'x-expected': 'a redis:// or rediss:// URL',
    // It may carry a password.
    'x-sensitive': true
  })),
  urlEnv: Type.Optional(EnvVarName('Name of an environment variable holding the Redis URL (keeps a password out of the file).')),
  keyPrefix: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9:_.-]{1,64}$',
    description: 'Prefix of every key and of the pub/sub channel; services sharing one Redis need their own.',
    default: REDIS_REVOCATION_DEFAULTS.keyPrefix,
    'x-expected': 'up to 64 letters, digits and ":_.-"'
  })),
  maxStalenessSeconds: Type.Optional(Int(1, 3600, 'How long verifications go on after the revocation list was last known current from Redis (revocations made meanwhile may be missed); then they fail closed with 503 revocations_unavailable. commandTimeoutMs must fit in it less one PING interval (a third of it, 250 ms to 5 s; checked at load): a Redis that stops answering is noticed when a PING times out.', REDIS_REVOCATION_DEFAULTS.maxStalenessSeconds)),
  commandTimeoutMs: Type.Optional(Int(50, 60000, 'Timeout of one Redis command, in milliseconds.', REDIS_REVOCATION_DEFAULTS.commandTimeoutMs))
}, { additionalProperties: false, description: 'The Redis revocation store.', 'x-expected': 'a mapping with url or urlEnv' })

export const RevocationSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Refuse revoked tokens; serve POST /backchannel-logout and POST /revocations.', default: REVOCATION_DEFAULTS.enabled, 'x-expected': 'true or false' })),
  store: Type.Optional(Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
    description: 'memory: this process (and its WORKERS) only, forgotten on restart; redis: shared by every replica.',
    default: REVOCATION_DEFAULTS.store,
    'x-expected': 'memory or redis'
  })),
  maxEntries: Type.Optional(Int(1, 10000000, 'Most revocations held; at the bound new ones are refused (503), never old ones forgotten.', REVOCATION_DEFAULTS.maxEntries)),
  retentionSeconds: Type.Optional(Int(60, 31536000, 'How long a revocation is kept: longer than the longest ID token lifetime of any issuer.', REVOCATION_DEFAULTS.retentionSeconds)),
  maxSessionsPerUser: Type.Optional(Int(1, 100000, 'Sessions of one user revoked one by one (sid); a further logout of that user revokes all the user\'s tokens issued until then (sub), so that one user cannot fill the list. At most a tenth of maxEntries, less one, and 1 at least (the default, 20, is lowered to that for smaller lists).', REVOCATION_DEFAULTS.maxSessionsPerUser)),
  logoutTokenMaxAgeSeconds: Type.Optional(Int(10, 86400, 'Logout tokens issued longer ago than this (iat) are refused.', REVOCATION_DEFAULTS.logoutTokenMaxAgeSeconds)),
  logoutRateLimit: Type.Optional(Type.Object({
    max: Type.Optional(Int(1, 1000000000, 'Requests to POST /backchannel-logout allowed per client address in a window.', REVOCATION_DEFAULTS.logoutRateLimit.max)),
    windowSeconds: Type.Optional(Int(1, 86400, 'Length of the window in seconds.', REVOCATION_DEFAULTS.logoutRateLimit.windowSeconds))
  }, { additionalProperties: false, description: 'The rate limit of the open POST /backchannel-logout, per client address (rateLimit.enabled: false turns it off with the others).', 'x-expected': 'a mapping with max and/or windowSeconds' })),
  redis: Type.Optional(RedisRevocationSchema)
}, { additionalProperties: false, description: 'Token revocation: back-channel logout and the revocation API.', 'x-expected': 'a mapping of revocation options' })

export const BatchSchema = Type.Object({
  maxTokens: Type.Optional(Int(1, 10000, 'Most tokens in one POST /verify/batch.', BATCH_DEFAULTS.maxTokens)),
  maxBodyBytes: Type.Optional(Int(1024, 67108864, 'Body limit of POST /verify/batch in bytes.', BATCH_DEFAULTS.maxBodyBytes))
}, { additionalProperties: false, description: 'POST /verify/batch.', 'x-expected': 'a mapping of batch options' })

export const ConfigFileSchema = Type.Object({
  server: Type.Optional(ServerSchema),
  rateLimit: Type.Optional(RateLimitSchema),
  jwks: Type.Optional(JwksCacheSchema),
  fetch: Type.Optional(FetchSchema),
  tokenCache: Type.Optional(TokenCacheSchema),
  metrics: Type.Optional(MetricsSchema),
  callers: Type.Optional(CallersSchema),
  loadShedding: Type.Optional(LoadSheddingSchema),
  forwardAuth: Type.Optional(ForwardAuthSchema),
  batch: Type.Optional(BatchSchema),
  revocation: Type.Optional(RevocationSchema),
  issuers: Type.Array(IssuerSchema, {
    minItems: 1,
    description: 'The trusted issuers (at least one).',
    'x-expected': 'a non-empty list of issuers'
  })
}, { additionalProperties: false, description: 'oidc-verifier configuration file.', 'x-expected': 'a mapping of configuration sections' })

export type ConfigFile = Static<typeof ConfigFileSchema>
export type IssuerFile = Static<typeof IssuerSchema>
