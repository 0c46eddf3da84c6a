/**
 * A reload that builds a new Verifier takes over the running one's key sets and discovered jwks_uri (src/core/
 * verifier.ts takeOver): it asks no provider for keys or metadata it has, so a provider that is down at that moment
 * does not refuse it; freshness is counted under the new jwks settings; keys read under a larger
 * fetch.maxResponseBytes are fetched again. Against a real OpenID Provider (oidc-provider, tokens from its login
 * flow), and a hand-made one on 127.0.0.1 that counts requests and can fail on demand.
 */
import t from 'tap'
import type { JsonWebKeySet } from '../src/config/types.js'
import { buildApp } from '../src/app.js'
import { JwksCache } from '../src/jwks/cache.js'
import { fetchJson } from '../src/net/fetch-json.js'
import { reloadConfiguration } from '../src/reload.js'
import { configFor, JWKS_CACHE_TEST_CONFIG } from './helpers/config.js'
import { captureLog } from './helpers/log-capture.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { startOidcProvider } from './helpers/oidc-provider.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { waitFor } from './helpers/wait-for.js'

interface Teardown { teardown: (fn: () => unknown) => void }
type App = Awaited<ReturnType<typeof buildApp>>

const WELL_KNOWN = '/.well-known/openid-configuration'
const key = makeKey('ES256', { kid: 'k1' })
const jwks = jwksOf(key)
const ISSUER = 'https://a.example.com'

async function startIdp (t: Teardown): Promise<JwksServer> {
  const idp = await startJwksServer({ json: jwks, cacheControl: 'max-age=600' })
  t.teardown(() => idp.close())
  return idp
}

async function startApp (t: Teardown, config: ReturnType<typeof configFor>): Promise<App> {
  const app = await buildApp(config)
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('keys', () => app.verifier.ready)
  return app
}

async function verify (app: App, token: string): Promise<{ statusCode: number, code?: string }> {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  return { statusCode: res.statusCode, code: res.statusCode === 200 ? undefined : res.json().code }
}

/** JWKS fetches counted in /metrics (every outcome, or those whose line has `label`, e.g. outcome="error"). */
async function jwksFetches (app: App, label = ''): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  let total = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('oidc_verifier_jwks_fetches_total{') && line.includes(label)) total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}

t.test('a JWKS URL: the reload asks the provider nothing, and the new audience is served with the keys held', async (t) => {
  const idp = await startIdp(t)
  const issuer = { id: 'a', issuer: ISSUER, audiences: ['aud'], jwksUri: idp.jwksUrl }
  const app = await startApp(t, configFor([issuer]))
  t.equal(idp.requests('/jwks'), 1)
  const before = app.verifier
  const result = await reloadConfiguration(app, () => configFor([{ ...issuer, audiences: ['aud', 'aud-2'] }]))
  t.equal(result.outcome, 'applied')
  t.not(app.verifier, before, 'a new Verifier (an issuer setting changed)')
  t.equal(idp.requests('/jwks'), 0 + 1, 'no fetch for the reload')
  t.match(app.verifier.status(), [{ id: 'a', ready: true, state: 'fresh', keyCount: 1 }])
  t.equal((await verify(app, mint(key, idTokenClaims(ISSUER, 'aud-2')))).statusCode, 200)
  t.equal(idp.requests('/jwks'), 1)
})

t.test('a provider down at the reload neither refuses it nor is asked', async (t) => {
  const idp = await startIdp(t)
  const issuer = { id: 'a', issuer: ISSUER, audiences: ['aud'], jwksUri: idp.jwksUrl }
  // A short fetch timeout would keep a refusal short: the reload used to wait for keys that could not come.
  const settings = { fetch: { timeoutMs: 500 } }
  const app = await startApp(t, configFor([issuer], settings))
  idp.set({ status: 500 })
  const result = await reloadConfiguration(app, () => configFor([{ ...issuer, audiences: ['aud', 'aud-2'] }], settings))
  t.same(result.problems, [])
  t.equal(result.outcome, 'applied')
  t.equal(idp.requests('/jwks'), 1)
  t.equal((await verify(app, mint(key, idTokenClaims(ISSUER, 'aud-2')))).statusCode, 200)
})

