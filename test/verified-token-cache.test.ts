/**
 * The verified-token cache: a token enters on its second successful verification (the admission filter);
 * hits skip only the signature check; expiry, per-request checks and key removal are honoured on every hit;
 * the cache stays within its bounds, and tokens seen once do not displace the ones in use.
 */
import t from 'tap'
import { MAX_KEYS_TRIED_WITHOUT_KID, Verifier } from '../src/core/verifier.js'
import { VerifiedTokenCache } from '../src/core/verified-token-cache.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { computeAtHash } from '../src/core/at-hash.js'
import { encrypt, rsaKey } from './helpers/jwe.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

/** Verifies a token twice: the first verification only records it, the second caches it. */
async function admit (v: Verifier, token: string): Promise<void> {
  await v.verify(token)
  await v.verify(token)
}

function counting () {
  const seen = { hit: 0, miss: 0 }
  return { seen, events: { tokenCache: (e: { hit: boolean }) => { if (e.hit) seen.hit++; else seen.miss++ } } }
}

t.test('a token verified twice is cached: later uses hit, and expiresIn is recomputed', async (t) => {
  let now = Date.now()
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { now: () => now, events })
  t.teardown(() => v.close())
  const token = mint(key, idTokenClaims(ISS, AUD, { exp: Math.floor(now / 1000) + 100 }))
  const first = await v.verify(token)
  t.same(seen, { hit: 0, miss: 1 })
  await v.verify(token)
  t.same(seen, { hit: 0, miss: 2 }, 'the first verification only recorded the token: the second verifies it in full again')
  now += 10_000
  const second = await v.verify(token)
  t.same(seen, { hit: 1, miss: 2 })
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
  await admit(v, token)
  now += 59_000
  await v.verify(token)
  t.same(seen, { hit: 1, miss: 2 }, 'a hit before exp')
  now += 5_000
  await v.verify(token)
  t.same(seen, { hit: 1, miss: 3 }, 'past exp within the clock tolerance: valid, verified in full (an entry lives no longer than exp)')
  now += 2_000
  await t.rejects(v.verify(token), { code: 'token_expired' }, 'a cached token expires like any other')

  // maxTtlSeconds: a token valid for an hour is cached for 10 s, then verified in full (and cached) again.
  const capped = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { tokenCache: { maxTtlSeconds: 10 } }), { now: () => now, events })
  t.teardown(() => capped.close())
  const long = mint(key, idTokenClaims(ISS, AUD, { exp: Math.floor(now / 1000) + 3600 }))
  await admit(capped, long)
  const before = { ...seen }
  now += 9_000
  await capped.verify(long)
  t.same(seen, { hit: before.hit + 1, miss: before.miss }, 'a hit within the cap')
  now += 2_000
  await capped.verify(long)
  t.same(seen, { hit: before.hit + 1, miss: before.miss + 1 }, 'past the cap: a miss, though the token is valid for another 3589 s')
  await capped.verify(long)
  t.same(seen, { hit: before.hit + 2, miss: before.miss + 1 }, 'cached again by that verification (seen before)')
})

t.test('per-request checks run on every hit', async (t) => {
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], jwks: jwksOf(key) }]), { events })
  t.teardown(() => v.close())
  const now = Math.floor(Date.now() / 1000)
  const token = mint(key, idTokenClaims(ISS, AUD, { nonce: 'n1', auth_time: now - 500, at_hash: computeAtHash('at-1', 'ES256') }))
  await admit(v, token)
  await t.rejects(v.verify(token, { nonce: 'n2' }), { code: 'nonce_mismatch' })
  await t.rejects(v.verify(token, { maxAge: 60 }), { code: 'authentication_too_old' })
  await t.rejects(v.verify(token, { accessToken: 'at-2' }), { code: 'at_hash_mismatch' })
  await t.rejects(v.verify(token, { audience: 'client-b' }), { code: 'audience_mismatch' })
  t.equal((await v.verify(token, { nonce: 'n1', maxAge: 3600, accessToken: 'at-1', audience: AUD })).subject, 'user-123')
  t.equal(seen.miss, 2, 'only the two verifications that admitted the token checked the signature')
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
  const second = v.verifyNow(token)
  t.ok(second instanceof Promise, 'seen once: verified in full again (and now cached)')
  await second
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
  t.same(seen, { hit: 1, miss: 2 })
  t.same(verifications.map((e) => e.result), ['ok', 'ok', 'ok', 'nonce_mismatch', 'token_too_large', verifications[5]?.result], 'every outcome is observed once')
  t.match(verifications[5]?.result, /signature_invalid|token_malformed/)
})

