/**
 * An Ed25519 (or Ed448) public key that is a point of small order is a key anyone can forge signatures for:
 * node:crypto (OpenSSL) imports it and verifies cofactorless, so with R the identity point and S = 0 the check
 * [S]B = R + [k]A holds whenever [k]A is the identity, for every message when A is the identity itself, for one
 * message in four when A is the all-zero encoding (y = 0, order 4), a placeholder that a hand-written inline
 * JWKS may well hold. Like an RSA key with e = 1, such a key must never verify (README: keys that must never
 * verify are dropped and logged).
 */
import t from 'tap'
import type { PublicJwk } from '../src/config/types.js'
import { KeySet } from '../src/core/key-set.js'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { b64, generatePair, idTokenClaims } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'

/** Little-endian encoding of y in `bytes` bytes (RFC 8032 §5.1.2, §5.2.2), x's sign bit clear unless set. */
function encoded (y: bigint, bytes: number, signBit = false): string {
  const out = Buffer.alloc(bytes)
  for (let i = 0; i < bytes; i++) out[i] = Number((y >> BigInt(8 * i)) & 0xffn)
  if (signBit) out[bytes - 1] = (out[bytes - 1] as number) | 0x80
  return out.toString('base64url')
}

const P25519 = 2n ** 255n - 19n
const P448 = 2n ** 448n - 2n ** 224n - 1n

/** Every small-order point of each curve, by y (its order does not depend on x's sign), and non-canonical spellings. */
const SMALL_ORDER: Array<{ name: string, crv: 'Ed25519' | 'Ed448', x: string }> = [
  { name: 'Ed25519 identity (y = 1)', crv: 'Ed25519', x: encoded(1n, 32) },
  { name: 'Ed25519 all zero (y = 0, order 4)', crv: 'Ed25519', x: encoded(0n, 32) },
  { name: 'Ed25519 y = 0 with the sign bit (order 4)', crv: 'Ed25519', x: encoded(0n, 32, true) },
  { name: 'Ed25519 y = -1 (order 2)', crv: 'Ed25519', x: encoded(P25519 - 1n, 32) },
  { name: 'Ed25519 order 8', crv: 'Ed25519', x: encoded(2707385501144840649318225287225658788936804267575313519463743609750303402022n, 32) },
  { name: 'Ed25519 order 8 (the other y)', crv: 'Ed25519', x: encoded(P25519 - 2707385501144840649318225287225658788936804267575313519463743609750303402022n, 32, true) },
  { name: 'Ed25519 y = p + 1 (the identity, non-canonical)', crv: 'Ed25519', x: encoded(P25519 + 1n, 32) },
  { name: 'Ed448 identity (y = 1)', crv: 'Ed448', x: encoded(1n, 57) },
  { name: 'Ed448 y = -1 (order 2)', crv: 'Ed448', x: encoded(P448 - 1n, 57) },
  { name: 'Ed448 y = 0 (order 4)', crv: 'Ed448', x: encoded(0n, 57) }
]

t.test('a small-order EdDSA public key is refused, before anything can be verified with it', async (t) => {
  for (const { name, crv, x } of SMALL_ORDER) {
    const keySet = new KeySet({ keys: [{ kty: 'OKP', crv, kid: 'k', x } as PublicJwk] })
    t.equal(keySet.keys.length, 0, `${name}: not usable`)
    t.match(keySet.rejected, [{ kid: 'k', reason: /small order/ }], `${name}: refused for it`)
  }
})

t.test('real Ed25519 and Ed448 keys, including the RFC 8037 example, stay usable', async (t) => {
  const keys = [
    { kty: 'OKP', crv: 'Ed25519', kid: 'rfc8037', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' },
    ...Array.from({ length: 20 }, (_, i) => ({ ...generatePair('ed25519').publicKey.export({ format: 'jwk' }), kid: `ed25519-${i}` })),
    ...Array.from({ length: 5 }, (_, i) => ({ ...generatePair('ed448').publicKey.export({ format: 'jwk' }), kid: `ed448-${i}` }))
  ] as PublicJwk[]
  const keySet = new KeySet({ keys })
  t.same(keySet.rejected, [])
  t.equal(keySet.keys.length, keys.length)
})

t.test('a token forged for an all-zero Ed25519 key in an inline JWKS is not accepted', async (t) => {
  const identity = Buffer.alloc(32)
  identity[0] = 1
  const forgedSignature = Buffer.concat([identity, Buffer.alloc(32)]).toString('base64url') // R = identity, S = 0
  const verifier = new Verifier(configFor([{ id: 'i', issuer: ISS, audiences: ['a'], algorithms: ['EdDSA'], jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', kid: 'zero', x: encoded(0n, 32) }] } }]))
  t.teardown(() => { verifier.close() })
  // About one claims set in four verifies with the forged signature; a few tries find one.
  const answers = new Set<string>()
  for (let i = 0; i < 16; i++) {
    const token = `${b64({ alg: 'EdDSA', kid: 'zero', typ: 'JWT' })}.${b64(idTokenClaims(ISS, 'a', { sub: `attacker-${i}` }))}.${forgedSignature}`
    answers.add(await verifier.verify(token).then(() => 'accepted', (err: { code?: string }) => err.code ?? 'thrown'))
  }
  t.same([...answers], ['key_not_found'], 'no forged token is accepted: the key is not one')
})
