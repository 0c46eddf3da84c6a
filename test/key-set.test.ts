import t from 'tap'
import type { PublicJwk } from '../src/config/types.js'
import { KeySet, MAX_KEYS_PER_KID, MAX_RSA_BITS, MAX_RSA_EXPONENT_BITS } from '../src/core/key-set.js'
import { silentLogger, type Logger } from '../src/core/logger.js'
import { MAX_KEYS_TRIED_WITHOUT_KID, MAX_REJECTED_KEYS_LOGGED, Verifier } from '../src/core/verifier.js'
import type { FetchJson } from '../src/net/fetch-json.js'
import { configFor } from './helpers/config.js'
import { generatePair, idTokenClaims, makeKey, mint } from './helpers/tokens.js'

/** An RSA JWK whose modulus has exactly `bits` bits (odd, top bit set): not a real key, only its size matters. */
function rsaJwkOfBits (bits: number, kid: string): PublicJwk {
  const bytes = Buffer.alloc(Math.ceil(bits / 8), 0xa5)
  bytes[0] = 1 << ((bits - 1) % 8)
  bytes[bytes.length - 1] = 0xa5
  return { kty: 'RSA', kid, use: 'sig', alg: 'RS256', n: bytes.toString('base64url'), e: 'AQAB' }
}

t.test('the same key listed many times under one kid is kept once', async (t) => {
  const key = makeKey('RS256', { kid: 'k' })
  const copies = Array.from({ length: 100 }, () => ({ ...key.jwk }) as PublicJwk)
  const keySet = new KeySet({ keys: copies })
  t.equal(keySet.keys.length, 1)
  t.equal(keySet.candidates('RS256', 'k').length, 1, 'a token with kid "k" is checked against one key')
  t.equal(keySet.rejected.length, 99)
  t.ok(keySet.rejected.every((r) => r.kid === 'k' && r.reason === 'duplicate of a key listed earlier under the same kid'))
  t.equal(keySet.fingerprints().size, 1)

  // The same material without a kid, or pinned to another algorithm, is another entry (and still fits its own tokens).
  const jwk = key.jwk as PublicJwk
  const withoutKid: PublicJwk = { ...jwk, kid: undefined }
  const otherAlg: PublicJwk = { ...jwk, alg: 'PS256' }
  const mixed = new KeySet({ keys: [jwk, otherAlg, withoutKid, { ...withoutKid }, { ...jwk }] })
  t.equal(mixed.keys.length, 3, 'kid "k" for RS256, kid "k" for PS256, no kid')
  t.equal(mixed.candidates('PS256', 'k').length, 1)
  t.equal(mixed.rejected.length, 2)
})

t.test(`at most ${MAX_KEYS_PER_KID} keys are kept under one kid`, async (t) => {
  const keys = Array.from({ length: MAX_KEYS_PER_KID + 3 }, () => makeKey('ES256', { kid: 'k' }))
  const other = makeKey('ES256', { kid: 'other' })
  const keySet = new KeySet({ keys: [...keys, other].map((k) => k.jwk as PublicJwk) })
  const candidates = keySet.candidates('ES256', 'k')
  t.equal(candidates.length, MAX_KEYS_PER_KID)
  t.same(candidates.map((c) => c.fingerprint), keys.slice(0, MAX_KEYS_PER_KID).map((k) => JSON.stringify(['k', { kty: 'EC', crv: k.jwk.crv, x: k.jwk.x, y: k.jwk.y }, k.jwk.alg ?? null, null])),
    'the first ones, in document order')
  t.same(keySet.rejected, Array.from({ length: 3 }, () => ({
    kid: 'k', reason: `more than ${MAX_KEYS_PER_KID} keys share this kid (only the first ${MAX_KEYS_PER_KID} are tried)`
  })))
  t.equal(keySet.candidates('ES256', 'other').length, 1, 'other kids are not affected')
  t.ok(keySet.hasKid('k'))
})

