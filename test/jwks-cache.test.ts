import t from 'tap'
import type { JsonWebKeySet, JwksCacheConfig } from '../src/config/types.js'
import { VerificationError } from '../src/errors.js'
import { buildApp } from '../src/app.js'
import { Verifier } from '../src/core/verifier.js'
import { JwksCache, MIN_FRESHNESS_SECONDS, freshnessFromCacheControl, type CacheLogger, type JwksFetchEvent } from '../src/jwks/cache.js'
import { fetchJson, type FetchJson } from '../src/net/fetch-json.js'
import { configFor, JWKS_CACHE_TEST_CONFIG } from './helpers/config.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { waitFor } from './helpers/wait-for.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const config = JWKS_CACHE_TEST_CONFIG
/** The part of a tap test the helpers need. */
interface Teardown { teardown: (fn: () => unknown) => void }

const fetchOpts = { timeoutMs: 2000, maxResponseBytes: 65536 }
const keyA = makeKey('ES256')
const keyB = makeKey('ES256')
const jwksA = jwksOf(keyA)
const jwksB = jwksOf(keyA, keyB)

interface LogLine { level: keyof CacheLogger, obj: Record<string, unknown>, msg: string }

interface Harness {
  cache: JwksCache<JsonWebKeySet>
  clock: { now: number }
  events: JwksFetchEvent[]
  logs: LogLine[]
  created: () => number
  /** Fetches started: counted when the cache calls its fetcher, synchronously, before any I/O. */
  fetches: () => number
  /** Fetches ended (answered, failed or held and released), whether or not the cache reported them. */
  finished: () => number
  /** Holds every fetch's answer (once the IdP has sent it) until the returned function is called. */
  hold: () => () => void
  /** The next fetch event; rejects after timeoutMs. Resumes the caller right after the cache's own handling of it. */
  nextEvent: (timeoutMs?: number) => Promise<JwksFetchEvent>
}

/** A cache with a fake clock (unless realClock), recording fetch events, log lines, fetches and key-set creations. */
function harness (t: Teardown, overrides: Partial<JwksCacheConfig> = {}, realClock = false): Harness {
  const clock = { now: 1_700_000_000_000 }
  const events: JwksFetchEvent[] = []
  const logs: LogLine[] = []
  let created = 0
  let fetches = 0
  let finished = 0
  let gate: Promise<void> | undefined
  let waiters: Array<(event: JwksFetchEvent) => void> = []
  const fetcher: FetchJson = async (url, opts) => {
    fetches++
    try {
      const result = await fetchJson(url, opts)
      if (gate !== undefined) await gate
      return result
    } finally {
      finished++
    }
  }
  const log = (level: keyof CacheLogger) => (obj: Record<string, unknown>, msg: string): void => { logs.push({ level, obj, msg }) }
  const cache = new JwksCache<JsonWebKeySet>({
    ...config,
    ...overrides,
    fetchOpts,
    fetcher,
    createKeySet: (jwks) => {
      created++
      return jwks
    },
    ...(realClock ? {} : { now: () => clock.now }),
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    onFetch: (event) => {
      events.push(event)
      const woken = waiters
      waiters = []
      for (const wake of woken) wake(event)
    }
  })
  t.teardown(() => cache.close())
  const hold = (): () => void => {
    let release!: () => void
    gate = new Promise<void>((resolve) => { release = resolve })
    return () => {
      gate = undefined
      release()
    }
  }
  const nextEvent = async (timeoutMs = 8000): Promise<JwksFetchEvent> => await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters = waiters.filter((w) => w !== wake)
      reject(new Error(`no fetch event within ${timeoutMs} ms`))
    }, timeoutMs)
    const wake = (event: JwksFetchEvent): void => {
      clearTimeout(timer)
      resolve(event)
    }
    waiters.push(wake)
  })
  return { cache, clock, events, logs, created: () => created, fetches: () => fetches, finished: () => finished, hold, nextEvent }
}

async function startIdp (t: Teardown): Promise<JwksServer> {
  const idp = await startJwksServer({ json: jwksA, cacheControl: 'max-age=60' })
  t.teardown(() => idp.close())
  return idp
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function unavailable (promise: Promise<unknown>): Promise<VerificationError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof VerificationError) return err
    throw err
  }
  throw new Error('expected keys_unavailable')
}

