/**
 * A provider's Retry-After on 429 and 503 (RFC 9110 §10.2.3): no fetch of that URL before the time it asked
 * for, capped at jwks.backoffMaxSeconds, whichever path would fetch (a request, an unknown kid, warm(), the
 * retry timer, discovery, rediscovery, a reload's new Verifier); a malformed, zero, past or huge value is ignored and the own backoff
 * applies. A hand-made provider on 127.0.0.1 counts the requests. The cache runs on a fake clock; discovery,
 * which reads the real one, with short real waits of a second or two (the header counts whole seconds).
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { JsonWebKeySet, JwksCacheConfig } from '../src/config/types.js'
import { Verifier } from '../src/core/verifier.js'
import { VerificationError } from '../src/errors.js'
import { JwksCache } from '../src/jwks/cache.js'
import { FetchError, fetchJson } from '../src/net/fetch-json.js'
import { MAX_RETRY_AFTER_SECONDS, parseRetryAfter } from '../src/net/retry-after.js'
import { buildApp } from '../src/app.js'
import { reloadConfiguration } from '../src/reload.js'
import { loggerOptions } from '../src/logger.js'
import { configFor, JWKS_CACHE_TEST_CONFIG } from './helpers/config.js'
import { captureLog } from './helpers/log-capture.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { waitFor } from './helpers/wait-for.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const WELL_KNOWN = '/.well-known/openid-configuration'
const fetchOpts = { timeoutMs: 2000, maxResponseBytes: 65536 }
const key = makeKey('ES256', { kid: 'k1' })
const jwks = jwksOf(key)
const NOW = Date.UTC(2026, 10, 28, 10, 0, 0)

const config = JWKS_CACHE_TEST_CONFIG

interface Warning { obj: Record<string, unknown>, msg: string }

/** A cache on a fake clock (its retry timers are real, and far beyond the test's life). */
function cacheFor (t: Teardown, overrides: Partial<JwksCacheConfig> = {}): { cache: JwksCache<JsonWebKeySet>, clock: { now: number }, warnings: Warning[] } {
  const clock = { now: 1_700_000_000_000 }
  const warnings: Warning[] = []
  const noop = (): void => {}
  const cache = new JwksCache<JsonWebKeySet>({
    ...config,
    ...overrides,
    fetchOpts,
    fetcher: fetchJson,
    createKeySet: (set) => set,
    now: () => clock.now,
    logger: { debug: noop, info: noop, error: noop, warn: (obj, msg) => { warnings.push({ obj, msg }) } }
  })
  t.teardown(() => cache.close())
  return { cache, clock, warnings }
}

async function startIdp (t: Teardown): Promise<JwksServer> {
  const idp = await startJwksServer({ json: jwks, cacheControl: 'max-age=60' })
  t.teardown(() => idp.close())
  return idp
}

async function rejection (promise: Promise<unknown>): Promise<VerificationError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof VerificationError) return err
    throw err
  }
  throw new Error('expected a VerificationError')
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

