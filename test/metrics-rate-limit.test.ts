/**
 * /metrics on the main port is limited per address (1,000 scrapes a rateLimit window, src/app.ts), so that whoever
 * reaches the port cannot keep renders running back to back; rateLimit.max (the verify budget) does not lower it,
 * and the ops port, which only Prometheus should reach, has no limit. It is still never shed (test/load-shedding).
 */
import t from 'tap'
import type { Response } from 'light-my-request'
import { buildApp } from '../src/app.js'
import { buildOpsApp } from '../src/ops-app.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]
const LIMIT = 1000

t.test('main port: 1,000 scrapes a window per address, then 429 rate_limited; other addresses still scrape', async (t) => {
  // rateLimit.max, far lower, is the verify routes' budget: it does not lower the scrapes'.
  const app = await buildApp(configFor(issuers, { rateLimit: { max: 5, windowSeconds: 600 } }))
  t.teardown(() => app.close())
  const scrape = async (remoteAddress: string): Promise<Response> => await app.inject({ method: 'GET', url: '/metrics', remoteAddress })
  const statuses = new Map<number, number>()
  for (let i = 0; i < LIMIT; i++) {
    const { statusCode } = await scrape('192.0.2.1')
    statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
  }
  t.same([...statuses], [[200, LIMIT]], 'every scrape within the limit answered')
  const limited = await scrape('192.0.2.1')
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) > 0, 'with Retry-After')
  const other = await scrape('192.0.2.2')
  t.equal(other.statusCode, 200, 'another address has its own budget')
  t.equal(valueOf(parseMetrics(other.body), 'oidc_verifier_rate_limited_total', { route: '/metrics', caller: 'none' }), 1, 'counted')
})

t.test('rateLimit.enabled false: no limit on /metrics either', async (t) => {
  const app = await buildApp(configFor(issuers, { rateLimit: { enabled: false } }))
  t.teardown(() => app.close())
  for (let i = 0; i <= LIMIT; i++) {
    const { statusCode } = await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.1' })
    if (statusCode !== 200) t.fail(`scrape ${i}: ${statusCode}`)
  }
  t.pass(`${LIMIT + 1} scrapes answered`)
})

t.test('ops port: no limit', async (t) => {
  const config = configFor(issuers, { server: { opsPort: 0 }, rateLimit: { windowSeconds: 600 } })
  const app = await buildApp(config)
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  for (let i = 0; i <= LIMIT; i++) {
    const { statusCode } = await ops.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.1' })
    if (statusCode !== 200) t.fail(`scrape ${i}: ${statusCode}`)
  }
  t.pass(`${LIMIT + 1} scrapes answered`)
})