t.test('freshnessFromCacheControl clamps max-age into the configured bounds', async (t) => {
  const cases: Array<[string | undefined, number]> = [
    [undefined, 600],
    ['', 600],
    ['max-age=300', 300],
    ['public, max-age=120, must-revalidate', 120],
    ['MAX-AGE=120', 120],
    ['max-age="120"', 120],
    [' max-age = 120 ', 120],
    ['max-age=10', 60],
    ['max-age=0', 60],
    ['max-age=999999', 3600],
    ['max-age=99999999999999999999999', 3600],
    ['s-maxage=100', 600],
    ['s-maxage=100, max-age=200', 200],
    ['no-store', 600],
    ['no-cache, max-age=120', 600],
    ['max-age=120, no-store', 600],
    ['max-age=abc', 600],
    ['max-age=-5', 600],
    ['max-age=1.5', 600],
    ['max-age=', 600],
    ['max-age=100, max-age=200', 600],
    ['max-age=100, max-age=100', 100],
    ['private', 600]
  ]
  for (const [header, expected] of cases) t.equal(freshnessFromCacheControl(header, config), expected, String(header))
  t.equal(freshnessFromCacheControl(undefined, { ...config, defaultFreshnessSeconds: 5 }), 60, 'the default is clamped too')
})

t.test('options are checked eagerly', async (t) => {
  const base = { ...config, fetchOpts, createKeySet: (j: JsonWebKeySet) => j }
  t.throws(() => new JwksCache({ ...base, maxEntries: 0 }), /jwks.maxEntries/)
  t.throws(() => new JwksCache({ ...base, staleIfErrorSeconds: -1 }), /jwks.staleIfErrorSeconds/)
  t.throws(() => new JwksCache({ ...base, minFreshnessSeconds: 7200 }), /jwks.minFreshnessSeconds/)
  t.throws(() => new JwksCache({ ...base, backoffInitialSeconds: 0 }), /jwks.backoffInitialSeconds/)
})

t.test('fresh hits do no I/O', async (t) => {
  const idp = await startIdp(t)
  const { cache, created, clock, events } = harness(t)
  t.same(cache.status(idp.jwksUrl), { state: 'missing', consecutiveFailures: 0 })
  t.equal(cache.peekFresh(idp.jwksUrl), undefined, 'peekFresh: nothing before the first fetch (and it fetches nothing)')
  t.equal(idp.requests('/jwks'), 0)
  const first = await cache.get(idp.jwksUrl)
  t.same(first, jwksA)
  for (let i = 0; i < 100; i++) {
    clock.now += 500
    t.equal(await cache.get(idp.jwksUrl), first)
    t.equal(cache.peekFresh(idp.jwksUrl), first, 'peekFresh: the same set, without a promise')
  }
  t.equal(idp.requests('/jwks'), 1)
  t.equal(created(), 1)
  t.match(events, [{ url: idp.jwksUrl, outcome: 'success', reason: 'expired' }])
  const status = cache.status(idp.jwksUrl)
  t.match(status, { state: 'fresh', keyCount: 1, consecutiveFailures: 0, lastError: undefined })
  t.equal(status.freshUntil! - status.fetchedAt!, 60_000, 'max-age=60')
  t.equal(status.usableUntil! - status.freshUntil!, 3_600_000, 'staleIfErrorSeconds')
})

t.test('stale keys are served at once, with exactly one background refresh', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events, fetches, hold } = harness(t)
  await cache.get(idp.jwksUrl)
  idp.set({ json: jwksB, cacheControl: 'max-age=60' })
  clock.now += 61_000
  t.equal(cache.status(idp.jwksUrl).state, 'stale')
  t.equal(cache.peekFresh(idp.jwksUrl), undefined, 'peekFresh: stale keys go through get(), which refreshes them')

  // The refresh's answer is held until the test releases it: a get() that waited for it could not resolve.
  const release = hold()
  t.teardown(release)
  let answered = 0
  const requests = Array.from({ length: 20 }, async () => {
    const keys = await cache.get(idp.jwksUrl)
    answered++
    return keys
  })
  t.equal(fetches(), 2, 'one background refresh for the 20 requests')
  const allAnswered = await waitFor('the 20 requests', () => answered === 20).then(() => true, () => false)
  t.ok(allAnswered, `nobody waited for the refresh: ${answered} of 20 answered while it was held`)
  t.equal(events.length, 1, 'the refresh had not finished')
  release()
  const served = await Promise.all(requests)
  t.ok(served.every((keys) => keys.keys.length === 1), 'the old keys were served')

  await waitFor('the background refresh', () => events.length === 2)
  t.equal(idp.requests('/jwks'), 2, 'one background refresh')
  t.match(events[1], { outcome: 'success', reason: 'background' })
  t.equal((await cache.get(idp.jwksUrl)).keys.length, 2, 'the refreshed keys are served')
  t.equal(cache.status(idp.jwksUrl).state, 'fresh')
  t.equal(idp.requests('/jwks'), 2)
})

