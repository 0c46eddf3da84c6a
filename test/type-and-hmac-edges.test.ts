/**
 * Explicit typing for providers other than Cognito (a token_use that is not "id" is not an ID token, whatever the
 * issuer), and the HMAC rule that a client secret signs for one audience, even one listed twice.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, mintHmac } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const HS_ISS = 'https://confidential.example.com'
const AUD = 'client-1'
const SECRET = 's'.repeat(64)
const es = makeKey('ES256')
const v = new Verifier(configFor([
  { id: 'idp', issuer: ISS, audiences: [AUD], jwks: jwksOf(es) },
  { id: 'hs', issuer: HS_ISS, audiences: [AUD], algorithms: ['HS256'], clientSecret: SECRET, jwks: jwksOf(es) }
]))
t.teardown(() => v.close())

t.test('token_use other than "id" is refused for any issuer', async (t) => {
  t.equal((await v.verify(mint(es, idTokenClaims(ISS, AUD, { token_use: 'id' })))).subject, 'user-123')
  for (const tokenUse of ['refresh', 'ID', 42, null]) {
    await t.rejects(v.verify(mint(es, idTokenClaims(ISS, AUD, { token_use: tokenUse }))), { code: 'token_type_invalid', details: { claim: 'token_use' } }, JSON.stringify(tokenUse))
  }
})

t.test('an HS256 token for several audiences is refused, even the same one twice', async (t) => {
  t.equal((await v.verify(mintHmac(SECRET, 'HS256', idTokenClaims(HS_ISS, AUD)))).subject, 'user-123')
  t.equal((await v.verify(mint(es, idTokenClaims(ISS, [AUD, AUD], { azp: AUD })))).subject, 'user-123', 'an asymmetric one is fine')
  await t.rejects(v.verify(mintHmac(SECRET, 'HS256', idTokenClaims(HS_ISS, [AUD, AUD], { azp: AUD }))), { code: 'audience_mismatch', details: { claim: 'aud' } })
})
