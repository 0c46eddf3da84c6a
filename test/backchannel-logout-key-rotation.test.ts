/**
 * POST /backchannel-logout and the unknown-kid refresh (src/jwks/cache.ts): a logout token signed with a key
 * the service has not fetched yet, when the refresh is not allowed (cooldown, budget), is 503
 * key_refresh_deferred with Retry-After, not a 400 that the provider would not retry (Back-Channel Logout
 * 1.0 §2.8): the logout of a key just rotated in would be lost for good. A kid still unknown after a fresh
 * fetch stays a 400. Logout tokens have an unknown-kid budget of their own, spent only by tokens that pass the
 * logout-token rules, so that junk posted to the open route cannot spend the refreshes /verify needs.
 * /verify keeps its answer: 401 key_not_found within the cooldown after a good answer.
 */
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import type { JsonWebKeySet } from '../src/config/types.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { JwksCache } from '../src/jwks/cache.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds, type TestKey } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const keyA = makeKey('ES256', { kid: 'a' })
const keyB = makeKey('ES256', { kid: 'b' })
const keyC = makeKey('ES256', { kid: 'c' })

function logoutToken (key: TestKey, extra: Record<string, unknown> = {}): string {
  const now = nowSeconds()
  return mint(key, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${Math.random()}`, sid: 's1', sub: 'u1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...extra }, { header: { typ: 'logout+jwt' } })
}

async function logout (app: FastifyInstance, token: string) {
  return await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ logout_token: token }).toString() })
}

async function verify (app: FastifyInstance, token: string) {
  return await app.inject({ method: 'POST', url: '/verify', payload: { token } })
}

async function appWith (t: Test, idp: JwksServer, jwks: Record<string, unknown>): Promise<{ app: FastifyInstance, lines: () => Array<Record<string, unknown>> }> {
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { raw.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }], { jwks, revocation: { enabled: true }, loadShedding: { enabled: false } }),
    { loggerInstance: pino(loggerOptions('info'), stream) })
  t.teardown(async () => { await app.close() })
  await app.ready()
  // The keys loaded: a token of the known key verifies.
  t.equal((await verify(app, mint(keyA, idTokenClaims(ISS, AUD)))).statusCode, 200)
  return { app, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

t.test('a logout token of a key rotated in while the refresh is refused by the cooldown: 503 with Retry-After, not 400', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA), cacheControl: 'max-age=3600' })
  t.teardown(() => idp.close())
  const { app, lines } = await appWith(t, idp, { unknownKidCooldownSeconds: 60 })
  // The provider rotates key b in and signs its next logout token with it, within a minute of our fetch.
  idp.set({ json: jwksOf(keyA, keyB), cacheControl: 'max-age=3600' })
  const fetched = idp.requests('/jwks')
  const res = await logout(app, logoutToken(keyB))
  t.equal(res.statusCode, 503, 'retry later: a 400 would lose the logout')
  t.equal(res.json().code, 'key_refresh_deferred')
  const retryAfter = Number(res.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After is the rest of the cooldown (${String(res.headers['retry-after'])})`)
  t.notOk('issuer' in res.json(), 'the answer of the open route names no issuer')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(idp.requests('/jwks'), fetched, 'no fetch: the cooldown holds')
  const lost = lines().filter((l) => l.msg === 'revocation not recorded')
  t.equal(lost.length, 1)
  t.match(lost[0], { level: 50, issuer: 'main', source: 'backchannel-logout', reason: 'key_refresh_deferred', retryAfterSeconds: retryAfter })

  // /verify keeps its semantics: an ID token of an unknown kid within the cooldown is key_not_found (its hint
  // says a key just rotated in is fetched after the cooldown).
  const idToken = await verify(app, mint(keyB, idTokenClaims(ISS, AUD, { jti: 'b' })))
  t.same([idToken.statusCode, idToken.json().code], [401, 'key_not_found'])
})

t.test('a kid still unknown after a fresh fetch stays 400; a key rotated in is fetched and the logout recorded', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA), cacheControl: 'max-age=3600' })
  t.teardown(() => idp.close())
  const { app } = await appWith(t, idp, { unknownKidCooldownSeconds: 0 })
  const fetched = idp.requests('/jwks')
  const unknown = await logout(app, logoutToken(keyB))
  t.same([unknown.statusCode, unknown.json().code], [400, 'logout_token_invalid'], 'the provider\'s keys as of now do not have it')
  t.equal(idp.requests('/jwks'), fetched + 1, 'fetched again first')

  idp.set({ json: jwksOf(keyA, keyB), cacheControl: 'max-age=3600' })
  const rotated = await logout(app, logoutToken(keyB))
  t.equal(rotated.statusCode, 200)
  t.same(rotated.json(), { issuer: 'main', revoked: 'sid' })
})