t.test('IdP down: stale keys within the window, then keys_unavailable', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events, logs } = harness(t)
  await cache.get(idp.jwksUrl)
  const fetchedAt = clock.now
  idp.set({ status: 503 })

  clock.now += 61_000
  t.same(await cache.get(idp.jwksUrl), jwksA, 'stale served')
  await waitFor('the failed background refresh', () => events.length === 2)
  t.match(events[1], { outcome: 'error', reason: 'background' })
  t.match(cache.status(idp.jwksUrl), {
    state: 'stale', consecutiveFailures: 1, lastError: `GET ${idp.jwksUrl} answered HTTP 503`
  })
  const failure = logs.find((line) => line.level === 'warn' && line.msg.startsWith('JWKS fetch'))
  t.equal(failure?.msg, `JWKS fetch from ${idp.jwksUrl} failed: GET ${idp.jwksUrl} answered HTTP 503`)

  // Requests during the backoff: stale keys, no fetch, one warning for the whole stale period.
  for (let i = 0; i < 50; i++) t.same(await cache.get(idp.jwksUrl), jwksA)
  t.equal(idp.requests('/jwks'), 2)
  clock.now += 1_800_000
  t.same(await cache.get(idp.jwksUrl), jwksA, 'still within staleIfErrorSeconds')
  await waitFor('another background attempt', () => events.length === 3)
  for (let i = 0; i < 10; i++) await cache.get(idp.jwksUrl)
  t.equal(logs.filter((line) => line.level === 'warn' && line.msg.startsWith('serving stale')).length, 1,
    'warned once per stale period')

  clock.now = fetchedAt + (60 + 3600) * 1000 + 1
  t.equal(cache.status(idp.jwksUrl).state, 'expired')
  const err = await unavailable(cache.get(idp.jwksUrl))
  t.equal(err.code, 'keys_unavailable')
  t.equal(err.status, 503)
  t.equal(idp.requests('/jwks'), 4, 'past the window a request waits for a fetch')
  t.ok(err.details.retryAfterSeconds! >= 108 && err.details.retryAfterSeconds! <= 120, `third backoff step: ${err.details.retryAfterSeconds}`)

  const fast = await unavailable(cache.get(idp.jwksUrl))
  t.equal(idp.requests('/jwks'), 4, 'during the backoff: fail fast without a fetch')
  t.ok(fast.details.retryAfterSeconds! >= 1)

  // The IdP comes back: the next attempt after the backoff recovers.
  idp.set({ json: jwksB, cacheControl: 'max-age=60' })
  clock.now += 121_000
  t.equal((await cache.get(idp.jwksUrl)).keys.length, 2)
  t.match(cache.status(idp.jwksUrl), { state: 'fresh', consecutiveFailures: 0, lastError: undefined })
})

t.test('unknown kid: cooldown and per-minute rate limit', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events } = harness(t)
  await cache.get(idp.jwksUrl)
  idp.set({ json: jwksB, cacheControl: 'max-age=60' })

  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksA, 'within the cooldown: unchanged keys, no fetch')
  t.equal(idp.requests('/jwks'), 1)

  clock.now += 5_000
  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksB, 'a key rotated in is found after the cooldown')
  t.equal(idp.requests('/jwks'), 2)

  // A flood of 1000 random kids over the next minute costs at most the per-minute budget.
  const before = idp.requests('/jwks')
  for (let i = 0; i < 1000; i++) {
    clock.now += 54
    await cache.refreshForUnknownKid(idp.jwksUrl)
  }
  const flood = idp.requests('/jwks') - before
  t.equal(flood, 3, `${flood} fetches: the budget of 4 per minute, one already used`)
  t.ok(events.filter((e) => e.reason === 'unknown_kid').length <= 4)

  // The window slides: after a minute the budget is back.
  clock.now += 60_000
  await cache.refreshForUnknownKid(idp.jwksUrl)
  t.equal(idp.requests('/jwks') - before, 4)
})

t.test('unknown kid: concurrent callers share one fetch', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock } = harness(t)
  await cache.get(idp.jwksUrl)
  idp.set({ json: jwksB, cacheControl: 'max-age=60', delayMs: 100 })
  clock.now += 10_000
  const results = await Promise.all(Array.from({ length: 1000 }, async () => await cache.refreshForUnknownKid(idp.jwksUrl)))
  t.equal(idp.requests('/jwks'), 2)
  t.ok(results.every((keys) => keys?.keys.length === 2), 'all see the new keys')
})

t.test('unknown kid refused by the budget after a failure whose backoff is over: Retry-After is still at least 1 s', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock } = harness(t, { unknownKidRefreshesPerMinute: 1 })
  await cache.get(idp.jwksUrl)
  idp.set({ status: 500 })
  clock.now += 10_000
  await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' })
  // Past the backoff (at most backoffInitialSeconds, 30 s) and the cooldown, within the budget's minute.
  clock.now += 40_000
  const err = await cache.refreshForUnknownKid(idp.jwksUrl).then(() => undefined, (e: unknown) => e as { code?: string, details?: { retryAfterSeconds?: number } })
  t.equal(err?.code, 'keys_unavailable', 'the last fetch failed: nobody can tell')
  t.equal(err?.details?.retryAfterSeconds, 1, 'never 0 or negative (the backoff ended ~10 s ago)')
  t.equal(idp.requests('/jwks'), 2, 'the provider was not asked again')
})

