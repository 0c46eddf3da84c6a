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
  /** discoveryUrl: read this metadata document instead of the issuer's own (a {tenantid} template issuer). */
  | { kind: 'discovery', discoveryUrl?: string }
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
  /** Normalized field → claim path(s) (see src/core/claim-path.ts); overrides the defaults. */
  claimMapping: Partial<Record<MappableField, ClaimMappingValue>>
  /** The provider preset the defaults came from (src/config/presets.ts). */
  preset?: PresetName
  /** Other spellings of the issuer accepted in iss (Google: "accounts.google.com"). */
  issuerAliases?: string[]
  /** The normalized tenant (Entra tid, Google hd) must be one of these. */
  allowedTenants?: string[]
  /** Claim paths whose values, joined with ":", are the identity's userKey; default ["sub"]. */
  userKeyClaims?: string[]
  /** False: emailVerified is never reported true for this issuer (Entra ID). Default true. */
  trustEmailVerified?: boolean
  /** False: a present azp need not be one of our clients (GCP service identity). Default true. */
  checkAuthorizedParty?: boolean
  /** Encrypted ID tokens (JWE): keys and algorithm policy; undefined when this issuer's tokens are not encrypted. */
  decryption?: DecryptionConfig
}

/** The provider presets (src/config/presets.ts). */
export const PRESET_NAMES = ['google', 'entra', 'auth0', 'okta', 'cognito', 'keycloak', 'gcp-identity'] as const
export type PresetName = typeof PRESET_NAMES[number]

/**
 * Where a normalized field comes from: a claim path; several paths (list fields merge them, the others take
 * the first present); or either with split, which turns space-separated strings into lists.
 */
export type ClaimMappingValue = string | string[] | { path: string | string[], split?: boolean }

/** JWE key management algorithms accepted unless configured otherwise (asymmetric, as OIDC uses them). */
export const DEFAULT_KEY_MANAGEMENT_ALGORITHMS = [
  'RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'
] as const
/**
 * Accepted only when listed explicitly: RSA1_5 (PKCS#1 v1.5, the padding-oracle classic; decrypted without an
 * oracle by src/core/jwe-rsa1-5.ts), symmetric keys, and PBES2's per-token key derivation cost.
 */
export const OPT_IN_KEY_MANAGEMENT_ALGORITHMS = ['RSA1_5', 'dir', 'PBES2-HS256+A128KW', 'PBES2-HS384+A192KW', 'PBES2-HS512+A256KW'] as const
export const KEY_MANAGEMENT_ALGORITHMS = [...DEFAULT_KEY_MANAGEMENT_ALGORITHMS, ...OPT_IN_KEY_MANAGEMENT_ALGORITHMS] as const
export type KeyManagementAlgorithm = typeof KEY_MANAGEMENT_ALGORITHMS[number]
export const CONTENT_ENCRYPTION_ALGORITHMS = ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512'] as const
export type ContentEncryptionAlgorithm = typeof CONTENT_ENCRYPTION_ALGORITHMS[number]

/** A private (or, for dir and PBES2, secret) key that decrypts ID tokens. */
export interface DecryptionKey {
  /** The file it was read from, for logs. */
  file: string
  kid: string | undefined
  /** The JWK's alg, when the file pins one. */
  alg: string | undefined
  key: import('node:crypto').KeyObject
  /** Identifies the key without comparing KeyObjects (KeyObject.equals across key types upsets Node's crypto). */
  fingerprint: string
}

