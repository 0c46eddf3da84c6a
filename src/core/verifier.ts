/**
 * The verification core: takes a token and options, returns a verified, normalized identity or throws a
 * VerificationError. No HTTP here; the Fastify routes, the CLI and the tests all use this module.
 *
 * Order of work (DESIGN.md, "Data flow of one verification"): decrypt an encrypted token (src/core/jwe.ts)
 * → strict parse → select the issuer by the unverified iss (exact match, else a {tenantid} template; no I/O for
 * an unknown one) → algorithm allowlist and header rules → keys (cache; an unknown kid may trigger a
 * rate-limited refresh) → signature → key issuer → ID-token rules → normalization → tenant allow-list →
 * revocations. A cache hit skips from the parse to the signature, never the rules nor the revocations.
 *
 * Back-channel logout tokens go through the same steps up to the signature and key issuer, then the
 * logout-token rules (src/core/logout-token-rules.ts) instead of the ID-token ones: verifyLogoutToken().
 */
import { availableParallelism } from 'node:os'
import { accessTokenClaimsOf } from '../config/presets.js'
import type { Algorithm, AsymmetricAlgorithm, Config, FetchConfig, IssuerConfig } from '../config/types.js'
import { isVerificationError, VerificationError, type ErrorCode } from '../errors.js'
import { JwksCache, type JwksFetchReason, type UnknownKidRequester } from '../jwks/cache.js'
import type { fetchJson } from '../net/fetch-json.js'
import { isCompactJwe, parseCompactJws, type ParsedJws } from './compact-jws.js'
import type { VerifiedIdentity } from './identity.js'
import { checkIdTokenClaims, checkTokenType, isOtherClient, type IssuerRules, type RequestChecks } from './id-token-rules.js'
import { checkLogoutTokenClaims, checkLogoutTokenType, type LogoutClaims } from './logout-token-rules.js'
import type { RevocationList } from '../revocation/revocation-list.js'
import { carryDiscovery, createKeyProvider, discoveryOf, type KeyProvider, type KeyStatus } from './issuer-keys.js'
import { checkKeyIssuer, checkTenantIssuer, matchesTemplate, parseIssuerTemplate, type IssuerTemplate } from './issuer-template.js'
import { policyAllows, TokenDecryptor, type Decrypted } from './jwe.js'
import { KeySet, type UsableKey } from './key-set.js'
import { silentLogger, type Logger } from './logger.js'
import { VerifiedTokenCache, type CachedVerification } from './verified-token-cache.js'
import { compileClaimMapping, mappingPaths, normalizeIdentity, tenantOf, type CompiledMapping } from './normalize.js'
import { nearIssuer, type KnownIssuerUrl } from './near-issuer.js'
import { isAsymmetricAlgorithm, isHmacAlgorithm, prepareAsymmetric, registeredAlgorithm, verifyHmac } from './signature.js'
import { createSignatureChecks, resolveSignatureChecks, type SignatureChecks } from './signature-checks.js'

export type { RequestChecks } from './id-token-rules.js'

/** Without a kid, at most this many keys are tried: a token must not make us do unbounded work. */
export const MAX_KEYS_TRIED_WITHOUT_KID = 5

/** A request that asks for no check of its own (nonce, maxAge, audience, …). */
const NO_REQUEST_CHECKS: RequestChecks = Object.freeze({})

/** Rejected keys of a JWKS named in its warning (the count says how many there were). */
export const MAX_REJECTED_KEYS_LOGGED = 20

/** Observations for metrics. Labels are configured issuer ids and error codes, never token contents. */
export interface VerifierEvents {
  /** One per verify() call; issuer is null when the token matched no configured issuer. */
  verification?(e: { issuer: string | null, result: ErrorCode | 'ok', durationSeconds: number }): void
  jwksFetch?(e: { issuer: string, outcome: 'success' | 'error', reason: JwksFetchReason, durationSeconds: number }): void
  staleKeysServed?(e: { issuer: string }): void
  /** One per verification that reached the verified-token cache: a hit skipped the signature check. */
  tokenCache?(e: { issuer: string, hit: boolean }): void
}

export interface VerifierOptions {
  events?: VerifierEvents
  logger?: Logger
  /** Current time in milliseconds; injectable for tests. */
  now?: () => number
  /** Outbound fetcher; injectable for tests. Production code has one path (src/net/fetch-json.ts). */
  fetcher?: typeof fetchJson
  /**
   * The revocations to apply (src/revocation/revocation-list.ts); none are applied without it. Owned by the
   * app, not the Verifier: a configuration reload replaces the Verifier and keeps the revocations.
   */
  revocations?: RevocationList
  /**
   * Cores this process has to itself, for `server.signatureChecks: auto` (default: every core it may run
   * on; the app divides them among WORKERS).
   */
  coresPerProcess?: number
}

interface IssuerRuntime {
  config: IssuerConfig
  rules: IssuerRules
  allowedAlgorithms: ReadonlySet<string>
  hmacSecret: Buffer | undefined
  /** The token cache's key source of tokens signed with hmacSecret ("secret:<id>"), made once. */
  secretSource: string
  mapping: CompiledMapping
  keys: KeyProvider
  /** Set for a {tenantid} issuer: matched after the exact issuers, with the tid rules. */
  template: IssuerTemplate | undefined
  allowedTenants: ReadonlySet<string> | undefined
  /** The claim the tenant comes from, named in tenant_not_allowed. */
  tenantClaim: string | undefined
}

