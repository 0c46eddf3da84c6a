/**
 * The Verifier's paths for a new token: synchronous up to the signature check, then one continuation
 * (src/core/verifier.ts, withSignedToken). verifyNow() must hand every failure of a new token back as a
 * rejected promise (never a synchronous throw), with one verification event; the fast path (fresh keys, one
 * fitting key) and the general path (several keys without a kid, stale keys, an unknown kid) must decide alike.
 */
import t, { type Test } from 'tap'
import { MAX_KEYS_TRIED_WITHOUT_KID, Verifier, type VerifierOptions } from '../src/core/verifier.js'
import type { VerifiedTokenCache } from '../src/core/verified-token-cache.js'
import { isVerificationError } from '../src/errors.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint, mintHmac, nowSeconds, type TestKey } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const SECRET = 's'.repeat(40)
const es = makeKey('ES256')

/** A token's header without a kid, signed by `key`. */
const withoutKid = (key: TestKey, claims: Record<string, unknown>): string => mint(key, claims, { rawHeader: { alg: key.alg, typ: 'JWT' } })

/** The error code of a rejected promise (fails the test on anything else). */
async function rejectionCode (t: Test, outcome: unknown): Promise<string | undefined> {
  t.ok(outcome instanceof Promise, 'a promise, not a synchronous throw')
  try {
    await outcome
    t.fail('resolved')
    return undefined
  } catch (err) {
    return isVerificationError(err) ? err.code : `not a VerificationError: ${String(err)}`
  }
}

t.test('verifyNow: a new token that fails before or after its signature check is a rejected promise, observed once', async (t) => {
  const expired = idTokenClaims(ISS, AUD, { iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 })
  const cases: Record<string, [string, string]> = {
    'three empty-ish segments': ['a.b.c', 'token_malformed'],
    'an issuer not configured': [mint(es, idTokenClaims('https://other.example.com', AUD)), 'issuer_unknown'],
    'an alg that is not a string': [mint(es, idTokenClaims(ISS, AUD), { header: { alg: 7 } }), 'header_invalid'],
    'an alg not allowed': [mint(es, idTokenClaims(ISS, AUD), { header: { alg: 'ES384' } }), 'algorithm_not_allowed'],
    'an ES256 signature of 63 bytes': [`${mint(es, idTokenClaims(ISS, AUD)).split('.').slice(0, 2).join('.')}.${Buffer.alloc(63, 1).toString('base64url')}`, 'signature_invalid'],
    'an ES256 signature that does not verify': [`${mint(es, idTokenClaims(ISS, AUD)).split('.').slice(0, 2).join('.')}.${Buffer.alloc(64, 1).toString('base64url')}`, 'signature_invalid'],
    'an expired ES256 token (after the check)': [mint(es, expired), 'token_expired'],
    'an HS256 token with another secret': [mintHmac('x'.repeat(40), 'HS256', idTokenClaims(ISS, AUD)), 'signature_invalid'],
    // HMAC has no asynchronous check: its claim rules run before verifyNow returns, and must still reject.
    'an expired HS256 token': [mintHmac(SECRET, 'HS256', expired), 'token_expired'],
    'an HS256 token for another audience': [mintHmac(SECRET, 'HS256', idTokenClaims(ISS, 'client-b')), 'audience_mismatch']
  }
  for (const tokenCache of [true, false]) {
    for (const observed of [true, false]) {
      const results: string[] = []
      const options: VerifierOptions = observed ? { events: { verification: (e) => { results.push(e.result) } } } : {}
      const v = new Verifier(configFor([{
        id: 'main', issuer: ISS, audiences: [AUD], algorithms: ['ES256', 'HS256'], jwks: jwksOf(es), clientSecret: SECRET
      }], { tokenCache: { enabled: tokenCache } }), options)
      for (const [name, [token, code]] of Object.entries(cases)) {
        const label = `${name} (cache ${tokenCache ? 'on' : 'off'}, ${observed ? 'observed' : 'not observed'})`
        results.length = 0
        let outcome: unknown
        try {
          outcome = v.verifyNow(token)
        } catch (err) {
          t.fail(`${label}: thrown synchronously (${String(err)})`)
          continue
        }
        t.equal(await rejectionCode(t, outcome), code, label)
        if (observed) t.same(results, [code], `${label}: one verification event`)
      }
      v.close()
    }
  }
})