t.test('parseRetryAfter: delay-seconds and the three HTTP-date forms; anything else is ignored', async (t) => {
  const delay = (header: string): number | undefined => {
    const parsed = parseRetryAfter(header, NOW)
    return 'delayMs' in parsed ? parsed.delayMs : undefined
  }
  t.equal(delay('120'), 120_000)
  t.equal(delay(' 7 '), 7_000, 'surrounding whitespace is not part of the value')
  t.equal(delay('0000000000120'), 120_000, 'leading zeros are not a long wait')
  t.equal(delay(String(MAX_RETRY_AFTER_SECONDS)), MAX_RETRY_AFTER_SECONDS * 1000, 'a day is still taken (and capped by the caller)')
  t.equal(delay('Sat, 28 Nov 2026 10:02:00 GMT'), 120_000, 'IMF-fixdate')
  t.equal(delay('Saturday, 28-Nov-26 10:02:00 GMT'), 120_000, 'obsolete RFC 850 date')
  t.equal(delay('Sat Nov 28 10:02:00 2026'), 120_000, 'obsolete asctime date')
  t.equal(delay('Sun Nov 29  9:00:00 2026'), undefined, 'asctime pads the day, not the hour')
  t.equal(delay('Sun Nov 29 09:00:00 2026'), 82_800_000, 'asctime')
  t.equal(delay('Tue Dec  1 09:00:00 2026'), undefined, 'asctime, one-digit day: read, and over a day')
  t.same(parseRetryAfter('Tue Dec  1 09:00:00 2026', NOW), { problem: 'a wait longer than a day (86400 s)' })

  const ignored: Record<string, string> = {
    '': 'neither a number of seconds nor an HTTP date',
    soon: 'neither a number of seconds nor an HTTP date',
    '-5': 'neither a number of seconds nor an HTTP date',
    '+5': 'neither a number of seconds nor an HTTP date',
    '1.5': 'neither a number of seconds nor an HTTP date',
    '1e3': 'neither a number of seconds nor an HTTP date',
    '0x10': 'neither a number of seconds nor an HTTP date',
    '120, 60': 'neither a number of seconds nor an HTTP date',
    '0': 'a wait of 0 s',
    '000': 'a wait of 0 s',
    '86401': 'a wait longer than a day (86400 s)',
    '999999999': 'a wait longer than a day (86400 s)',
    '99999999999999999999999999': 'a wait longer than a day (86400 s)',
    'Sat, 28 Nov 2026 09:59:59 GMT': 'a date that has passed',
    'Sat, 28 Nov 2026 10:00:00 GMT': 'a date that has passed',
    'Thu, 01 Jan 1970 00:00:00 GMT': 'a date that has passed',
    'Fri, 31 Dec 9999 23:59:59 GMT': 'a wait longer than a day (86400 s)',
    'Mon, 31 Feb 2026 10:02:00 GMT': 'neither a number of seconds nor an HTTP date',
    'Sat, 28 Nov 2026 25:02:00 GMT': 'neither a number of seconds nor an HTTP date',
    'Sat, 28 Nov 2026 10:02:00 UTC': 'neither a number of seconds nor an HTTP date',
    'sat, 28 nov 2026 10:02:00 gmt': 'neither a number of seconds nor an HTTP date',
    'Sat, 28 Nov 2026 10:02:00 GMT; x': 'neither a number of seconds nor an HTTP date',
    ['9'.repeat(5000)]: 'a wait longer than a day (86400 s)',
    ['Sat, '.repeat(2000)]: 'neither a number of seconds nor an HTTP date'
  }
  for (const [header, problem] of Object.entries(ignored)) {
    t.same(parseRetryAfter(header, NOW), { problem }, `ignored: ${JSON.stringify(header.slice(0, 40))}`)
  }
})

t.test('fetchJson: a 429 or 503 carries the Retry-After it asked for; a bad one is named as ignored', async (t) => {
  const idp = await startIdp(t)
  const failure = async (): Promise<FetchError> => {
    try {
      await fetchJson(idp.jwksUrl, fetchOpts)
    } catch (err) {
      if (err instanceof FetchError) return err
      throw err
    }
    throw new Error('expected a FetchError')
  }

  idp.set({ status: 429, headers: { 'retry-after': '120' } })
  let err = await failure()
  t.equal(err.retryAfterMs, 120_000)
  t.equal(err.message, `GET ${idp.jwksUrl} answered HTTP 429 with Retry-After "120"`)

  idp.set({ status: 503, headers: { 'retry-after': new Date(Date.now() + 600_000).toUTCString() } })
  err = await failure()
  t.ok(err.retryAfterMs !== undefined && err.retryAfterMs > 590_000 && err.retryAfterMs <= 600_000, `an HTTP date: ${err.retryAfterMs} ms`)

  idp.set({ status: 503, headers: { 'retry-after': '-30' } })
  err = await failure()
  t.equal(err.retryAfterMs, undefined)
  t.equal(err.message, `GET ${idp.jwksUrl} answered HTTP 503 with Retry-After "-30", ignored: neither a number of seconds nor an HTTP date`)

  idp.set({ status: 503, headers: { 'retry-after': 'x'.repeat(4000) } })
  err = await failure()
  t.equal(err.retryAfterMs, undefined)
  t.ok(err.message.length < 300, 'a long hostile value is quoted truncated')

  idp.set({ status: 500, headers: { 'retry-after': '120' } })
  err = await failure()
  t.equal(err.retryAfterMs, undefined, 'only 429 and 503 ask a client to come back later')
  t.equal(err.message, `GET ${idp.jwksUrl} answered HTTP 500`)
})