t.test('stale keys whose refresh fails stay in use: the reload asks once more, and applies whatever the answer', async (t) => {
  const idp = await startIdp(t)
  const issuer = { id: 'a', issuer: ISSUER, audiences: ['aud'], jwksUri: idp.jwksUrl }
  // Fresh for a second, then stale for ten minutes; the first retry after a failure comes 30 s later.
  const settings = { jwks: { minFreshnessSeconds: 1, maxFreshnessSeconds: 1, defaultFreshnessSeconds: 1, staleIfErrorSeconds: 600, backoffInitialSeconds: 30, backoffMaxSeconds: 60 } }
  const app = await startApp(t, configFor([issuer], settings))
  idp.set({ status: 503 })
  await waitFor('the refresh at the end of freshness, failed', () => app.verifier.status()[0]?.lastError !== null, 10_000)
  t.equal(idp.requests('/jwks'), 2)
  t.match(app.verifier.status(), [{ ready: true, state: 'stale' }])
  const result = await reloadConfiguration(app, () => configFor([{ ...issuer, audiences: ['aud', 'aud-2'] }], settings))
  t.equal(result.outcome, 'applied', 'the keys held are usable: not refused')
  await waitFor('the new Verifier\'s fetch, failed', async () => await jwksFetches(app, 'outcome="error"') === 2)
  t.equal(idp.requests('/jwks'), 3, 'the new Verifier asked once (an operator\'s reload does not wait out our backoff)')
  t.match(app.verifier.status(), [{ ready: true, state: 'stale', lastError: /503/ }])
  t.equal(idp.requests('/jwks'), 3)
  t.equal((await verify(app, mint(key, idTokenClaims(ISSUER, 'aud-2')))).statusCode, 200)
  t.equal(idp.requests('/jwks'), 3, 'nor does a request ask while the backoff runs')
})

t.test('keys read under a larger fetch.maxResponseBytes are fetched again under the new limit', async (t) => {
  const idp = await startIdp(t)
  const issuer = { id: 'a', issuer: ISSUER, audiences: ['aud'], jwksUri: idp.jwksUrl }
  const app = await startApp(t, configFor([issuer]))
  const result = await reloadConfiguration(app, () => configFor([issuer], { fetch: { maxResponseBytes: 65536 } }))
  t.equal(result.outcome, 'applied')
  t.equal(idp.requests('/jwks'), 2, 'fetched again')
  t.equal(app.verifier.keySetsTakenOver, 0)
  // A larger limit takes them over.
  const larger = await reloadConfiguration(app, () => configFor([issuer], { fetch: { maxResponseBytes: 1048576 } }))
  t.equal(larger.outcome, 'applied')
  t.equal(idp.requests('/jwks'), 2)
  t.equal(app.verifier.keySetsTakenOver, 1)
})

t.test('the JWKS cache: a taken-over key set counts its freshness under the new settings, from when it was fetched', async (t) => {
  const idp = await startIdp(t)
  const clock = { now: 1_700_000_000_000 }
  const cacheWith = (overrides: Partial<typeof JWKS_CACHE_TEST_CONFIG>): JwksCache<JsonWebKeySet> => {
    const cache = new JwksCache<JsonWebKeySet>({ ...JWKS_CACHE_TEST_CONFIG, ...overrides, fetchOpts: { timeoutMs: 2000, maxResponseBytes: 65536 }, fetcher: fetchJson, createKeySet: (set) => set, now: () => clock.now })
    t.teardown(() => cache.close())
    return cache
  }
  const first = cacheWith({ maxFreshnessSeconds: 3600, staleIfErrorSeconds: 3600 })
  await first.warm(idp.jwksUrl)
  const fetchedAt = clock.now
  t.match(first.status(idp.jwksUrl), { state: 'fresh', freshUntil: fetchedAt + 600_000 }, 'max-age=600')

  clock.now = fetchedAt + 90_000
  const shorter = cacheWith({ maxFreshnessSeconds: 60, staleIfErrorSeconds: 600 })
  shorter.adopt(first.handOver(), { keys: true })
  t.match(shorter.status(idp.jwksUrl), { state: 'missing' }, 'no entry before the URL is used')
  t.same(await shorter.get(idp.jwksUrl), jwks, 'served without a fetch')
  t.match(shorter.status(idp.jwksUrl), { state: 'stale', fetchedAt, freshUntil: fetchedAt + 60_000, usableUntil: fetchedAt + 660_000 })
  t.equal(await waitFor('the background refresh of stale keys', () => idp.requests('/jwks') === 2).then(() => idp.requests('/jwks')), 2)

  // Expired under the new settings: not taken, and a request waits for a fetch.
  clock.now = fetchedAt + 1_000_000
  const expired = cacheWith({ maxFreshnessSeconds: 60, staleIfErrorSeconds: 60 })
  expired.adopt(first.handOver(), { keys: true })
  await expired.get(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 3)
  t.match(expired.status(idp.jwksUrl), { state: 'fresh', fetchedAt: clock.now })

  // keys: false takes no key set.
  const refused = cacheWith({})
  refused.adopt(first.handOver(), { keys: false })
  await refused.warm(idp.jwksUrl)
  t.equal(idp.requests('/jwks'), 4)
})