t.test(`RSA moduli over ${MAX_RSA_BITS} bits are refused before the key is imported`, async (t) => {
  const keySet = new KeySet({
    keys: [rsaJwkOfBits(16384, 'huge'), rsaJwkOfBits(MAX_RSA_BITS + 1, 'just-over'), rsaJwkOfBits(MAX_RSA_BITS, 'at-limit')]
  })
  const reasons = new Map(keySet.rejected.map((r) => [r.kid, r.reason]))
  t.equal(reasons.get('huge'), `RSA modulus is longer than ${MAX_RSA_BITS} bits`)
  t.equal(reasons.get('just-over'), `RSA modulus is longer than ${MAX_RSA_BITS} bits`)
  t.not(reasons.get('at-limit'), `RSA modulus is longer than ${MAX_RSA_BITS} bits`, `${MAX_RSA_BITS} bits is not too long`)
  t.equal(keySet.candidates('RS256', 'huge').length, 0)
  t.equal(keySet.candidates('RS256', 'just-over').length, 0)

  // Leading zero octets do not count.
  const padded = rsaJwkOfBits(MAX_RSA_BITS, 'padded')
  padded.n = Buffer.concat([Buffer.alloc(4), Buffer.from(padded.n as string, 'base64url')]).toString('base64url')
  t.not(new KeySet({ keys: [padded] }).rejected[0]?.reason, `RSA modulus is longer than ${MAX_RSA_BITS} bits`)
})

t.test(`RSA public exponents: odd, from 3 to ${MAX_RSA_EXPONENT_BITS} bits (a long one makes each check slow)`, async (t) => {
  const real = (publicExponent: number, kid: string): PublicJwk => {
    const { publicKey } = generatePair('rsa', { modulusLength: 2048, publicExponent })
    return { ...(publicKey.export({ format: 'jwk' }) as PublicJwk), kid, use: 'sig', alg: 'RS256' }
  }
  const withExponent = (e: Buffer, kid: string): PublicJwk => ({ ...real(65537, 'x'), kid, e: e.toString('base64url') })
  const n = Buffer.from(real(65537, 'n').n as string, 'base64url')
  const huge = Buffer.from(n.subarray(1)) // one octet shorter than the modulus: below it, thousands of bits
  huge[huge.length - 1] = (huge[huge.length - 1] as number) | 1
  const keySet = new KeySet({
    keys: [
      real(65537, 'f4'), real(3, 'three'),
      withExponent(huge, 'huge'), withExponent(Buffer.from([1, 0, 0, 0, 1]), 'over-32-bits'), withExponent(Buffer.from([0xff, 0xff, 0xff, 0xff]), 'at-32-bits'),
      withExponent(Buffer.from([1, 0, 0]), 'even'), withExponent(Buffer.from([1]), 'one'), withExponent(Buffer.from([0, 0, 1, 0, 1]), 'zero-padded')
    ]
  })
  const reason = `RSA public exponent is not an odd number from 3 to 2^${MAX_RSA_EXPONENT_BITS}`
  const reasons = new Map(keySet.rejected.map((r) => [r.kid, r.reason]))
  for (const kid of ['huge', 'over-32-bits', 'even', 'one']) {
    t.equal(reasons.get(kid), reason, kid)
    t.equal(keySet.candidates('RS256', kid).length, 0, `${kid}: never tried`)
  }
  for (const kid of ['f4', 'three']) t.equal(keySet.candidates('RS256', kid).length, 1, `${kid}: usable`)
  for (const kid of ['at-32-bits', 'zero-padded']) t.not(reasons.get(kid), reason, `${kid}: not refused for its exponent`)
})

t.test('many copies of one key without a kid are kept once', async (t) => {
  // Many copies of one key without a kid: kept once, every copy rejected as a duplicate, in one pass.
  const noKid = { ...makeKey('ES256').jwk, kid: undefined } as PublicJwk
  const copies = new KeySet({ keys: Array.from({ length: 5000 }, () => ({ ...noKid })) })
  t.equal(copies.keys.length, 1)
  t.equal(copies.rejected.length, 4999)
  t.ok(copies.rejected.every((r) => r.reason === 'duplicate of a key listed earlier under the same kid'))
})

t.test('the warning about unusable keys names at most a few of them, and counts them all', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  const logger: Logger = { ...silentLogger, warn: (obj) => { warnings.push(obj as Record<string, unknown>) }, child: () => logger }
  const good = makeKey('ES256', { kid: 'good' })
  const junk = Array.from({ length: 60 }, (_, i) => ({ kty: 'EC', kid: `enc-${i}`, use: 'enc', crv: 'P-256', x: good.jwk.x, y: good.jwk.y }))
  const fetcher: FetchJson = async (url) => ({ url, body: { keys: [good.jwk, ...junk] }, durationMs: 1 })
  const verifier = new Verifier(configFor([{ id: 'i', issuer: 'https://idp.example.com', audiences: ['a'], jwksUri: 'https://idp.example.com/jwks' }]), { fetcher, logger })
  t.teardown(() => { verifier.close() })
  verifier.start()
  for (let i = 0; i < 100 && !verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(verifier.ready, 'keys loaded')
  const warning = warnings.find((w) => 'rejectedCount' in w)
  t.match(warning, { issuer: 'i', rejectedCount: 60 }, 'with the issuer it is about')
  t.equal((warning?.rejected as unknown[]).length, MAX_REJECTED_KEYS_LOGGED)
})

