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

/**
 * The status codes of `count` scrapes, 100 at a time: renders start at least 50 ms apart (src/metrics/coalesce.ts),
 * so a thousand scrapes one after another would take a minute; concurrent ones share renders.
 */
async function scrapeStatuses (scrape: () => Promise<Response>, count: number): Promise<Map<number, number>> {
  const statuses = new Map<number, number>()
  for (let done = 0; done < count; done += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, count - done) }, scrape))
    for (const { statusCode } of batch) statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
  }
  return statuses
}

t.test('main port: 1,000 scrapes a window per address, then 429 rate_limited; other addresses still scrape', async (t) => {
  // rateLimit.max, far lower, is the verify routes' budget: it does not lower the scrapes'.
  const app = await buildApp(configFor(issuers, { rateLimit: { max: 5, windowSeconds: 600 } }))
  t.teardown(() => app.close())
  const scrape = async (remoteAddress: string): Promise<Response> => await app.inject({ method: 'GET', url: '/metrics', remoteAddress })
  const statuses = await scrapeStatuses(async () => await scrape('192.0.2.1'), LIMIT)
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
  const statuses = await scrapeStatuses(async () => await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.1' }), LIMIT + 1)
  t.same([...statuses], [[200, LIMIT + 1]], `${LIMIT + 1} scrapes answered`)
})

t.test('ops port: no limit', async (t) => {
  const config = configFor(issuers, { server: { opsPort: 0 }, rateLimit: { windowSeconds: 600 } })
  const app = await buildApp(config)
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  const statuses = await scrapeStatuses(async () => await ops.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.1' }), LIMIT + 1)
  t.same([...statuses], [[200, LIMIT + 1]], `${LIMIT + 1} scrapes answered`)
})
