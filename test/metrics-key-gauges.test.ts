/**
 * oidc_verifier_keys is documented as the issuer's usable signature keys (README, "Metrics"): once the last
 * key set has expired (the provider unreachable past jwks.staleIfErrorSeconds) none of them verifies anything,
 * and an alert on `oidc_verifier_keys == 0` must fire then, as oidc_verifier_issuer_ready goes to 0.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const rs = makeKey('RS256')

t.test('expired keys are not counted as usable keys', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(rs), cacheControl: 'max-age=60' })
  t.teardown(() => idp.close())
  const ISSUER = `${idp.url}/issuer`
  let offsetMs = 0
  const now = (): number => Date.now() + offsetMs
  const config = configFor([{ id: 'remote', issuer: ISSUER, audiences: ['aud'], jwksUri: idp.jwksUrl }],
    { jwks: { minFreshnessSeconds: 60, staleIfErrorSeconds: 60 } })
  const app = await buildApp(config, { now })
  t.teardown(() => app.close())
  await app.ready()
  for (let i = 0; i < 500 && !app.verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const scrape = async (): Promise<ReturnType<typeof parseMetrics>> => parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  let samples = await scrape()
  t.equal(valueOf(samples, 'oidc_verifier_keys', { issuer: 'remote' }), 1, 'one usable key while fresh')

  // The provider goes away; past freshness and staleIfErrorSeconds the kept key set has expired.
  idp.set({ status: 500 })
  offsetMs = 10 * 60_000
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(rs, idTokenClaims(ISSUER, 'aud')) } })
  t.equal(res.statusCode, 503, 'nothing verifies: keys_unavailable')
  samples = await scrape()
  t.equal(valueOf(samples, 'oidc_verifier_keys_state', { issuer: 'remote', state: 'expired' }), 1)
  t.equal(valueOf(samples, 'oidc_verifier_issuer_ready', { issuer: 'remote' }), 0)
  t.equal(valueOf(samples, 'oidc_verifier_keys', { issuer: 'remote' }), 0, 'no usable key')
})