/** A logout token whose signature and rules have been verified: which issuer, and what it logs out. */
export interface VerifiedLogout extends LogoutClaims {
  /** The configured issuer id (the one the token's aud names, when several share its iss). */
  issuer: string
  /**
   * Every configured issuer whose tokens the logout covers: the sid and sub are the provider's, so issuers
   * that share the token's iss (and its keys) are logged out too.
   */
  issuers: string[]
}

/** The key that verified a signature, and the key source (JWKS URL, inline:<id>) it came from when chosen. */
interface KeyUsed {
  key: UsableKey
  keySource: string
}

/** A token whose signature (and key issuer) has been verified, before the rules of its kind. */
interface SignedToken {
  runtime: IssuerRuntime
  iss: string
  jws: ParsedJws
  alg: Algorithm
  curve: string | undefined
  keySource: string
  keyFingerprint: string
  /** Whether it came encrypted (a JWE this service decrypted). */
  encrypted: boolean
  /** The signed token's length: the token's, or for an encrypted one the plaintext's (inflated, when compressed). */
  innerLength: number
}

/**
 * What an unknown kid does for a logout token: whose refresh budget it spends (src/jwks/cache.ts), and the
 * checks its content must pass before it may spend any (a token the rules refuse anyway gets its 400 first: as
 * key_not_found, since nothing vouches for the content yet).
 */
interface UnknownKidPolicy {
  requester: UnknownKidRequester
  beforeRefresh: (jws: ParsedJws, runtime: IssuerRuntime) => void
}

export interface IssuerStatus extends KeyStatus {
  id: string
  issuer: string
}

export class Verifier {
  private readonly byIssuerUrl = new Map<string, IssuerRuntime>()
  /** Issuer URLs that several issuers share (disjoint audiences): the token's aud chooses. */
  private readonly sharedIssuerUrls = new Map<string, IssuerRuntime[]>()
  /** {tenantid} issuers, tried only when no exact issuer matches: the exact path stays one Map lookup. */
  private readonly templates: IssuerRuntime[] = []
  private readonly decryptor: TokenDecryptor
  private readonly byId = new Map<string, IssuerRuntime>()
  private readonly tokenCache: VerifiedTokenCache | undefined
  private readonly runtimes: IssuerRuntime[] = []
  private readonly cache: JwksCache<KeySet>
  private readonly maxTokenBytes: number
  private readonly fetchConfig: FetchConfig
  private readonly now: () => number
  private readonly logger: Logger
  private readonly events: VerifierEvents
  /** JWKS URL → the issuer id that labels its metrics (the first configured issuer using it). */
  private readonly issuerOfUrl = new Map<string, string>()
  private readonly signatures: SignatureChecks
  private readonly revocations: RevocationList | undefined
  /**
   * JWKS URL → the fingerprints of the keys it publishes now. A verification whose key has left them while its
   * signature was being checked is answered but not cached: its key no longer vouches for it.
   */
  private readonly currentKeys = new Map<string, ReadonlySet<string>>()

  constructor (config: Config, options: VerifierOptions = {}) {
    this.logger = options.logger ?? silentLogger
    this.now = options.now ?? Date.now
    this.maxTokenBytes = config.server.maxTokenBytes
    this.fetchConfig = config.fetch
    this.events = options.events ?? {}
    this.revocations = options.revocations
    this.signatures = createSignatureChecks(resolveSignatureChecks(config.server.signatureChecks, options.coresPerProcess ?? availableParallelism()))
    this.tokenCache = config.tokenCache.enabled ? new VerifiedTokenCache(config.tokenCache, options.now) : undefined
    const labelOf = (url: string): string => this.issuerOfUrl.get(url) ?? this.issuerForUnlabelledUrl(url)
    this.cache = new JwksCache<KeySet>({
      ...config.jwks,
      fetchOpts: config.fetch,
      fetcher: options.fetcher,
      now: this.now,
      logger: this.logger,
      onFetch: (e) => this.events.jwksFetch?.({ issuer: labelOf(e.url), outcome: e.outcome, reason: e.reason, durationSeconds: e.durationMs / 1000 }),
      onStale: (url) => this.events.staleKeysServed?.({ issuer: labelOf(url) }),
      issuerOf: labelOf,
      countKeys: (keySet) => keySet.keys.length,
      createKeySet: (jwks, url) => {
        const keySet = new KeySet(jwks)
        this.warnRejectedKeys(keySet, { issuer: labelOf(url), jwksUri: url })
        return keySet
      },
      onKeySetAccepted: (keySet, url) => {
        // A key that left the JWKS no longer vouches for the tokens it verified (a set the cache refused, with
        // no usable key after good ones, changes nothing: the keys before it stay in use).
        const fingerprints = keySet.fingerprints()
        this.currentKeys.set(url, fingerprints)
        // So does one that a token without a kid could no longer be verified with (too many keys fit its alg now).
        const dropped = this.tokenCache?.dropKeysNotIn(url, fingerprints, (alg) => !isHmacAlgorithm(alg) && keySet.candidates(alg, undefined).length > MAX_KEYS_TRIED_WITHOUT_KID) ?? 0
        if (dropped > 0) this.logger.info({ jwksUri: url, dropped }, 'dropped cached verifications of keys that left the JWKS')
      }
    })
    // Discovered issuers of the same issuer and metadata URL share one key provider (src/core/issuer-keys.ts).
    const discoveries = new Map<string, KeyProvider>()
    for (const issuer of config.issuers) {
      if (issuer.keys.kind === 'jwksUri' && !this.issuerOfUrl.has(issuer.keys.jwksUri)) this.issuerOfUrl.set(issuer.keys.jwksUri, issuer.id)
      const runtime: IssuerRuntime = {
        config: issuer,
        rules: {
          id: issuer.id,
          audiences: new Set(issuer.audiences),
          authorizedParties: new Set(issuer.authorizedParties),
          clockToleranceSeconds: issuer.clockToleranceSeconds,
          maxTokenAgeSeconds: issuer.maxTokenAgeSeconds,
          requiredClaims: new Map(Object.entries(issuer.requiredClaims).map(([k, v]) => [k, new Set(v)])),
          checkAuthorizedParty: issuer.checkAuthorizedParty ?? true,
          accessTokenClaims: accessTokenClaimsOf(issuer)
        },
        allowedAlgorithms: new Set(issuer.algorithms),
        hmacSecret: issuer.clientSecret === undefined ? undefined : Buffer.from(issuer.clientSecret, 'utf8'),
        secretSource: `secret:${issuer.id}`,
        mapping: compileClaimMapping(issuer.claimMapping, { userKeyClaims: issuer.userKeyClaims, trustEmailVerified: issuer.trustEmailVerified }),
        keys: createKeyProvider(issuer, this.cache, config.fetch, config.jwks, this.logger, options.fetcher, (url) => { this.forgetUnusedUrl(url) }, discoveries),
        template: parseIssuerTemplate(issuer.issuer),
        allowedTenants: issuer.allowedTenants === undefined ? undefined : new Set(issuer.allowedTenants),
        tenantClaim: issuer.claimMapping.tenant === undefined ? undefined : mappingPaths(issuer.claimMapping.tenant).paths[0]
      }
      // An inline key set is built once, here: its unusable keys are logged as a fetched one's are on each fetch.
      if (issuer.keys.kind === 'inline') {
        const inline = runtime.keys.freshKeySet()
        if (inline !== undefined) this.warnRejectedKeys(inline, { issuer: issuer.id, jwksUri: null })
      }
      if (runtime.template !== undefined) this.templates.push(runtime)
      else this.addIssuerUrl(issuer.issuer, runtime)
      for (const alias of issuer.issuerAliases ?? []) this.addIssuerUrl(alias, runtime)
      this.byId.set(issuer.id, runtime)
      this.runtimes.push(runtime)
    }
    this.decryptor = new TokenDecryptor(config.issuers, this.logger)
  }