t.test('junk on the open route cannot spend the refreshes /verify needs; tokens the rules refuse spend none', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA), cacheControl: 'max-age=3600' })
  t.teardown(() => idp.close())
  const { app } = await appWith(t, idp, { unknownKidCooldownSeconds: 0, unknownKidRefreshesPerMinute: 1 })
  const fetched = idp.requests('/jwks')

  // Tokens the logout rules refuse whatever their signature: their 400 comes first, and no fetch.
  for (const claims of [{ aud: 'someone-else' }, { iat: nowSeconds() - 86_400 }, { events: {} }, { nonce: 'n' }]) {
    const res = await logout(app, logoutToken(keyB, claims))
    t.same([res.statusCode, res.json().code], [400, 'logout_token_invalid'])
  }
  t.equal(idp.requests('/jwks'), fetched, 'no refresh for a token the rules refuse')

  // A well-formed logout token of an unknown kid spends the logout budget (one a minute here)...
  t.equal((await logout(app, logoutToken(keyB))).statusCode, 400, 'fetched, and still unknown')
  t.equal(idp.requests('/jwks'), fetched + 1)
  const deferred = await logout(app, logoutToken(keyB))
  t.same([deferred.statusCode, deferred.json().code], [503, 'key_refresh_deferred'], 'the logout budget is spent: retry later')
  const retryAfter = Number(deferred.headers['retry-after'])
  t.ok(retryAfter > 50 && retryAfter <= 60, `until the minute's refresh leaves the budget (${String(deferred.headers['retry-after'])})`)
  t.equal(idp.requests('/jwks'), fetched + 1)

  // ...but not the one of /verify: an ID token of a key rotated in is still fetched at once.
  idp.set({ json: jwksOf(keyA, keyC), cacheControl: 'max-age=3600' })
  const idToken = await verify(app, mint(keyC, idTokenClaims(ISS, AUD, { jti: 'c' })))
  t.equal(idToken.statusCode, 200, 'the key rotated in was fetched for /verify')
  t.equal(idp.requests('/jwks'), fetched + 2)
})