t.test('a failed verification is never cached; a tampered token never hits', async (t) => {
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { events })
  t.teardown(() => v.close())
  const good = mint(key, idTokenClaims(ISS, AUD, { nonce: 'n1' }))
  await t.rejects(v.verify(good, { nonce: 'other' }), { code: 'nonce_mismatch' })
  await t.rejects(v.verify(good, { nonce: 'other' }), { code: 'nonce_mismatch' })
  t.same(seen, { hit: 0, miss: 0 })
  await v.verify(good)
  t.same(seen, { hit: 0, miss: 1 }, 'failed verifications did not count towards admission')
  await v.verify(good)
  const [h, p, s] = good.split('.') as [string, string, string]
  const forged = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BA' : 'AA'}`
  await t.rejects(v.verify(forged), { code: /signature_invalid|token_malformed/ })
  await t.rejects(v.verify(forged), { code: /signature_invalid|token_malformed/ })
  t.same(seen, { hit: 0, miss: 2 })
  await v.verify(good)
  t.same(seen, { hit: 1, miss: 2 })
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
  await admit(v, oldToken)
  await v.verify(oldToken)
  t.equal(seen.hit, 1)
  idp.set({ json: jwksOf(newKey) }) // the IdP revokes the old key
  await v.verify(mint(newKey, idTokenClaims(ISS, AUD))) // unknown kid → refresh → new JWKS
  await t.rejects(v.verify(oldToken), { code: 'key_not_found' }, 'no longer served from the cache')
  t.equal(seen.hit, 1)
})

t.test('entries of a key the JWKS pins to another alg or issuer are dropped: the same material, another key', async (t) => {
  const idp = await startJwksServer()
  t.teardown(() => idp.close())
  const rs = makeKey('RS256')
  const other = makeKey('RS256')
  idp.set({ json: { keys: [{ ...rs.jwk, alg: 'RS256' }] } })
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], algorithms: ['RS256', 'PS256'], jwksUri: idp.jwksUrl }], { jwks: { unknownKidCooldownSeconds: 0 } }), { events })
  t.teardown(() => v.close())
  const token = mint(rs, idTokenClaims(ISS, AUD))
  await admit(v, token)
  await v.verify(token)
  t.equal(seen.hit, 1)
  // The provider now pins the key to PS256: an RS256 signature by it no longer counts.
  idp.set({ json: { keys: [{ ...rs.jwk, alg: 'PS256' }, other.jwk] } })
  await v.verify(mint(other, idTokenClaims(ISS, AUD))) // unknown kid → refresh → new JWKS
  await t.rejects(v.verify(token), { code: 'key_not_found' }, 'no longer served from the cache')
  t.equal(seen.hit, 1)
})

t.test('entries of a kid the JWKS no longer lists are dropped, though its material is published under another kid', async (t) => {
  const idp = await startJwksServer()
  t.teardown(() => idp.close())
  const k1 = makeKey('ES256', { kid: 'k1' })
  const other = makeKey('ES256', { kid: 'k3' })
  idp.set({ json: jwksOf(k1) })
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }], { jwks: { unknownKidCooldownSeconds: 0 } }), { events })
  t.teardown(() => v.close())
  const token = mint(k1, idTokenClaims(ISS, AUD))
  await admit(v, token)
  await v.verify(token)
  t.equal(seen.hit, 1)
  // The provider retires kid k1; the same material is now listed only as k2. A full verification finds no k1.
  idp.set({ json: { keys: [{ ...k1.jwk, kid: 'k2' }, other.jwk] } })
  await v.verify(mint(other, idTokenClaims(ISS, AUD))) // unknown kid → refresh → new JWKS
  await t.rejects(v.verify(token), { code: 'key_not_found' }, 'answered as a full verification answers it')
  t.equal(seen.hit, 1)
  const renamed = mint({ ...k1, kid: 'k2' }, idTokenClaims(ISS, AUD))
  t.equal((await v.verify(renamed)).subject, 'user-123', 'a token naming the new kid verifies')
})

