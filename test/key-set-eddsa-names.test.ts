/**
 * "EdDSA" names EdDSA on either curve; "Ed25519" (RFC 9864) names it on Ed25519 only. A JWK pinned to
 * "Ed25519" whose key is an Ed448 one contradicts itself: it verifies nothing (jose refuses to import it), and
 * is reported as unusable, as an EC key pinned to another curve's algorithm is.
 */
import t from 'tap'
import { generateKeyPairSync, sign } from 'node:crypto'
import type { PublicJwk } from '../src/config/types.js'
import { KeySet } from '../src/core/key-set.js'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { b64, idTokenClaims } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const ed448 = generateKeyPairSync('ed448')
const ed25519 = generateKeyPairSync('ed25519')
const jwkOf = (key: typeof ed448, kid: string, alg: string): PublicJwk => ({ ...key.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' }) as PublicJwk

t.test('a key pinned to Ed25519 on the Ed448 curve is refused', async (t) => {
  const keySet = new KeySet({ keys: [jwkOf(ed448, 'pinned-25519', 'Ed25519'), jwkOf(ed448, 'eddsa-448', 'EdDSA'), jwkOf(ed25519, 'pinned-ok', 'Ed25519')] })
  t.same(keySet.rejected, [{ kid: 'pinned-25519', reason: 'alg Ed25519 does not fit a OKP key on curve Ed448' }])
  t.equal(keySet.candidates('EdDSA', 'pinned-25519').length, 0, 'not a candidate for EdDSA')
  t.equal(keySet.candidates('Ed25519', 'pinned-25519').length, 0, 'nor for Ed25519')
  t.equal(keySet.candidates('EdDSA', 'eddsa-448').length, 1, 'an Ed448 key pinned to EdDSA verifies EdDSA')
  t.equal(keySet.candidates('EdDSA', 'pinned-ok').length, 1, 'an Ed25519 key pinned to Ed25519 verifies EdDSA too')
})

t.test('an EdDSA token signed with it is not verified', async (t) => {
  const verifier = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], algorithms: ['EdDSA'], jwks: { keys: [jwkOf(ed448, 'k', 'Ed25519')] } }]))
  t.teardown(() => { verifier.close() })
  const input = `${b64({ alg: 'EdDSA', kid: 'k', typ: 'JWT' })}.${b64(idTokenClaims(ISS, 'aud'))}`
  const token = `${input}.${sign(null, Buffer.from(input), ed448.privateKey).toString('base64url')}`
  await t.rejects(verifier.verify(token), { code: 'key_not_found' })
})