export interface DecryptionConfig {
  keys: DecryptionKey[]
  keyManagementAlgorithms: KeyManagementAlgorithm[]
  contentEncryptionAlgorithms: ContentEncryptionAlgorithm[]
  /** Highest PBES2 iteration count (p2c) accepted. */
  maxPbes2Count: number
  /** Largest inflated plaintext of a compressed (zip) token in bytes; 0 refuses compressed tokens. */
  maxDecompressedBytes: number
  /** Unencrypted ID tokens of this issuer are refused (token_not_encrypted); logout tokens are not concerned. */
  required: boolean
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
  /** A discovered issuer's metadata is read again this often: a changed jwks_uri is followed. */
  rediscoverySeconds: number
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
  /**
   * Leading bits of a client's IPv6 address that name one client for the per-address bounds (failed caller key
   * checks, the per-address rate limits): 64 by default, since a host usually holds a /64; 128 where each caller
   * has its own address within a shared /64 (Kubernetes pods on IPv6, Docker's IPv6 bridge).
   */
  clientIpv6PrefixLength: number
  /** Idle socket timeout (ms): a connection that sends nothing for this long is closed. */
  connectionTimeoutMs: number
  /** Whole-request timeout (ms), from the first byte to the last of the request. */
  requestTimeoutMs: number
  /** Time (ms) allowed to receive the request headers (slowloris); at most requestTimeoutMs. */
  headersTimeoutMs: number
  /** How long (ms) an idle keep-alive connection is kept open. */
  keepAliveTimeoutMs: number
  /** Most open connections on the main listener (default: three quarters of the open-file limit; src/http/connection-limits.ts). */
  maxConnections?: number
  /** Where signature checks run: libuv's thread pool, batched on the event loop, or `auto` (src/core/signature-checks.ts). */
  signatureChecks: 'auto' | 'thread-pool' | 'event-loop'
  /**
   * When /readyz is 200 as far as issuers go (src/http/routes/health.ts): `any-issuer`, once every issuer has been
   * tried (keys, or a failed fetch) and one has usable keys; `every-issuer`, only while every issuer has.
   */
  readiness: 'any-issuer' | 'every-issuer'
  /** Seconds between looks at the certificate files of tls and opsTls (src/http/tls-watch.ts); 0: only on reload. */
  certificateCheckSeconds: number
  /** When set, /healthz, /readyz and /metrics are served on this port only (see src/ops-app.ts). */
  opsPort?: number
  /** Address of the ops listener (default: host). */
  opsHost?: string
  /** TLS for the main listener; with clientCaFile, mutual TLS. */
  tls?: TlsConfig
  /** TLS for the ops listener (opsPort), without client certificates. */
  opsTls?: Omit<TlsConfig, 'clientCaFile'>
}

export interface TlsConfig {
  /** PEM certificate (chain) of the listener. */
  certFile: string
  /** PEM private key of the listener (unencrypted). */
  keyFile: string
  /** PEM CA bundle: when set, only clients with a certificate that chains to it can connect. */
  clientCaFile?: string
}

/** One calling service: its id (for logs, metrics and the rate limit) and the SHA-256 of its API key. */
export interface CallerKeyConfig {
  id: string
  /** SHA-256 of the API key, 64 lowercase hex digits. The key itself is never configured. */
  sha256: string
  /**
   * This caller's own limit, as configured: what it leaves out is rateLimit's (max, windowSeconds), filled in
   * per request by the routes (src/http/route-rate-limit.ts) from the rateLimit the service started with.
   */
  rateLimit?: { max?: number, windowSeconds?: number }
  /** May revoke tokens (POST /revocations); absent means no. */
  revoke?: true
}

export interface CallersConfig {
  /** Empty: caller authentication is off (the localhost sidecar). */
  keys: CallerKeyConfig[]
  /** With keys configured, /metrics on the main port needs a key too (it is open on the ops port). */
  protectMetrics: boolean
  /** Failed key checks allowed per client address in a minute (0: no bound). */
  maxFailuresPerMinute: number
}

export interface MetricsConfig {
  /** Serve GET /metrics (Prometheus text format). */
  enabled: boolean
}

/** @fastify/under-pressure thresholds; 0 turns a check off. */
export interface LoadSheddingConfig {
  enabled: boolean
  maxEventLoopDelayMs: number
  /** 0..1, measured per sample interval. */
  maxEventLoopUtilization: number
  maxHeapUsedBytes: number
  maxRssBytes: number
  sampleIntervalMs: number
  retryAfterSeconds: number
}

export interface RateLimitConfig {
  enabled: boolean
  /**
   * Requests allowed per caller (client address) per window on the verify routes; undefined: not limited there,
   * except callers with their own limit (callers.keys[].rateLimit).
   */
  max?: number
  windowSeconds: number
  /** x-ratelimit-* headers on answers within the limit too (a 429 always has them, and Retry-After). */
  headers: boolean
}

