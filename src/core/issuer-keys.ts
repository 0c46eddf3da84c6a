/**
 * Where one issuer's keys come from: an inline JWKS (air-gapped), a configured jwks_uri, or OIDC discovery
 * followed by the discovered jwks_uri. Remote key sets live in the shared JwksCache; discovery is retried in
 * the background with backoff (longer when the provider's Retry-After asks, src/jwks/retry-wait.ts) until it
 * succeeds, so the service starts while an IdP is down, and repeated every jwks.rediscoverySeconds, so that a
 * provider that moves its jwks_uri is followed (once the new URL has given keys; until then, and when the
 * provider cannot be reached, the current one stays). An issuer whose algorithms are all HS* needs no keys: its
 * client secret verifies every token, so nothing is fetched.
 */
import type { FetchConfig, IssuerConfig, JwksCacheConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import type { JwksCache, UnknownKidRequester } from '../jwks/cache.js'
import { discoverJwksUri } from '../jwks/discovery.js'
import { waitAfterFailure, type RetryWait } from '../jwks/retry-wait.js'
import type { fetchJson } from '../net/fetch-json.js'
import { KeySet } from './key-set.js'
import type { Logger } from './logger.js'
import { isAsymmetricAlgorithm } from './signature.js'

export interface KeyStatus {
  ready: boolean
  source: 'discovery' | 'jwksUri' | 'inline'
  jwksUri: string | null
  state: 'fresh' | 'stale' | 'expired' | 'missing' | 'discovering'
  keyCount: number
  fetchedAt: string | null
  lastError: string | null
}

export interface KeyProvider {
  /** The keys for the request path: never waits on a routine refresh. Throws keys_unavailable. */
  getKeySet(): Promise<KeySet>
  /** The key set when it is at hand and fresh, without a promise; undefined sends the caller to getKeySet(). */
  freshKeySet(): KeySet | undefined
  /**
   * The token names a kid we do not have: refresh if the cooldown and rate limit allow (the requester's budget;
   * a logout token's refused refresh throws key_refresh_deferred, src/jwks/cache.ts).
   */
  refreshForUnknownKid(requester?: UnknownKidRequester): Promise<KeySet | undefined>
  /** Names where the current keys come from (the JWKS URL, or inline:<issuer id>), for the token cache. */
  sourceId(): string
  /**
   * Whether keys are fetched from `url` for this issuer: its JWKS URL, or a new jwks_uri that rediscovery is
   * trying (not yet the source); names the issuer in that URL's fetch metrics and log lines.
   */
  fetchesFrom(url: string): boolean
  /** Whether the current keys may still be used at `nowMs` (fresh or stale, not expired), without a promise. */
  usableAt(nowMs: number): boolean
  /**
   * Until when (ms since the epoch) the provider asked not to be asked for these keys (Retry-After on the JWKS,
   * or on the metadata while no jwks_uri is known); 0, or a time already past, when it does not hold them back.
   */
  askedToWaitUntil(): number
  start(): void
  status(): KeyStatus
  close(): void
}

/** Keys that never change: no fetch, no refresh, nothing to start or stop; the subclass says their status. */
abstract class FixedKeys implements KeyProvider {
  constructor (protected readonly keySet: KeySet, private readonly id: string) {}

  sourceId (): string { return this.id }
  fetchesFrom (): boolean { return false }
  usableAt (): boolean { return true }
  askedToWaitUntil (): number { return 0 }
  async getKeySet (): Promise<KeySet> { return this.keySet }
  freshKeySet (): KeySet { return this.keySet }
  async refreshForUnknownKid (): Promise<KeySet | undefined> { return undefined }
  start (): void {}
  close (): void {}
  abstract status (): KeyStatus
}

class InlineKeys extends FixedKeys {
  constructor (keySet: KeySet, issuerId: string) {
    super(keySet, `inline:${issuerId}`)
  }

  status (): KeyStatus {
    const ready = this.keySet.keys.length > 0
    return { ready, source: 'inline', jwksUri: null, state: 'fresh', keyCount: this.keySet.keys.length, fetchedAt: null, lastError: ready ? null : 'the inline JWKS has no usable signature key' }
  }
}

/**
 * The keys of an issuer whose algorithms are all HS*: none. Its client secret verifies each token, so nothing is
 * fetched (a provider's unreachable JWKS must not hold it back) and it is ready from the start, as
 * `oidc-verifier check-config` says: keys are not needed.
 */
class NoKeysNeeded extends FixedKeys {
  constructor (issuerId: string, private readonly source: KeyStatus['source']) {
    super(new KeySet({ keys: [] }), `none:${issuerId}`)
  }

  status (): KeyStatus {
    return { ready: true, source: this.source, jwksUri: null, state: 'fresh', keyCount: 0, fetchedAt: null, lastError: null }
  }
}

class RemoteKeys implements KeyProvider {
  protected jwksUri: string | undefined
  protected readonly cache: JwksCache<KeySet>
  private readonly source: 'discovery' | 'jwksUri'

  constructor (cache: JwksCache<KeySet>, source: 'discovery' | 'jwksUri', jwksUri: string | undefined) {
    this.cache = cache
    this.source = source
    this.jwksUri = jwksUri
  }

  protected unavailable (retryAfterSeconds: number): VerificationError {
    return new VerificationError('keys_unavailable', { retryAfterSeconds })
  }

  async getKeySet (): Promise<KeySet> {
    if (this.jwksUri === undefined) throw this.unavailable(this.retryAfter())
    return await this.cache.get(this.jwksUri)
  }

  freshKeySet (): KeySet | undefined {
    return this.jwksUri === undefined ? undefined : this.cache.peekFresh(this.jwksUri)
  }

  async refreshForUnknownKid (requester?: UnknownKidRequester): Promise<KeySet | undefined> {
    if (this.jwksUri === undefined) return undefined
    return await this.cache.refreshForUnknownKid(this.jwksUri, requester)
  }

  sourceId (): string { return this.jwksUri ?? '' }
  fetchesFrom (url: string): boolean { return url === this.jwksUri }
  usableAt (nowMs: number): boolean { return this.jwksUri !== undefined && this.cache.isUsable(this.jwksUri, nowMs) }

  askedToWaitUntil (): number {
    return this.jwksUri === undefined ? this.discoveryWaitUntil() : this.cache.status(this.jwksUri).retryAfterUntil ?? 0
  }

  protected retryAfter (): number { return 1 }
  protected lastDiscoveryError (): string | null { return null }
  protected discoveryWaitUntil (): number { return 0 }

  start (): void {
    if (this.jwksUri !== undefined) void this.cache.warm(this.jwksUri)
  }

  close (): void {}

  status (): KeyStatus {
    if (this.jwksUri === undefined) {
      return { ready: false, source: this.source, jwksUri: null, state: 'discovering', keyCount: 0, fetchedAt: null, lastError: this.lastDiscoveryError() }
    }
    const s = this.cache.status(this.jwksUri)
    const usable = s.state === 'fresh' || s.state === 'stale'
    const keyCount = s.keyCount ?? 0
    // A first answer without a usable key is held (there were no keys to keep): say why the issuer is not ready.
    const noUsableKey = usable && keyCount === 0 ? `The JWKS at ${this.jwksUri} has no key usable for signatures: it lists none, or only keys this service cannot use (the log line "JWKS contains keys that will never be used" gives each one's reason)` : null
    return {
      ready: usable && keyCount > 0,
      source: this.source,
      jwksUri: this.jwksUri,
      state: s.state,
      keyCount,
      fetchedAt: s.fetchedAt === undefined ? null : new Date(s.fetchedAt).toISOString(),
      lastError: s.lastError ?? noUsableKey ?? this.lastDiscoveryError()
    }
  }
}

/** A new jwks_uri found by rediscovery gave no usable keys; `retryAfterUntil`: when its provider asked us to come back. */
class NewUrlRefused extends Error {
  constructor (message: string, readonly retryAfterUntil: number | undefined) {
    super(message)
    this.name = 'NewUrlRefused'
  }
}

function withNote (message: string, note: string | undefined): string {
  return note === undefined ? message : `${message}; ${note}`
}

/** The log line's field for a wait the provider asked for; none for the plain backoff. */
function retryFields (note: string | undefined, at: number): { retryNotBefore?: string } {
  return note === undefined ? {} : { retryNotBefore: new Date(at).toISOString() }
}

/** Discovery first, retried with backoff until it succeeds; then the discovered jwks_uri through the cache. */
class DiscoveredKeys extends RemoteKeys {
  private readonly issuer: string
  private readonly discoveryUrl: string | undefined
  private readonly fetchConfig: FetchConfig
  private readonly backoff: { initial: number, max: number }
  private readonly rediscoveryMs: number
  private readonly logger: Logger
  private readonly fetcher: typeof fetchJson | undefined
  private failures = 0
  private nextAttemptAt = 0
  private error: string | null = null
  private timer: NodeJS.Timeout | undefined
  private closed = false
  /** The discovery attempt under way: the first requests wait for it rather than fail. */
  private attempt: Promise<void> | undefined
  /** A new jwks_uri that rediscovery is fetching, before it is taken (or refused). */
  private trying: string | undefined
  /** Until when the provider asked us not to read the metadata again (Retry-After on it); 0 when it did not. */
  private providerWaitUntil = 0
  /** When the timer reads the metadata next (ms since the epoch); undefined when nothing is scheduled. */
  private nextReadAt: number | undefined
  /** What the provider this one replaces found and was told, taken at start(). */
  private adopted: { handOver: DiscoveryHandOver, found: boolean } | undefined
  /** The issuer and its metadata URL: what makes two providers the same discovery. */
  readonly discoveryKey: string

  /** Called with a JWKS URL this issuer no longer uses (moved away from, or refused): forgotten if no issuer uses it. */
  private readonly urlLeft: (url: string) => void

  constructor (cache: JwksCache<KeySet>, issuer: IssuerConfig, fetchConfig: FetchConfig, jwksConfig: JwksCacheConfig, logger: Logger, fetcher: typeof fetchJson | undefined, urlLeft: (url: string) => void) {
    super(cache, 'discovery', undefined)
    this.issuer = issuer.issuer
    this.discoveryUrl = issuer.keys.kind === 'discovery' ? issuer.keys.discoveryUrl : undefined
    this.discoveryKey = discoveryKeyOf(issuer.issuer, this.discoveryUrl)
    this.fetchConfig = fetchConfig
    this.backoff = { initial: jwksConfig.backoffInitialSeconds, max: jwksConfig.backoffMaxSeconds }
    this.rediscoveryMs = jwksConfig.rediscoverySeconds * 1000
    this.urlLeft = urlLeft
    this.logger = logger.child({ issuer: issuer.id })
    this.fetcher = fetcher
  }

  override start (): void {
    const adopted = this.adopted
    this.adopted = undefined
    const now = Date.now()
    const asked = adopted !== undefined && now < adopted.handOver.askedUntil
    // The jwks_uri found before is used when the provider asks to wait, or when its metadata was read under the
    // same fetch rules (found); otherwise, and for a discovery that failed on its own, the metadata is read now.
    if (adopted === undefined || !(asked || (adopted.found && adopted.handOver.jwksUri !== undefined))) {
      void this.discover()
      return
    }
    const { handOver } = adopted
    this.failures = handOver.failures
    this.providerWaitUntil = asked ? handOver.askedUntil : 0
    if (handOver.jwksUri === undefined) {
      // Only the provider's wait brings us here: discovery is tried again at its end.
      this.error = handOver.error
      this.nextAttemptAt = handOver.askedUntil
      this.schedule(() => this.discover(), handOver.askedUntil - now)
      return
    }
    this.jwksUri = handOver.jwksUri
    void this.cache.warm(handOver.jwksUri)
    // rediscoverySeconds 0: the metadata is never read again, and the jwks_uri found stays (a rediscovery owed to
    // the provider's wait would reschedule itself at once, over and over).
    if (this.rediscoveryMs === 0) return
    // The next read comes when it would have: the provider's time, the retry after a failed rediscovery, or the
    // next rediscovery, no later than this configuration's rediscoverySeconds from now; at once when none was
    // scheduled (one was under way, or the configuration replaced had no rediscovery).
    const readAt = asked ? handOver.askedUntil : handOver.readAt ?? now
    const delayMs = Math.max(0, readAt - now)
    this.schedule(() => this.rediscover(), asked ? delayMs : Math.min(delayMs, this.rediscoveryMs))
  }

  /**
   * What this discovery found and was told, for the provider that replaces it: the jwks_uri, the provider's wait
   * on the metadata, and when the metadata would be read next. Undefined when there is nothing to hand over (no
   * jwks_uri found and no wait in force: the new provider reads the metadata at once).
   */
  discoveryHandOver (now: number): DiscoveryHandOver | undefined {
    const askedUntil = now < this.providerWaitUntil ? this.providerWaitUntil : 0
    if (askedUntil === 0 && this.jwksUri === undefined) return undefined
    return { askedUntil, readAt: this.nextReadAt, failures: this.failures, error: this.error, jwksUri: this.jwksUri }
  }

  /**
   * Call before start(): what the provider this one replaces found (carryDiscovery). `found`: whether its jwks_uri
   * may be used without reading the metadata again (it was read under the same fetch rules).
   */
  adoptDiscovery (handOver: DiscoveryHandOver, found: boolean): void {
    this.adopted = { handOver, found }
  }

  override async getKeySet (): Promise<KeySet> {
    if (this.jwksUri === undefined && this.attempt !== undefined) await this.attempt
    return await super.getKeySet()
  }

  private discover (): Promise<void> {
    this.attempt = this.tryDiscovery().finally(() => { this.attempt = undefined })
    return this.attempt
  }

  private async tryDiscovery (): Promise<void> {
    if (this.closed) return
    try {
      const { jwksUri } = await discoverJwksUri(this.issuer, this.fetchConfig, this.fetcher, this.discoveryUrl)
      if (this.closed) return
      this.jwksUri = jwksUri
      this.failures = 0
      this.providerWaitUntil = 0
      this.logger.info({ jwksUri }, 'discovery succeeded')
      await this.cache.warm(jwksUri)
      // Kept until the keys have been tried: an issuer recovering from a failed discovery stays a tried one (not
      // ready, with an error) while they load, and readiness any-issuer does not wait for it again.
      this.error = null
      if (this.rediscoveryMs > 0) this.schedule(() => this.rediscover(), this.rediscoveryMs)
    } catch (err) {
      if (this.closed) return
      this.failures++
      const now = Date.now()
      const wait = this.waitAfter(err, this.backoffSeconds() * 1000, now)
      this.error = withNote((err as Error).message, wait.note)
      this.nextAttemptAt = now + wait.delayMs
      this.providerWaitUntil = wait.askedMs === undefined ? 0 : now + wait.askedMs
      this.logger.warn({ error: this.error, retryInSeconds: Math.ceil(wait.delayMs / 1000), ...retryFields(wait.note, this.nextAttemptAt) },
        'discovery failed; the issuer is not ready and discovery will be retried')
      this.schedule(() => this.discover(), wait.delayMs)
    }
  }

  /**
   * Reads the metadata again. A new jwks_uri is taken once it has given usable keys; a failure (the provider
   * unreachable, a broken document, a new URL without keys) keeps the current one and tries again after the
   * backoff, at the latest at the next rediscovery. The issuer stays ready throughout.
   */
  private async rediscover (): Promise<void> {
    if (this.closed) return
    const current = this.jwksUri
    try {
      const { jwksUri } = await discoverJwksUri(this.issuer, this.fetchConfig, this.fetcher, this.discoveryUrl)
      if (this.closed) return
      if (jwksUri !== current) {
        this.trying = jwksUri
        try {
          await this.cache.warm(jwksUri)
        } finally {
          this.trying = undefined
        }
        if (this.closed) return
        const status = this.cache.status(jwksUri)
        if ((status.state !== 'fresh' && status.state !== 'stale') || (status.keyCount ?? 0) === 0) {
          this.urlLeft(jwksUri)
          // Forgotten with its entry, the new URL's Retry-After still decides when rediscovery fetches it again.
          throw new NewUrlRefused(`the new jwks_uri ${jwksUri} gave no usable keys (${status.lastError ?? (status.keyCount === 0 ? 'no usable key in it' : status.state)})`,
            status.retryAfterUntil)
        }
        this.jwksUri = jwksUri
        this.logger.info({ jwksUri, previous: current }, 'the provider\'s jwks_uri changed; following it')
        if (current !== undefined) this.urlLeft(current)
      }
      this.failures = 0
      this.providerWaitUntil = 0
      this.schedule(() => this.rediscover(), this.rediscoveryMs)
    } catch (err) {
      if (this.closed) return
      this.failures++
      const now = Date.now()
      const backoffMs = Math.min(this.backoffSeconds() * 1000, this.rediscoveryMs)
      let wait = this.waitAfter(err, backoffMs, now)
      // The metadata's own wait (a new jwks_uri's is the cache's, carried over with the cache's waits).
      this.providerWaitUntil = wait.askedMs === undefined ? 0 : now + wait.askedMs
      // The new jwks_uri's note is in the message already (the cache's lastError): only its time is taken.
      if (err instanceof NewUrlRefused && err.retryAfterUntil !== undefined) wait = { delayMs: Math.max(wait.delayMs, err.retryAfterUntil - now), note: undefined, askedMs: err.retryAfterUntil - now }
      const error = withNote((err as Error).message, wait.note)
      this.logger.warn({ error, jwksUri: current, retryInSeconds: Math.ceil(wait.delayMs / 1000), ...retryFields(wait.note, now + wait.delayMs) },
        'rediscovery failed; the current jwks_uri stays')
      this.schedule(() => this.rediscover(), wait.delayMs)
    }
  }

  /** The backoff, or the wait the provider asked for (Retry-After), capped as the cache caps it for JWKS URLs. */
  private waitAfter (err: unknown, backoffMs: number, now: number): RetryWait {
    return waitAfterFailure(err, backoffMs, this.backoff.max * 1000, 'jwks.backoffMaxSeconds', now)
  }

  private backoffSeconds (): number {
    return Math.min(this.backoff.initial * 2 ** (this.failures - 1), this.backoff.max)
  }

  private schedule (next: () => Promise<void>, delayMs: number): void {
    if (this.closed) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.nextReadAt = Date.now() + delayMs
    this.timer = setTimeout(() => {
      this.nextReadAt = undefined
      void next()
    }, delayMs)
    this.timer.unref()
  }

  override fetchesFrom (url: string): boolean {
    return super.fetchesFrom(url) || url === this.trying
  }

  protected override retryAfter (): number {
    return Math.max(1, Math.ceil((this.nextAttemptAt - Date.now()) / 1000))
  }

  protected override lastDiscoveryError (): string | null { return this.error }
  protected override discoveryWaitUntil (): number { return this.providerWaitUntil }

  override close (): void {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
  }
}

/**
 * What a discovery found and was told, handed to the provider that replaces it (a reload's new Verifier): the
 * jwks_uri, so that the metadata is not read again for a reload, and the provider's wait on the metadata, so that
 * it is not asked before that time.
 */
export interface DiscoveryHandOver {
  /** The provider's Retry-After on the metadata, in ms since the epoch; 0 when none is in force. */
  askedUntil: number
  /** When the metadata would be read next (ms since the epoch); undefined when nothing was scheduled. */
  readAt: number | undefined
  failures: number
  error: string | null
  /** The jwks_uri found before; undefined while discovery has not succeeded. */
  jwksUri: string | undefined
}

/** The same issuer and metadata URL are the same discovery. */
function discoveryKeyOf (issuer: string, discoveryUrl: string | undefined): string {
  return `${issuer}\n${discoveryUrl ?? ''}`
}

/** Which discovery a provider does: the same issuer and metadata URL are the same discovery. */
export function discoveryOf (keys: KeyProvider): string | undefined {
  return keys instanceof DiscoveredKeys ? keys.discoveryKey : undefined
}

/**
 * Hands what `from` found and was told to `to` (not started yet); both do the same discovery. `found`: whether `to`
 * may use the jwks_uri without reading the metadata again (the provider's wait is handed over either way).
 */
export function carryDiscovery (from: KeyProvider, to: KeyProvider, found: boolean): void {
  if (!(from instanceof DiscoveredKeys) || !(to instanceof DiscoveredKeys) || from.discoveryKey !== to.discoveryKey) return
  const handOver = from.discoveryHandOver(Date.now())
  if (handOver !== undefined) to.adoptDiscovery(handOver, found)
}

export function createKeyProvider (
  issuer: IssuerConfig,
  cache: JwksCache<KeySet>,
  fetchConfig: FetchConfig,
  jwksConfig: JwksCacheConfig,
  logger: Logger,
  fetcher: typeof fetchJson | undefined,
  urlLeft: (url: string) => void,
  discoveries: Map<string, KeyProvider> = new Map()
): KeyProvider {
  if (!issuer.algorithms.some(isAsymmetricAlgorithm)) return new NoKeysNeeded(issuer.id, issuer.keys.kind)
  switch (issuer.keys.kind) {
    case 'inline': return new InlineKeys(new KeySet(issuer.keys.jwks), issuer.id)
    case 'jwksUri': return new RemoteKeys(cache, 'jwksUri', issuer.keys.jwksUri)
    case 'discovery': {
      // Issuers of the same issuer URL and metadata URL (several clients of one provider) share one discovery: the
      // metadata is read once for all, and a provider's Retry-After on it holds them back together.
      const key = discoveryKeyOf(issuer.issuer, issuer.keys.discoveryUrl)
      const shared = discoveries.get(key)
      if (shared !== undefined) return shared
      const keys = new DiscoveredKeys(cache, issuer, fetchConfig, jwksConfig, logger, fetcher, urlLeft)
      discoveries.set(key, keys)
      return keys
    }
  }
}