t.test('unknown kid, provider failing: keys_unavailable (nobody can tell whether the kid is new); the old keys stay', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock } = harness(t)
  await cache.get(idp.jwksUrl)
  idp.set({ status: 500 })
  clock.now += 10_000
  const failed = await cache.refreshForUnknownKid(idp.jwksUrl).then(() => undefined, (err: unknown) => err as { code?: string, details?: { retryAfterSeconds?: number } })
  t.equal(failed?.code, 'keys_unavailable', 'the refresh failed')
  t.ok((failed?.details?.retryAfterSeconds ?? 0) >= 1, 'with a Retry-After: when the backoff ends')
  t.equal(idp.requests('/jwks'), 2)
  clock.now += 10_000
  await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' }, 'within the backoff: not asked, still unknown')
  t.equal(idp.requests('/jwks'), 2, 'past the cooldown but within the backoff')
  t.equal(cache.status(idp.jwksUrl).state, 'fresh', 'the old keys are still fresh')
  t.same(await cache.get(idp.jwksUrl), jwksA, 'and in use')
  // Once the provider answers again, an unknown kid is an unknown kid.
  idp.set({ json: jwksA, cacheControl: 'max-age=60' })
  clock.now += 120_000
  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksA)
})

t.test('unknown kid after a failed fetch, refused by the cooldown or the budget rather than a backoff: still keys_unavailable', async (t) => {
  const idp = await startIdp(t)
  // A backoff shorter than the cooldown: the backoff is over, the cooldown is not.
  const { cache, clock } = harness(t, { backoffInitialSeconds: 1, backoffMaxSeconds: 1, unknownKidCooldownSeconds: 30, unknownKidRefreshesPerMinute: 1 })
  await cache.get(idp.jwksUrl)
  idp.set({ status: 500 })
  clock.now += 31_000
  await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' }, 'the refresh failed')
  clock.now += 2_000
  await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' }, 'past the backoff, within the cooldown: the last answer was a failure')
  clock.now += 30_000
  await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' }, 'past the cooldown, the minute\'s budget spent')
  t.equal(idp.requests('/jwks') <= 3, true, 'no fetch beyond the budget (a retry timer may have run)')
  // An answer, even one that does not have the kid, ends it: an unknown kid is then an unknown kid.
  idp.set({ json: jwksA, cacheControl: 'max-age=60' })
  clock.now += 120_000
  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksA)
  clock.now += 1_000
  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksA, 'within the cooldown after a good answer: the keys, so key_not_found')
})

t.test('unknown kid, no keys yet and the provider failing: keys_unavailable', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 500 })
  const { cache } = harness(t)
  await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 1)
})

t.test('concurrent misses share one fetch', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: jwksA, cacheControl: 'max-age=60', delayMs: 100 })
  const { cache, created } = harness(t)
  const results = await Promise.all(Array.from({ length: 50 }, async () => await cache.get(idp.jwksUrl)))
  t.equal(idp.requests('/jwks'), 1)
  t.equal(created(), 1)
  t.ok(results.every((keys) => keys === results[0]))
})

t.test('concurrent misses on a down IdP share one failed fetch', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 500, delayMs: 50 })
  const { cache } = harness(t)
  const settled = await Promise.allSettled(Array.from({ length: 50 }, async () => await cache.get(idp.jwksUrl)))
  t.equal(idp.requests('/jwks'), 1)
  t.ok(settled.every((s) => s.status === 'rejected' && (s.reason as VerificationError).code === 'keys_unavailable'))
})

t.test('failures back off exponentially and requests do not hammer the IdP', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 500 })
  const { cache, clock } = harness(t)
  const steps = [30, 60, 120, 240, 300, 300]
  for (const [i, step] of steps.entries()) {
    const err = await unavailable(cache.get(idp.jwksUrl))
    t.equal(idp.requests('/jwks'), i + 1)
    const retryAfter = err.details.retryAfterSeconds!
    t.ok(retryAfter >= step * 0.9 && retryAfter <= step, `failure ${i + 1}: retry after ${retryAfter}s, step ${step}s`)
    t.equal(cache.status(idp.jwksUrl).consecutiveFailures, i + 1)
    for (let j = 0; j < 100; j++) await unavailable(cache.get(idp.jwksUrl))
    t.equal(idp.requests('/jwks'), i + 1, 'no fetch during the backoff')
    clock.now += retryAfter * 1000
  }
})

t.test('an invalid document is a failure that says what was fetched', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: { issuer: 'this is discovery metadata' } })
  const { cache } = harness(t)
  await cache.warm(idp.jwksUrl)
  t.equal(cache.status(idp.jwksUrl).lastError, `The JWKS at ${idp.jwksUrl} is not usable: it has no "keys" array`)
  const err = await unavailable(cache.get(idp.jwksUrl))
  t.equal(err.code, 'keys_unavailable')
})

