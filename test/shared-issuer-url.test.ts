/**
 * Several configured issuers may share an issuer URL when their audiences are disjoint (Google sign-in and
 * GCP service identity tokens both come from https://accounts.google.com): a token goes to the issuer its aud
 * names, and is checked by that issuer's rules only. Overlapping audiences are a configuration error.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { configFor, configProblems } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://accounts.google.com'
const key = makeKey('RS256')
const jwks = jwksOf(key)

function problemsOf (issuers: unknown[]): string[] {
  return configProblems({ issuers })
}

t.test('configuration: disjoint audiences may share an issuer URL, overlapping ones may not', async (t) => {
  t.same(problemsOf([
    { id: 'web', preset: 'google', audiences: ['web-client.apps.googleusercontent.com'], jwks },
    { id: 'services', preset: 'gcp-identity', audiences: ['https://api.example.com'], requiredClaims: { email: 'caller@my-project.iam.gserviceaccount.com' }, jwks }
  ]), [], 'the google and gcp-identity presets together')
  const problems = problemsOf([
    { id: 'a', issuer: ISS, audiences: ['x', 'y'], jwks },
    { id: 'b', issuer: ISS, audiences: ['z'], jwks },
    { id: 'c', issuer: ISS, audiences: ['y'], jwks }
  ])
  t.equal(problems.length, 1)
  t.match(problems[0], /issuers\[2\]\.issuer: the issuer "https:\/\/accounts\.google\.com" is also issuers\[0\]\.issuer, with the same audience "y"; expected disjoint audiences/)
})

t.test('a token goes to the issuer its audience names, and meets that issuer\'s rules', async (t) => {
  const v = new Verifier(configFor([
    { id: 'web', issuer: ISS, audiences: ['web-client'], jwks, requiredClaims: { hd: 'example.com' } },
    { id: 'services', issuer: ISS, audiences: ['https://api.example.com'], jwks, checkAuthorizedParty: false }
  ]))
  t.teardown(() => v.close())
  const user = await v.verify(mint(key, idTokenClaims(ISS, 'web-client', { hd: 'example.com' })))
  t.equal(user.issuer.id, 'web')
  const service = await v.verify(mint(key, idTokenClaims(ISS, 'https://api.example.com', { azp: '1234567890' })))
  t.equal(service.issuer.id, 'services', 'the other issuer, with its own rules (azp need not be ours)')
  await t.rejects(v.verify(mint(key, idTokenClaims(ISS, 'web-client', { azp: '1234567890', hd: 'example.com' }))), { code: 'authorized_party_mismatch', details: { issuer: 'web' } }, 'the web issuer\'s azp rule, not the services issuer\'s')
  await t.rejects(v.verify(mint(key, idTokenClaims(ISS, 'web-client'))), { code: 'claim_value_mismatch', details: { issuer: 'web', claim: 'hd' } })
  await t.rejects(v.verify(mint(key, idTokenClaims(ISS, 'someone-else'))), { code: 'audience_mismatch', details: { issuer: 'web' } }, 'no issuer names the audience')
  await t.rejects(v.verify(mint(key, idTokenClaims(ISS, ['web-client', 'https://api.example.com'], { azp: 'web-client', hd: 'example.com' }))), { code: 'audience_mismatch' }, 'audiences of both: neither trusts the other\'s')
  t.same(v.issuerIds, ['web', 'services'])
})

t.test('presets sharing an alias too: google and gcp-identity both accept iss accounts.google.com', async (t) => {
  const v = new Verifier(configFor([
    { id: 'web', preset: 'google', audiences: ['web-client'], jwks },
    { id: 'services', preset: 'gcp-identity', audiences: ['https://api.example.com'], requiredClaims: { azp: '42' }, jwks }
  ]))
  t.teardown(() => v.close())
  t.equal((await v.verify(mint(key, idTokenClaims('accounts.google.com', 'https://api.example.com', { azp: '42' })))).issuer.id, 'services')
  t.equal((await v.verify(mint(key, idTokenClaims('accounts.google.com', 'web-client')))).issuer.id, 'web')
  t.equal((await v.verify(mint(key, idTokenClaims(ISS, 'web-client')))).issuer.id, 'web')
})

t.test('configuration: sharing needs the same keys, no client secret, and no template', async (t) => {
  const other = jwksOf(makeKey('RS256'))
  t.match(problemsOf([
    { id: 'a', issuer: ISS, audiences: ['x'], jwks },
    { id: 'b', issuer: ISS, audiences: ['y'], jwks: other }
  ]), [/issuers\[1\]\.issuer: the issuer "https:\/\/accounts\.google\.com" is also issuers\[0\]\.issuer, with keys from another place/], 'an issuer with keys of its own could mint a sibling\'s identities')
  t.match(problemsOf([
    { id: 'a', issuer: ISS, audiences: ['x'], jwks },
    { id: 'b', issuer: ISS, audiences: ['y'], jwksUri: 'https://www.googleapis.com/oauth2/v3/certs' }
  ]), [/with keys from another place/])
  t.match(problemsOf([
    { id: 'a', issuer: 'https://a.example', audiences: ['x'], issuerAliases: ['shared.example'] },
    { id: 'b', issuer: 'https://b.example', audiences: ['y'], issuerAliases: ['shared.example'] }
  ]), [/issuerAliases\[0\]: the issuer "shared\.example" is also issuers\[0\]\.issuerAliases\[0\], with keys from another place/], 'discovery of two different issuer URLs')
  t.match(problemsOf([
    { id: 'a', issuer: ISS, audiences: ['x'], jwks },
    { id: 'b', issuer: ISS, audiences: ['y'], jwks, algorithms: ['HS256'], clientSecret: 's'.repeat(32) }
  ]), [/and one of them has a client secret/])
  const template = 'https://login.microsoftonline.com/{tenantid}/v2.0'
  t.match(problemsOf([
    { id: 'a', preset: 'entra', issuer: template, audiences: ['x'], jwks },
    { id: 'b', preset: 'entra', issuer: template, audiences: ['y'], jwks }
  ]), [/expected a \{tenantid\} template in one issuer only/])
})

t.test('a logout through one issuer revokes the session for every issuer that shares its iss', async (t) => {
  const { buildApp } = await import('../src/app.js')
  const { BACKCHANNEL_LOGOUT_EVENT } = await import('../src/core/logout-token-rules.js')
  const app = await buildApp(configFor([
    { id: 'web', issuer: ISS, audiences: ['web-client'], jwks },
    { id: 'services', issuer: ISS, audiences: ['https://api.example.com'], jwks, checkAuthorizedParty: false }
  ], { revocation: { enabled: true } }))
  t.teardown(() => app.close())
  const now = Math.floor(Date.now() / 1000)
  const webToken = mint(key, idTokenClaims(ISS, 'web-client', { sid: 'session-9', iat: now - 5 }))
  const serviceToken = mint(key, idTokenClaims(ISS, 'https://api.example.com', { sid: 'session-9', azp: '42', iat: now - 5 }))
  const verify = async (token: string) => (await app.inject({ method: 'POST', url: '/verify', payload: { token } })).json()
  t.match(await verify(serviceToken), { issuer: { id: 'services' } })
  const logoutToken = mint(key, { iss: ISS, aud: 'web-client', iat: now, jti: 'l-1', sid: 'session-9', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { header: { typ: 'logout+jwt' } })
  const res = await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ logout_token: logoutToken }).toString() })
  t.same(res.json(), { issuer: 'web', revoked: 'sid' })
  t.match(await verify(webToken), { code: 'token_revoked', issuer: 'web' })
  t.match(await verify(serviceToken), { code: 'token_revoked', issuer: 'services' }, 'the sibling issuer too: the sid is the provider\'s')
})