t.test('without a kid, every fitting key is tried: the one that signed need not be first', async (t) => {
  const keys = Array.from({ length: MAX_KEYS_TRIED_WITHOUT_KID }, () => makeKey('ES256'))
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(...keys) }]))
  t.teardown(() => v.close())
  const cache = (v as unknown as { tokenCache: VerifiedTokenCache }).tokenCache
  const fingerprints = new Set<string>()
  for (const key of keys) {
    const token = withoutKid(key, idTokenClaims(ISS, AUD, { sub: key.kid }))
    t.equal((await v.verify(token)).subject, key.kid, `signed by ${key.kid}`)
    await v.verify(token) // the second verification admits it to the cache
    const entry = cache.get(cache.keyOf(token))
    t.ok(entry !== undefined, 'cached')
    fingerprints.add(entry?.keyFingerprint ?? '')
  }
  t.equal(fingerprints.size, keys.length, 'each entry names the key that verified it, not the first one tried')
  const stranger = makeKey('ES256')
  t.equal((await v.verify(withoutKid(stranger, idTokenClaims(ISS, AUD))).catch((err) => err.code)), 'signature_invalid', 'no key verifies it')
})

t.test(`more than ${MAX_KEYS_TRIED_WITHOUT_KID} fitting keys and no kid: key_not_found, without trying any`, async (t) => {
  const keys = Array.from({ length: MAX_KEYS_TRIED_WITHOUT_KID + 1 }, () => makeKey('ES256'))
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(...keys) }]))
  t.teardown(() => v.close())
  await t.rejects(v.verify(withoutKid(keys[0] as TestKey, idTokenClaims(ISS, AUD))), { code: 'key_not_found' })
  t.equal((await v.verify(mint(keys[0] as TestKey, idTokenClaims(ISS, AUD)))).subject, 'user-123', 'with its kid, the same key is found')
})

t.test('a key pinned to an issuer is checked on both paths', async (t) => {
  const pinned = makeKey('ES256', { jwkExtras: { issuer: 'https://elsewhere.example.com' } })
  const other = makeKey('ES256')
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(other, pinned) }]))
  t.teardown(() => v.close())
  await t.rejects(v.verify(mint(pinned, idTokenClaims(ISS, AUD))), { code: 'issuer_tenant_mismatch' }, 'by its kid (one fitting key)')
  await t.rejects(v.verify(withoutKid(pinned, idTokenClaims(ISS, AUD))), { code: 'issuer_tenant_mismatch' }, 'without a kid, found second among two')
  t.equal((await v.verify(withoutKid(other, idTokenClaims(ISS, AUD)))).subject, 'user-123', 'the unpinned key still verifies')
})

t.test('a JWKS: a kid known only for another algorithm is key_not_found without a refresh; stale keys still verify', async (t) => {
  const rsa = makeKey('RS256', { kid: 'shared-kid' })
  const idp = await startJwksServer({ json: jwksOf(rsa, es) })
  t.teardown(() => idp.close())
  let now = Date.now()
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl, algorithms: ['ES256', 'RS256'] }], {
    jwks: { unknownKidCooldownSeconds: 0 }
  }), { now: () => now })
  t.teardown(() => v.close())
  t.equal((await v.verify(mint(es, idTokenClaims(ISS, AUD)))).subject, 'user-123')
  t.equal(idp.requests(), 1)
  // The RSA key's kid in an ES256 header: the kid is known, so no refresh would find another key for it.
  const kidOfRsa = `${b64({ alg: 'ES256', kid: 'shared-kid', typ: 'JWT' })}.${mint(es, idTokenClaims(ISS, AUD)).split('.').slice(1).join('.')}`
  await t.rejects(v.verify(kidOfRsa), { code: 'key_not_found' })
  t.equal(idp.requests(), 1, 'no JWKS fetch for a kid the key set has')
  // Long past the keys' freshness: served stale (through getKeySet) while they are refreshed in the background.
  now += 3 * 3600 * 1000
  t.equal((await v.verify(mint(es, idTokenClaims(ISS, AUD, { iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 600 })))).subject, 'user-123', 'stale keys')
})