t.test('warm() on a down IdP never throws, retries in the background and later succeeds', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503 })
  // The fake clock stands still, so that the backoff the cache computed can be read back (retryAfterSeconds);
  // its retry timers are real, and short.
  const backoffMaxSeconds = 0.1
  const { cache, logs, fetches } = harness(t, { backoffInitialSeconds: 0.02, backoffMaxSeconds })
  await cache.warm(idp.jwksUrl)
  t.match(cache.status(idp.jwksUrl), { state: 'missing', consecutiveFailures: 1 })
  t.ok(logs.some((line) => line.level === 'warn' && line.msg.includes(idp.jwksUrl) && line.msg.includes('HTTP 503')))

  // Doubling without the bound, the 7th failure would back off 0.02 * 2^6 = 1.28 s: over a second.
  await waitFor('background retries', () => cache.status(idp.jwksUrl).consecutiveFailures >= 7, 8000)
  const during = await unavailable(cache.get(idp.jwksUrl))
  t.equal(during.details.retryAfterSeconds, 1, `after ${cache.status(idp.jwksUrl).consecutiveFailures} failures the retry is still within backoffMaxSeconds`)
  idp.set({ json: jwksA, cacheControl: 'max-age=60' })
  await waitFor('recovery', () => cache.status(idp.jwksUrl).state === 'fresh')
  const count = fetches()
  // A retry timer still armed from the failures would be due within backoffMaxSeconds of being set, all of
  // which was before the recovery: this timer, set after it and longer, fires after any of them.
  await sleep(backoffMaxSeconds * 1000 + 1)
  t.equal(fetches(), count, 'no more fetches once fresh')
  t.match(cache.status(idp.jwksUrl), { state: 'fresh', keyCount: 1, consecutiveFailures: 0 })
})

t.test('fresh entries are refreshed proactively when their freshness ends', async (t) => {
  const idp = await startIdp(t)
  const { cache, events } = harness(t, { minFreshnessSeconds: 0.05, maxFreshnessSeconds: 0.05 }, true)
  await cache.warm(idp.jwksUrl)
  // Freshness is never under MIN_FRESHNESS_SECONDS: two refreshes take about 2 s.
  await waitFor('two proactive refreshes', () => events.length >= 3, 8000)
  t.ok(events.slice(1).every((e) => e.reason === 'background' && e.outcome === 'success'))
})

t.test('the LRU bound evicts the least recently used entry and its timers', async (t) => {
  const idp = await startIdp(t)
  for (const path of ['/a', '/b', '/c']) idp.set({ json: jwksA }, path)
  const { cache } = harness(t, { maxEntries: 2, minFreshnessSeconds: 0.03, maxFreshnessSeconds: 0.03 }, true)
  await cache.warm(`${idp.url}/a`)
  await cache.warm(`${idp.url}/b`)
  await cache.get(`${idp.url}/a`) // a is now more recent than b
  await cache.warm(`${idp.url}/c`)
  t.equal(cache.status(`${idp.url}/b`).state, 'missing', 'b was evicted')
  t.equal(cache.status(`${idp.url}/a`).state === 'missing', false)
  const evicted = idp.requests('/b')
  await waitFor('proactive refreshes of the kept entries', () => idp.requests('/a') >= 3 && idp.requests('/c') >= 3, 8000)
  t.equal(idp.requests('/b'), evicted, 'the evicted entry\'s timer was cleared')
})

t.test('close() clears every timer', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: jwksA }, '/fresh')
  idp.set({ status: 500 }, '/down')
  const { cache, fetches, finished } = harness(t, {
    minFreshnessSeconds: 0.03, maxFreshnessSeconds: 0.03, backoffInitialSeconds: 0.03, backoffMaxSeconds: 0.03
  }, true)
  await cache.warm(`${idp.url}/fresh`)
  await cache.warm(`${idp.url}/down`)
  await waitFor('timers at work', () => idp.requests('/fresh') >= 2 && idp.requests('/down') >= 2, 8000)
  cache.close()
  const count = fetches()
  // (A fetch that ends after close() reports no event: counted by the fetcher.)
  await waitFor('the fetches in flight to finish', () => finished() === fetches())
  // Every timer the cache could still hold was set by now, for at most its freshness (never under
  // MIN_FRESHNESS_SECONDS; the retries here are shorter): this timer, set after them and longer, fires after.
  await sleep(MIN_FRESHNESS_SECONDS * 1000 + 1)
  t.equal(fetches(), count, 'nothing fetched after close()')
  t.equal(idp.requests(), count, 'and nothing reached the IdP')
  t.same(cache.status(`${idp.url}/fresh`), { state: 'missing', consecutiveFailures: 0 })
})

