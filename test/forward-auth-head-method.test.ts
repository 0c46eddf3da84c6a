/**
 * forwardAuth.rules with methods: a HEAD request is served by the app's GET handler almost everywhere
 * (Express, Fastify, Flask, Django, Rails, Spring, Go's ServeMux), so a rule for GET must apply to HEAD too,
 * whichever proxy describes the original request; and a POST with X-HTTP-Method-Override (or kin) is run as
 * the method it names by Rack (Rails), Symfony and Express's method-override.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { buildApp } from '../src/app.js'
import { METHOD_OVERRIDE_HEADERS, readOriginalRequest } from '../src/http/original-request.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
  forwardAuth: { rules: [{ methods: ['GET'], pathPrefix: '/reports', require: { groups: ['auditors'] } }] }
}))
t.teardown(() => app.close())
type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const headers = { authorization: `Bearer ${mint(key, idTokenClaims(ISS, AUD, { groups: ['staff'] }))}` }

t.test('a GET rule applies to HEAD: nginx, Traefik and Envoy', async (t) => {
  for (const [name, method, url, extra] of [
    ['nginx', 'GET', '/forward-auth', { 'x-original-method': 'HEAD', 'x-original-uri': '/reports/2024' }],
    ['Traefik', 'GET', '/forward-auth', { 'x-forwarded-method': 'head', 'x-forwarded-uri': '/reports/2024' }],
    ['Envoy', 'HEAD', '/forward-auth/envoy/reports/2024', {}]
  ] as const) {
    const res = await app.inject({ method, url, headers: { ...headers, ...extra } })
    t.equal(res.statusCode, 403, `${name}: HEAD /reports/2024 is the GET handler's`)
  }
  const post = await app.inject({ method: 'GET', url: '/forward-auth', headers: { ...headers, 'x-original-method': 'POST', 'x-original-uri': '/reports/2024' } })
  t.equal(post.statusCode, 200, 'another method is not read as GET')
})

t.test('the readings: HEAD is also GET, nothing else changes', async (t) => {
  t.same(readOriginalRequest({ 'x-original-method': 'HEAD' }).methods, ['HEAD', 'GET'])
  t.same(readOriginalRequest({ 'x-original-method': 'get' }).methods, ['GET'])
  t.same(readOriginalRequest({}).methods, [], 'no header: unknown')
})

t.test('a method override counts as the method: the app runs the POST as the method it names', async (t) => {
  const del = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
    forwardAuth: { rules: [{ methods: ['DELETE'], hosts: ['billing.example.com'], require: { roles: ['billing-admin'] } }] }
  }))
  t.teardown(() => del.close())
  for (const name of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
    const nginx = await del.inject({ method: 'GET', url: '/forward-auth', headers: { ...headers, 'x-original-method': 'POST', 'x-forwarded-host': 'billing.example.com', 'x-original-uri': '/invoices/7', [name]: 'DELETE' } })
    t.equal(nginx.statusCode, 403, `nginx: POST with ${name}: DELETE`)
    const envoy = await del.inject({ method: 'POST', url: '/forward-auth/envoy/invoices/7', headers: { ...headers, host: 'billing.example.com', [name]: 'delete' } })
    t.equal(envoy.statusCode, 403, `Envoy: POST with ${name}: delete`)
  }
  const plain = await del.inject({ method: 'POST', url: '/forward-auth/envoy/invoices/7', headers: { ...headers, host: 'billing.example.com' } })
  t.equal(plain.statusCode, 200, 'a POST without one is a POST')
})

t.test('the Traefik and Envoy examples pass the method overrides to the verifier', async (t) => {
  const read = (name: string): Doc => parse(readFileSync(new URL(`../examples/${name}`, import.meta.url), 'utf8'))
  const traefik = read('traefik/dynamic.yml')
  for (const [name, middleware] of Object.entries(traefik.http.middlewares as Record<string, Doc>)) {
    if (middleware.forwardAuth === undefined) continue
    const sent = (middleware.forwardAuth.authRequestHeaders as string[]).map((h) => h.toLowerCase())
    for (const h of METHOD_OVERRIDE_HEADERS) t.ok(sent.includes(h), `Traefik ${name}: ${h}`)
  }
  const envoy = read('envoy/envoy.yaml')
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
  const extAuthz = hcm.http_filters.find((f: Doc) => f.name === 'envoy.filters.http.ext_authz').typed_config
  const allowed = (extAuthz.allowed_headers.patterns as Array<{ exact?: string }>).map((p) => p.exact)
  for (const h of METHOD_OVERRIDE_HEADERS) t.ok(allowed.includes(h), `Envoy: ${h}`)
})
