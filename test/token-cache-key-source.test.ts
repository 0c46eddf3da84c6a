/**
 * A cached verification lasts only while its key vouches for it (src/core/verifier.ts, keyStillVouches): a
 * verification whose key leaves the JWKS while its signature is being checked is answered but not cached, and
 * a cached token whose issuer's keys moved to another jwks_uri, or whose issuer's keys have expired, is verified
 * again with the keys it has now (or refused as a new token is).
 */
import t, { type Test } from 'tap'
import type { Config } from '../src/config/types.js'
import { Verifier } from '../src/core/verifier.js'
import type { FetchJson } from '../src/net/fetch-json.js'
import { isVerificationError } from '../src/errors.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, mintHmac } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const oldKey = makeKey('ES256', { kid: 'old' })
const newKey = makeKey('ES256', { kid: 'new' })

const outcome = async (verifier: Verifier, token: string): Promise<string> =>
  await verifier.verify(token).then(() => 'accepted', (err: unknown) => isVerificationError(err) ? err.code : String(err))

async function started (t: Test, config: Config, fetcher: FetchJson, now?: () => number): Promise<Verifier> {
  const verifier = new Verifier(config, now === undefined ? { fetcher } : { fetcher, now })
  t.teardown(() => { verifier.close() })
  verifier.start()
  for (let i = 0; i < 100 && !verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(verifier.ready, 'keys loaded')
  return verifier
}

for (const signatureChecks of ['event-loop', 'thread-pool'] as const) {
  t.test(`${signatureChecks}: a key that leaves the JWKS while a token's signature is checked does not vouch for it afterwards`, async (t) => {
    let served = jwksOf(oldKey)
    const fetcher: FetchJson = async (url) => ({ url, body: served, cacheControl: 'max-age=3600', durationMs: 1 })
    const config = configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], jwksUri: `${ISS}/jwks` }], {
      server: { signatureChecks }, jwks: { unknownKidCooldownSeconds: 0 }
    })
    const verifier = await started(t, config, fetcher)
    const token = mint(oldKey, idTokenClaims(ISS, AUD))
    t.equal(await outcome(verifier, token), 'accepted', 'seen once (admitted to the cache on its next verification)')

    // The provider rotates: "old" leaves. A token with the new kid makes us fetch while the check of the old one runs.
    served = jwksOf(newKey)
    const inFlight = outcome(verifier, token)
    const trigger = outcome(verifier, mint(newKey, idTokenClaims(ISS, AUD)))
    t.equal(await trigger, 'accepted', 'the new key is fetched')
    t.equal(await inFlight, 'accepted', 'the check that started before the rotation completes')
    t.equal(await outcome(verifier, token), 'key_not_found', 'but the token is not answered from the cache afterwards')
  })
}

t.test('a cached token whose issuer moved its jwks_uri is verified again with the keys it has now', async (t) => {
  let jwksPath = '/jwks'
  const documents: Record<string, unknown> = { '/jwks': jwksOf(oldKey), '/jwks-2': jwksOf(newKey) }
  let discoveries = 0
  const fetcher: FetchJson = async (url) => {
    const path = new URL(url).pathname
    if (path === '/.well-known/openid-configuration') {
      discoveries++
      return { url, body: { issuer: ISS, jwks_uri: `${ISS}${jwksPath}` }, durationMs: 1 }
    }
    return { url, body: documents[path], cacheControl: 'max-age=3600', durationMs: 1 }
  }
  const verifier = await started(t, configFor([{ id: 'idp', issuer: ISS, audiences: [AUD] }], { jwks: { rediscoverySeconds: 1 } }), fetcher)
  const token = mint(oldKey, idTokenClaims(ISS, AUD))
  const newToken = mint(newKey, idTokenClaims(ISS, AUD))
  for (let i = 0; i < 3; i++) t.equal(await outcome(verifier, token), 'accepted', `verification ${i + 1}: cached from the second`)

  jwksPath = '/jwks-2'
  const before = discoveries
  for (let i = 0; i < 60 && verifier.status()[0]?.jwksUri !== `${ISS}/jwks-2`; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(discoveries > before, 'discovered again')
  t.equal(verifier.status()[0]?.jwksUri, `${ISS}/jwks-2`, 'the provider\'s keys are now at /jwks-2')
  t.equal(await outcome(verifier, token), 'key_not_found', 'the old key is no longer the provider\'s: the cached answer is not used')
  t.equal(await outcome(verifier, newToken), 'accepted')
})

t.test('a JWKS the cache refuses (no usable key after good ones) takes no cached verification away', async (t) => {
  let served: unknown = jwksOf(oldKey)
  const fetcher: FetchJson = async (url) => ({ url, body: served, cacheControl: 'max-age=3600', durationMs: 1 })
  const config = configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], jwksUri: `${ISS}/jwks` }], { jwks: { unknownKidCooldownSeconds: 0 } })
  const hits: boolean[] = []
  const verifier = new Verifier(config, { fetcher, events: { tokenCache: (e) => { hits.push(e.hit) } } })
  t.teardown(() => { verifier.close() })
  verifier.start()
  for (let i = 0; i < 100 && !verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const token = mint(oldKey, idTokenClaims(ISS, AUD))
  t.equal(await outcome(verifier, token), 'accepted')
  t.equal(await outcome(verifier, token), 'accepted', 'now cached')

  served = { keys: [] }
  t.equal(await outcome(verifier, mint(newKey, idTokenClaims(ISS, AUD))), 'key_not_found', 'an unknown kid makes us fetch: nothing usable')
  t.match(verifier.status()[0], { ready: true, lastError: /has no usable keys \(0 listed\): keeping the previous keys/ })
  hits.length = 0
  t.equal(await outcome(verifier, token), 'accepted')
  t.same(hits, [true], 'answered from the cache: the previous keys still vouch for it')
})

