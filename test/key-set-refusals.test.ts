/**
 * Keys a JWKS may publish that must never verify a token: key_ops without "verify" (or not a list), and any key
 * carrying private material (d, p, q, ...). Each is rejected with its reason, and a token signed by the
 * corresponding private key is not accepted through it.
 */
import t from 'tap'
import type { PublicJwk } from '../src/config/types.js'
import { KeySet } from '../src/core/key-set.js'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, makeKey, mint } from './helpers/tokens.js'

const key = makeKey('ES256', { kid: 'k' })
const jwk = key.jwk as PublicJwk

t.test('key_ops must include "verify"', async (t) => {
  t.equal(new KeySet({ keys: [{ ...jwk, key_ops: ['verify'] }] }).keys.length, 1)
  t.equal(new KeySet({ keys: [{ ...jwk, key_ops: ['sign', 'verify'] }] }).keys.length, 1)
  for (const keyOps of [['encrypt'], ['sign'], [], 'verify', { 0: 'verify' }]) {
    const set = new KeySet({ keys: [{ ...jwk, key_ops: keyOps } as unknown as PublicJwk] })
    t.equal(set.keys.length, 0, JSON.stringify(keyOps))
    t.match(set.rejected, [{ kid: 'k', reason: 'key_ops does not include "verify"' }], JSON.stringify(keyOps))
  }
})

t.test('a key with private material is never used', async (t) => {
  const priv = key.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
  for (const extra of [{ d: priv.d }, { p: 'AQAB' }, { k: 'c2VjcmV0' }, { oth: [] }]) {
    const set = new KeySet({ keys: [{ ...jwk, ...extra } as PublicJwk] })
    t.equal(set.keys.length, 0, Object.keys(extra).join())
    t.match(set.rejected, [{ kid: 'k', reason: 'contains private key material' }])
  }
  // End to end: an issuer whose JWKS holds only such keys has none to verify with.
  const v = new Verifier(configFor([{ id: 'idp', issuer: 'https://idp.example.com', audiences: ['c'], jwks: { keys: [{ ...jwk, key_ops: ['encrypt'] }] } }]))
  t.teardown(() => v.close())
  await t.rejects(v.verify(mint(key, idTokenClaims('https://idp.example.com', 'c'))), { code: 'key_not_found' })
})