t.test('forget: a URL no longer in use goes, with its retries', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 500 })
  const { cache } = harness(t, { backoffInitialSeconds: 1 }, true)
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1)
  cache.forget(idp.jwksUrl)
  t.same(cache.status(idp.jwksUrl), { state: 'missing', consecutiveFailures: 0 }, 'forgotten')
  await sleep(1500)
  t.equal(idp.requests('/jwks'), 1, 'no retry after the backoff: its timer went with it')
})

t.test('a fetch in flight when its entry goes (forget, close) schedules no retry when it ends', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 500 })
  const { cache, fetches, hold } = harness(t, { backoffInitialSeconds: 0.03, backoffMaxSeconds: 0.03 }, true)
  for (const end of ['forget', 'close'] as const) {
    const release = hold()
    const warming = cache.warm(idp.jwksUrl)
    if (end === 'forget') cache.forget(idp.jwksUrl)
    else cache.close()
    release()
    await warming
    const count = fetches()
    await sleep(300)
    t.equal(fetches(), count, `no retry of a failed fetch after ${end}() (the backoff is 30 ms)`)
  }
})

t.test('freshness is max-age less the Age header (RFC 9111 §4.2.3), then clamped', async (t) => {
  const cases: Array<[string | undefined, number, number]> = [
    ['max-age=3600', 3500, 100],
    ['public, max-age=3000', 1000, 2000],
    ['max-age=3600', 0, 3600],
    ['max-age=3600', 3590, 60],
    ['max-age=3600', 3600, 60],
    ['max-age=3600', 99999999, 60],
    ['no-store', 500, 600],
    [undefined, 500, 600]
  ]
  for (const [header, age, expected] of cases) t.equal(freshnessFromCacheControl(header, config, age), expected, `${String(header)}, Age ${age}`)
})

t.test('a CDN answer that is already old is fresh only for what is left of its max-age', async (t) => {
  const idp = await startIdp(t)
  const { cache } = harness(t)
  const freshness = async (age: string): Promise<number> => {
    idp.set({ json: jwksA, cacheControl: 'max-age=3600', headers: { age } })
    cache.forget(idp.jwksUrl)
    await cache.get(idp.jwksUrl)
    const status = cache.status(idp.jwksUrl)
    return (status.freshUntil! - status.fetchedAt!) / 1000
  }
  t.equal(await freshness('3500'), 100, 'Age: 3500 with max-age=3600')
  t.equal(await freshness('4000'), 60, 'older than max-age: the minimum')
  for (const malformed of ['abc', '-5', '1.5', '10, 20', '']) {
    t.equal(await freshness(malformed), 3600, `a malformed Age ${JSON.stringify(malformed)} is ignored`)
  }
})

t.test(`freshness is never under ${MIN_FRESHNESS_SECONDS} s, even with minFreshnessSeconds 0`, async (t) => {
  const noMinimum = { ...config, minFreshnessSeconds: 0 }
  t.equal(freshnessFromCacheControl('max-age=0', noMinimum), MIN_FRESHNESS_SECONDS)
  t.equal(freshnessFromCacheControl('max-age=3600', noMinimum, 3600), MIN_FRESHNESS_SECONDS)
  t.equal(freshnessFromCacheControl('max-age=5', noMinimum), 5)
})

t.test('minFreshnessSeconds 0 and max-age=0: no refetch loop, with or without traffic', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: jwksA, cacheControl: 'max-age=0' })
  const { cache, clock, events, fetches, nextEvent } = harness(t, { minFreshnessSeconds: 0 })
  await cache.warm(idp.jwksUrl)
  const status = cache.status(idp.jwksUrl)
  t.equal(status.freshUntil! - status.fetchedAt!, MIN_FRESHNESS_SECONDS * 1000)

  // With traffic: a request every 5 ms of the fake clock for 1.5 s, each after the fetch it may have started
  // has finished. Fetches started by requests are counted as get() starts them (a proactive refresh, on a
  // real timer, may come in between and is not counted).
  let startedByRequests = 0
  for (let i = 0; i < 300; i++) {
    clock.now += 5
    const before = fetches()
    const keys = cache.get(idp.jwksUrl)
    startedByRequests += fetches() - before
    await keys
    await waitFor('the fetch in flight', () => events.length === fetches())
  }
  t.ok(startedByRequests <= 2, `${startedByRequests} fetches started by 300 requests over 1.5 s: at most one each time the keys went stale`)
  t.ok(events.every((e) => e.reason === 'warm' || e.reason === 'background'))

  // Without traffic: the next fetch that completes sets the proactive refresh at MIN_FRESHNESS_SECONDS; a
  // timer set along with it for half that fires before it, and after any shorter one.
  const refreshed = await nextEvent()
  t.equal(refreshed.outcome, 'success')
  const count = fetches()
  await sleep(MIN_FRESHNESS_SECONDS * 1000 / 2)
  t.equal(fetches(), count, 'no fetch before the freshness is over: no refetch loop')
})

