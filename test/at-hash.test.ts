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
