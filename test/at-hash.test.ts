/**
 * at_hash (src/core/at-hash.ts): the hash is of the access token's ASCII octets, so a string with any other
 * character is not the access token, whatever its low bytes hash to.
 */
import t from 'tap'
import { atHashMatches, computeAtHash } from '../src/core/at-hash.js'

t.test('only the access token itself matches', async (t) => {
  const accessToken = 'abcDEF123-._~+/='
  const atHash = computeAtHash(accessToken, 'ES256')
  t.ok(atHashMatches(atHash, accessToken, 'ES256'))
  t.notOk(atHashMatches(atHash, 'abcDEF124-._~+/=', 'ES256'), 'another token')
  // U+0161 and U+0461 have 0x61 ("a") as their low byte: an ASCII hash of them is the hash of "a".
  for (const forged of ['šbcDEF123-._~+/=', 'ѡbcDEF123-._~+/=', 'abcDEF123-._~+/=\u0100']) {
    t.notOk(atHashMatches(atHash, forged, 'ES256'), JSON.stringify(forged))
  }
  t.notOk(atHashMatches(computeAtHash('a\tb', 'RS256'), 'a\tb', 'RS256'), 'a control character is no access token character either')
  t.ok(atHashMatches(computeAtHash('a b', 'RS512'), 'a b', 'RS512'), 'a space is (RFC 6749 VSCHAR)')
})

t.test('the hash is the signing algorithm\'s: SHA-256, -384 or -512 by its size, SHA-512 or SHAKE256 for EdDSA by its curve', async (t) => {
  // Known answers computed with OpenSSL (`openssl dgst -sha384 -binary | head -c 24 | base64url`, and so on).
  const token = 'jHkWEdUXMU1BwAsC4vtUsZwnNo11rNdV'
  const sha256 = 'dPZvs0VsO8UlQbTDkUMGuw'
  const sha384 = '6b6-8zevFHGFXLa3y6MYO-hNn1RYdiTw'
  const sha512 = 'WrjyobHbniJosO-P3ELe60H6Dewz35IETNDCDnhC5Ew'
  const shake256 = '720KYZeGD0RWpNt2SJHfBTyXKs7QJCKBCV694jcj63JZFBPWtA2Yu79RKDgKp18W3NNpbpEwA8OT'
  for (const [alg, crv, expected] of [
    ['RS256', undefined, sha256], ['ES256', undefined, sha256], ['HS256', undefined, sha256],
    ['RS384', undefined, sha384], ['PS384', undefined, sha384], ['ES384', undefined, sha384],
    ['RS512', undefined, sha512], ['ES512', undefined, sha512],
    ['EdDSA', 'Ed25519', sha512], ['Ed25519', undefined, sha512], ['EdDSA', 'Ed448', shake256]
  ] as const) {
    t.equal(computeAtHash(token, alg, crv), expected, `${alg}${crv === undefined ? '' : ` ${crv}`}`)
    t.ok(atHashMatches(expected, token, alg, crv))
  }
  t.notOk(atHashMatches(sha256, token, 'RS384'), 'a SHA-256 at_hash on an RS384 token does not match')
})
