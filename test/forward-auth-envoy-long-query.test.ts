/**
 * Envoy's check carries the app's query after its path. The query is never read by rules, so a long one (a
 * search, a report filter, a SAML or OAuth callback) must not count against the path readings' length budget:
 * a path made unknown applies every rule, and a signed-in user is refused on a page the app serves.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { MAX_READING_LENGTH, readOriginalRequest } from '../src/http/original-request.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

t.test('the query of Envoy\'s path is not counted, as the headers\' queries are not', async (t) => {
  const query = `?q=${'a'.repeat(MAX_READING_LENGTH)}`
  t.same(readOriginalRequest({}, { method: 'GET', host: undefined, uri: `/home${query}` }).paths, ['/home'])
  t.same(readOriginalRequest({ 'x-original-uri': `/home${query}` }).paths, ['/home'], 'as for a header')
  t.same(readOriginalRequest({}, { method: 'GET', host: undefined, uri: `/${'a'.repeat(MAX_READING_LENGTH)}?q` }).paths, [], 'a long path still counts')
})

t.test('a signed-in user on a page with a long query: allowed; the admin rule does not apply', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
    forwardAuth: { rules: [{ pathPrefix: '/admin', require: { groups: ['admins'] } }] }
  }))
  t.teardown(() => app.close())
  const headers = { authorization: `Bearer ${mint(key, idTokenClaims(ISS, AUD, { groups: ['staff'] }))}` }
  const res = await app.inject({ method: 'GET', url: `/forward-auth/envoy/reports?filter=${'x'.repeat(MAX_READING_LENGTH)}`, headers })
  t.equal(res.statusCode, 200)
  const admin = await app.inject({ method: 'GET', url: `/forward-auth/envoy/admin?filter=${'x'.repeat(MAX_READING_LENGTH)}`, headers })
  t.equal(admin.statusCode, 403, 'the rule still reads the path')
})
