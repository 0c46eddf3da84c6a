/**
 * An issuer that allows HS* algorithms only verifies every token with the client secret: its keys (a JWKS,
 * discovered or configured) never take part, so their state must not decide whether it is ready.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { issuersReady } from '../src/http/routes/health.js'
import type { FetchJson } from '../src/net/fetch-json.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, mintHmac } from './helpers/tokens.js'

const ISS = 'https://hs-only.example.com'
const AUD = 'conf-client'
const SECRET = 's'.repeat(40)

t.test('an HS*-only issuer is ready whatever its JWKS holds: the client secret verifies its tokens', async (t) => {
  // The provider's JWKS has no key usable here (an HS*-only provider publishes none).
  const fetched: string[] = []
  const fetcher: FetchJson = async (url) => { fetched.push(url); return { url, body: { keys: [] }, cacheControl: 'max-age=3600', durationMs: 1 } }
  const verifier = new Verifier(configFor([{ id: 'hs', issuer: ISS, audiences: [AUD], algorithms: ['HS256'], clientSecret: SECRET, jwksUri: `${ISS}/jwks` }]), { fetcher })
  t.teardown(() => { verifier.close() })
  verifier.start()
  for (let i = 0; i < 50 && verifier.status()[0]?.lastError === null && !verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const identity = await verifier.verify(mintHmac(SECRET, 'HS256', idTokenClaims(ISS, AUD)))
  t.equal(identity.issuer.id, 'hs', 'its tokens verify')
  t.equal(verifier.ready, true, 'so the issuer is ready')
  t.equal(issuersReady(verifier.status(), 'every-issuer'), true, '/readyz takes traffic')
  t.same(fetched, [], 'and no keys are fetched for it')
})

t.test('an issuer that also allows RS256 still needs its keys', async (t) => {
  const fetcher: FetchJson = async (url) => ({ url, body: { keys: [] }, cacheControl: 'max-age=3600', durationMs: 1 })
  const verifier = new Verifier(configFor([{ id: 'hs', issuer: ISS, audiences: [AUD], algorithms: ['HS256', 'RS256'], clientSecret: SECRET, jwksUri: `${ISS}/jwks` }]), { fetcher })
  t.teardown(() => { verifier.close() })
  verifier.start()
  for (let i = 0; i < 50 && verifier.status()[0]?.lastError === null; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(verifier.ready, false)
})

t.test('oidc-verifier check-config fetches nothing for an HS*-only issuer, and finds no problem', async (t) => {
  const { checkIssuer } = await import('../src/cli/check-config.js')
  const config = configFor([{ id: 'hs', issuer: ISS, audiences: [AUD], algorithms: ['HS256'], clientSecret: SECRET }])
  const fetched: string[] = []
  const fetcher: FetchJson = async (url) => { fetched.push(url); throw new Error('unreachable') }
  const report = await checkIssuer(config.issuers[0]!, config, fetcher)
  t.same(report.problems, [])
  t.same(fetched, [])
})
