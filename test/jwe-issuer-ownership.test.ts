/**
 * An encrypted token is decrypted with some issuer's key under that key's policy; the issuer its inner token
 * names must then own the key AND allow the header itself. Each check alone: a token for issuer B encrypted to
 * issuer A's key with a header B also allows (ownership), and a token for B encrypted to a key A and B share
 * with a header only A allows (B's policy).
 */
import { join } from 'node:path'
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { encrypt, rsaKey } from './helpers/jwe.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const AUD = 'client-a'
const signer = makeKey('ES256')
const keys = { a: rsaKey(), b: rsaKey(), shared: rsaKey() }
const dir = t.testdir(Object.fromEntries(Object.entries(keys).map(([name, key]) => [`${name}.key`, key.file])))
const file = (name: string): string => join(dir, `${name}.key`)
const A = 'https://a.example.com'
const B = 'https://b.example.com'
const S1 = 'https://s1.example.com'
const S2 = 'https://s2.example.com'

const v = new Verifier(configFor([
  { id: 'a', issuer: A, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [file('a')] },
  { id: 'b', issuer: B, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [file('b')] },
  { id: 's1', issuer: S1, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [file('shared')] },
  { id: 's2', issuer: S2, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [file('shared')], contentEncryptionAlgorithms: ['A256GCM'] }
]))
t.teardown(() => v.close())
const signed = (iss: string): string => mint(signer, idTokenClaims(iss, AUD))

t.test('the inner issuer must own the decrypting key (a header both issuers allow)', async (t) => {
  t.equal((await v.verify(await encrypt(signed(B), keys.b, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).issuer.id, 'b')
  await t.rejects(v.verify(await encrypt(signed(B), keys.a, { alg: 'RSA-OAEP-256', enc: 'A256GCM' })), { code: 'token_decryption_failed' })
})

t.test('the inner issuer\'s own policy applies, even with a key it shares', async (t) => {
  t.equal((await v.verify(await encrypt(signed(S2), keys.shared, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).issuer.id, 's2')
  t.equal((await v.verify(await encrypt(signed(S1), keys.shared, { alg: 'RSA-OAEP-256', enc: 'A128GCM' }))).issuer.id, 's1')
  await t.rejects(v.verify(await encrypt(signed(S2), keys.shared, { alg: 'RSA-OAEP-256', enc: 'A128GCM' })), { code: 'token_decryption_failed' }, 'A128GCM: only s1 allows it')
})