  /** The warning about a key set's keys that will never verify (fetched: jwksUri is its URL; inline: null). */
  private warnRejectedKeys (keySet: KeySet, where: { issuer: string, jwksUri: string | null }): void {
    const { rejected } = keySet
    if (rejected.length === 0) return
    // Bounded: a JWKS of thousands of unusable keys must not make a log line of them on every fetch.
    this.logger.warn({ ...where, rejectedCount: rejected.length, rejected: rejected.slice(0, MAX_REJECTED_KEYS_LOGGED) },
      'JWKS contains keys that will never be used')
  }

  /** Where this Verifier runs its signature checks (server.signatureChecks, with `auto` resolved). */
  get signatureChecks (): SignatureChecks['mode'] {
    return this.signatures.mode
  }

  /**
   * Takes over from `previous`, the Verifier this one is to replace (a reload; call before start()): the key sets
   * its JWKS cache holds and the jwks_uri its discoveries found, so that a reload asks no provider for what it has
   * (nor fails because one is down right now), and the provider's waits (Retry-After), so that none is asked before
   * the time it gave. Keys and metadata read under a larger fetch.maxResponseBytes than this one's are not taken
   * (they are fetched again under the new limit); the waits are, whatever changed. Freshness is counted under this
   * Verifier's jwks settings; the verified-token cache is not taken over (the issuers' rules may have changed).
   */
  takeOver (previous: Verifier): void {
    // Read within this Verifier's response limit: they would pass its fetch rules as they are.
    const withinLimit = this.fetchConfig.maxResponseBytes >= previous.fetchConfig.maxResponseBytes
    this.cache.adopt(previous.cache.handOver(), { keys: withinLimit })
    // The discoveries' findings, from the same discovery (same issuer and metadata URL) of the previous Verifier.
    const discoveries = new Map<string, KeyProvider>()
    for (const r of previous.runtimes) {
      const key = discoveryOf(r.keys)
      if (key !== undefined && !discoveries.has(key)) discoveries.set(key, r.keys)
    }
    for (const r of this.runtimes) {
      const key = discoveryOf(r.keys)
      const from = key === undefined ? undefined : discoveries.get(key)
      if (from !== undefined) carryDiscovery(from, r.keys, withinLimit)
    }
  }

  /** How many key sets this Verifier took over from the one it replaced (takeOver) and uses, once started. */
  get keySetsTakenOver (): number {
    return this.cache.keySetsTakenOver
  }

  /** Starts discovery and key fetching for every issuer in the background; never throws. */
  start (): void {
    // Once each: issuers that share a discovery share its provider.
    for (const keys of new Set(this.runtimes.map((r) => r.keys))) keys.start()
  }

  close (): void {
    for (const keys of new Set(this.runtimes.map((r) => r.keys))) keys.close()
    this.cache.close()
    this.tokenCache?.clear()
  }

  status (): IssuerStatus[] {
    return this.runtimes.map((r) => ({ id: r.config.id, issuer: r.config.issuer, ...r.keys.status() }))
  }