t.test('a JWKS without usable keys does not replace keys that had some', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events, logs } = harness(t)
  t.same(await cache.get(idp.jwksUrl), jwksA)
  idp.set({ json: { keys: [] }, cacheControl: 'max-age=60' })

  clock.now += 61_000
  t.same(await cache.get(idp.jwksUrl), jwksA, 'stale keys served while the refresh runs')
  await waitFor('the refused refresh', () => events.length === 2)
  t.match(events[1], { outcome: 'error', reason: 'background' })
  const message = `The JWKS at ${idp.jwksUrl} has no usable keys (0 listed): keeping the previous keys`
  t.match(cache.status(idp.jwksUrl), { state: 'stale', keyCount: 1, consecutiveFailures: 1, lastError: message })
  t.ok(logs.some((line) => line.level === 'warn' && line.msg === `JWKS fetch from ${idp.jwksUrl} failed: ${message}`))

  // Backed off as for an error: neither requests nor unknown kids fetch again for now.
  for (let i = 0; i < 20; i++) t.same(await cache.get(idp.jwksUrl), jwksA)
  clock.now += 5_000
  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksA)
  t.equal(idp.requests('/jwks'), 2)

  // The old keys still expire under the usual rules.
  clock.now += 3_600_000
  t.equal(cache.status(idp.jwksUrl).state, 'expired')
  t.equal((await unavailable(cache.get(idp.jwksUrl))).code, 'keys_unavailable', 'expired, and the IdP still gives nothing')
  t.equal(cache.status(idp.jwksUrl).consecutiveFailures, 2)

  // Usable keys again: taken.
  idp.set({ json: jwksB, cacheControl: 'max-age=60' })
  clock.now += 61_000
  t.same(await cache.get(idp.jwksUrl), jwksB)
  t.match(cache.status(idp.jwksUrl), { state: 'fresh', keyCount: 2, consecutiveFailures: 0, lastError: undefined })

  // A first fetch without usable keys is taken as it is (the URL is simply not ready).
  const other = harness(t)
  idp.set({ json: { keys: [] } }, '/empty')
  await other.cache.warm(`${idp.url}/empty`)
  t.match(other.cache.status(`${idp.url}/empty`), { state: 'fresh', keyCount: 0, consecutiveFailures: 0, lastError: undefined })
})

t.test('a Verifier keeps verifying with its keys when the JWKS turns to unusable keys only', async (t) => {
  const key = makeKey('ES256', { kid: 'k1' })
  const idp = await startJwksServer({ json: jwksOf(key), cacheControl: 'max-age=3600' })
  t.teardown(() => idp.close())
  const v = new Verifier(configFor([{ id: 'idp', issuer: 'https://issuer.example', audiences: ['aud'], jwksUri: idp.jwksUrl }],
    { jwks: { unknownKidCooldownSeconds: 0 } }))
  t.teardown(() => v.close())
  v.start()
  await waitFor('ready', () => v.ready)
  const genuine = mint(key, idTokenClaims('https://issuer.example', 'aud'))
  t.equal((await v.verify(genuine)).subject, 'user-123')

  // The IdP now lists only an encryption key; a token with an unknown kid makes the verifier refetch.
  idp.set({ json: { keys: [{ ...key.jwk, use: 'enc' }] }, cacheControl: 'max-age=3600' })
  const stranger = makeKey('ES256', { kid: 'k2' })
  await t.rejects(v.verify(mint(stranger, idTokenClaims('https://issuer.example', 'aud'))), { code: 'key_not_found' })
  t.equal(idp.requests('/jwks'), 2, 'the JWKS was fetched again')
  const genuineAgain = mint(key, idTokenClaims('https://issuer.example', 'aud', { jti: 'again' }))
  t.equal((await v.verify(genuineAgain)).subject, 'user-123', 'genuine tokens still verify with the kept key')
  t.match(v.status()[0], {
    ready: true, keyCount: 1, lastError: `The JWKS at ${idp.jwksUrl} has no usable keys (1 listed): keeping the previous keys`
  })
})

