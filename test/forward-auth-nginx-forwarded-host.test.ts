/**
 * A host rule (forwardAuth.rules[].hosts) is decided on the host nginx tells the verifier ($host). The app must
 * get that very host: an app behind a proxy commonly takes its host from X-Forwarded-Host or Forwarded (Rack
 * and so Rails, Express with "trust proxy", Spring's ForwardedHeaderFilter), so a client's own copy reaching the
 * app would let it run a billing.example.com request that was checked as public.example.com.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { findNginx, nginxExampleInFront, statusOf } from './helpers/nginx.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

findNginx()
const verifier = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
  forwardAuth: { rules: [{ methods: ['DELETE'], hosts: ['billing.example.com'], require: { roles: ['billing-admin'] } }] }
}))
const { nginx, upstream } = await nginxExampleInFront(t, verifier)
const authorization = `Bearer ${mint(key, idTokenClaims(ISS, AUD, { roles: ['staff'] }))}`

t.test('the host rule applies to the host nginx names', async (t) => {
  t.equal(await statusOf(nginx.port, 'DELETE', '/invoices/7', { host: 'billing.example.com', authorization }), 403)
})

t.test('a Host that an app\'s URL parser reads as the guarded host, which nginx passes on as it is, is checked as that host', async (t) => {
  for (const host of ['x@billing.example.com', 'billing%2Eexample.com']) {
    t.equal(await statusOf(nginx.port, 'DELETE', '/invoices/7', { host, authorization }), 403, host)
  }
})

t.test('a client\'s X-Forwarded-Host or Forwarded never reaches the app beside a host it was not checked for', async (t) => {
  const before = upstream.received.length
  const status = await statusOf(nginx.port, 'DELETE', '/invoices/7', {
    host: 'public.example.com',
    'x-forwarded-host': 'billing.example.com',
    forwarded: 'host=billing.example.com;proto=https',
    authorization
  })
  if (status === 200) {
    const seen = upstream.received.at(-1)!
    t.equal(upstream.received.length, before + 1)
    t.equal(seen.headers['x-forwarded-host'], 'public.example.com', 'the app gets the host the verifier was told')
    t.notOk('forwarded' in seen.headers, 'the client\'s Forwarded is dropped')
  } else {
    t.equal(status, 403, 'or the request is denied')
  }
})

t.test('Envoy and Traefik: the client\'s copies are removed before the app', async (t) => {
  const envoy = parse(readFileSync(new URL('../examples/envoy/envoy.yaml', import.meta.url), 'utf8'))
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
  const removed: string[] = hcm.route_config.virtual_hosts[0].request_headers_to_remove ?? []
  t.same([...removed].sort(), ['forwarded', 'x-forwarded-host'], 'Envoy passes both on unless told (it only checked :authority)')
  const traefik = parse(readFileSync(new URL('../examples/traefik/dynamic.yml', import.meta.url), 'utf8'))
  // Traefik replaces an untrusted client's X-Forwarded-* itself, not Forwarded.
  t.equal(traefik.http.middlewares['strip-token'].headers.customRequestHeaders.Forwarded, '')
})