t.test('JWKS cache: no fetch by any path before the time the provider asked for', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 429, headers: { 'retry-after': '120' } })
  const { cache, clock, warnings } = cacheFor(t)
  const start = clock.now
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1)

  const until = new Date(start + 120_000).toISOString()
  const status = cache.status(idp.jwksUrl)
  t.equal(status.lastError, `GET ${idp.jwksUrl} answered HTTP 429 with Retry-After "120"; the provider asked to wait 120 s (Retry-After): no new attempt before ${until}`)
  t.equal(status.retryAfterUntil, start + 120_000)
  const warning = warnings.find((w) => w.msg.startsWith('JWKS fetch from'))
  t.equal(warning?.msg, `JWKS fetch from ${idp.jwksUrl} failed: ${status.lastError}`, 'the log line says the provider asked to wait, and until when')
  t.match(warning?.obj, { retryInSeconds: 120, retryNotBefore: until })

  // Past the own backoff (30 s at most) and the unknown-kid cooldown, short of the provider's 120 s.
  for (const at of [1_000, 31_000, 90_000, 119_999]) {
    clock.now = start + at
    const err = await rejection(cache.get(idp.jwksUrl))
    t.match(err, { code: 'keys_unavailable' })
    t.equal(err.details.retryAfterSeconds, Math.ceil((120_000 - at) / 1000), `at +${at} ms: our Retry-After is the provider's`)
    await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl), { code: 'keys_unavailable' })
    await t.rejects(cache.refreshForUnknownKid(idp.jwksUrl, 'logout'), { code: 'keys_unavailable' })
    await cache.warm(idp.jwksUrl)
    t.equal(idp.requests('/jwks'), 1, `at +${at} ms: no fetch`)
  }

  // The time has come and the provider is back.
  idp.set({ json: jwks, cacheControl: 'max-age=60' })
  clock.now = start + 120_000
  t.same(await cache.get(idp.jwksUrl), jwks)
  t.equal(idp.requests('/jwks'), 2)
  t.equal(cache.status(idp.jwksUrl).retryAfterUntil, undefined)
})

t.test('JWKS cache: held keys stay in use while the provider asks to wait', async (t) => {
  const idp = await startIdp(t)
  const { cache, clock } = cacheFor(t)
  const start = clock.now
  t.same(await cache.get(idp.jwksUrl), jwks)
  idp.set({ status: 503, headers: { 'retry-after': '200' } })

  clock.now = start + 61_000
  t.same(await cache.get(idp.jwksUrl), jwks, 'stale keys served; a background refresh starts')
  await waitFor('the refused refresh', () => cache.status(idp.jwksUrl).consecutiveFailures === 1)
  const failedAt = clock.now
  t.equal(idp.requests('/jwks'), 2)
  for (const at of [30_000, 100_000, 199_000]) {
    clock.now = failedAt + at
    t.same(await cache.get(idp.jwksUrl), jwks, 'still the held keys')
    // The last fetch failed: an unknown kid cannot be told from a key just rotated in (the existing rule).
    const err = await rejection(cache.refreshForUnknownKid(idp.jwksUrl))
    t.match(err, { code: 'keys_unavailable', details: { retryAfterSeconds: Math.ceil((200_000 - at) / 1000) } })
  }
  t.equal(idp.requests('/jwks'), 2, 'no fetch within the 200 s asked for')
  t.equal(cache.status(idp.jwksUrl).state, 'stale')

  clock.now = failedAt + 200_000
  await cache.get(idp.jwksUrl)
  await waitFor('the refresh once the wait is over', () => idp.requests('/jwks') === 3)
})

