/**
 * The JWKS cache: one entry per JWKS URL in a bounded LRU, each with its own life cycle.
 *
 *   fresh    (fetchedAt .. freshUntil)     served with no I/O; a timer refreshes proactively at the end
 *   stale    (freshUntil .. usableUntil)   still served (stale-if-error); a background refresh is started
 *   expired  (after usableUntil) / missing a request waits for a fetch; when it fails: keys_unavailable
 *
 * Freshness comes from Cache-Control max-age (less the Age header) within configured bounds, and is never
 * under MIN_FRESHNESS_SECONDS. A document without a usable key never replaces keys that had one: it counts
 * as a failed fetch. Failures back off exponentially and keep retrying in the background, so an issuer that
 * was down at start-up becomes ready by itself; a provider's Retry-After (429, 503) lengthens the wait, up to
 * backoffMaxSeconds (./retry-wait.ts), and no path fetches the URL before it ends.
 * Concurrent callers share one fetch. An unknown kid may force a refresh, limited by a cooldown and a
 * per-minute budget, so a flood of random kids costs the IdP only a few fetches a minute. Logout tokens (an
 * open route) have a budget of their own beside the one of the tokens of every other route, so that junk posted
 * to /backchannel-logout cannot spend the refreshes a user's token needs; the cooldown is shared.
 */