t.test('bounded by entries and bytes; disabled means no caching', async (t) => {
  // maxEntries well above what the byte bound lets in: the bytes decide.
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 100, maxBytes: 1048576, maxTtlSeconds: 60 })
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { tokenCache: { maxEntries: 3 } }))
  t.teardown(() => v.close())
  for (let i = 0; i < 10; i++) await admit(v, mint(key, idTokenClaims(ISS, AUD, { sub: `u${i}` })))
  t.equal((v as unknown as { tokenCache: VerifiedTokenCache }).tokenCache.size, 3)
  const entry = { issuer: 'main', keySource: 'x', keyFingerprint: 'y', alg: 'ES256' as const, curve: undefined, kidless: false, identity: {} as never, revocationGeneration: 0 }
  const keys = Array.from({ length: 10 }, (_, i) => cache.keyOf(`token-${i}`))
  for (const k of keys) {
    t.notOk(cache.set(k, entry, 100_000, Date.now() + 60_000, Date.now()), 'not cached when first seen')
    t.ok(cache.set(k, entry, 100_000, Date.now() + 60_000, Date.now()), 'cached when seen again')
  }
  // Each entry is estimated at 1 KiB + 3 bytes per token character: 301,024 bytes, three to a MiB.
  t.equal(cache.size, 3, 'a 1 MiB byte bound holds three entries of ~300 KB estimated size')
  t.same(keys.map((k) => cache.get(k) !== undefined), [...Array(7).fill(false), true, true, true], 'the three most recent')
  const expired = cache.keyOf('expired')
  cache.set(expired, entry, 100, Date.now() + 60_000, Date.now())
  t.notOk(cache.set(expired, entry, 100, Date.now() - 1, Date.now()), 'an already expired token is not stored')
  t.equal(cache.get(expired), undefined)

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

t.test('tokens seen once do not displace the tokens in use', async (t) => {
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { tokenCache: { maxEntries: 3 } }), { events })
  t.teardown(() => v.close())
  const hot = mint(key, idTokenClaims(ISS, AUD, { sub: 'hot' }))
  await admit(v, hot)
  for (let i = 0; i < 40; i++) await v.verify(mint(key, idTokenClaims(ISS, AUD, { sub: `once-${i}` })))
  const cache = (v as unknown as { tokenCache: VerifiedTokenCache }).tokenCache
  t.equal(cache.size, 1, 'none of the 40 one-time tokens took an entry')
  await v.verify(hot)
  t.equal(seen.hit, 1, 'the token in use is still cached')
})