t.test('JWKS cache: a cache that replaces another takes over its waits, for the URLs it comes to use', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 429, headers: { 'retry-after': '120' } })
  const first = cacheFor(t)
  const start = first.clock.now
  await first.cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1)
  const handed = first.cache.handOver()
  t.match(handed, [{ url: idp.jwksUrl, keys: undefined, backoffUntil: start + 120_000, providerWaitUntil: start + 120_000, consecutiveFailures: 1, lastError: /the provider asked to wait 120 s/ }])

  const next = cacheFor(t)
  next.clock.now = start + 10_000
  next.cache.adopt([...handed, { ...handed[0]!, url: `${idp.url}/dropped` }], { keys: true })
  t.same(next.cache.handOver(), [], 'no entry before a URL is used: a dropped URL costs nothing')
  await next.cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1, 'warm() of the new cache does not ask before the time')
  t.match(next.cache.status(idp.jwksUrl), { state: 'missing', retryAfterUntil: start + 120_000, lastError: /the provider asked to wait 120 s/ })
  await t.rejects(next.cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 1, 'nor does a request')
  idp.set({ json: jwks })
  next.clock.now = start + 120_000
  t.same(await next.cache.get(idp.jwksUrl), jwks, 'fetched once the time has come')
  t.equal(idp.requests('/jwks'), 2)
  t.equal(idp.requests('/dropped'), 0)

  // Our own backoff after a failure without Retry-After, and no keys: the new cache asks at once.
  idp.set({ status: 500 })
  const failed = cacheFor(t)
  await failed.cache.warm(idp.jwksUrl)
  t.match(failed.cache.handOver(), [{ keys: undefined, providerWaitUntil: 0, consecutiveFailures: 1 }])
  idp.set({ json: jwks })
  const after = cacheFor(t)
  after.cache.adopt(failed.cache.handOver(), { keys: true })
  await after.cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 4, 'a failure of ours is not a reason to wait after a reload')
  t.match(after.cache.status(idp.jwksUrl), { state: 'fresh', consecutiveFailures: 0 })
})

t.test('JWKS cache: an HTTP-date Retry-After is honoured too', async (t) => {
  const idp = await startIdp(t)
  // The header is read against the real clock; 200 s ahead, to the second.
  idp.set({ status: 503, headers: { 'retry-after': new Date(Date.now() + 200_000).toUTCString() } })
  const { cache, clock } = cacheFor(t)
  const start = clock.now
  await cache.warm(idp.jwksUrl)
  clock.now = start + 190_000
  await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 1, 'no fetch 190 s later')
  clock.now = start + 200_000
  await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 2, 'a fetch once the date has come')
})

t.test(`JWKS cache: a wait longer than jwks.backoffMaxSeconds is capped at it`, async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 429, headers: { 'retry-after': '86400' } })
  const { cache, clock } = cacheFor(t, { backoffMaxSeconds: 300 })
  const start = clock.now
  await cache.warm(idp.jwksUrl)
  t.match(cache.status(idp.jwksUrl).lastError, `the provider asked to wait 86400 s (Retry-After): no new attempt before ${new Date(start + 300_000).toISOString()} (capped by jwks.backoffMaxSeconds: 300 s)`)
  clock.now = start + 299_999
  await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 1)
  clock.now = start + 300_000
  await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 2, 'fetched again at the cap, not a day later')
})

t.test('JWKS cache: a Retry-After shorter than the own backoff does not shorten it', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '1' } })
  const { cache, clock } = cacheFor(t)
  const start = clock.now
  await cache.warm(idp.jwksUrl)
  clock.now = start + 26_000
  await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 1, 'within the own backoff (27 to 30 s): no fetch')
})

t.test('JWKS cache: a Retry-After shorter than the own backoff still holds warm() and a replacing cache until its time', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 429, headers: { 'retry-after': '10' } })
  // Our backoff (30 s from the first failure) outlasts the provider's 10 s.
  const { cache, clock } = cacheFor(t, { backoffInitialSeconds: 30 })
  const start = clock.now
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1)
  t.equal(cache.status(idp.jwksUrl).retryAfterUntil, start + 10_000, 'the provider\'s own time is kept')
  clock.now = start + 2_000
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1, 'warm() (a second issuer, a discovery that found the URL) does not ask within the 10 s')

  const next = cacheFor(t, { backoffInitialSeconds: 30 })
  next.clock.now = start + 3_000
  next.cache.adopt(cache.handOver(), { keys: true })
  await next.cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1, 'nor does a reload\'s new cache')
  t.match(next.cache.status(idp.jwksUrl), { state: 'missing', retryAfterUntil: start + 10_000 })
  await t.rejects(next.cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
  t.equal(idp.requests('/jwks'), 1, 'nor a request')

  // Past the provider's time, within our own backoff: warm() is not held back by our backoff, as before.
  idp.set({ json: jwks })
  next.clock.now = start + 10_000
  await next.cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 2, 'asked once the provider\'s time has come')
  t.match(next.cache.status(idp.jwksUrl), { state: 'fresh', consecutiveFailures: 0 })
})