t.test('an issuer whose first JWKS has no usable key is not ready, and /readyz says why', async (t) => {
  for (const body of [{ keys: [] }, { keys: [{ ...makeKey('ES256').jwk, use: 'enc' }] }]) {
    const fetcher: FetchJson = async (url) => ({ url, body, durationMs: 1 })
    const verifier = new Verifier(configFor([{ id: 'i', issuer: 'https://idp.example.com', audiences: ['a'], jwksUri: 'https://idp.example.com/jwks' }]), { fetcher })
    t.teardown(() => { verifier.close() })
    verifier.start()
    for (let i = 0; i < 100 && verifier.status()[0]?.state !== 'fresh'; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    t.match(verifier.status()[0], {
      ready: false, state: 'fresh', keyCount: 0, lastError: /^The JWKS at https:\/\/idp\.example\.com\/jwks has no key usable for signatures/
    }, `${body.keys.length} keys listed`)
  }
})

t.test('a key whose members are not strings is refused by itself; the key set keeps its good keys', async (t) => {
  const good = { ...makeKey('ES256', { kid: 'good' }).jwk }
  const nested = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown
  const keySet = new KeySet({
    keys: [
      good,
      { kty: 'RSA', kid: 'nested-n', e: 'AQAB', n: nested },
      { kty: 'RSA', kid: 'number-e', e: 65537, n: 'AQAB' },
      { kty: 'EC', kid: 'no-y', crv: 'P-256', x: good.x },
      { kty: 'EC', kid: 'object-crv', crv: { name: 'P-256' }, x: good.x, y: good.y },
      { kty: 'OKP', kid: 'array-x', crv: 'Ed25519', x: ['a'] },
      { kty: 'RSA', kid: 'nested-crv', e: 'AQAB', n: 'AQAB', alg: 'RSA-OAEP', crv: nested }
    ] as PublicJwk[]
  })
  t.same(keySet.keys.map((k) => k.kid), ['good'])
  t.same(new Map(keySet.rejected.map((r) => [r.kid, r.reason])), new Map([
    ['nested-n', 'n is missing or not a string'],
    ['number-e', 'e is missing or not a string'],
    ['no-y', 'y is missing or not a string'],
    ['object-crv', 'crv is missing or not a string'],
    ['array-x', 'x is missing or not a string'],
    ['nested-crv', 'alg RSA-OAEP is not a signature algorithm this service verifies']
  ]))
})

t.test('a key no supported algorithm can use is not a usable key', async (t) => {
  const x25519 = generatePair('x25519').publicKey.export({ format: 'jwk' })
  const secp256k1 = generatePair('ec', { namedCurve: 'secp256k1' }).publicKey.export({ format: 'jwk' })
  const rsa = makeKey('RS256', { kid: 'r' }).jwk
  const es = makeKey('ES256', { kid: 'e' }).jwk
  const keySet = new KeySet({
    keys: [
      { ...x25519, kid: 'x25519' }, { ...secp256k1, kid: 'secp256k1' },
      { ...rsa, kid: 'rsa-oaep', alg: 'RSA-OAEP' }, { ...rsa, kid: 'rsa-as-es256', alg: 'ES256' }, { ...es, kid: 'p256-as-es384', alg: 'ES384' },
      { ...rsa, kid: 'rs256' }, { ...es, kid: 'es256', alg: 'ES256' }
    ] as PublicJwk[]
  })
  t.same(keySet.keys.map((k) => k.kid), ['rs256', 'es256'])
  t.same(new Map(keySet.rejected.map((r) => [r.kid, r.reason])), new Map([
    ['x25519', 'a OKP key on curve X25519 cannot verify signatures here'],
    ['secp256k1', 'a EC key on curve secp256k1 cannot verify signatures here'],
    ['rsa-oaep', 'alg RSA-OAEP is not a signature algorithm this service verifies'],
    ['rsa-as-es256', 'alg ES256 does not fit a RSA key'],
    ['p256-as-es384', 'alg ES384 does not fit a EC key on curve P-256']
  ]))
})

t.test('a JWKS of keys no algorithm can use does not replace good keys', async (t) => {
  const good = makeKey('ES256', { kid: 'good' })
  let served: unknown = { keys: [good.jwk] }
  const fetcher: FetchJson = async (url) => ({ url, body: served, cacheControl: 'max-age=3600', durationMs: 1 })
  const verifier = new Verifier(configFor([{ id: 'idp', issuer: 'https://idp.example.com', audiences: ['a'], jwksUri: 'https://idp.example.com/jwks' }], { jwks: { unknownKidCooldownSeconds: 0 } }), { fetcher })
  t.teardown(() => { verifier.close() })
  verifier.start()
  for (let i = 0; i < 100 && !verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  served = { keys: [{ ...generatePair('x25519').publicKey.export({ format: 'jwk' }), kid: 'good' }] }
  // An unknown kid makes the verifier fetch the new document.
  const code = await verifier.verify(mint(makeKey('ES256', { kid: 'other' }), idTokenClaims('https://idp.example.com', 'a'))).then(() => 'accepted', (err: { code?: string }) => err.code)
  t.equal(code, 'key_not_found')
  t.match(verifier.status()[0], { ready: true, keyCount: 1, lastError: /has no usable keys \(1 listed\): keeping the previous keys/ })
  t.equal(await verifier.verify(mint(good, idTokenClaims('https://idp.example.com', 'a'))).then(() => 'accepted'), 'accepted', 'the good key is still in use')
})

t.test('RSA under 2048 bits by one bit is refused', async (t) => {
  const jwkOf = (modulusLength: number): PublicJwk => ({ ...generatePair('rsa', { modulusLength }).publicKey.export({ format: 'jwk' }), kid: `r${modulusLength}` } as PublicJwk)
  const set = new KeySet({ keys: [jwkOf(2047), jwkOf(2048)] })
  t.same(set.keys.map((k) => k.kid), ['r2048'])
  t.same(set.rejected, [{ kid: 'r2047', reason: 'RSA modulus is shorter than 2048 bits' }])
})

t.test('a kid or alg that is no string: that key is rejected, the others kept (and a kid-less token does not find it)', async (t) => {
  const good = makeKey('ES256', { kid: 'good' }).jwk as PublicJwk
  const odd = makeKey('ES256').jwk as PublicJwk
  const set = new KeySet({ keys: [{ ...odd, kid: 5 } as unknown as PublicJwk, { ...odd, kid: 'a', alg: 5 } as unknown as PublicJwk, { ...odd, kid: 'b', alg: ['ES256'] } as unknown as PublicJwk, good] })
  t.same(set.keys.map((k) => k.kid), ['good'])
  t.same(set.rejected, [
    { kid: undefined, reason: 'kid is not a string' },
    { kid: 'a', reason: 'alg is not a string' },
    { kid: 'b', reason: 'alg is not a string' }
  ])
  t.same(set.candidates('ES256', undefined).map((k) => k.kid), ['good'])
})

t.test('a symmetric (oct) key is refused for its type', async (t) => {
  const set = new KeySet({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's' } as unknown as PublicJwk, { kty: 'oct', kid: 'o' } as unknown as PublicJwk] })
  t.same(set.rejected, [{ kid: 's', reason: 'key type oct cannot verify signatures here' }, { kid: 'o', reason: 'key type oct cannot verify signatures here' }])
})

t.test('the same key published for two issuers (Entra) is two keys, not a duplicate', async (t) => {
  const jwk = makeKey('RS256', { kid: 'k' }).jwk as PublicJwk
  const set = new KeySet({ keys: [{ ...jwk, issuer: 'https://login.microsoftonline.com/t1/v2.0' }, { ...jwk, issuer: 'https://login.microsoftonline.com/t2/v2.0' }] as PublicJwk[] })
  t.same(set.keys.map((k) => k.issuer), ['https://login.microsoftonline.com/t1/v2.0', 'https://login.microsoftonline.com/t2/v2.0'])
  t.equal(set.rejected.length, 0)
  t.equal(set.fingerprints().size, 2)
})

t.test(`${MAX_KEYS_PER_KID} keys per kid, as README says, the bound of a kid-less token too`, async (t) => {
  t.equal(MAX_KEYS_PER_KID, 5)
  t.equal(MAX_KEYS_PER_KID, MAX_KEYS_TRIED_WITHOUT_KID)
})