t.test('through the service: a token of a key rotated in while the JWKS cannot be fetched is 503, not 401', async (t) => {
  const a = makeKey('ES256', { kid: 'a' })
  const b = makeKey('ES256', { kid: 'b' })
  const idp = await startJwksServer({ json: jwksOf(a), cacheControl: 'max-age=3600' })
  t.teardown(() => idp.close())
  const app = await buildApp(configFor([{ id: 'x', issuer: 'https://issuer.example', audiences: ['app'], jwksUri: idp.jwksUrl }],
    { jwks: { unknownKidCooldownSeconds: 0 } }))
  t.teardown(() => app.close())
  const verify = async (token: string) => await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal((await verify(mint(a, idTokenClaims('https://issuer.example', 'app')))).statusCode, 200)
  idp.set({ status: 503 })
  const before = idp.requests('/jwks')
  const rotated = await verify(mint(b, idTokenClaims('https://issuer.example', 'app')))
  t.ok(idp.requests('/jwks') > before, 'a refresh was tried, and failed')
  t.same([rotated.statusCode, rotated.json().code], [503, 'keys_unavailable'], 'retry later; do not log the user out')
  t.equal(rotated.json().issuer, 'x', 'the answer names the issuer whose keys cannot be had')
  t.match(rotated.headers['retry-after'], /^[1-9]\d*$/)
  t.same([(await verify(mint(b, idTokenClaims('https://issuer.example', 'app', { jti: '2' })))).json().code], ['keys_unavailable'], 'and during the backoff')
  t.equal((await verify(mint(a, idTokenClaims('https://issuer.example', 'app', { jti: '3' })))).statusCode, 200, 'known keys still verify')
})

t.test('freshness ends at freshUntil exactly: peekFresh and status agree', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock } = harness(t)
  await cache.get(idp.jwksUrl)
  const { freshUntil } = cache.status(idp.jwksUrl)
  clock.now = freshUntil! - 1
  t.same(cache.peekFresh(idp.jwksUrl), jwksA, 'fresh until the last millisecond')
  clock.now = freshUntil!
  t.equal(cache.status(idp.jwksUrl).state, 'stale')
  t.equal(cache.peekFresh(idp.jwksUrl), undefined, 'at freshUntil: stale, through get()')
})

t.test('a routine stale serve (no failed fetch) is no warning; warm() of fresh keys fetches nothing', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events, logs } = harness(t)
  await cache.warm(idp.jwksUrl)
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1, 'the second warm() found fresh keys')
  t.ok(logs.some((line) => line.level === 'info' && line.msg === `JWKS ${idp.jwksUrl} loaded`), 'the first load is logged at info')
  clock.now += 61_000
  t.same(await cache.get(idp.jwksUrl), jwksA)
  await waitFor('the background refresh', () => events.length === 2)
  t.notOk(logs.some((line) => line.level === 'warn'), 'no warning')
  t.ok(logs.some((line) => line.level === 'debug' && line.msg === `JWKS ${idp.jwksUrl} refreshed`), 'a routine refresh is debug')
})

t.test('a fetch that succeeds during a backoff (warm() on reload) ends the backoff', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events } = harness(t)
  await cache.get(idp.jwksUrl)
  idp.set({ status: 503 })
  clock.now += 61_000
  t.same(await cache.get(idp.jwksUrl), jwksA, 'stale keys while the background refresh fails')
  await waitFor('the failed refresh', () => events.length === 2)
  t.equal(cache.status(idp.jwksUrl).consecutiveFailures, 1)
  idp.set({ json: jwksA, cacheControl: 'max-age=60' })
  await cache.warm(idp.jwksUrl)
  t.match(cache.status(idp.jwksUrl), { state: 'fresh', consecutiveFailures: 0 })
  // A key rotated in: past the cooldown, an unknown kid refreshes; the backoff of the old failure is over.
  idp.set({ json: jwksB, cacheControl: 'max-age=60' })
  clock.now += 5_000
  t.same(await cache.refreshForUnknownKid(idp.jwksUrl), jwksB, 'the rotated key is found')
  t.equal(idp.requests('/jwks'), 4)
})

t.test('each stale period after a failure is warned about once: a recovery re-arms the warning', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock, events, logs } = harness(t)
  const staleWarnings = (): number => logs.filter((line) => line.level === 'warn' && line.msg.startsWith('serving stale')).length
  await cache.get(idp.jwksUrl)
  for (let period = 1; period <= 2; period++) {
    idp.set({ status: 503 })
    clock.now += 61_000
    await cache.get(idp.jwksUrl)
    await waitFor('the failed refresh', () => events.filter((e) => e.outcome === 'error').length === period)
    await cache.get(idp.jwksUrl)
    await cache.get(idp.jwksUrl)
    t.equal(staleWarnings(), period, `stale period ${period}: one warning`)
    idp.set({ json: jwksA, cacheControl: 'max-age=60' })
    clock.now += 31_000
    await cache.get(idp.jwksUrl)
    await waitFor('the recovery', () => cache.status(idp.jwksUrl).state === 'fresh')
  }
})

t.test('a fetch that ends after the cache closed reports nothing (its metrics would bring back an issuer no longer in force)', async (t) => {
  const idp = await startIdp(t)
  const { cache, events, hold, fetches } = harness(t)
  const release = hold()
  const pending = cache.get(idp.jwksUrl).catch(() => undefined)
  await waitFor('the fetch has begun', () => fetches() === 1)
  cache.close()
  release()
  await pending
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(events, [], 'no fetch event from a closed cache')
})