t.test('JWKS cache: warm() held by the provider\'s wait moves the retry to the provider\'s time, not our longer backoff', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '1' } })
  // A real clock here: the retry timer is what fetches.
  const cache = new JwksCache<JsonWebKeySet>({
    ...config,
    backoffInitialSeconds: 60,
    fetchOpts,
    fetcher: fetchJson,
    createKeySet: (set) => set,
    logger: { debug: () => {}, info: () => {}, error: () => {}, warn: () => {} }
  })
  t.teardown(() => cache.close())
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1)
  idp.set({ json: jwks })
  await cache.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 1, 'held within the provider\'s second')
  await waitFor('the retry at the provider\'s time (1 s), not after our 60 s', () => idp.requests('/jwks') === 2, 5000)
  await waitFor('keys', () => cache.status(idp.jwksUrl).state === 'fresh')
})

t.test('JWKS cache: malformed, zero, past or huge values fall back to the normal backoff', async (t) => {
  const bad = ['soon', '-120', '+120', '120.5', '0', '86401', '99999999999999999999', 'Thu, 01 Jan 1970 00:00:00 GMT', 'Mon, 31 Feb 2026 10:02:00 GMT', 'x'.repeat(3000)]
  for (const value of bad) {
    const idp = await startIdp(t)
    idp.set({ status: 429, headers: { 'retry-after': value } })
    const { cache, clock } = cacheFor(t)
    const start = clock.now
    await cache.warm(idp.jwksUrl)
    const what = JSON.stringify(value.slice(0, 30))
    t.match(cache.status(idp.jwksUrl), { consecutiveFailures: 1, retryAfterUntil: undefined }, what)
    t.match(cache.status(idp.jwksUrl).lastError, ', ignored: ', `${what}: the message says it was ignored`)
    // The own backoff: the first step is 30 s less up to 10 % jitter.
    clock.now = start + 26_000
    await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
    t.equal(idp.requests('/jwks'), 1, `${what}: no fetch within the own backoff`)
    clock.now = start + 30_000
    await t.rejects(cache.get(idp.jwksUrl), { code: 'keys_unavailable' })
    t.equal(idp.requests('/jwks'), 2, `${what}: fetched again once the own backoff ends`)
  }
})

t.test('discovery: no retry before the time asked for; /readyz and the log line say so', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '3' } }, WELL_KNOWN)
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l)); cb() } })
  const config = configFor([{ id: 'idp', issuer: idp.url, audiences: ['aud'] }], { jwks: { backoffInitialSeconds: 1 } })
  const app = await buildApp(config, { loggerInstance: pino(loggerOptions('info'), stream) })
  t.teardown(() => app.close())
  await app.ready()
  const failed = (): Record<string, unknown> | undefined => lines.find((l) => l.msg === 'discovery failed; the issuer is not ready and discovery will be retried')
  await waitFor('the failed discovery', () => failed() !== undefined)
  t.match(failed(), { retryInSeconds: 3, retryNotBefore: String, error: /the provider asked to wait 3 s \(Retry-After\)/ })
  const readyz = (await app.inject({ method: 'GET', url: '/readyz' })).json()
  t.match(JSON.stringify(readyz), 'the provider asked to wait 3 s (Retry-After): no new attempt before ', '/readyz lastError says so')

  const token = mint(key, idTokenClaims(idp.url, 'aud'))
  const answer = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(answer.statusCode, 503)
  // The own backoff would give 1 s.
  t.ok(Number(answer.headers['retry-after']) >= 2, `our Retry-After is the provider's: ${answer.headers['retry-after']}`)

  // The own backoff would retry after 1 s.
  await sleep(1500)
  t.equal(idp.requests(WELL_KNOWN), 1, 'no retry within the 3 s asked for')
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  await waitFor('the retry, and keys', () => app.verifier.ready)
  t.equal(idp.requests(WELL_KNOWN), 2)
})

t.test('discovery: issuers of one provider (same issuer and metadata URL) share it: one read, one wait', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '120' } }, WELL_KNOWN)
  // Two clients of one provider, configured as two issuers.
  const issuers = [{ id: 'web', issuer: idp.url, audiences: ['web'] }, { id: 'mobile', issuer: idp.url, audiences: ['mobile'] }]
  const waiting = await buildApp(configFor(issuers))
  t.teardown(() => waiting.close())
  await waiting.ready()
  await waitFor('the failed discovery', () => waiting.verifier.status().every((s) => s.lastError !== null))
  await sleep(200)
  t.equal(idp.requests(WELL_KNOWN), 1, 'one read for both')
  t.match(waiting.verifier.status(), [
    { id: 'web', ready: false, lastError: /the provider asked to wait 120 s/ },
    { id: 'mobile', ready: false, lastError: /the provider asked to wait 120 s/ }
  ])
  t.ok(waiting.verifier.keysAskedToWaitUntil('mobile') > Date.now(), 'the wait holds both')

  idp.resetCounts()
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('keys', () => app.verifier.ready)
  t.equal(idp.requests(WELL_KNOWN), 1, 'one read for both')
  t.equal(idp.requests('/jwks'), 1)
  for (const audience of ['web', 'mobile']) {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(idp.url, audience)) } })
    t.equal(res.statusCode, 200, audience)
  }
})