t.test('the cache: Retry-After of a deferred logout refresh is when a refresh is allowed again', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA), cacheControl: 'max-age=600' })
  t.teardown(() => idp.close())
  const clock = { now: 1_700_000_000_000 }
  const make = (unknownKidCooldownSeconds: number, unknownKidRefreshesPerMinute: number): JwksCache<JsonWebKeySet> => {
    const cache = new JwksCache<JsonWebKeySet>({
      rediscoverySeconds: 86400, maxEntries: 10, defaultFreshnessSeconds: 600, minFreshnessSeconds: 60, maxFreshnessSeconds: 3600,
      staleIfErrorSeconds: 3600, unknownKidCooldownSeconds, unknownKidRefreshesPerMinute, backoffInitialSeconds: 30, backoffMaxSeconds: 300,
      fetchOpts: { timeoutMs: 2000, maxResponseBytes: 65536 }, createKeySet: (jwks) => jwks, now: () => clock.now
    })
    t.teardown(() => { cache.close() })
    return cache
  }
  const deferredFor = async (promise: Promise<unknown>): Promise<number | undefined> => {
    try {
      await promise
    } catch (err) {
      const e = err as { code?: string, details?: { retryAfterSeconds?: number } }
      if (e.code === 'key_refresh_deferred') return e.details?.retryAfterSeconds
      throw err
    }
    return undefined
  }

  const cooldown = make(30, 6)
  await cooldown.warm(idp.jwksUrl)
  clock.now += 10_000
  t.equal(await deferredFor(cooldown.refreshForUnknownKid(idp.jwksUrl, 'logout')), 20, 'the rest of the cooldown')
  t.same(await cooldown.refreshForUnknownKid(idp.jwksUrl), jwksOf(keyA), 'a token (of /verify) gets the keys, so key_not_found, as before')
  clock.now += 20_000
  t.same(await cooldown.refreshForUnknownKid(idp.jwksUrl, 'logout'), jwksOf(keyA), 'past the cooldown: fetched')

  const budget = make(0, 2)
  await budget.warm(idp.jwksUrl)
  await budget.refreshForUnknownKid(idp.jwksUrl, 'logout')
  clock.now += 15_000
  await budget.refreshForUnknownKid(idp.jwksUrl, 'logout')
  clock.now += 5_000
  t.equal(await deferredFor(budget.refreshForUnknownKid(idp.jwksUrl, 'logout')), 40, 'until the first of the minute\'s two leaves the window')
  t.same(await budget.refreshForUnknownKid(idp.jwksUrl), jwksOf(keyA), 'the tokens\' budget is untouched')
  // Exactly a minute after the first of the budget's two refreshes, it has left the window: allowed again.
  clock.now += 40_000 // 60 s after the first
  const fetchesBefore = idp.requests('/jwks')
  t.same(await budget.refreshForUnknownKid(idp.jwksUrl, 'logout'), jwksOf(keyA), 'a minute on: the budget has room')
  t.equal(idp.requests('/jwks'), fetchesBefore + 1)

  const none = make(0, 0)
  await none.warm(idp.jwksUrl)
  clock.now += 100_000
  t.equal(await deferredFor(none.refreshForUnknownKid(idp.jwksUrl, 'logout')), 500, 'no budget: until the scheduled refresh (max-age 600)')

  // Part of a second left: rounded up, and never 0.
  const partial = make(30, 6)
  await partial.warm(idp.jwksUrl)
  clock.now += 10_500
  t.equal(await deferredFor(partial.refreshForUnknownKid(idp.jwksUrl, 'logout')), 20, 'the rest of the cooldown (19.5 s), rounded up')
  clock.now += 19_300
  t.equal(await deferredFor(partial.refreshForUnknownKid(idp.jwksUrl, 'logout')), 1, '0.2 s left: 1')
  // No budget and keys past their freshness (the scheduled refresh is overdue): 1, not 0 or less.
  clock.now += 600_000
  t.equal(await deferredFor(none.refreshForUnknownKid(idp.jwksUrl, 'logout')), 1, 'no budget, stale keys: 1')

  // A key set without usable keys is an answer (the kid is not one of them), and backs off: deferred until the
  // backoff ends (30 s, less up to 10 % jitter), not at once.
  const answered = make(0, 6)
  await answered.warm(idp.jwksUrl)
  idp.set({ json: { keys: [] }, cacheControl: 'max-age=600' })
  clock.now += 1_000
  t.same(await answered.refreshForUnknownKid(idp.jwksUrl, 'logout'), jwksOf(keyA), 'the empty key set is refused; the old keys stay')
  const backoff = await deferredFor(answered.refreshForUnknownKid(idp.jwksUrl, 'logout'))
  t.ok(backoff !== undefined && backoff >= 27 && backoff <= 30, `until the backoff ends (${String(backoff)})`)
  idp.set({ json: jwksOf(keyA), cacheControl: 'max-age=600' })
})

t.test('the rules checked before a refresh name no claim: nothing vouches for the content of a token of an unknown kid', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA), cacheControl: 'max-age=3600' })
  t.teardown(() => idp.close())
  const { app, lines } = await appWith(t, idp, { unknownKidCooldownSeconds: 0 })
  const fetched = idp.requests('/jwks')
  // Anyone can mint these: the answer must not say whether a guessed audience is configured, or how old a token may be.
  for (const claims of [{ aud: 'guessed-client' }, { iat: nowSeconds() - 86_400 }]) {
    const res = await logout(app, logoutToken(keyB, claims))
    t.same([res.statusCode, res.json().code], [400, 'logout_token_invalid'])
    t.notOk('claim' in res.json(), `no claim named for ${JSON.stringify(claims)}: as for a forged signature of a known kid`)
  }
  // The answer of a known kid's forged signature, for comparison: no claim either.
  const forged = logoutToken(keyA, { aud: 'guessed-client' }).replace(/\.[^.]+$/, `.${Buffer.alloc(64).toString('base64url')}`)
  t.notOk('claim' in (await logout(app, forged)).json())
  t.equal(idp.requests('/jwks'), fetched, 'still no refresh for them')
  t.match(lines().filter((l) => l.msg === 'logout token refused').slice(0, 2), [{ reason: 'key_not_found', issuer: 'main' }, { reason: 'key_not_found', issuer: 'main' }])
})