import { LRUCache } from 'lru-cache'
import type { FetchConfig, JsonWebKeySet, JwksCacheConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import { FetchError, fetchJson, type FetchJson } from '../net/fetch-json.js'
import { parseJwks } from './parse-jwks.js'
import { waitAfterFailure } from './retry-wait.js'
import { MAX_TIMER_MS } from '../timers.js'

/** The subset of pino the cache uses. */
export interface CacheLogger {
  debug (obj: Record<string, unknown>, msg: string): void
  info (obj: Record<string, unknown>, msg: string): void
  warn (obj: Record<string, unknown>, msg: string): void
  error (obj: Record<string, unknown>, msg: string): void
}

export type JwksFetchReason = 'warm' | 'background' | 'expired' | 'unknown_kid'

/**
 * On whose behalf an unknown kid asks for a refresh: a token of /verify and the other token routes, or a
 * back-channel logout token. Each has its own per-minute budget; a logout token whose refresh is refused is
 * told so (key_refresh_deferred) rather than given the old keys, since a 400 loses the logout for good.
 */
export type UnknownKidRequester = 'token' | 'logout'

export interface JwksFetchEvent {
  url: string
  outcome: 'success' | 'error'
  durationMs: number
  reason: JwksFetchReason
}

export interface JwksCacheOptions<T> extends JwksCacheConfig {
  fetchOpts: FetchConfig
  /** Turns a fetched JWKS into what callers use (for example a jose key set); called once per successful fetch. */
  createKeySet: (jwks: JsonWebKeySet, url: string) => T
  fetcher?: FetchJson
  /** Clock in ms since the epoch; injectable for tests. */
  now?: () => number
  logger?: CacheLogger
  /** Called after every fetch attempt, for metrics. */
  onFetch?: (event: JwksFetchEvent) => void
  /** How many usable keys a key set has, for status(); default: every key in the JWKS. */
  countKeys?: (set: T) => number
  /** Called each time a stale key set is served to a request (stale-if-error), for metrics. */
  onStale?: (url: string) => void
  /** The configured issuer id a URL's keys are for, named in the cache's warnings (several providers: which is down). */
  issuerOf?: (url: string) => string
  /** Called when a fetched key set replaces the URL's keys (not for one refused, e.g. with no usable key). */
  onKeySetAccepted?: (set: T, url: string) => void
}

/**
 * One URL's state, handed from a cache to the one that replaces it (a reload's new Verifier, src/core/verifier.ts
 * takeOver): the key set it holds, when it was fetched and what its freshness came from (the new cache counts
 * freshness and stale-if-error under its own settings), and the fetch state: failures, the backoff or the
 * provider's Retry-After in force, the unknown-kid cooldown and budgets. The new cache neither asks the provider
 * again for keys it already has nor before the time it gave.
 */
export interface HandedOverEntry<T> extends Readonly<FetchState> {
  readonly url: string
  readonly keys?: HandedOverKeys<T>
}

/** What a URL's entry knows of its fetches, apart from the keys they gave. */
export interface FetchState {
  /** When the last fetch attempt started (any reason); the unknown-kid cooldown counts from it. */
  lastAttemptAt?: number
  consecutiveFailures: number
  /** No fetch on behalf of a request before this time (ms); 0 when not backing off. */
  backoffUntil: number
  /**
   * Until when the provider asked not to be asked again (its Retry-After, capped; never after backoffUntil); 0 when it
   * did not. Unlike our own backoff, it holds back warm() and a reload's new cache too.
   */
  providerWaitUntil: number
  lastError?: string
  /** The last failure was an answer: a key set without usable keys (so an unknown kid is not one of them). */
  lastFailureAnswered: boolean
  /** Start times of unknown-kid refreshes within the last minute, per requester (each has its own budget). */
  unknownKidRefreshes: Record<UnknownKidRequester, number[]>
}

export interface HandedOverKeys<T> {
  set: T
  count: number
  /** ms since the epoch. */
  fetchedAt: number
  /** The response's Cache-Control and Age, which its freshness is counted from. */
  cacheControl: string | undefined
  ageSeconds: number | undefined
}

/** What a new cache takes from the entries handed over: everything, or only the provider's waits (Retry-After). */
export interface AdoptOptions {
  /**
   * Whether the key sets are taken: false when they may not have passed the new configuration's fetch rules
   * (a smaller fetch.maxResponseBytes), so that they are fetched again; the provider's waits are taken either way.
   */
  keys: boolean
}

export type JwksState = 'fresh' | 'stale' | 'expired' | 'missing'

export interface JwksStatus {
  /** stale: past freshness but still usable (stale-if-error); expired: no longer usable. */
  state: JwksState
  keyCount?: number
  /** Times in ms since the epoch. */
  fetchedAt?: number
  freshUntil?: number
  usableUntil?: number
  lastError?: string
  consecutiveFailures: number
  /** While the provider's Retry-After (capped) holds fetches back: when it ends, in ms since the epoch. */
  retryAfterUntil?: number
}

interface LoadedKeys<T> extends HandedOverKeys<T> {
  freshUntil: number
  usableUntil: number
}

interface Entry<T> extends FetchState {
  readonly url: string
  keys?: LoadedKeys<T>
  inFlight?: Promise<T>
  timer?: ReturnType<typeof setTimeout>
  staleWarned: boolean
  /** Evicted or closed: a fetch still in flight must not schedule timers for it. */
  disposed: boolean
}

const MINUTE_MS = 60_000
/** Retries are spread over the last 10 % of each backoff step so that replicas do not retry in step. */
const BACKOFF_JITTER = 0.1

/**
 * Keys stay fresh at least this long whatever the configuration and the IdP say (minFreshnessSeconds 0 with
 * max-age=0 would otherwise refetch back to back, and serve every request as stale).
 */
export const MIN_FRESHNESS_SECONDS = 1

const silentLogger: CacheLogger = { debug () {}, info () {}, warn () {}, error () {} }

type FreshnessConfig = Pick<JwksCacheConfig, 'defaultFreshnessSeconds' | 'minFreshnessSeconds' | 'maxFreshnessSeconds'>

/**
 * Seconds a JWKS response stays fresh: its Cache-Control max-age (RFC 9111 §5.2.2.1) less its age, the
 * response's Age header (RFC 9111 §4.2.3: a CDN may have held it that long already; not below 0), or the
 * default when the header is absent, unparseable, or says no-store/no-cache; clamped into [min, max] either
 * way, and never under MIN_FRESHNESS_SECONDS. s-maxage is for shared caches and is ignored.
 */
export function freshnessFromCacheControl (header: string | null | undefined, cfg: FreshnessConfig, ageSeconds = 0): number {
  const clamp = (seconds: number): number =>
    Math.max(MIN_FRESHNESS_SECONDS, Math.min(cfg.maxFreshnessSeconds, Math.max(cfg.minFreshnessSeconds, seconds)))
  if (header === null || header === undefined) return clamp(cfg.defaultFreshnessSeconds)

  let maxAge: number | undefined
  for (const directive of header.split(',')) {
    const [rawName = '', ...rest] = directive.split('=')
    const name = rawName.trim().toLowerCase()
    if (name === 'no-store' || name === 'no-cache') return clamp(cfg.defaultFreshnessSeconds)
    if (name !== 'max-age') continue
    const value = rest.join('=').trim().replace(/^"(.*)"$/, '$1')
    // Two different max-age values make the header invalid (RFC 9111 §4.2.1).
    if (!/^\d+$/.test(value) || (maxAge !== undefined && maxAge !== Number(value))) {
      return clamp(cfg.defaultFreshnessSeconds)
    }
    maxAge = Number(value)
  }
  return clamp(maxAge === undefined ? cfg.defaultFreshnessSeconds : Math.max(0, maxAge - ageSeconds))
}

function checkOptions (options: JwksCacheConfig): void {
  if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
    throw new TypeError('jwks.maxEntries must be a positive integer')
  }
  const durations = [
    'defaultFreshnessSeconds', 'minFreshnessSeconds', 'maxFreshnessSeconds', 'staleIfErrorSeconds',
    'unknownKidCooldownSeconds', 'unknownKidRefreshesPerMinute', 'backoffInitialSeconds', 'backoffMaxSeconds'
  ] as const
  for (const name of durations) {
    const value = options[name]
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`jwks.${name} must be a finite number >= 0`)
  }
  if (options.minFreshnessSeconds > options.maxFreshnessSeconds) {
    throw new TypeError('jwks.minFreshnessSeconds must not exceed jwks.maxFreshnessSeconds')
  }
  if (options.backoffInitialSeconds <= 0 || options.backoffInitialSeconds > options.backoffMaxSeconds) {
    throw new TypeError('jwks.backoffInitialSeconds must be > 0 and not exceed jwks.backoffMaxSeconds')
  }
}