t.test('the cache\'s own edges: a token at its expiry, the per-entry overhead, key removal per key source, clear', async (t) => {
  const entry = (keySource: string, keyFingerprint: string) => ({ issuer: 'main', keySource, keyFingerprint, alg: 'ES256' as const, curve: undefined, kidless: false, identity: {} as never, revocationGeneration: 0 })
  const twice = (cache: VerifiedTokenCache, k: string, e: ReturnType<typeof entry>, tokenLength: number, expiresAtMs: number, nowMs: number): boolean => {
    cache.set(k, e, tokenLength, expiresAtMs, nowMs)
    return cache.set(k, e, tokenLength, expiresAtMs, nowMs)
  }
  const now = Date.now()
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 100, maxBytes: 4 * (1024 + 300), maxTtlSeconds: 60 })
  // lru-cache reads a TTL of 0 as no TTL at all: the entry would outlive maxTtlSeconds.
  t.notOk(twice(cache, cache.keyOf('at-exp'), entry('s', 'f'), 100, now, now), 'a token expiring now is not stored')
  t.equal(cache.size, 0)
  // Each entry is estimated at 1 KiB + 3 bytes per token character: 1,324 bytes, four to the bound.
  for (let i = 0; i < 10; i++) twice(cache, cache.keyOf(`token-${i}`), entry('s', 'f'), 100, now + 60_000, now)
  t.equal(cache.size, 4, 'the per-entry overhead counts toward maxBytes')

  const bySource = new VerifiedTokenCache({ enabled: true, maxEntries: 100, maxBytes: 1048576, maxTtlSeconds: 60 })
  twice(bySource, bySource.keyOf('a1'), entry('https://a.example/jwks', 'fa'), 100, now + 60_000, now)
  twice(bySource, bySource.keyOf('a2'), entry('https://a.example/jwks', 'fa2'), 100, now + 60_000, now)
  twice(bySource, bySource.keyOf('b1'), entry('https://b.example/jwks', 'fb'), 100, now + 60_000, now)
  t.equal(bySource.dropKeysNotIn('https://a.example/jwks', new Set(['fa2'])), 1, 'one entry of that key source dropped')
  t.equal(bySource.get(bySource.keyOf('a1')), undefined)
  t.ok(bySource.get(bySource.keyOf('a2')), 'a key still listed keeps its entries')
  t.ok(bySource.get(bySource.keyOf('b1')), 'another key source\'s entries are not its to drop')

  // clear() (Verifier.close) forgets the entries and the tokens seen once.
  bySource.set(bySource.keyOf('c1'), entry('s', 'f'), 100, now + 60_000, now)
  bySource.clear()
  t.equal(bySource.size, 0)
  t.notOk(bySource.set(bySource.keyOf('c1'), entry('s', 'f'), 100, now + 60_000, now), 'seen before the clear: first seen again')

  // The admission filter remembers a generation of maxEntries tokens: a token comes back after 50 others.
  const admission = new VerifiedTokenCache({ enabled: true, maxEntries: 100, maxBytes: 1048576, maxTtlSeconds: 60 })
  admission.set(admission.keyOf('back'), entry('s', 'f'), 100, now + 60_000, now)
  for (let i = 0; i < 50; i++) admission.set(admission.keyOf(`once-${i}`), entry('s', 'f'), 100, now + 60_000, now)
  t.ok(admission.set(admission.keyOf('back'), entry('s', 'f'), 100, now + 60_000, now), 'still remembered, now cached')
})

t.test('a cache that has admitted nothing yet (its store is made at the first entry): lookups, drops, size and clear', async (t) => {
  const now = Date.now()
  const entry = { issuer: 'main', keySource: 's', keyFingerprint: 'f', alg: 'ES256' as const, curve: undefined, kidless: false, identity: {} as never, revocationGeneration: 0 }
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 100, maxBytes: 1048576, maxTtlSeconds: 60 })
  t.equal(cache.get(cache.keyOf('t')), undefined)
  t.equal(cache.size, 0)
  t.equal(cache.dropKeysNotIn('s', new Set()), 0)
  t.notOk(cache.set(cache.keyOf('t'), entry, 100, now + 60_000, now), 'seen once: remembered only')
  t.equal(cache.size, 0)
  cache.clear()
  t.notOk(cache.set(cache.keyOf('t'), entry, 100, now + 60_000, now), 'the clear forgot it')
  t.ok(cache.set(cache.keyOf('t'), entry, 100, now + 60_000, now), 'admitted: the store is made')
  t.equal(cache.size, 1)
  t.equal(cache.get(cache.keyOf('t')), entry)
  t.equal(cache.dropKeysNotIn('s', new Set()), 1)
  t.equal(cache.size, 0)
})

t.test('an entry with less than a millisecond to live still expires (a TTL rounded down to 0 would be none)', async (t) => {
  let clock = 1_000_000
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 10, maxBytes: 1048576, maxTtlSeconds: 60 }, () => clock)
  const entry = { issuer: 'main', keySource: 's', keyFingerprint: 'f', alg: 'ES256' as const, curve: undefined, kidless: false, identity: {} as never, revocationGeneration: 0 }
  const k = cache.keyOf('nearly-expired')
  // Half a millisecond left: exp is a NumericDate, which may carry a fraction.
  cache.set(k, entry, 100, clock + 1, clock + 0.5)
  t.ok(cache.set(k, entry, 100, clock + 1, clock + 0.5), 'cached')
  t.ok(cache.get(k), 'there while it lives')
  clock += 2
  t.equal(cache.get(k), undefined, 'gone once its time is up')
})

