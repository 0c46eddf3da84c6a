/**
 * The verified-token cache: hits skip only the signature check; expiry, per-request checks and key
 * removal are honoured on every hit; the cache stays within its bounds.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { VerifiedTokenCache } from '../src/core/verified-token-cache.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { computeAtHash } from '../src/core/at-hash.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

function counting () {
  const seen = { hit: 0, miss: 0 }
  return { seen, events: { tokenCache: (e: { hit: boolean }) => { if (e.hit) seen.hit++; else seen.miss++ } } }
}

t.test('a token seen before is a hit; expiresIn is recomputed', async (t) => {
  let now = Date.now()
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { now: () => now, events })
  t.teardown(() => v.close())
  const token = mint(key, idTokenClaims(ISS, AUD, { exp: Math.floor(now / 1000) + 100 }))
  const first = await v.verify(token)
  now += 10_000
  const second = await v.verify(token)
  t.same(seen, { hit: 1, miss: 1 })
  t.equal(second.subject, first.subject)
  t.same(second.claims, first.claims)
  t.ok(second.expiresIn <= first.expiresIn - 9, 'expiresIn counts down on hits')
})

t.test('expiry, clock tolerance and the TTL cap are honoured on hits', async (t) => {
  let now = Date.now()
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), clockToleranceSeconds: 5 }]), { now: () => now, events })
  t.teardown(() => v.close())
  const token = mint(key, idTokenClaims(ISS, AUD, { exp: Math.floor(now / 1000) + 60 }))
  await v.verify(token)
  now += 64_000
  await v.verify(token)
  t.equal(seen.hit, 1, 'still valid within tolerance')
  now += 2_000
  await t.rejects(v.verify(token), { code: 'token_expired' }, 'a cached token expires like any other')
})

t.test('per-request checks run on every hit', async (t) => {
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], jwks: jwksOf(key) }]), { events })
  t.teardown(() => v.close())
  const now = Math.floor(Date.now() / 1000)
  const token = mint(key, idTokenClaims(ISS, AUD, { nonce: 'n1', auth_time: now - 500, at_hash: computeAtHash('at-1', 'ES256') }))
  await v.verify(token)
  await t.rejects(v.verify(token, { nonce: 'n2' }), { code: 'nonce_mismatch' })
  await t.rejects(v.verify(token, { maxAge: 60 }), { code: 'authentication_too_old' })
  await t.rejects(v.verify(token, { accessToken: 'at-2' }), { code: 'at_hash_mismatch' })
  await t.rejects(v.verify(token, { audience: 'client-b' }), { code: 'audience_mismatch' })
  t.equal((await v.verify(token, { nonce: 'n1', maxAge: 3600, accessToken: 'at-1', audience: AUD })).subject, 'user-123')
  t.equal(seen.miss, 1, 'only the first verification checked the signature')
})

t.test('verifyNow answers a hit without a promise, and fails a hit\'s checks by throwing; a miss is a promise', async (t) => {
  const verifications: Array<{ result: string }> = []
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), {
    events: { ...events, verification: (e) => { verifications.push({ result: e.result }) } }
  })
  t.teardown(() => v.close())
  const token = mint(key, idTokenClaims(ISS, AUD, { nonce: 'n1' }))
  const first = v.verifyNow(token)
  t.ok(first instanceof Promise, 'a token never seen is verified in full, asynchronously')
  const verified = await first
  const hit = v.verifyNow(token, { nonce: 'n1' })
  t.notOk(hit instanceof Promise, 'a cached token is answered at once')
  t.equal((hit as typeof verified).subject, verified.subject)
  t.same((hit as typeof verified).claims, verified.claims)
  t.throws(() => v.verifyNow(token, { nonce: 'n2' }), { code: 'nonce_mismatch' }, 'a per-request check fails the hit synchronously')
  t.throws(() => v.verifyNow('x'.repeat(100_000)), { code: 'token_too_large' })
  const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  const miss = v.verifyNow(forged)
  t.ok(miss instanceof Promise, 'a tampered token is not a hit')
  await t.rejects(miss as Promise<unknown>, { code: /signature_invalid|token_malformed/ })
  t.same(seen, { hit: 1, miss: 1 })
  t.same(verifications.map((e) => e.result), ['ok', 'ok', 'nonce_mismatch', 'token_too_large', verifications[4]?.result], 'every outcome is observed once')
  t.match(verifications[4]?.result, /signature_invalid|token_malformed/)
})

t.test('a failed verification is never cached; a tampered token never hits', async (t) => {
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { events })
  t.teardown(() => v.close())
  const good = mint(key, idTokenClaims(ISS, AUD, { nonce: 'n1' }))
  await t.rejects(v.verify(good, { nonce: 'other' }), { code: 'nonce_mismatch' })
  t.same(seen, { hit: 0, miss: 0 })
  await v.verify(good)
  const [h, p, s] = good.split('.') as [string, string, string]
  const forged = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BA' : 'AA'}`
  await t.rejects(v.verify(forged), { code: /signature_invalid|token_malformed/ })
  t.same(seen, { hit: 0, miss: 1 })
})

t.test('entries of a key that leaves the JWKS are dropped', async (t) => {
  const idp = await startJwksServer()
  t.teardown(() => idp.close())
  const oldKey = makeKey('ES256')
  const newKey = makeKey('ES256')
  idp.set({ json: jwksOf(oldKey) })
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }], { jwks: { unknownKidCooldownSeconds: 0 } }), { events })
  t.teardown(() => v.close())
  const oldToken = mint(oldKey, idTokenClaims(ISS, AUD))
  await v.verify(oldToken)
  await v.verify(oldToken)
  t.equal(seen.hit, 1)
  idp.set({ json: jwksOf(newKey) }) // the IdP revokes the old key
  await v.verify(mint(newKey, idTokenClaims(ISS, AUD))) // unknown kid → refresh → new JWKS
  await t.rejects(v.verify(oldToken), { code: 'key_not_found' }, 'no longer served from the cache')
  t.equal(seen.hit, 1)
})

t.test('bounded by entries and bytes; disabled means no caching', async (t) => {
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 3, maxBytes: 1048576, maxTtlSeconds: 60 })
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { tokenCache: { maxEntries: 3 } }))
  t.teardown(() => v.close())
  for (let i = 0; i < 10; i++) await v.verify(mint(key, idTokenClaims(ISS, AUD, { sub: `u${i}` })))
  t.equal((v as unknown as { tokenCache: VerifiedTokenCache }).tokenCache.size, 3)
  const entry = { issuer: 'main', keySource: 'x', keyFingerprint: 'y', alg: 'ES256' as const, curve: undefined, identity: {} as never }
  for (let i = 0; i < 10; i++) cache.set(`k${i}`, entry, 200_000, Date.now() + 60_000, Date.now())
  t.ok(cache.size <= 5, `a 1 MiB byte bound holds at most 5 entries of ~600 KB estimated size (${cache.size})`)
  cache.set('expired', entry, 100, Date.now() - 1, Date.now())
  t.equal(cache.get('expired'), undefined, 'an already expired token is not stored')

  const { seen, events } = counting()
  const off = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { tokenCache: { enabled: false } }), { events })
  t.teardown(() => off.close())
  const token = mint(key, idTokenClaims(ISS, AUD))
  await off.verify(token)
  await off.verify(token)
  t.same(seen, { hit: 0, miss: 0 })
})

t.test('the raw token is never a key', async (t) => {
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 3, maxBytes: 1048576, maxTtlSeconds: 60 })
  const token = mint(key, idTokenClaims(ISS, AUD))
  const k = cache.keyOf(token)
  t.equal(k.length, 44)
  t.notOk(token.includes(k))
})
