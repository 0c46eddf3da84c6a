/**
 * auth_time is when the End-User authenticated (OpenID Connect Core §2): never later than now. A future
 * auth_time would satisfy any max_age (now - auth_time is negative), so it is refused as claim_invalid whether or
 * not maxAge is asked, within the issuer's clock tolerance, on the first verification and on cache hits alike.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-1'
const TOLERANCE = 30
const key = makeKey('RS256')
const NOW = 1_900_000_000
let clock = NOW * 1000

const v = new Verifier(configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], clockToleranceSeconds: TOLERANCE, jwks: jwksOf(key) }]), { now: () => clock })
t.teardown(() => v.close())

const token = (authTime: unknown) => mint(key, idTokenClaims(ISS, AUD, { iat: NOW, exp: NOW + 600, auth_time: authTime }))

t.test('an auth_time in the future is refused, with or without maxAge', async (t) => {
  const future = token(NOW + 3600)
  for (const request of [{}, { maxAge: 60 }, { maxAge: 0 }, { mode: 'id_token_hint' as const }]) {
    await t.rejects(v.verify(future, request), { code: 'claim_invalid', details: { issuer: 'idp', claim: 'auth_time' } }, JSON.stringify(request))
  }
  await t.rejects(v.verify(token(NOW + TOLERANCE + 1)), { code: 'claim_invalid', details: { claim: 'auth_time' } }, 'just past the tolerance')
})

t.test('an auth_time up to now plus the clock tolerance passes', async (t) => {
  t.equal((await v.verify(token(NOW - 10), { maxAge: 60 })).subject, 'user-123', 'ten seconds ago')
  t.equal((await v.verify(token(NOW + TOLERANCE))).subject, 'user-123', 'the provider\'s clock slightly ahead')
  t.equal((await v.verify(mint(key, idTokenClaims(ISS, AUD, { iat: NOW, exp: NOW + 600, auth_time: undefined })))).subject, 'user-123', 'no auth_time, no maxAge')
})

t.test('maxAge still measures a past auth_time, also on cache hits', async (t) => {
  const good = token(NOW - 100)
  for (let i = 0; i < 3; i++) t.equal((await v.verify(good, { maxAge: 200 })).subject, 'user-123', `verification ${i + 1}`)
  await t.rejects(v.verify(good, { maxAge: 60 }), { code: 'authentication_too_old' })
  clock = (NOW + 200) * 1000
  t.teardown(() => { clock = NOW * 1000 })
  await t.rejects(v.verify(good, { maxAge: 200 }), { code: 'authentication_too_old' }, 'time passes for a cached token too')
})