t.test('the moved issuer\'s cached token is verified again even while another issuer still uses the old jwks_uri', async (t) => {
  const OTHER = 'https://other.example.com'
  let jwksPath = '/jwks'
  const documents: Record<string, unknown> = { '/jwks': jwksOf(oldKey), '/jwks-2': jwksOf(newKey) }
  const fetcher: FetchJson = async (url) => {
    const path = new URL(url).pathname
    if (path === '/.well-known/openid-configuration') return { url, body: { issuer: ISS, jwks_uri: `${ISS}${jwksPath}` }, durationMs: 1 }
    return { url, body: documents[path], cacheControl: 'max-age=3600', durationMs: 1 }
  }
  // "other" keeps its keys at the old URL, so nothing drops that URL's cached verifications: only the hit's check can.
  const verifier = await started(t, configFor([
    { id: 'idp', issuer: ISS, audiences: [AUD] },
    { id: 'other', issuer: OTHER, audiences: [AUD], jwksUri: `${ISS}/jwks` }
  ], { jwks: { rediscoverySeconds: 1 } }), fetcher)
  const token = mint(oldKey, idTokenClaims(ISS, AUD))
  const othersToken = mint(oldKey, idTokenClaims(OTHER, AUD))
  for (let i = 0; i < 2; i++) {
    t.equal(await outcome(verifier, token), 'accepted')
    t.equal(await outcome(verifier, othersToken), 'accepted')
  }

  jwksPath = '/jwks-2'
  for (let i = 0; i < 60 && verifier.status()[0]?.jwksUri !== `${ISS}/jwks-2`; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(verifier.status()[0]?.jwksUri, `${ISS}/jwks-2`)
  t.equal(await outcome(verifier, token), 'key_not_found', 'the moved issuer\'s token: its key is no longer the issuer\'s')
  t.equal(await outcome(verifier, othersToken), 'accepted', 'the other issuer still has that key')
})

t.test('a token signed with the client secret is answered from the cache (its key source is the secret)', async (t) => {
  const secret = 's'.repeat(40)
  const hits: boolean[] = []
  const verifier = new Verifier(configFor([{ id: 'hs', issuer: ISS, audiences: [AUD], algorithms: ['HS256'], clientSecret: secret }]), { events: { tokenCache: (e) => { hits.push(e.hit) } } })
  t.teardown(() => { verifier.close() })
  verifier.start()
  const token = mintHmac(secret, 'HS256', idTokenClaims(ISS, AUD))
  for (let i = 0; i < 3; i++) t.equal(await outcome(verifier, token), 'accepted')
  t.same(hits, [false, false, true], 'seen, admitted, then a hit')
})

t.test('once the issuer\'s keys have expired (provider unreachable past staleIfErrorSeconds), a cached token gets keys_unavailable as a new one does', async (t) => {
  const clock = { now: Date.now() }
  let up = true
  const fetcher: FetchJson = async (url) => {
    if (!up) throw new Error('connection refused')
    return { url, body: jwksOf(oldKey), cacheControl: 'max-age=60', durationMs: 1 }
  }
  const config = configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], jwksUri: `${ISS}/jwks` }], {
    jwks: { minFreshnessSeconds: 60, staleIfErrorSeconds: 60, backoffMaxSeconds: 60 }
  })
  const verifier = await started(t, config, fetcher, () => clock.now)
  const token = mint(oldKey, idTokenClaims(ISS, AUD))
  t.equal(await outcome(verifier, token), 'accepted')
  t.equal(await outcome(verifier, token), 'accepted', 'now cached')

  up = false
  clock.now += 90_000
  t.equal(await outcome(verifier, token), 'accepted', 'stale keys (within staleIfErrorSeconds): still answered')
  clock.now += 60_000
  t.equal(verifier.status()[0]?.state, 'expired', 'the keys have expired')
  t.equal(await outcome(verifier, mint(oldKey, idTokenClaims(ISS, AUD))), 'keys_unavailable', 'a new token: retry later')
  t.equal(await outcome(verifier, token), 'keys_unavailable', 'and so the cached one, within the cache\'s own lifetime')

  up = true
  clock.now += 120_000
  t.equal(await outcome(verifier, token), 'accepted', 'once the keys are back')
})