t.test('reload: a new Verifier does not ask a JWKS URL whose provider asked the running one to wait', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '120' } })
  const other = makeKey('RS256', { kid: 'other' })
  const issuerA = { id: 'a', issuer: 'https://a.example.com', audiences: ['aud'], jwksUri: idp.jwksUrl }
  const issuerB = { id: 'b', issuer: 'https://b.example.com', audiences: ['aud'], jwks: jwksOf(other) }
  const app = await buildApp(configFor([issuerA], { loadShedding: { enabled: false } }))
  t.teardown(() => app.close())
  await app.ready()
  // Not the request's arrival: the answer must have been read, and the wait recorded.
  await waitFor('the first fetch, failed', () => app.verifier.status()[0]?.lastError !== null)
  t.equal(idp.requests('/jwks'), 1)
  const result = await reloadConfiguration(app, () => configFor([issuerA, issuerB], { loadShedding: { enabled: false } }))
  t.equal(result.outcome, 'applied', 'a had no keys before either: no regression')
  t.equal(idp.requests('/jwks'), 1, 'the new Verifier did not ask before the 120 s')
  const verify = async (token: string): Promise<number> => (await app.inject({ method: 'POST', url: '/verify', payload: { token } })).statusCode
  t.equal(await verify(mint(other, idTokenClaims('https://b.example.com', 'aud'))), 200, 'the new issuer is served')
  t.equal(await verify(mint(key, idTokenClaims('https://a.example.com', 'aud'))), 503, 'a: still waiting, 503')
  t.equal(idp.requests('/jwks'), 1)
  const readyz = (await app.inject({ method: 'GET', url: '/readyz' })).json()
  t.match(JSON.stringify(readyz), 'the provider asked to wait 120 s (Retry-After)', '/readyz says why a is not ready')
})

/**
 * An app with issuer a's keys, whose provider then answered the refresh for an unknown kid with a 429 and
 * Retry-After `seconds`; `reloadTo` reloads it with a second audience for a and a smaller fetch.maxResponseBytes:
 * keys fetched under a larger limit are not taken over, so the new Verifier must load keys (the provider's wait
 * is taken over whatever changed).
 */
async function appAskedToWait (t: Teardown, seconds: number, extra: Record<string, unknown> = {}): Promise<{ app: Awaited<ReturnType<typeof buildApp>>, idp: JwksServer, reloadTo: (readyTimeoutMs?: number) => ReturnType<typeof reloadConfiguration> }> {
  const idp = await startIdp(t)
  const issuerA = { id: 'a', issuer: 'https://a.example.com', audiences: ['aud'], jwksUri: idp.jwksUrl }
  // An unknown kid may refresh at once.
  const settings = { loadShedding: { enabled: false }, jwks: { unknownKidCooldownSeconds: 0 }, ...extra }
  const app = await buildApp(configFor([issuerA], settings))
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('keys', () => app.verifier.ready)
  idp.set({ status: 429, headers: { 'retry-after': String(seconds) } })
  const stranger = makeKey('ES256', { kid: 'not-published' })
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(stranger, idTokenClaims('https://a.example.com', 'aud')) } })
  if (res.statusCode !== 503) throw new Error(`the unknown kid's refresh should have met the 429 (keys_unavailable), got ${res.statusCode}`)
  await waitFor('the wait recorded', () => app.verifier.keysAskedToWaitUntil('a') > Date.now())
  const reloadTo = async (readyTimeoutMs?: number): ReturnType<typeof reloadConfiguration> =>
    await reloadConfiguration(app, () => configFor([{ ...issuerA, audiences: ['aud', 'aud-2'] }], { ...settings, fetch: { ...(settings as { fetch?: object }).fetch, maxResponseBytes: 65536 } }),
      readyTimeoutMs === undefined ? {} : { readyTimeoutMs })
  return { app, idp, reloadTo }
}

