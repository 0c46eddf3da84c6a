/**
 * Load shedding: under pressure, requests get 503 overloaded with Retry-After before any work is done;
 * probes and /metrics are never shed; shed requests are counted. No timing assertions: the overloaded
 * state is forced through under-pressure's health check, or reached by really blocking the event loop.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor, configProblems } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { matchExactly } from './helpers/exact-match.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
const token = mint(key, idTokenClaims(ISS, 'aud'))

t.test('under pressure: 503 overloaded with Retry-After; probes and metrics still answer', async (t) => {
  const app = await buildApp(configFor(issuers, { loadShedding: { retryAfterSeconds: 7 } }), { pressureHealthCheck: async () => false })
  t.teardown(() => app.close())

  const shed = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(shed.statusCode, 503)
  t.equal(shed.headers['retry-after'], '7')
  t.match(shed.json(), { code: 'overloaded', message: String, hint: String, requestId: String })
  t.equal(shed.headers['www-authenticate'], undefined)

  const big = await app.inject({ method: 'POST', url: '/verify', payload: { token: 'x'.repeat(200000) } })
  t.equal(big.statusCode, 503, 'refused before the body is read or checked')
  const bearer = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${token}` } })
  t.equal(bearer.json().code, 'overloaded')
  const unknown = await app.inject({ method: 'GET', url: '/wp-login.php' })
  t.equal(unknown.statusCode, 503, 'unknown routes are shed too')

  for (const url of ['/healthz', '/readyz', '/metrics']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} is never shed`)
  }
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_shed_requests_total', { reason: 'healthCheck' }), 4)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', status: '503' }), 3)
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' }), undefined, 'no verification was attempted')
})

t.test('without pressure, or with shedding off, requests are served', async (t) => {
  const healthy = await buildApp(configFor(issuers, { loadShedding: {} }), { pressureHealthCheck: async () => true })
  const off = await buildApp(configFor(issuers, { loadShedding: { enabled: false } }), { pressureHealthCheck: async () => false })
  t.teardown(() => Promise.all([healthy.close(), off.close()]))
  t.equal((await healthy.inject({ method: 'POST', url: '/verify', payload: { token } })).statusCode, 200)
  t.equal((await off.inject({ method: 'POST', url: '/verify', payload: { token } })).statusCode, 200)
})

t.test('a really blocked event loop sheds load', async (t) => {
  const app = await buildApp(configFor(issuers, { loadShedding: { maxEventLoopDelayMs: 1, sampleIntervalMs: 10 } }))
  t.teardown(() => app.close())
  await app.ready()
  let shed: { statusCode: number, headers: Record<string, unknown>, json: () => { code: string } } | undefined
  // Bounded: block the loop, let the sampler see it, ask; until the answer is 503 (at most 50 rounds).
  for (let i = 0; i < 50 && shed === undefined; i++) {
    const until = Date.now() + 60
    while (Date.now() < until) { /* a request handler hogging the CPU */ }
    await new Promise((resolve) => setTimeout(resolve, 3))
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
    if (res.statusCode === 503) shed = res
    else t.equal(res.statusCode, 200)
  }
  t.ok(shed, 'a request was shed')
  t.equal(shed?.json().code, 'overloaded')
  t.equal(shed?.headers['retry-after'], '10')
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.ok((valueOf(samples, 'oidc_verifier_shed_requests_total', { reason: 'eventLoopDelay' }) ?? 0) >= 1)
})

t.test('thresholds are validated', async (t) => {
  const problems = (loadShedding: Record<string, unknown>): string[] => {
    return configProblems({ issuers, loadShedding })
  }
  t.same(problems({ maxEventLoopUtilization: 0.95, maxRssBytes: 1073741824 }), [])
  matchExactly(t, problems({ maxEventLoopUtilization: 1.5 }), [/loadShedding\.maxEventLoopUtilization: expected a number from 0 to 1, got 1\.5/])
  matchExactly(t, problems({ sampleIntervalMs: 5 }), [/loadShedding\.sampleIntervalMs: expected an integer from 10 to 60000/])
  matchExactly(t, problems({ maxEventLoopDelay: 5 }), [/loadShedding\.maxEventLoopDelay: unknown option \(did you mean "maxEventLoopDelayMs"\?\)/])
  matchExactly(t, problems({ enabled: 'yes' }), [/loadShedding\.enabled: expected true or false/])
})
