/**
 * GET /metrics after real traffic: every series the README lists, with the values the traffic implies.
 * Labels come from configuration only; nothing of a token ever appears in the exposition.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { parseMetrics, samplesOf, valueOf, type Sample } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds, tamperPayload } from './helpers/tokens.js'

const MAIN = 'https://idp.example.com'
const es = makeKey('ES256')
const rs = makeKey('RS256')

async function until (what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('series and values after real traffic', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(rs), cacheControl: 'max-age=60' })
  t.teardown(() => idp.close())
  const REMOTE = `${idp.url}/issuer`
  let offsetMs = 0
  const now = (): number => Date.now() + offsetMs
  const config = configFor([
    { id: 'main', issuer: MAIN, audiences: ['aud'], jwks: jwksOf(es) },
    { id: 'remote', issuer: REMOTE, audiences: ['aud'], jwksUri: idp.jwksUrl }
  ], { rateLimit: { max: 9, windowSeconds: 60 } })
  const app = await buildApp(config, { now })
  t.teardown(() => app.close())
  await app.ready()
  await until('remote keys', () => app.verifier.ready)

  const verify = async (token: string): Promise<number> => (await app.inject({ method: 'POST', url: '/verify', payload: { token } })).statusCode
  const good = mint(es, idTokenClaims(MAIN, 'aud'))
  t.equal(await verify(good), 200)
  t.equal(await verify(good), 200, 'the same token again: verified in full again, and now cached')
  t.equal(await verify(good), 200, 'and again: a verified-token cache hit')
  t.equal(await verify(mint(rs, idTokenClaims(REMOTE, 'aud'))), 200)
  t.equal(await verify('garbage.token.here'), 401)
  t.equal(await verify(mint(es, idTokenClaims('https://unknown.example.com', 'aud', { sub: 'secret-subject' }))), 401)
  t.equal(await verify(mint(es, idTokenClaims(MAIN, 'aud', { exp: nowSeconds() - 3600, iat: nowSeconds() - 7200 }))), 401)
  t.equal(await verify(tamperPayload(good, idTokenClaims(MAIN, 'aud', { sub: 'mallory' }))), 401)

  // The identity provider goes down and the clock moves past freshness: stale keys are served.
  idp.set({ status: 500 })
  offsetMs = 120_000
  t.equal(await verify(mint(rs, idTokenClaims(REMOTE, 'aud', { exp: nowSeconds() + 3600, jti: 'second' }))), 200, 'stale keys still verify')
  t.equal(await verify('x'), 429, 'the tenth request is over the limit')

  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  await until('the failed background refresh', async () =>
    valueOf(parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body), 'oidc_verifier_jwks_fetches_total', { issuer: 'remote', outcome: 'error' }) === 1)
  const scrape = await app.inject({ method: 'GET', url: '/metrics' })
  const samples = parseMetrics(scrape.body)
  const v = (name: string, labels: Record<string, string> = {}): number | undefined => valueOf(samples, name, labels)

  t.test('verifications by issuer and result', async (t) => {
    t.equal(v('oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' }), 3)
    t.equal(v('oidc_verifier_verifications_total', { issuer: 'remote', result: 'ok' }), 2)
    t.equal(v('oidc_verifier_verifications_total', { issuer: 'none', result: 'token_malformed' }), 1)
    t.equal(v('oidc_verifier_verifications_total', { issuer: 'none', result: 'issuer_unknown' }), 1)
    t.equal(v('oidc_verifier_verifications_total', { issuer: 'main', result: 'token_expired' }), 1)
    t.equal(v('oidc_verifier_verifications_total', { issuer: 'main', result: 'signature_invalid' }), 1)
    const total = samplesOf(samples, 'oidc_verifier_verifications_total').reduce((sum, s) => sum + s.value, 0)
    t.equal(total, 9, 'the rate-limited request never reached the verifier')
  })

  t.test('latency histogram with sub-millisecond buckets', async (t) => {
    t.equal(v('oidc_verifier_verification_duration_seconds_count', { issuer: 'main', outcome: 'ok' }), 3)
    t.equal(v('oidc_verifier_verification_duration_seconds_count', { issuer: 'main', outcome: 'rejected' }), 2)
    t.equal(v('oidc_verifier_verification_duration_seconds_count', { issuer: 'none', outcome: 'rejected' }), 2)
    const buckets = samplesOf(samples, 'oidc_verifier_verification_duration_seconds_bucket')
      .filter((s) => s.labels.issuer === 'main' && s.labels.outcome === 'ok').map((s) => s.labels.le)
    t.same(buckets, ['0.000005', '0.00001', '0.000025', '0.00005', '0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '+Inf'])
    t.equal(v('oidc_verifier_verification_duration_seconds_bucket', { issuer: 'main', outcome: 'ok', le: '+Inf' }), 3)
    t.ok((v('oidc_verifier_verification_duration_seconds_sum', { issuer: 'main', outcome: 'ok' }) ?? 0) > 0)
  })

  t.test('JWKS fetches, staleness and key gauges', async (t) => {
    t.equal(v('oidc_verifier_jwks_fetches_total', { issuer: 'remote', outcome: 'success', reason: 'warm' }), 1)
    t.equal(v('oidc_verifier_jwks_fetches_total', { issuer: 'remote', outcome: 'error', reason: 'background' }), 1)
    t.equal(v('oidc_verifier_jwks_fetch_duration_seconds_count', { issuer: 'remote', outcome: 'success' }), 1)
    t.equal(v('oidc_verifier_jwks_fetch_duration_seconds_count', { issuer: 'remote', outcome: 'error' }), 1)
    t.equal(v('oidc_verifier_stale_keys_served_total', { issuer: 'remote' }), 1)
    t.equal(v('oidc_verifier_keys', { issuer: 'remote' }), 1)
    t.equal(v('oidc_verifier_keys', { issuer: 'main' }), 1)
    t.equal(v('oidc_verifier_issuer_ready', { issuer: 'main' }), 1)
    t.equal(v('oidc_verifier_issuer_ready', { issuer: 'remote' }), 1, 'stale keys are usable')
    t.equal(v('oidc_verifier_keys_state', { issuer: 'remote', state: 'stale' }), 1)
    t.equal(v('oidc_verifier_keys_state', { issuer: 'remote', state: 'fresh' }), 0)
    t.equal(v('oidc_verifier_keys_state', { issuer: 'main', state: 'fresh' }), 1)
    const age = v('oidc_verifier_keys_age_seconds', { issuer: 'remote' }) ?? -1
    t.ok(age >= 120 && age < 180, `keys are as old as the clock moved (${age} s)`)
    const refreshed = v('oidc_verifier_keys_last_refresh_timestamp_seconds', { issuer: 'remote' }) ?? 0
    t.ok(Math.abs(refreshed + age - now() / 1000) < 1, 'last refresh + age = now')
    t.equal(v('oidc_verifier_keys_age_seconds', { issuer: 'main' }), undefined, 'inline keys have no age')
  })

  t.test('verified-token cache', async (t) => {
    t.equal(v('oidc_verifier_token_cache_hits_total', { issuer: 'main' }), 1)
    t.equal(v('oidc_verifier_token_cache_misses_total', { issuer: 'main' }), 2, 'a token enters the cache on its second verification')
    t.equal(v('oidc_verifier_token_cache_misses_total', { issuer: 'remote' }), 2)
  })

  t.test('requests, rate limiting and process metrics', async (t) => {
    t.equal(v('oidc_verifier_http_requests_total', { route: '/verify', method: 'POST', status: '200', caller: 'none' }), 5)
    t.equal(v('oidc_verifier_http_requests_total', { route: '/verify', method: 'POST', status: '401', caller: 'none' }), 4)
    t.equal(v('oidc_verifier_http_requests_total', { route: '/verify', method: 'POST', status: '429', caller: 'none' }), 1)
    t.equal(v('oidc_verifier_rate_limited_total', { route: '/verify', caller: 'none' }), 1)
    t.equal(v('oidc_verifier_http_request_duration_seconds_count', { route: '/verify' }), 10)
    t.equal(v('oidc_verifier_shed_requests_total'), undefined, 'nothing shed')
    t.ok((v('process_cpu_user_seconds_total') ?? 0) > 0, 'default process metrics are in the registry')
    t.ok((v('nodejs_heap_size_total_bytes') ?? 0) > 0)
  })

  t.test('nothing from a token becomes a label', async (t) => {
    for (const secret of ['secret-subject', 'unknown.example.com', 'mallory', 'garbage', 'user-123']) {
      t.notOk(scrape.body.includes(secret), secret)
    }
    const issuers = new Set(samples.flatMap((s: Sample) => s.labels.issuer === undefined ? [] : [s.labels.issuer]))
    t.same([...issuers].sort(), ['main', 'none', 'remote'])
  })
})

t.test('every app has its own registry', async (t) => {
  const config = configFor([{ id: 'main', issuer: MAIN, audiences: ['aud'], jwks: jwksOf(es) }])
  const a = await buildApp(config)
  const b = await buildApp(config)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  t.equal((await a.inject({ method: 'POST', url: '/verify', payload: { token: mint(es, idTokenClaims(MAIN, 'aud')) } })).statusCode, 200)
  const count = async (app: typeof a): Promise<number | undefined> =>
    valueOf(parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body), 'oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' })
  t.equal(await count(a), 1)
  t.equal(await count(b), undefined)
})

t.test('hostile requests to /metrics', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: MAIN, audiences: ['aud'], jwks: jwksOf(es) }]))
  t.teardown(() => app.close())
  const odd = [
    { method: 'GET' as const, url: '/metrics?name[]=x&' + 'a=1&'.repeat(500) },
    { method: 'GET' as const, url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } },
    { method: 'GET' as const, url: '/metrics', headers: { 'x-api-key': 'k'.repeat(10000) } },
    { method: 'HEAD' as const, url: '/metrics' }
  ]
  for (const req of odd) {
    const res = await app.inject(req)
    t.equal(res.statusCode, 200, `${req.method} ${req.url.slice(0, 30)}`)
  }
  const post = await app.inject({ method: 'POST', url: '/metrics', payload: { a: 1 } })
  t.equal(post.statusCode, 405)
  t.equal(post.json().code, 'method_not_allowed')
  t.equal(post.headers.allow, 'GET, HEAD')
  const body = await app.inject({ method: 'GET', url: '/metrics', headers: { 'content-type': 'application/json' }, payload: '{"x":' })
  t.ok(body.statusCode < 500, `a GET with a broken body is no 500 (${body.statusCode})`)
  // An unknown method is a bounded label value.
  await app.inject({ method: 'PROPFIND' as 'GET', url: '/metrics' })
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.notOk(text.includes('PROPFIND'))
})

t.test('metrics.enabled: false serves no /metrics', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: MAIN, audiences: ['aud'], jwks: jwksOf(es) }], { metrics: { enabled: false } }))
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'not_found')
  t.equal(app.metrics, undefined)
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(es, idTokenClaims(MAIN, 'aud')) } })).statusCode, 200)
})