  /** Until when the provider asked not to be asked for issuer `id`'s keys (Retry-After); 0 or a past time when it does not hold them back. */
  keysAskedToWaitUntil (id: string): number {
    return this.byId.get(id)?.keys.askedToWaitUntil() ?? 0
  }

  get ready (): boolean {
    return this.runtimes.every((r) => r.keys.status().ready)
  }

  /** The issuer ids, for labels: they come from configuration only. */
  get issuerIds (): string[] {
    return this.runtimes.map((r) => r.config.id)
  }

  /**
   * Whether `azp` names another client of the issuer than `clients` (src/core/id-token-rules.ts, isOtherClient);
   * an issuer this Verifier does not have (replaced by a reload since) counts as one, so requirements fail closed.
   */
  isOtherClient (issuerId: string, azp: string, clients: readonly string[]): boolean {
    const runtime = this.byId.get(issuerId)
    return runtime === undefined || isOtherClient(runtime.rules, azp, clients)
  }

  /** Whether the narrowing audience a caller asks for is configured for any issuer. */
  isConfiguredAudience (audience: string): boolean {
    return this.runtimes.some((r) => r.rules.audiences.has(audience))
  }

  async verify (token: string, request: RequestChecks = {}): Promise<VerifiedIdentity> {
    return await this.verifyNow(token, request)
  }

  /**
   * verify() without a promise when the verified-token cache answers: the identity itself on a hit (or a
   * thrown VerificationError when a per-request check fails), a promise only when the token must be verified
   * in full. A route that sends the answer at once saves the promise, its microtask and the async frames
   * on every cache hit, a large share of what a hit costs.
   */
  verifyNow (token: string, request: RequestChecks = {}, knownKey?: string): VerifiedIdentity | Promise<VerifiedIdentity> {
    const observe = this.events.verification
    if (observe === undefined) return this.verifyToken(token, request, knownKey)
    const started = performance.now()
    let outcome: VerifiedIdentity | Promise<VerifiedIdentity>
    try {
      outcome = this.verifyToken(token, request, knownKey)
    } catch (err) {
      observeFailure(observe, err, started)
      throw err
    }
    if (outcome instanceof Promise) {
      return outcome.then((identity) => observeSuccess(observe, identity, started), (err: unknown) => {
        observeFailure(observe, err, started)
        throw err
      })
    }
    return observeSuccess(observe, outcome, started)
  }

  /** A JWKS URL an issuer left (a provider moved its jwks_uri): its key set and timers go, unless another issuer uses it. */
  private forgetUnusedUrl (url: string): void {
    if (this.runtimes.some((r) => r.keys.sourceId() === url)) return
    this.cache.forget(url)
    this.currentKeys.delete(url)
    // Its keys vouch for nothing any more (a hit also checks that its key source is its issuer's).
    this.tokenCache?.dropKeysNotIn(url, new Set())
  }

  /**
   * Whether the key that verified a token still vouches for it: it comes from the issuer's key source in use
   * (a provider may move its jwks_uri), and is still published there; or it is the issuer's client secret.
   */
  private keyStillVouches (runtime: IssuerRuntime, keySource: string, keyFingerprint: string): boolean {
    if (keySource === runtime.keys.sourceId()) return this.currentKeys.get(keySource)?.has(keyFingerprint) ?? true
    return keySource === runtime.secretSource
  }

  /** One issuer per URL stays one Map lookup; a URL named by several moves to sharedIssuerUrls. */
  private addIssuerUrl (url: string, runtime: IssuerRuntime): void {
    const shared = this.sharedIssuerUrls.get(url)
    if (shared !== undefined) {
      if (!shared.includes(runtime)) shared.push(runtime)
      return
    }
    const first = this.byIssuerUrl.get(url)
    if (first === undefined || first === runtime) {
      this.byIssuerUrl.set(url, runtime)
      return
    }
    this.byIssuerUrl.delete(url)
    this.sharedIssuerUrls.set(url, [first, runtime])
  }

  /**
   * Discovered JWKS URLs are learnt at run time: label them by the discovering issuer (also while rediscovery
   * tries a new one, before the issuer takes it).
   */
  private issuerForUnlabelledUrl (url: string): string {
    for (const r of this.runtimes) {
      if (r.keys.fetchesFrom(url)) {
        this.issuerOfUrl.set(url, r.config.id)
        return r.config.id
      }
    }
    return 'unknown'
  }

  /**
   * A cache hit answered synchronously; anything else returns verifyFully's promise (which never throws synchronously).
   * knownKey: the token's tokenKey, when the caller has it already.
   */
  private verifyToken (token: string, request: RequestChecks, knownKey?: string): VerifiedIdentity | Promise<VerifiedIdentity> {
    const cache = this.tokenCache
    if (cache === undefined) return this.verifyFully(token, request, undefined)
    // Size first: nothing longer than the limit is hashed, parsed or looked up.
    if (token.length > this.maxTokenBytes) throw new VerificationError('token_too_large')
    const cacheKey = knownKey ?? cache.keyOf(token)
    const nowMs = this.now()
    const hit = this.usableHit(cache.get(cacheKey), nowMs)
    if (hit === undefined) return this.verifyFully(token, request, cacheKey)
    return this.answerHit(hit, request, nowMs)
  }

  /**
   * A token's key in the verified-token cache (its SHA-256, never the token), from the token or its bytes; undefined
   * when there is no cache or the token is longer than any this Verifier reads (it would not be looked up).
   */
  tokenKey (token: string | Uint8Array): string | undefined {
    const cache = this.tokenCache
    if (cache === undefined || token.length > this.maxTokenBytes) return undefined
    return cache.keyOf(token)
  }