t.test('a discovered issuer: neither the metadata nor the JWKS is read again; rediscovery keeps its schedule', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const discovered = { id: 'idp', issuer: idp.url, audiences: ['aud'] }
  const app = await startApp(t, configFor([discovered], { jwks: { rediscoverySeconds: 3600 } }))
  t.equal(idp.requests(WELL_KNOWN), 1)
  t.equal(idp.requests('/jwks'), 1)
  const result = await reloadConfiguration(app, () => configFor([{ ...discovered, audiences: ['aud', 'aud-2'] }], { jwks: { rediscoverySeconds: 3600 } }))
  t.equal(result.outcome, 'applied')
  t.equal(idp.requests(WELL_KNOWN), 1, 'the metadata is not read for the reload')
  t.equal(idp.requests('/jwks'), 1)
  t.match(app.verifier.status(), [{ id: 'idp', ready: true, source: 'discovery', jwksUri: idp.jwksUrl }])
  t.equal((await verify(app, mint(key, idTokenClaims(idp.url, 'aud-2')))).statusCode, 200)

  // A shorter rediscovery interval brings the next read forward: no later than the new interval from the reload.
  const sooner = await reloadConfiguration(app, () => configFor([discovered], { jwks: { rediscoverySeconds: 1 } }))
  t.equal(sooner.outcome, 'applied')
  t.equal(idp.requests(WELL_KNOWN), 1)
  await waitFor('the rediscovery a second later', () => idp.requests(WELL_KNOWN) === 2, 5000)
  t.equal(idp.requests('/jwks'), 1, 'the same jwks_uri: its keys are not fetched for it')
})

t.test('a discovery that has not succeeded is tried again at once by the reload', async (t) => {
  const idp = await startIdp(t)
  idp.set({ status: 500 }, WELL_KNOWN)
  const discovered = { id: 'idp', issuer: idp.url, audiences: ['aud'] }
  const app = await buildApp(configFor([discovered], { jwks: { backoffInitialSeconds: 60, backoffMaxSeconds: 120 } }))
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('the failed discovery', () => app.verifier.status()[0]?.lastError !== null)
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, WELL_KNOWN)
  const result = await reloadConfiguration(app, () => configFor([{ ...discovered, audiences: ['aud', 'aud-2'] }], { jwks: { backoffInitialSeconds: 60, backoffMaxSeconds: 120 } }))
  t.equal(result.outcome, 'applied')
  t.equal(idp.requests(WELL_KNOWN), 2, 'an operator\'s reload does not wait out our own backoff')
  await waitFor('keys', () => app.verifier.ready)
})

t.test('a real OpenID Provider, down during the reload: the reload applies, with the keys and jwks_uri it had', async (t) => {
  const op = await startOidcProvider()
  let opClosed = false
  t.teardown(async () => { if (!opClosed) await op.close() })
  const clientId = op.client('ES256').clientId
  const issuer = { id: 'op', issuer: op.issuer, audiences: [clientId], algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'] }
  const { lines, logger } = captureLog()
  // Logged at info, the reload's configuration too (configFor's default is silent): the log counts discoveries.
  const settings = { fetch: { timeoutMs: 1000 }, server: { logLevel: 'info' } }
  const app = await buildApp(configFor([issuer], settings), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  await waitFor('keys', () => app.verifier.ready, 15_000)
  const { idToken } = await op.login({ clientId })
  t.equal((await verify(app, idToken)).statusCode, 200)
  const fetches = await jwksFetches(app)
  const discoveries = lines().filter((l) => l.msg === 'discovery succeeded').length
  t.equal(discoveries, 1)

  await op.close()
  opClosed = true
  const result = await reloadConfiguration(app, () => configFor([{ ...issuer, audiences: [clientId, 'another-client'] }], settings))
  t.same(result.problems, [])
  t.equal(result.outcome, 'applied')
  t.match(lines().find((l) => l.msg === 'configuration reloaded'), { verifier: 'rebuilt', keySetsTakenOver: 1, notReady: [] })
  t.equal(await jwksFetches(app), fetches, 'no JWKS fetch for the reload')
  t.equal(lines().filter((l) => l.msg === 'discovery succeeded').length, 1, 'nor a discovery')
  t.equal((await verify(app, idToken)).statusCode, 200, 'the token from the login still verifies, under the new Verifier')
})
