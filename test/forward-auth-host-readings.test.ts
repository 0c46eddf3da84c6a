/**
 * A host rule (forwardAuth.rules[].hosts) must apply to a host the app behind the proxy reads as the guarded one.
 * An app that builds its URL as new URL(req.url, "http://" + req.headers.host) reads "x@billing.example.com" or
 * "billing%2Eexample.com" as billing.example.com, and nginx passes such a Host on unchanged (as $host too).
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { readOriginalRequest } from '../src/http/original-request.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
  forwardAuth: { rules: [{ hosts: ['billing.example.com'], require: { roles: ['billing-admin'] } }] }
}))
t.teardown(() => app.close())
const authorization = `Bearer ${mint(key, idTokenClaims(ISS, AUD, { roles: ['staff'] }))}`

const WHATWG_BILLING = ['x@billing.example.com', 'a:b@billing.example.com:8443', 'billing%2Eexample.com', '%62illing.example.com', 'billing.example.com\\x', 'billing.example.com/x']

t.test('the readings: a host as sent, and as a WHATWG URL parser reads it', async (t) => {
  for (const host of WHATWG_BILLING) {
    t.ok(new URL('/', `http://${host}`).hostname === 'billing.example.com', `an app reads ${host} as billing.example.com`)
    t.ok(readOriginalRequest({ 'x-forwarded-host': host }).hosts.includes('billing.example.com'), `and so does the verifier: ${host}`)
  }
  t.same(readOriginalRequest({ 'x-forwarded-host': 'BILLING.example.com.:8443' }).hosts, ['billing.example.com'], 'a plain host: one form')
  t.same(readOriginalRequest({ 'x-forwarded-host': 'a b' }).hosts, ['a b'], 'no host to a WHATWG parser: as sent only')
})

t.test('the host rule applies to them: nginx, Traefik and Envoy', async (t) => {
  for (const host of WHATWG_BILLING) {
    const traefik = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/', 'x-forwarded-host': host } })
    t.equal(traefik.statusCode, 403, `X-Forwarded-Host: ${host}`)
    const url = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization, 'x-original-method': 'GET', 'x-original-url': `https://${host.replace('/x', '')}/` } })
    t.equal(url.statusCode, 403, `X-Original-URL with ${host}`)
    const envoy = await app.inject({ method: 'GET', url: '/forward-auth/envoy/', headers: { authorization, host } })
    t.equal(envoy.statusCode, 403, `Envoy's Host: ${host}`)
  }
  const other = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/', 'x-forwarded-host': 'x@public.example.com' } })
  t.equal(other.statusCode, 200, 'another host, oddly written, is still not the guarded one')
})