const WAIT_QUOTED = /^issuers: a \(https:\/\/a\.example\.com\) has usable keys now but got none under the new configuration: .*the provider asked to wait 120 s \(Retry-After\)/

t.test('reload: one that would take away keys an issuer has, its provider asking to wait, is refused and says so', async (t) => {
  // A short fetch timeout keeps the reload's wait for keys short.
  const { app, idp, reloadTo } = await appAskedToWait(t, 120, { fetch: { timeoutMs: 500 } })
  t.equal(idp.requests('/jwks'), 2, 'the keys, then the unknown kid\'s refresh')
  const result = await reloadTo()
  t.equal(result.outcome, 'refused')
  t.match(result.problems, [WAIT_QUOTED])
  t.equal(idp.requests('/jwks'), 2, 'the new Verifier did not ask')
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims('https://a.example.com', 'aud')) } })).statusCode, 200, 'the running keys keep serving')
})

t.test('reload: refused at once, not after the wait for keys, when the provider of keys it would take away asked to wait past it', async (t) => {
  const { idp, reloadTo } = await appAskedToWait(t, 120)
  // The wait for keys is a minute here; the provider's wait (120 s) outlasts it, so the reload need not wait at all.
  const reload = reloadTo(60_000)
  const first = await Promise.race([reload, sleep(15_000).then(() => 'still waiting' as const)])
  t.not(first, 'still waiting', 'the reload did not wait for keys its provider will not give before the deadline')
  const result = await reload
  t.equal(result.outcome, 'refused')
  t.match(result.problems, [WAIT_QUOTED])
  t.equal(idp.requests('/jwks'), 2, 'nor did the new Verifier ask')
})

t.test('reload: a provider wait that ends before the deadline is waited out, and the keys it then gives are taken', async (t) => {
  const { app, idp, reloadTo } = await appAskedToWait(t, 1)
  idp.set({ json: jwks })
  const result = await reloadTo(30_000)
  t.equal(result.outcome, 'applied', 'the wait (1 s) ended before the deadline; the keys came after it')
  t.ok(idp.requests('/jwks') > 2, 'asked again, after the wait')
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims('https://a.example.com', 'aud-2')) } })).statusCode, 200)
})

t.test('reload: a discovery whose provider asked to wait is not asked again by the new Verifier', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '120' } }, WELL_KNOWN)
  const other = makeKey('RS256', { kid: 'other' })
  const discovered = { id: 'idp', issuer: idp.url, audiences: ['aud'] }
  const inline = { id: 'b', issuer: 'https://b.example.com', audiences: ['aud'], jwks: jwksOf(other) }
  const app = await buildApp(configFor([discovered], { loadShedding: { enabled: false } }))
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('the first discovery', () => app.verifier.status()[0]?.lastError !== null)
  t.equal(idp.requests(WELL_KNOWN), 1)
  const result = await reloadConfiguration(app, () => configFor([discovered, inline], { loadShedding: { enabled: false } }))
  t.equal(result.outcome, 'applied')
  t.equal(idp.requests(WELL_KNOWN), 1, 'the metadata is not asked for before the 120 s')
  t.match(app.verifier.status()[0], { id: 'idp', ready: false, lastError: /the provider asked to wait 120 s \(Retry-After\)/ }, '/readyz still says why')
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(idp.url, 'aud')) } })
  t.equal(res.statusCode, 503)
  t.ok(Number(res.headers['retry-after']) > 100, `the wait carried over: Retry-After ${res.headers['retry-after']}`)
})

t.test('reload: a discovery whose provider asked for less than our backoff is not asked again before the provider\'s time', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 503, headers: { 'retry-after': '2' } }, WELL_KNOWN)
  const other = makeKey('RS256', { kid: 'other' })
  const discovered = { id: 'idp', issuer: idp.url, audiences: ['aud'] }
  const inline = { id: 'b', issuer: 'https://b.example.com', audiences: ['aud'], jwks: jwksOf(other) }
  // Our backoff (30 s) outlasts the provider's 2 s.
  const settings = { loadShedding: { enabled: false }, jwks: { backoffInitialSeconds: 30 } }
  const app = await buildApp(configFor([discovered], settings))
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('the first discovery', () => app.verifier.status()[0]?.lastError !== null)
  t.equal(idp.requests(WELL_KNOWN), 1)
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const result = await reloadConfiguration(app, () => configFor([discovered, inline], settings))
  t.equal(result.outcome, 'applied')
  t.equal(idp.requests(WELL_KNOWN), 1, 'the metadata is not asked for within the provider\'s 2 s')
  await waitFor('the metadata read at the provider\'s time, not after our 30 s', () => idp.requests(WELL_KNOWN) === 2)
  await waitFor('keys', () => app.verifier.ready)
})

