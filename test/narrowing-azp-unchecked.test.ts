/**
 * Narrowing to one client (`audience` on /verify, `?audience=` on forward-auth) ties the token to that client,
 * also for an issuer with checkAuthorizedParty: false. That setting lets a present azp be a party that is none
 * of ours (a GCP service account's id); an azp that IS another of the issuer's audiences still names the client
 * the token was issued to, whose roles it carries (Keycloak: resource_access[$azp].roles). README: "a token whose
 * azp is another of the issuer's audiences is that other client's, refused with authorized_party_mismatch,
 * unless azp is one of authorizedParties".
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://sso.example.com/realms/main'
const key = makeKey('RS256')
const app = await buildApp(configFor([
  { id: 'kc', preset: 'keycloak', issuer: ISS, audiences: ['app-a', 'app-b'], jwks: jwksOf(key), checkAuthorizedParty: false }
]))
t.teardown(() => app.close())

// Issued to app-b (azp), with app-a in aud too (Keycloak's Audience mapper): app-b's own admin role.
const ofB = mint(key, idTokenClaims(ISS, ['app-a', 'app-b'], { typ: 'ID', azp: 'app-b', resource_access: { 'app-b': { roles: ['admin'] } } }))

t.test('/verify narrowed to app-a refuses a token issued to app-b', async (t) => {
  const own = await app.inject({ method: 'POST', url: '/verify', payload: { token: ofB, audience: 'app-b' } })
  t.same([own.statusCode, own.json().roles], [200, ['admin']], 'narrowed to its own client')
  const other = await app.inject({ method: 'POST', url: '/verify', payload: { token: ofB, audience: 'app-a' } })
  t.same([other.statusCode, other.json().code, other.json().claim], [401, 'authorized_party_mismatch', 'azp'])
  const foreign = mint(key, idTokenClaims(ISS, 'app-a', { typ: 'ID', azp: 'service-account-42' }))
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: foreign, audience: 'app-a' } })).statusCode, 200,
    'an azp that is none of ours still passes: that is what checkAuthorizedParty: false is for')
})

t.test('forward-auth ?audience=app-a refuses it too', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/forward-auth?audience=app-a&role=admin', headers: { authorization: `Bearer ${ofB}` } })
  t.equal(res.statusCode, 403)
  if (res.statusCode === 403) t.match(res.json(), { code: 'requirement_not_met', claim: 'azp' })
})