/** The identity headers forward-auth sets on success, by normalized field. */
export const IDENTITY_HEADER_FIELDS = [
  'subject', 'userKey', 'issuer', 'issuerId', 'email', 'emailVerified', 'name', 'groups', 'groupsOverage', 'roles', 'tenant', 'identity'
] as const
export type IdentityHeaderField = typeof IDENTITY_HEADER_FIELDS[number]

/** What a forward-auth request must satisfy: within a list any one value, across lists all of them. */
export interface RequirementsConfig {
  groups: string[]
  roles: string[]
  /** Configured audiences; the token's aud must contain one. */
  audiences: string[]
  /** Configured issuer ids. */
  issuers: string[]
}

/** A per-route requirement, applied when the original request matches every condition given. */
export interface ForwardAuthRuleConfig {
  /** Plain, case-insensitive string prefix of the original path. */
  pathPrefix?: string
  /** Upper-case methods; empty: any. */
  methods: string[]
  /** Lower-case host names without port; empty: any. */
  hosts: string[]
  require: RequirementsConfig
}

export interface ForwardAuthConfig {
  /** A cookie that may carry the ID token (besides Authorization: Bearer). */
  tokenCookie?: string
  /** A request header (lower case) that may carry the raw ID token. */
  tokenHeader?: string
  /** Resolved, lower-case identity header names (prefix + default name, or the configured name). */
  headers: Record<IdentityHeaderField, string>
  /** Whether the identity header (base64url JSON of the normalized identity, without claims) is set. */
  identityHeader: boolean
  /** Whether a success names the header that carried the token in x-envoy-auth-headers-to-remove. */
  stripToken: boolean
  /** The answer when the verifier cannot decide (keys unavailable, overload, a bug). */
  keysUnavailableStatus: 401 | 403 | 503
  /** Applied to every forward-auth request. */
  require: RequirementsConfig
  rules: ForwardAuthRuleConfig[]
}

export interface BatchConfig {
  /** Most tokens in one POST /verify/batch. */
  maxTokens: number
  /** Body limit of POST /verify/batch in bytes (server.bodyLimit is for one token). */
  maxBodyBytes: number
}

/** Token revocation (src/revocation/): what is refused, where revocations are kept. */
export interface RevocationConfig {
  enabled: boolean
  store: 'memory' | 'redis'
  /** Most revocations held by each process. */
  maxEntries: number
  /** How long a revocation is kept, from its time (logout token iat, or now). */
  retentionSeconds: number
  /** Revoked sessions (sid) of one user before a logout of that user revokes the user's tokens (sub). */
  maxSessionsPerUser: number
  /** Logout tokens older than this (iat) are refused. */
  logoutTokenMaxAgeSeconds: number
  /** POST /backchannel-logout per client address (the route has no caller key to limit by). */
  logoutRateLimit: { max: number, windowSeconds: number }
  /** Set when store is redis. */
  redis?: RedisRevocationConfig
}

export interface RedisRevocationConfig {
  /** Resolved (urlEnv read); may carry a password: never log it whole. */
  url: string
  keyPrefix: string
  maxStalenessSeconds: number
  commandTimeoutMs: number
}

export interface Config {
  server: ServerConfig
  rateLimit: RateLimitConfig
  jwks: JwksCacheConfig
  fetch: FetchConfig
  tokenCache: TokenCacheConfig
  metrics: MetricsConfig
  callers: CallersConfig
  loadShedding: LoadSheddingConfig
  forwardAuth: ForwardAuthConfig
  batch: BatchConfig
  revocation: RevocationConfig
  issuers: IssuerConfig[]
  /** Where the configuration came from, for messages ("/etc/oidc-verifier.yaml", "environment"). */
  source: string
  /** Settings written but without effect given the rest (src/config/inert-settings.ts); not settings themselves. */
  warnings: ConfigWarning[]
}

/** A setting the configuration accepts but that does nothing: logged at start and reload, printed by check-config. */
export interface ConfigWarning {
  /** The setting as problems name it: `issuers[0].clientSecret`. */
  setting: string
  /** What is ignored, why, and what to do. */
  message: string
}
