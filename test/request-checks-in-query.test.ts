/**
 * The per-request checks of /verify, /verify/batch and /introspect are body fields. Forward-auth takes its
 * `audience` in the query, and a caller used to it may write `/verify?audience=…`: a check in the query must
 * be refused (400 request_invalid), never ignored, which would answer 200 for a token that fails the check the
 * caller asked for. And an `id_token_hint` (RP-initiated logout's own parameter name) in the query is a token in
 * the query, as `id_token` is: token_in_query.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['client-a', 'client-b'], jwks: jwksOf(key) }]))
t.teardown(() => app.close())

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
// A token of client-b, with a nonce and an old login.
const forB = mint(key, idTokenClaims(ISS, 'client-b', { nonce: 'n-1', auth_time: Math.floor(Date.now() / 1000) - 3600 }))

t.test('a check in the query of /verify is refused, not ignored', async (t) => {
  for (const query of ['audience=client-a', 'nonce=n-2', 'maxAge=60', 'max_age=60', 'mode=id_token', 'accessToken=at', 'code=c']) {
    const res = await app.inject({ method: 'POST', url: `/verify?${query}`, payload: { token: forB } })
    t.same([res.statusCode, res.json().code], [400, 'request_invalid'], query)
  }
  const res = await app.inject({ method: 'POST', url: '/verify?audience=client-a', headers: { authorization: `Bearer ${forB}` } })
  t.same([res.statusCode, res.json().code], [400, 'request_invalid'], 'with the token in Authorization too')
  const body = await app.inject({ method: 'POST', url: '/verify', payload: { token: forB, audience: 'client-a' } })
  t.equal(body.json().code, 'audience_mismatch', 'the same check in the body')
})

t.test('a check in the query of /verify/batch and /introspect is refused too', async (t) => {
  const batch = await app.inject({ method: 'POST', url: '/verify/batch?audience=client-a', payload: { tokens: [forB] } })
  t.same([batch.statusCode, batch.json().code], [400, 'request_invalid'], '/verify/batch')
  const introspect = await app.inject({ method: 'POST', url: '/introspect?audience=client-a', payload: `token=${forB}`, headers: FORM })
  t.same([introspect.statusCode, introspect.json().code], [400, 'request_invalid'], '/introspect')
})

t.test('an id_token_hint in the query is a token in the query', async (t) => {
  for (const url of [`/verify?id_token_hint=${forB}`, `/verify/batch?id_token_hint=${forB}`]) {
    const payload = url.startsWith('/verify/batch') ? { tokens: [forB], mode: 'id_token_hint' } : { token: forB, mode: 'id_token_hint' }
    const res = await app.inject({ method: 'POST', url, payload })
    t.same([res.statusCode, res.json().code], [400, 'token_in_query'], url.slice(0, 30))
  }
  const introspect = await app.inject({ method: 'POST', url: `/introspect?id_token_hint=${forB}`, payload: `token=${forB}&mode=id_token_hint`, headers: FORM })
  t.same([introspect.statusCode, introspect.json().code], [400, 'token_in_query'], '/introspect')
})

t.test('other query parameters are still ignored', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/verify?trace=1', payload: { token: forB } })
  t.equal(res.statusCode, 200)
})
