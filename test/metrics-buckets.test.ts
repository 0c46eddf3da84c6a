/**
 * The latency histograms resolve the latencies the service has: a verified-token cache hit takes a few
 * microseconds to a few tens, a whole request tens to hundreds (docs/benchmarks.md). A histogram whose lowest
 * bucket is above them puts every hit in that bucket, and histogram_quantile() then answers with an
 * interpolation inside it, whatever the real latency: a hit ten times slower would not show.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, samplesOf, valueOf, type Sample } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const MAIN = 'https://idp.example.com'
const es = makeKey('ES256')

/** The upper bound of the bucket `value` falls in (Infinity past the last bound). */
function bucketOf (value: number, samples: Sample[], name: string, labels: Record<string, string>): number {
  const bounds = samplesOf(samples, `${name}_bucket`)
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v) && s.labels.le !== '+Inf')
    .map((s) => Number(s.labels.le))
    .sort((a, b) => a - b)
  return bounds.find((le) => le >= value) ?? Infinity
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

t.test('the latency histograms resolve the median of cache hits', async (t) => {
  const verifications: number[] = []
  const app = await buildApp(configFor([{ id: 'main', issuer: MAIN, audiences: ['aud'], jwks: jwksOf(es) }]),
    { events: { verification: (e) => { if (e.result === 'ok') verifications.push(e.durationSeconds) } } })
  t.teardown(() => app.close())
  const requests: number[] = []
  app.addHook('onResponse', (request, reply, done) => {
    if (request.routeOptions.url === '/verify') requests.push(reply.elapsedTime / 1000)
    done()
  })
  await app.ready()
  const token = mint(es, idTokenClaims(MAIN, 'aud'))
  for (let i = 0; i < 500; i++) {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
    if (res.statusCode !== 200) throw new Error(`verify: ${res.statusCode}`)
  }
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.ok((valueOf(samples, 'oidc_verifier_token_cache_hits_total', { issuer: 'main' }) ?? 0) >= 490, 'nearly all were cache hits')
  t.equal(verifications.length, 500)

  const us = (s: number): string => `${(s * 1e6).toFixed(1)} µs`
  // The bucket that holds the real median is at most 2.5 times it (buckets in steps of 1, 2.5, 5): then
  // histogram_quantile() cannot be further off than that, and a hit that gets slower moves to another bucket.
  for (const [what, name, labels, real] of [
    ['verification', 'oidc_verifier_verification_duration_seconds', { issuer: 'main', outcome: 'ok' }, median(verifications)],
    ['HTTP request', 'oidc_verifier_http_request_duration_seconds', { route: '/verify' }, median(requests)]
  ] as const) {
    const bound = bucketOf(real, samples, name, labels)
    t.ok(bound <= 2.5 * real, `${what}: the real median, ${us(real)}, is counted in a bucket up to ${us(bound)} (want at most 2.5×)`)
  }
})