  /**
   * The identity of the token whose tokenKey is `key` when the verified-token cache answers it with no per-request
   * check asked for, or undefined whenever anything else must answer: no cache, a miss, a token a full verification
   * must see again, a claim check or a revocation that refuses it. Undefined counts nothing (verifyNow, which then
   * runs, does); an identity is counted as verifyNow counts a hit (its time from the lookup on: the caller hashed the
   * token, about a microsecond that verifyNow's count includes). For a lane that answers hits before the request
   * reaches its route (src/http/hit-lane.ts): it never throws and never starts work that outlives the call.
   */
  cachedIdentity (key: string): VerifiedIdentity | undefined {
    const cache = this.tokenCache
    if (cache === undefined) return undefined
    const observe = this.events.verification
    const started = observe === undefined ? 0 : performance.now()
    const nowMs = this.now()
    const hit = this.usableHit(cache.get(key), nowMs)
    if (hit === undefined) return undefined
    let identity: VerifiedIdentity
    try {
      identity = this.answerHit(hit, NO_REQUEST_CHECKS, nowMs)
    } catch {
      return undefined
    }
    return observe === undefined ? identity : observeSuccess(observe, identity, started)
  }

  /**
   * A cache entry that may answer now: verified again instead, with the keys the issuer has now, when they moved to
   * another URL since, or when they have expired (the provider unreachable past staleIfErrorSeconds), which then
   * answers keys_unavailable, as a new token gets.
   */
  private usableHit (hit: CachedVerification | undefined, nowMs: number): CachedVerification | undefined {
    if (hit === undefined) return undefined
    const runtime = this.byId.get(hit.issuer) as IssuerRuntime
    if (hit.keySource !== runtime.secretSource && (hit.keySource !== runtime.keys.sourceId() || !runtime.keys.usableAt(nowMs))) return undefined
    return hit
  }

  /** A usable entry's answer: every claim check again (time passes, requests differ), then revocation. */
  private answerHit (hit: CachedVerification, request: RequestChecks, nowMs: number): VerifiedIdentity {
    const runtime = this.byId.get(hit.issuer) as IssuerRuntime
    const nowSeconds = nowMs / 1000
    // The signature was verified before.
    checkIdTokenClaims(hit.identity.claims, runtime.rules, request, hit.alg, hit.curve, nowSeconds)
    const revocations = this.revocationsToApply(request, hit.issuer)
    if (revocations !== undefined) {
      // Looked up again only when a revocation has been added since this token was last found not revoked.
      if (hit.revocationGeneration !== revocations.generation) {
        const generation = revocations.generation
        const revoked = revocationError(revocations, hit.issuer, hit.identity.claims, nowSeconds)
        if (revoked !== undefined) throw revoked
        hit.revocationGeneration = generation
      }
    }
    this.events.tokenCache?.({ issuer: hit.issuer, hit: true })
    return { ...hit.identity, expiresIn: Math.max(0, Math.floor(hit.identity.expiresAt - nowSeconds)) }
  }

  /**
   * Verifies a back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.6): the signature with
   * the issuer's keys, as for an ID token, then the logout-token rules. Throws VerificationError; failures of
   * the rules are logout_token_invalid. Logout tokens are never cached. A kid the issuer's keys do not have
   * refreshes them only for a token that passes the rules, from the logout tokens' own budget; a refresh that
   * is not allowed yet is key_refresh_deferred (503), not key_not_found: the provider rarely retries a 400.
   */
  async verifyLogoutToken (token: string, maxAgeSeconds: number): Promise<VerifiedLogout> {
    if (token.length > this.maxTokenBytes) throw new VerificationError('token_too_large')
    const unknownKid: UnknownKidPolicy = {
      requester: 'logout',
      beforeRefresh: (jws, runtime) => {
        try {
          checkLogoutTokenType(jws.header, runtime.config.id)
          checkLogoutTokenClaims(jws.payload, runtime.rules, maxAgeSeconds, this.now() / 1000)
        } catch (err) {
          // The rules ran on content no signature vouches for: the answer must not name the claim that failed (the
          // open route would tell anyone the configured audiences or the maximum age), only that no key verifies it.
          if (isVerificationError(err)) throw new VerificationError('key_not_found', { issuer: runtime.config.id })
          throw err
        }
      }
    }
    return await this.withSignedToken(token, (signed) => this.logoutOf(signed, maxAgeSeconds), unknownKid)
  }

  /** The logout-token rules on a token whose signature has been verified. */
  private logoutOf (signed: SignedToken, maxAgeSeconds: number): VerifiedLogout {
    const issuer = signed.runtime.config.id
    checkLogoutTokenType(signed.jws.header, issuer)
    const claims = checkLogoutTokenClaims(signed.jws.payload, signed.runtime.rules, maxAgeSeconds, this.now() / 1000)
    const aud = signed.jws.payload.aud
    // As for ID tokens: a client secret is shared with one client, so a token for several cannot be signed with it.
    if (isHmacAlgorithm(signed.alg) && Array.isArray(aud) && aud.length > 1) throw new VerificationError('logout_token_invalid', { issuer, claim: 'aud' })
    // A tenant that may not log in may not fill the revocation list either. A logout token that names no tenant
    // (Auth0's carry no org_id) from an issuer whose iss does not name one either ({tenantid} templates do) is
    // accepted: the spec's logout token has no tenant claim, and what it revokes stays within this issuer.
    const tenants = signed.runtime.allowedTenants
    if (tenants !== undefined) {
      const tenant = tenantOf(signed.jws.payload, signed.runtime.mapping)
      const unnamed = tenant === null && signed.runtime.template === undefined
      if (!unnamed && (tenant === null || !tenants.has(tenant))) throw new VerificationError('logout_token_invalid', { issuer, claim: signed.runtime.tenantClaim ?? 'tenant' })
    }
    const siblings = this.sharedIssuerUrls.get(signed.iss)
    return { issuer, issuers: siblings === undefined ? [issuer] : siblings.map((r) => r.config.id), ...claims }
  }