t.test('reload: a rediscovery the provider asked to wait for keeps the jwks_uri found before, and the reload applies', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const discovered = { id: 'idp', issuer: idp.url, audiences: ['aud'] }
  const extra = { loadShedding: { enabled: false }, jwks: { rediscoverySeconds: 1 } }
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([discovered], extra), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('keys', () => app.verifier.ready)
  idp.set({ status: 429, headers: { 'retry-after': '120' } }, WELL_KNOWN)
  // Not the request's arrival (idp.requests): the answer must have been read, and the wait recorded.
  await waitFor('a refused rediscovery', () => lines().some((l) => l.msg === 'rediscovery failed; the current jwks_uri stays'))
  t.equal(idp.requests(WELL_KNOWN), 2)
  const result = await reloadConfiguration(app, () => configFor([{ ...discovered, audiences: ['aud', 'aud-2'] }], extra))
  t.equal(result.outcome, 'applied', 'not refused for keys: the new Verifier uses the jwks_uri found before')
  t.equal(idp.requests(WELL_KNOWN), 2, 'the metadata is not asked for before the 120 s')
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(idp.url, 'aud-2')) } })).statusCode, 200)
})

t.test('a reload to rediscoverySeconds 0 during the provider\'s wait on the metadata: the jwks_uri found stays, and the metadata is not read again', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const discovered = { id: 'idp', issuer: idp.url, audiences: ['aud'] }
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([discovered], { jwks: { rediscoverySeconds: 1 } }), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('keys', () => app.verifier.ready)
  idp.set({ status: 429, headers: { 'retry-after': '1' } }, WELL_KNOWN)
  await waitFor('a refused rediscovery', () => lines().some((l) => l.msg === 'rediscovery failed; the current jwks_uri stays'))
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const result = await reloadConfiguration(app, () => configFor([discovered], { jwks: { rediscoverySeconds: 0 } }))
  t.equal(result.outcome, 'applied')
  const reads = idp.requests(WELL_KNOWN)
  t.equal(reads, 2)
  // Past the provider's wait: "0: never" reads the metadata again; it once re-read it back to back.
  await sleep(2500)
  t.equal(idp.requests(WELL_KNOWN), reads, 'not read again')
  t.match(app.verifier.status(), [{ ready: true, jwksUri: idp.jwksUrl }])
})

t.test('rediscovery: neither the metadata nor a new jwks_uri is fetched again before the time asked for', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const v = new Verifier(configFor([{ id: 'idp', issuer: idp.url, audiences: ['aud'] }], { jwks: { rediscoverySeconds: 1, backoffInitialSeconds: 1 } }))
  t.teardown(() => v.close())
  v.start()
  await waitFor('ready', () => v.ready)

  // The metadata asks to wait 4 s; the own schedule (backoff 1 s, rediscovery 1 s) would ask again after 1 s.
  idp.set({ status: 429, headers: { 'retry-after': '4' } }, WELL_KNOWN)
  const before = idp.requests(WELL_KNOWN)
  await waitFor('a refused rediscovery', () => idp.requests(WELL_KNOWN) === before + 1)
  await sleep(2000)
  t.equal(idp.requests(WELL_KNOWN), before + 1, 'no rediscovery within the 4 s asked for')
  t.ok(v.ready, 'the held keys stay in use')

  // A new jwks_uri that asks to wait: not taken, and not fetched again before its time.
  idp.set({ status: 503, headers: { 'retry-after': '4' } }, '/jwks-2')
  idp.set({ json: { issuer: idp.url, jwks_uri: `${idp.url}/jwks-2` } }, WELL_KNOWN)
  await waitFor('the new jwks_uri tried', () => idp.requests('/jwks-2') === 1)
  await sleep(2000)
  t.equal(idp.requests('/jwks-2'), 1, 'the new jwks_uri is not fetched again within the 4 s asked for')
  t.equal(v.status()[0]?.jwksUri, idp.jwksUrl)
  t.ok(v.ready)
  await waitFor('the new jwks_uri tried again', () => idp.requests('/jwks-2') === 2)
})