export class JwksCache<T> {
  readonly #entries: LRUCache<string, Entry<T>>
  readonly #config: JwksCacheConfig
  readonly #countKeys: ((set: T) => number) | undefined
  readonly #fetchOpts: FetchConfig
  readonly #createKeySet: (jwks: JsonWebKeySet, url: string) => T
  readonly #onKeySetAccepted: ((set: T, url: string) => void) | undefined
  readonly #fetcher: FetchJson
  readonly #now: () => number
  readonly #logger: CacheLogger
  readonly #onFetch: ((event: JwksFetchEvent) => void) | undefined
  readonly #onStale: ((url: string) => void) | undefined
  readonly #issuerOf: (url: string) => string | undefined
  /** Entries taken over from the cache this one replaces, by URL, and whether their keys are: applied when the URL's entry is made. */
  readonly #adopted = new Map<string, { entry: HandedOverEntry<T>, keys: boolean }>()
  #keySetsTakenOver = 0
  #closed = false

  constructor (options: JwksCacheOptions<T>) {
    checkOptions(options)
    this.#config = options
    this.#countKeys = options.countKeys
    this.#fetchOpts = options.fetchOpts
    this.#createKeySet = options.createKeySet
    this.#onKeySetAccepted = options.onKeySetAccepted
    this.#fetcher = options.fetcher ?? fetchJson
    this.#now = options.now ?? Date.now
    this.#logger = options.logger ?? silentLogger
    this.#onFetch = options.onFetch
    this.#onStale = options.onStale
    this.#issuerOf = options.issuerOf ?? (() => undefined)
    this.#entries = new LRUCache<string, Entry<T>>({
      max: options.maxEntries,
      dispose: (entry) => {
        entry.disposed = true
        clearTimeout(entry.timer)
        entry.timer = undefined
      }
    })
  }

  /**
   * The key set for `url` when it is fresh, without a promise (the common case on every new token);
   * undefined when it is missing, stale or expired, and get() decides what to do.
   */
  peekFresh (url: string): T | undefined {
    const keys = this.#entries.get(url)?.keys
    return keys !== undefined && this.#now() < keys.freshUntil ? keys.set : undefined
  }

  /** Whether `url` has keys that may still be used at `now` (fresh or stale), without a promise or a fetch. */
  isUsable (url: string, now: number): boolean {
    const keys = this.#entries.get(url)?.keys
    return keys !== undefined && now < keys.usableUntil
  }

  /**
   * The key set for a request. Fresh or stale keys are returned without waiting; only when there are no
   * usable keys does the request wait for a fetch. Throws keys_unavailable when none can be had.
   */
  async get (url: string): Promise<T> {
    const fresh = this.peekFresh(url)
    if (fresh !== undefined) return fresh
    const entry = this.#entry(url)
    const now = this.#now()
    const keys = entry.keys
    if (keys !== undefined && now < keys.usableUntil) {
      this.#noteStale(entry, keys, now)
      if (entry.inFlight === undefined && now >= entry.backoffUntil) this.#background(entry)
      return keys.set
    }
    if (entry.inFlight === undefined && now < entry.backoffUntil) throw this.#unavailable(entry, now)
    try {
      return await this.#refresh(entry, 'expired')
    } catch (err) {
      throw this.#unavailable(entry, this.#now(), err)
    }
  }

  /**
   * Called when a token's kid is not in the key set: refreshes unless the cooldown, the per-minute budget
   * or a backoff forbids it (callers arriving during a fetch share it). Returns the usable key set
   * afterwards, changed or not, or undefined when there is none. When the provider cannot be asked (the
   * refresh failed, or the last fetch failed and a backoff, the cooldown or the budget forbids another),
   * nobody can tell whether the kid is a key just rotated in: keys_unavailable (503, retry later), not a
   * "no such key" that would log a user out; unless the failure was an answer, a key set without usable
   * keys. A failed refresh keeps the old keys.
   *
   * For a logout token (requester 'logout'), a refresh refused by the cooldown, the budget or a backoff throws
   * key_refresh_deferred, with the seconds until one is allowed: the keys as last fetched cannot tell a key
   * just rotated in from a forged kid, and the provider rarely sends a logout again after a 400. A kid still
   * unknown after a fetch (this one, or one in flight that it shared) is not: the caller answers key_not_found.
   */
  async refreshForUnknownKid (url: string, requester: UnknownKidRequester = 'token'): Promise<T | undefined> {
    const entry = this.#entry(url)
    if (entry.inFlight === undefined) {
      const now = this.#now()
      const refused = this.#unknownKidRefusal(entry, now, requester)
      if (refused !== undefined) {
        this.#logger.debug({ url, reason: refused, requester }, 'unknown kid: JWKS refresh skipped')
        // Whatever refuses the refresh (a backoff, the cooldown, the budget), the provider's last word decides.
        if (entry.consecutiveFailures > 0 && !entry.lastFailureAnswered) throw this.#unavailable(entry, now)
        if (requester === 'logout') {
          throw new VerificationError('key_refresh_deferred', { retryAfterSeconds: Math.max(1, Math.ceil(this.#refreshAllowedIn(entry, now, requester) / 1000)) })
        }
        return this.#usable(entry, now)
      }
      entry.unknownKidRefreshes[requester].push(now)
    }
    try {
      await this.#refresh(entry, 'unknown_kid')
    } catch (err) {
      // Logged by #fetch; the previous keys stay in place.
      if (!entry.lastFailureAnswered) throw this.#unavailable(entry, this.#now(), err)
    }
    return this.#usable(entry, this.#now())
  }

  /**
   * First fetch at start-up (or of a URL discovery found). Never throws: on failure a retry is already scheduled
   * with backoff. While the provider's Retry-After holds fetches back it fetches nothing: the scheduled retry will.
   */
  async warm (url: string): Promise<void> {
    const entry = this.#entry(url)
    const now = this.#now()
    if (entry.keys !== undefined && now < entry.keys.freshUntil) return
    // Our own backoff does not hold warm() back (a fetch that succeeds ends it: a reload asks again at once for keys
    // whose refresh fails), but the provider's Retry-After does: a second issuer with the same JWKS URL, a discovery
    // that found it again, or a reload's new Verifier must not ask before the time it gave, even when our own backoff
    // runs longer: the retry comes at the provider's time then, as warm() would have asked at once without it.
    if (entry.inFlight === undefined && now < entry.providerWaitUntil) {
      this.#schedule(entry, entry.providerWaitUntil - now)
      return
    }
    try {
      await this.#refresh(entry, 'warm')
    } catch {
      // Logged by #fetch as a warning; a retry is scheduled.
    }
  }

  /** For readiness: never causes I/O and does not count as a use of the entry. */
  status (url: string): JwksStatus {
    const entry = this.#entries.peek(url)
    if (entry === undefined) return { state: 'missing', consecutiveFailures: 0 }
    const keys = entry.keys
    const now = this.#now()
    const state: JwksState = keys === undefined
      ? 'missing'
      : now < keys.freshUntil ? 'fresh' : now < keys.usableUntil ? 'stale' : 'expired'
    return {
      state,
      keyCount: keys?.count,
      fetchedAt: keys?.fetchedAt,
      freshUntil: keys?.freshUntil,
      usableUntil: keys?.usableUntil,
      lastError: entry.lastError,
      consecutiveFailures: entry.consecutiveFailures,
      ...(now < entry.providerWaitUntil ? { retryAfterUntil: entry.providerWaitUntil } : {})
    }
  }

  /**
   * Every URL's entry, for the cache that replaces this one (adopt()): read, never changed, by the new cache when it
   * first uses the URL, so it sees this cache's state as of then (which keeps changing until this one is closed).
   */
  handOver (): ReadonlyArray<HandedOverEntry<T>> {
    return [...this.#entries.values()]
  }

  /**
   * Takes over the entries of the cache this one replaces (call before any use). With `keys`, a URL's key set is
   * used as it was, fresh and stale under this cache's freshness settings, until its refresh, which comes when it
   * would have come (the end of freshness, or the backoff's retry): neither warm() nor a request fetches fresh keys
   * again; keys whose last refresh failed are asked for once more by warm(), as our own backoff never holds it back.
   * Without, or for keys already expired under this cache's settings, only a provider's wait in force is taken: the
   * URL is not fetched before its time, warm() included, and is retried then. Only URLs this cache comes to use get
   * an entry: those of issuers the new configuration dropped cost nothing.
   */
  adopt (entries: ReadonlyArray<HandedOverEntry<T>>, options: AdoptOptions): void {
    for (const entry of entries) this.#adopted.set(entry.url, { entry, keys: options.keys })
  }

  /** How many key sets this cache took over (adopt()) and uses: URLs a reload did not ask its provider for. */
  get keySetsTakenOver (): number {
    return this.#keySetsTakenOver
  }

  /** A URL no longer in use (a provider moved its jwks_uri): its entry goes, and with it its timers. */
  forget (url: string): void {
    this.#entries.delete(url)
  }

  /** Clears every timer and entry. Fetches in flight finish (bounded by fetch.timeoutMs) and schedule nothing. */
  close (): void {
    this.#closed = true
    this.#entries.clear()
  }

  #entry (url: string): Entry<T> {
    let entry = this.#entries.get(url)
    if (entry === undefined) {
      entry = { url, consecutiveFailures: 0, backoffUntil: 0, providerWaitUntil: 0, unknownKidRefreshes: { token: [], logout: [] }, lastFailureAnswered: false, staleWarned: false, disposed: false }
      if (!this.#closed) this.#entries.set(url, entry)
      else entry.disposed = true
      this.#applyAdopted(entry)
    }
    return entry
  }

  /** A new entry whose URL the cache this one replaces had: its keys are used, its waits hold, its refresh comes in time. */
  #applyAdopted (entry: Entry<T>): void {
    const taken = this.#adopted.get(entry.url)
    if (taken === undefined) return
    this.#adopted.delete(entry.url)
    const handed = taken.entry
    const now = this.#now()
    const keys = taken.keys && handed.keys !== undefined ? this.#loadedKeys(handed.keys) : undefined
    if (keys !== undefined && now < keys.usableUntil) {
      entry.keys = keys
      entry.lastAttemptAt = handed.lastAttemptAt
      entry.lastFailureAnswered = handed.lastFailureAnswered
      entry.unknownKidRefreshes = { token: [...handed.unknownKidRefreshes.token], logout: [...handed.unknownKidRefreshes.logout] }
      this.#keySetsTakenOver++
      this.#onKeySetAccepted?.(keys.set, entry.url)
      this.#logger.debug({ url: entry.url, keyCount: keys.count, fetchedAt: keys.fetchedAt, freshUntil: keys.freshUntil }, 'JWKS taken over from the replaced cache')
      entry.backoffUntil = handed.backoffUntil
    } else if (now < handed.providerWaitUntil) {
      // Only the provider's wait is taken, not our own backoff beyond it (a failure of ours is no reason to wait).
      entry.backoffUntil = handed.providerWaitUntil
    } else {
      return
    }
    entry.consecutiveFailures = handed.consecutiveFailures
    entry.providerWaitUntil = handed.providerWaitUntil
    entry.lastError = handed.lastError
    const refreshAt = entry.keys === undefined || entry.consecutiveFailures > 0 ? entry.backoffUntil : entry.keys.freshUntil
    this.#schedule(entry, refreshAt - now)
  }

  /** A key set's times under this cache's freshness settings, counted from when it was fetched. */
  #loadedKeys (keys: HandedOverKeys<T>): LoadedKeys<T> {
    const freshnessSeconds = freshnessFromCacheControl(keys.cacheControl, this.#config, keys.ageSeconds)
    const freshUntil = keys.fetchedAt + freshnessSeconds * 1000
    return { ...keys, freshUntil, usableUntil: freshUntil + this.#config.staleIfErrorSeconds * 1000 }
  }

  #usable (entry: Entry<T>, now: number): T | undefined {
    return entry.keys !== undefined && now < entry.keys.usableUntil ? entry.keys.set : undefined
  }

  #unknownKidRefusal (entry: Entry<T>, now: number, requester: UnknownKidRequester): string | undefined {
    if (now < entry.backoffUntil) return 'backoff'
    const cooldownMs = this.#config.unknownKidCooldownSeconds * 1000
    if (entry.lastAttemptAt !== undefined && now - entry.lastAttemptAt < cooldownMs) return 'cooldown'
    const recent = entry.unknownKidRefreshes[requester].filter((t) => now - t < MINUTE_MS)
    entry.unknownKidRefreshes[requester] = recent
    if (recent.length >= this.#config.unknownKidRefreshesPerMinute) return 'rate_limit'
    return undefined
  }

  /**
   * Milliseconds until #unknownKidRefusal would let `requester` refresh (the backoff, the cooldown and the
   * budget all over); with no budget at all (unknownKidRefreshesPerMinute: 0), until the scheduled refresh.
   */
  #refreshAllowedIn (entry: Entry<T>, now: number, requester: UnknownKidRequester): number {
    let at = Math.max(entry.backoffUntil, (entry.lastAttemptAt ?? 0) + this.#config.unknownKidCooldownSeconds * 1000)
    const limit = this.#config.unknownKidRefreshesPerMinute
    const recent = entry.unknownKidRefreshes[requester]
    if (limit === 0) at = Math.max(at, entry.keys?.freshUntil ?? at)
    else if (recent.length >= limit) at = Math.max(at, (recent[recent.length - limit] as number) + MINUTE_MS)
    return at - now
  }

  #noteStale (entry: Entry<T>, keys: LoadedKeys<T>, now: number): void {
    this.#onStale?.(entry.url)
    const fields = { url: entry.url, staleForMs: now - keys.freshUntil, usableUntil: keys.usableUntil }
    // A routine refresh may simply not have finished yet; only a failed one makes this worth a warning.
    if (entry.consecutiveFailures > 0 && !entry.staleWarned) {
      entry.staleWarned = true
      this.#logger.warn({ issuer: this.#issuerOf(entry.url), ...fields, lastError: entry.lastError },
        `serving stale JWKS ${entry.url} while its provider cannot be reached (usable until ${new Date(keys.usableUntil).toISOString()})`)
    } else {
      this.#logger.debug(fields, 'serving stale JWKS')
    }
  }

  #unavailable (entry: Entry<T>, now: number, cause?: unknown): VerificationError {
    const retryAfterSeconds = Math.max(1, Math.ceil((entry.backoffUntil - now) / 1000))
    return new VerificationError('keys_unavailable', { retryAfterSeconds }, cause === undefined ? undefined : { cause })
  }

  #background (entry: Entry<T>): void {
    this.#refresh(entry, 'background').catch(() => {
      // Logged by #fetch; a retry is scheduled.
    })
  }

  /** Shares the fetch in flight, if any; otherwise starts one. */
  #refresh (entry: Entry<T>, reason: JwksFetchReason): Promise<T> {
    if (entry.inFlight !== undefined) return entry.inFlight
    const inFlight = this.#fetch(entry, reason).finally(() => {
      entry.inFlight = undefined
    })
    entry.inFlight = inFlight
    return inFlight
  }

  async #fetch (entry: Entry<T>, reason: JwksFetchReason): Promise<T> {
    const { url } = entry
    clearTimeout(entry.timer)
    entry.timer = undefined
    entry.lastAttemptAt = this.#now()
    const started = performance.now()

    let loaded: { set: T, count: number, cacheControl: string | undefined, ageSeconds: number | undefined } | undefined
    let failure: unknown
    try {
      const result = await this.#fetcher(url, this.#fetchOpts)
      const jwks = parseJwks(result.body, result.url)
      const set = this.#createKeySet(jwks, url)
      const count = this.#countKeys?.(set) ?? jwks.keys.length
      // An IdP or CDN glitch (an empty or broken key set) must not take good keys away: they stay, and go
      // stale and then expire under the usual rules unless a later fetch gives usable keys.
      if (count === 0 && (entry.keys?.count ?? 0) > 0) {
        throw new FetchError('no_usable_keys', result.url,
          `The JWKS at ${result.url} has no usable keys (${jwks.keys.length} listed): keeping the previous keys`)
      }
      loaded = { set, count, cacheControl: result.cacheControl, ageSeconds: result.ageSeconds }
    } catch (err) {
      failure = err
    }
    const durationMs = performance.now() - started
    // A closed cache's fetch (its Verifier replaced or removed by a reload) counts for nobody: its events would bring
    // back the metrics series of issuers no longer in force.
    if (!this.#closed) this.#onFetch?.({ url, outcome: loaded === undefined ? 'error' : 'success', durationMs, reason })

    if (loaded === undefined) {
      entry.consecutiveFailures++
      const now = this.#now()
      // A provider's Retry-After (429, 503) lengthens the backoff, up to backoffMaxSeconds; backoffUntil then
      // holds back every fetch of the URL alike: requests, unknown kids, warm() and the retry timer.
      const wait = waitAfterFailure(failure, this.#backoffMs(entry.consecutiveFailures), this.#config.backoffMaxSeconds * 1000, 'jwks.backoffMaxSeconds', now)
      const delayMs = wait.delayMs
      const reported = failure instanceof Error ? failure.message : String(failure)
      const message = wait.note === undefined ? reported : `${reported}; ${wait.note}`
      entry.backoffUntil = now + delayMs
      entry.providerWaitUntil = wait.askedMs === undefined ? 0 : now + wait.askedMs
      entry.lastError = message
      entry.lastFailureAnswered = failure instanceof FetchError && failure.kind === 'no_usable_keys'
      this.#logger.warn(
        {
          issuer: this.#issuerOf(url),
          url,
          reason,
          error: message,
          consecutiveFailures: entry.consecutiveFailures,
          retryInSeconds: Math.ceil(delayMs / 1000),
          ...(wait.note === undefined ? {} : { retryNotBefore: new Date(entry.backoffUntil).toISOString() })
        },
        `JWKS fetch from ${url} failed: ${message}`)
      this.#schedule(entry, delayMs)
      throw failure
    }

    const recovered = entry.consecutiveFailures > 0 || entry.keys === undefined
    entry.keys = this.#loadedKeys({ set: loaded.set, count: loaded.count, fetchedAt: this.#now(), cacheControl: loaded.cacheControl, ageSeconds: loaded.ageSeconds })
    const freshnessSeconds = (entry.keys.freshUntil - entry.keys.fetchedAt) / 1000
    entry.consecutiveFailures = 0
    entry.backoffUntil = 0
    entry.providerWaitUntil = 0
    entry.lastError = undefined
    this.#onKeySetAccepted?.(loaded.set, url)
    entry.staleWarned = false
    const fields = { issuer: this.#issuerOf(url), url, reason, keyCount: loaded.count, freshnessSeconds, durationMs: Math.round(durationMs) }
    if (recovered) this.#logger.info(fields, `JWKS ${url} loaded`)
    else this.#logger.debug(fields, `JWKS ${url} refreshed`)
    this.#schedule(entry, freshnessSeconds * 1000)
    return loaded.set
  }

  #backoffMs (failures: number): number {
    const { backoffInitialSeconds, backoffMaxSeconds } = this.#config
    const base = Math.min(backoffInitialSeconds * 2 ** Math.min(failures - 1, 52), backoffMaxSeconds) * 1000
    return base * (1 - BACKOFF_JITTER * Math.random())
  }

  /** The next background fetch: proactive at the end of freshness, or a retry after a failure. */
  #schedule (entry: Entry<T>, delayMs: number): void {
    clearTimeout(entry.timer)
    entry.timer = undefined
    if (entry.disposed || this.#closed) return
    entry.timer = setTimeout(() => {
      entry.timer = undefined
      this.#background(entry)
    }, Math.min(Math.max(delayMs, 0), MAX_TIMER_MS))
    entry.timer.unref()
  }
}
