/**
 * Envoy's ext_authz appends the app's own path to /forward-auth/envoy. That path is the app's: an escape the
 * router cannot decode (a stray "%", Latin-1 "%E9", a cut UTF-8 sequence) must not turn a signed-in user's
 * request into a 401, and rules still read it.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
  forwardAuth: { rules: [{ pathPrefix: '/admin', require: { groups: ['admins'] } }] }
}))
t.teardown(() => app.close())
const headers = { authorization: `Bearer ${mint(key, idTokenClaims(ISS, AUD, { groups: ['staff'] }))}` }
const ask = async (path: string, h: Record<string, string> = headers): Promise<{ status: number, code?: string }> => {
  const res = await app.inject({ method: 'GET', url: `/forward-auth/envoy${path}`, headers: h })
  return { status: res.statusCode, code: res.body === '' ? undefined : res.json().code }
}

t.test('a path the app serves, with escapes a router cannot decode: allowed for a good token', async (t) => {
  for (const path of ['/search/50%off', '/files/caf%E9.txt', '/a%', '/a%E4%B8', '/a%C0%AF?x=%zz']) {
    t.same(await ask(path), { status: 200, code: undefined }, path)
  }
})

t.test('and still denied as it should be', async (t) => {
  t.same(await ask('/admin/%E9'), { status: 403, code: 'requirement_not_met' }, 'the rule reads the path')
  t.same(await ask('/%61dmin/50%off'), { status: 403, code: 'requirement_not_met' }, 'decoded where it can be')
  t.same(await ask('/x%zz', {}), { status: 401, code: 'token_missing' }, 'no token: 401')
  t.same(await ask('/x%zz', { ...headers, 'x-original-uri': '/admin' }), { status: 403, code: 'requirement_not_met' }, 'other readings still count')
})

t.test('the rest of /forward-auth is routed as before', async (t) => {
  const plain = await app.inject({ method: 'GET', url: '/forward-auth?group=admins', headers })
  t.equal(plain.statusCode, 403, 'the query of /forward-auth holds requirements')
  const envoyQuery = await app.inject({ method: 'GET', url: '/forward-auth/envoy/x?group=admins', headers })
  t.equal(envoyQuery.statusCode, 200, 'the query after /forward-auth/envoy is the app\'s')
  const bad = await app.inject({ method: 'GET', url: '/forward-auth/x%zz', headers })
  t.equal(bad.statusCode, 401, 'a malformed auth URL is still denied')
  const other = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(other.statusCode, 200, 'other routes untouched')
})
