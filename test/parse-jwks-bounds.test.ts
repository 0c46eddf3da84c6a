/**
 * A JWKS document of more than MAX_JWKS_KEYS keys is refused before any key is looked at (a provider publishes a
 * handful; thousands would be CPU spent importing keys on every fetch).
 */
import t from 'tap'
import { MAX_JWKS_KEYS, parseJwks } from '../src/jwks/parse-jwks.js'

const jwk = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }

t.test(`at most ${MAX_JWKS_KEYS} keys`, async (t) => {
  t.equal(MAX_JWKS_KEYS, 100)
  t.equal(parseJwks({ keys: Array.from({ length: MAX_JWKS_KEYS }, () => jwk) }, 'https://idp.example.com/jwks').keys.length, MAX_JWKS_KEYS)
  t.throws(() => parseJwks({ keys: Array.from({ length: MAX_JWKS_KEYS + 1 }, () => jwk) }, 'https://idp.example.com/jwks'),
    { name: 'FetchError', kind: 'invalid_document', message: /has 101 keys, more than the 100 accepted/ })
})

t.test('every key is an object with a string kty; the document an object', async (t) => {
  const url = 'https://idp.example.com/jwks'
  for (const [keys, message] of [
    [[jwk, null], 'keys[1] is null, not an object'],
    [[jwk, [jwk]], 'keys[1] is an array, not an object'],
    [[jwk, 'x'], 'keys[1] is a string, not an object'],
    [[{ ...jwk, kty: undefined }], 'keys[0] has no string "kty"'],
    [[{ ...jwk, kty: 1 }], 'keys[0] has no string "kty"']
  ] as Array<[unknown[], string]>) {
    t.throws(() => parseJwks({ keys }, url), { name: 'FetchError', kind: 'invalid_document', message: `The JWKS at ${url} is not usable: ${message}` }, message)
  }
  t.throws(() => parseJwks([{ keys: [jwk] }], url), { message: /it is an array, not a JSON object/ })
})