  /** A token verified in full, as a promise that rejects (never throws) on any failure. */
  private verifyFully (token: string, request: RequestChecks, cacheKey: string | undefined): Promise<VerifiedIdentity> {
    return this.withSignedToken(token, (signed) => this.identityOf(signed, token, request, cacheKey))
  }

  /** The ID-token rules, normalization, tenant and revocations on a token whose signature has been verified. */
  private identityOf (signed: SignedToken, token: string, request: RequestChecks, cacheKey: string | undefined): VerifiedIdentity {
    const { runtime, iss, jws, alg, curve, keySource, keyFingerprint } = signed
    const issuer = runtime.config.id
    if (!signed.encrypted && runtime.config.decryption?.required === true) throw new VerificationError('token_not_encrypted', { issuer })
    const { header } = jws
    const claims = jws.payload
    checkTokenType(header, claims, runtime.rules)
    const nowSeconds = this.now() / 1000
    const checked = checkIdTokenClaims(claims, runtime.rules, request, alg, curve, nowSeconds)
    if (isHmacAlgorithm(alg) && checked.audiences.length > 1) {
      // A client secret is shared with one client: a token for several audiences cannot be signed with it.
      throw new VerificationError('audience_mismatch', { issuer, claim: 'aud' })
    }
    const identity = normalizeIdentity({
      issuerId: issuer,
      issuerUrl: iss,
      claims,
      subject: checked.subject,
      audiences: checked.audiences,
      nowSeconds
    }, runtime.mapping)
    const tenants = runtime.allowedTenants
    if (tenants !== undefined && (identity.tenant === null || !tenants.has(identity.tenant))) {
      throw new VerificationError('tenant_not_allowed', runtime.tenantClaim === undefined ? { issuer } : { issuer, claim: runtime.tenantClaim })
    }
    const revocations = this.revocationsToApply(request, issuer)
    // Read before the check: a revocation added later must make a hit look again.
    const revocationGeneration = revocations?.generation ?? 0
    const revoked = revocations === undefined ? undefined : revocationError(revocations, issuer, claims, nowSeconds)
    // Not cached when the key left its JWKS (or the JWKS its issuer) while the signature was being checked.
    if (cacheKey !== undefined && this.tokenCache !== undefined && this.keyStillVouches(runtime, keySource, keyFingerprint)) {
      // Cached objects are shared between hits and must not be mutated by callers.
      // A revoked token is cached too, so that its retries are refused without a signature check each. It and
      // a token not looked up (a hint) are cached as looked up at no generation (-1): every hit of theirs looks.
      const checkedGeneration = revoked !== undefined || revocations === undefined ? -1 : revocationGeneration
      const kidless = typeof header.kid !== 'string'
      this.tokenCache.set(cacheKey, { issuer, keySource, keyFingerprint, alg, curve, kidless, identity, revocationGeneration: checkedGeneration },
        Math.max(token.length, signed.innerLength), identity.expiresAt * 1000, nowSeconds * 1000)
      this.events.tokenCache?.({ issuer, hit: false })
    }
    if (revoked !== undefined) throw revoked
    return identity
  }

  /**
   * The revocations a verification must look at: none without revocation, or for a token presented as a
   * logout hint (it names a session that may well have ended); fails closed while they are not current.
   */
  private revocationsToApply (request: RequestChecks, issuer: string): RevocationList | undefined {
    const revocations = this.revocations
    if (revocations === undefined || request.mode === 'id_token_hint') return undefined
    if (!revocations.available) throw new VerificationError('revocations_unavailable', { issuer })
    return revocations
  }

