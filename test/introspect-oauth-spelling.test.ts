/**
 * /introspect refuses /verify's checks it does not carry out. A form is OAuth's world, where max_age is the
 * parameter's name (OpenID Connect Core §3.1.2.1), as the query check already knows: a resource server that
 * writes max_age=60 must not get "active": true for a login two hours old.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]))
t.teardown(() => app.close())

t.test('max_age and access_token in the form body are refused, as maxAge and accessToken are', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD, { auth_time: Math.floor(Date.now() / 1000) - 7200 }))
  for (const [name, value] of [['max_age', '60'], ['access_token', 'at']] as const) {
    const res = await app.inject({ method: 'POST', url: '/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ token, [name]: value }).toString() })
    t.same([res.statusCode, res.json().code, res.json().active], [400, 'request_invalid', undefined], name)
  }
})