t.test('a full cache drops the entry least recently used, not the one least recently stored', async (t) => {
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 3, maxBytes: 1048576, maxTtlSeconds: 60 })
  const entry = { issuer: 'main', keySource: 's', keyFingerprint: 'f', alg: 'ES256' as const, curve: undefined, kidless: false, identity: {} as never, revocationGeneration: 0 }
  const now = Date.now()
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => cache.keyOf(`token-${name}`)) as [string, string, string, string]
  for (const k of [a, b, c]) {
    cache.set(k, entry, 100, now + 60_000, now)
    cache.set(k, entry, 100, now + 60_000, now)
  }
  t.ok(cache.get(a), 'the first stored is in use')
  cache.set(d, entry, 100, now + 60_000, now)
  t.ok(cache.set(d, entry, 100, now + 60_000, now), 'a fourth is cached')
  t.ok(cache.get(a), 'the token in use stays')
  t.equal(cache.get(b), undefined, 'the one least recently used is dropped')
  t.ok(cache.get(c))
})

t.test('a token without a kid: dropped when a new key set has more keys for its alg than such a token may try', async (t) => {
  const idp = await startJwksServer()
  t.teardown(() => idp.close())
  const signer = makeKey('ES256')
  const others = Array.from({ length: MAX_KEYS_TRIED_WITHOUT_KID }, () => makeKey('ES256'))
  idp.set({ json: jwksOf(signer) })
  const { seen, events } = counting()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }], { jwks: { unknownKidCooldownSeconds: 0 } }), { events })
  t.teardown(() => v.close())
  const kidless = mint(signer, idTokenClaims(ISS, AUD), { rawHeader: { alg: 'ES256', typ: 'JWT' } })
  const named = mint(signer, idTokenClaims(ISS, AUD, { sub: 'named' }))
  await admit(v, kidless)
  await admit(v, named)
  await v.verify(kidless)
  t.equal(seen.hit, 1, 'cached')
  // The signing key is still published, beside five more keys of its alg: a token without a kid would fit six.
  idp.set({ json: jwksOf(signer, ...others) })
  await v.verify(mint(others[0]!, idTokenClaims(ISS, AUD))) // unknown kid → refresh → the new JWKS
  await t.rejects(v.verify(kidless), { code: 'key_not_found' }, 'answered as a fresh verification answers it, not from the cache')
  t.equal((await v.verify(named)).subject, 'named', 'a token naming its kid is still served')
  t.equal(seen.hit, 2, 'from the cache')
})

t.test('entries are counted by what they hold: an encrypted token by the signed token inside, however small its compressed form', async (t) => {
  const encKey = rsaKey()
  const dir = t.testdir({ 'enc.key': encKey.file })
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), decryptionKeys: [`${dir}/enc.key`], allowCompressedTokens: true }]))
  t.teardown(() => v.close())
  const inner = mint(key, idTokenClaims(ISS, AUD, { padding: 'a'.repeat(9000) }))
  const jwe = await encrypt(inner, encKey, { alg: 'RSA-OAEP', enc: 'A256GCM', zip: 'DEF' })
  t.ok(jwe.length * 4 < inner.length, `compressed: ${jwe.length} characters for a signed token of ${inner.length}`)
  await admit(v, jwe)
  const lru = (v as unknown as { tokenCache: { lru: { calculatedSize: number, size: number } } }).tokenCache.lru
  t.equal(lru.size, 1)
  t.ok(lru.calculatedSize >= 3 * inner.length, `counted ${lru.calculatedSize} bytes, at least three per character of the signed token`)
})

t.test('maxEntries past what maxBytes can hold: slots for maxBytes / 1 KiB entries only (each is counted at least that)', async (t) => {
  const cache = new VerifiedTokenCache({ enabled: true, maxEntries: 10_000_000, maxBytes: 1 << 20, maxTtlSeconds: 60 })
  const entry = { issuer: 'main', keySource: 's', keyFingerprint: 'f', alg: 'ES256' as const, curve: undefined, kidless: false, identity: {} as never, revocationGeneration: 0 }
  const heapBefore = process.memoryUsage().heapUsed
  const k = cache.keyOf('t')
  cache.set(k, entry, 10, Date.now() + 60_000, Date.now())
  t.ok(cache.set(k, entry, 10, Date.now() + 60_000, Date.now()), 'cached')
  const lru = (cache as unknown as { lru: { max: number } }).lru
  t.equal(lru.max, 1024, 'a MiB holds at most 1,024 entries, so 1,024 slots, not ten million')
  t.ok(process.memoryUsage().heapUsed - heapBefore < 32 << 20, 'no ten-million-slot arrays')
})