  /**
   * Decryption, parse, issuer, header rules, keys, signature and key issuer: what every kind of token needs;
   * then `next` on the verified token. Never throws: every failure, `next`'s included, rejects the promise.
   * The work is synchronous up to the signature check and continues in one callback after it: each async
   * layer would cost a promise and a microtask per new token.
   */
  private withSignedToken<T> (token: string, next: (signed: SignedToken) => T, unknownKid?: UnknownKidPolicy): Promise<T> {
    try {
      // Without decryption keys a JWE is token_encrypted, found by the parser without an extra pass.
      if (this.decryptor.enabled && token.length <= this.maxTokenBytes && isCompactJwe(token)) {
        return this.decryptor.decrypt(token).then((decrypted) => this.withSignedJws(innerJws(decrypted, this.maxTokenBytes), decrypted, next, unknownKid))
      }
      return this.withSignedJws(parseCompactJws(token, this.maxTokenBytes), undefined, next, unknownKid)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private withSignedJws<T> (jws: ParsedJws, decrypted: Decrypted | undefined, next: (signed: SignedToken) => T, unknownKid?: UnknownKidPolicy): Promise<T> {
    const { runtime, iss } = this.selectIssuer(jws)
    const issuer = runtime.config.id
    const { header } = jws
    if (decrypted !== undefined) {
      // Decrypted with a key of this issuer, under this issuer's policy; else as if it had not decrypted.
      const own = runtime.config.decryption
      if (own === undefined || !policyAllows(own, decrypted.header) || !own.keys.some((k) => k.fingerprint === decrypted.key.fingerprint)) {
        throw new VerificationError('token_decryption_failed')
      }
    }

    const alg = header.alg
    if (typeof alg !== 'string') throw new VerificationError('header_invalid', { issuer })
    if (!runtime.allowedAlgorithms.has(alg)) throw algorithmNotAllowed(issuer, alg)
    // Only extensions we understand may be critical, and we understand none (RFC 7515 §4.1.11).
    if (header.crit !== undefined) throw new VerificationError('header_invalid', { issuer })
    // RFC 7519 §5.2, §7.2 step 8: cty "JWT" says the payload is another JWT, not a claim set to read as one.
    if (typeof header.cty === 'string' && NESTED_JWT.test(header.cty)) throw new VerificationError('header_invalid', { issuer })
    const kid = header.kid
    if (kid !== undefined && typeof kid !== 'string') throw new VerificationError('header_invalid', { issuer })
    // jwk, jku, x5u and x5c are never read: keys come from the configured issuer only.

    if (isHmacAlgorithm(alg)) {
      // The configuration refuses HS* without a secret; this guards the invariant.
      if (runtime.hmacSecret === undefined) throw algorithmNotAllowed(issuer, alg)
      if (!verifyHmac(alg, runtime.hmacSecret, jws.signingInput, jws.signature)) throw new VerificationError('signature_invalid', { issuer })
      return Promise.resolve(next({ runtime, iss, jws, alg, curve: undefined, keySource: runtime.secretSource, keyFingerprint: 'client-secret', encrypted: decrypted !== undefined, innerLength: decrypted?.plaintext.length ?? 0 }))
    }
    if (!isAsymmetricAlgorithm(alg)) throw algorithmNotAllowed(issuer, alg)
    const signedWith = ({ key, keySource }: KeyUsed): T => {
      checkKeyIssuer(key.issuer, iss, jws.payload, issuer)
      return next({ runtime, iss, jws, alg, curve: key.crv, keySource, keyFingerprint: key.fingerprint, encrypted: decrypted !== undefined, innerLength: decrypted?.plaintext.length ?? 0 })
    }
    // The usual case: fresh keys and one key that fits (the token's kid). Its check is the only promise.
    const fresh = runtime.keys.freshKeySet()
    const key = soleCandidate(fresh, alg, kid)
    if (key === undefined) return this.verifyWithIssuerKeys(runtime, alg, kid, jws, fresh, unknownKid).then(signedWith)
    const check = prepareAsymmetric(alg, key.key, jws.signingInput, jws.signature)
    if (check === undefined) throw new VerificationError('signature_invalid', { issuer })
    // Where the key came from, read with the key: a rediscovery during the check must not relabel it.
    const keySource = runtime.keys.sourceId()
    return this.signatures.check(check).then((valid) => {
      if (!valid) throw new VerificationError('signature_invalid', { issuer })
      return signedWith({ key, keySource })
    })
  }

  /** Every configured spelling of every issuer, in the configuration's order: for issuer_unknown's near miss. */
  private * knownIssuerUrls (): Generator<KnownIssuerUrl> {
    for (const { config } of this.runtimes) {
      yield { id: config.id, url: config.issuer }
      for (const url of config.issuerAliases ?? []) yield { id: config.id, url }
    }
  }

  private selectIssuer (jws: ParsedJws): { runtime: IssuerRuntime, iss: string } {
    const iss = jws.payload.iss
    if (iss === undefined) throw new VerificationError('claim_missing', { claim: 'iss' })
    if (typeof iss !== 'string') throw new VerificationError('claim_invalid', { claim: 'iss' })
    const runtime = this.byIssuerUrl.get(iss)
    if (runtime !== undefined) return { runtime, iss }
    const shared = this.sharedIssuerUrls.get(iss)
    if (shared !== undefined) return { runtime: byAudience(shared, jws.payload.aud), iss }
    // Every template iss fits whose tenant rules the token meets (two issuers may share a template, or have
    // overlapping ones): as for a shared URL, the one whose audience the token names; else the first refusal.
    const fitting: IssuerRuntime[] = []
    let refusal: unknown
    for (const candidate of this.templates) {
      const template = candidate.template as IssuerTemplate
      if (!matchesTemplate(template, iss)) continue
      try {
        checkTenantIssuer(template, iss, jws.payload, candidate.config.id)
        fitting.push(candidate)
      } catch (err) {
        refusal ??= err
      }
    }
    if (fitting.length > 0) return { runtime: fitting.length === 1 ? fitting[0] as IssuerRuntime : byAudience(fitting, jws.payload.aud), iss }
    if (refusal !== undefined) throw refusal
    const near = nearIssuer(iss, this.knownIssuerUrls())
    throw new VerificationError('issuer_unknown', { claim: 'iss', ...(near !== undefined ? { nearIssuer: near.id, issuerDifference: near.difference } : {}) })
  }

  /**
   * The key that verifies the token, whatever the key set's state: `fresh` (the key set withSignedJws found
   * fresh, if it did), else stale or missing keys through getKeySet(); an unknown kid may refresh them, and
   * without a kid up to MAX_KEYS_TRIED_WITHOUT_KID fitting keys are tried in turn. `unknownKid` says how a
   * logout token asks for that refresh (an ID token: the tokens' budget, with no checks first).
   */
  private async verifyWithIssuerKeys (runtime: IssuerRuntime, alg: AsymmetricAlgorithm, kid: string | undefined, jws: ParsedJws, fresh: KeySet | undefined, unknownKid?: UnknownKidPolicy): Promise<KeyUsed> {
    const issuer = runtime.config.id
    let keySet = fresh ?? await runtime.keys.getKeySet().catch((err: unknown) => { throw namingIssuer(err, issuer) })
    let candidates = keySet.candidates(alg, kid)
    if (candidates.length === 0 && (kid === undefined || !keySet.hasKid(kid))) {
      // Perhaps the IdP has just rotated a key in: refresh, within the cooldown and rate limit.
      unknownKid?.beforeRefresh(jws, runtime)
      const refreshed = await runtime.keys.refreshForUnknownKid(unknownKid?.requester).catch((err: unknown) => { throw namingIssuer(err, issuer) })
      if (refreshed !== undefined && refreshed !== keySet) {
        keySet = refreshed
        candidates = keySet.candidates(alg, kid)
      }
    }
    if (candidates.length === 0 || (kid === undefined && candidates.length > MAX_KEYS_TRIED_WITHOUT_KID)) {
      throw new VerificationError('key_not_found', { issuer })
    }
    const keySource = runtime.keys.sourceId()
    for (const key of candidates) {
      const check = prepareAsymmetric(alg, key.key, jws.signingInput, jws.signature)
      if (check !== undefined && await this.signatures.check(check)) return { key, keySource }
    }
    throw new VerificationError('signature_invalid', { issuer })
  }
}

/**
 * A key source's error (keys_unavailable) with the issuer it is about: the key source knows only its URL, and an
 * operator with several providers must see which one is down (answer, log line and metrics).
 */
function namingIssuer (err: unknown, issuer: string): unknown {
  if (!isVerificationError(err) || err.details.issuer !== undefined) return err
  return new VerificationError(err.code, { ...err.details, issuer }, err.cause === undefined ? undefined : { cause: err.cause })
}

/** The one key of a fresh key set that fits the token; undefined for anything verifyWithIssuerKeys must handle. */
function soleCandidate (keySet: KeySet | undefined, alg: AsymmetricAlgorithm, kid: string | undefined): UsableKey | undefined {
  if (keySet === undefined) return undefined
  const candidates = keySet.candidates(alg, kid)
  return candidates.length === 1 ? candidates[0] : undefined
}

/**
 * A cty that says the content is a JWT: "JWT", or its media type in full (RFC 7515 §4.1.10: "application/" is
 * implied when the value has no "/"; media types ignore letter case).
 */
const NESTED_JWT = /^(application\/)?jwt$/i

/**
 * The content of a decrypted token must be a signed ID token (a nested JWT, RFC 7519 §5.2): a bare claim set
 * or another JWE inside proves nothing, since anyone can encrypt to a public key.
 */
function innerJws (decrypted: Decrypted, maxTokenBytes: number): ParsedJws {
  const { cty } = decrypted.header
  if (cty !== undefined && (typeof cty !== 'string' || !NESTED_JWT.test(cty))) throw new VerificationError('token_not_signed')
  const text = decrypted.plaintext
  let dots = 0
  for (let i = text.indexOf('.'); i !== -1 && dots < 3; i = text.indexOf('.', i + 1)) dots++
  if (dots !== 2 || text.endsWith('.')) throw new VerificationError('token_not_signed')
  return parseCompactJws(text, maxTokenBytes)
}

/**
 * Among issuers that share an issuer URL, the one an audience of the token names (their audiences are
 * disjoint); the first otherwise, whose audience check then refuses the token. Chosen before the signature
 * is checked, like the issuer itself; each issuer then applies its own keys, algorithms and rules.
 */
function byAudience (runtimes: readonly IssuerRuntime[], aud: unknown): IssuerRuntime {
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : []
  for (const runtime of runtimes) {
    if (audiences.some((a) => typeof a === 'string' && runtime.rules.audiences.has(a))) return runtime
  }
  return runtimes[0] as IssuerRuntime
}

/** token_revoked when a revocation covers this verified token. */
function algorithmNotAllowed (issuer: string, alg: string): VerificationError {
  const algorithm = registeredAlgorithm(alg)
  return new VerificationError('algorithm_not_allowed', algorithm === undefined ? { issuer } : { issuer, algorithm })
}

function revocationError (revocations: RevocationList, issuer: string, claims: Readonly<Record<string, unknown>>, nowSeconds: number): VerificationError | undefined {
  const kind = revocations.check(issuer, claims, nowSeconds)
  return kind === undefined ? undefined : new VerificationError('token_revoked', { issuer, claim: kind === 'issuer' ? 'iat' : kind })
}

function observeSuccess (observe: NonNullable<VerifierEvents['verification']>, identity: VerifiedIdentity, started: number): VerifiedIdentity {
  observe({ issuer: identity.issuer.id, result: 'ok', durationSeconds: (performance.now() - started) / 1000 })
  return identity
}

function observeFailure (observe: NonNullable<VerifierEvents['verification']>, err: unknown, started: number): void {
  const result: ErrorCode = isVerificationError(err) ? err.code : 'internal_error'
  const issuer = isVerificationError(err) ? (err.details.issuer ?? null) : null
  observe({ issuer, result, durationSeconds: (performance.now() - started) / 1000 })
}
