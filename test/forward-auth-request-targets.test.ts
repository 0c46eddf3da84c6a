/**
 * /forward-auth and request targets a proxy never sends, on a real connection: CONNECT is a 401 with the challenge
 * (a proxy makes anything but 200/401/403 a 500), and an absolute-form target (`GET http://host/forward-auth/…`,
 * RFC 9112 §3.2.2) is refused, 401 request_invalid: the handler would read the path rules from the whole URL, and its
 * host could differ from the Host header. Other routes take absolute-form targets as HTTP says a server must.
 */
import t from 'tap'
import { configFor } from './helpers/config.js'
import { listening, portOf } from './helpers/listening-app.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const staff = mint(key, idTokenClaims(ISS, AUD, { groups: ['staff'] }))
const INVALID_REQUEST = 'Bearer error="invalid_request", error_description="request_invalid"'

const port = portOf(await listening(t, configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
  forwardAuth: { rules: [{ pathPrefix: '/admin', require: { groups: ['admins'] } }] }
})))
const ask = async (line: string, extra = ''): Promise<Awaited<ReturnType<typeof rawExchange>>> =>
  await rawExchange(port, `${line}\r\nHost: app\r\nAuthorization: Bearer ${staff}\r\n${extra}Connection: close\r\n\r\n`)

t.test('the path rule applies in origin form', async (t) => {
  t.equal((await ask('GET /forward-auth/envoy/admin HTTP/1.1')).status, 403, 'staff is not admins')
  t.equal((await ask('GET /forward-auth/envoy/orders HTTP/1.1')).status, 200)
})

t.test('an absolute-form target under /forward-auth: 401 request_invalid, whatever it names', async (t) => {
  for (const target of ['http://app/forward-auth/envoy/admin', 'http://app/forward-auth/envoy/orders', 'https://other/forward-auth', 'http://app/forward-auth/%zz', 'HTTP://app/forward-auth?group=staff']) {
    const res = await ask(`GET ${target} HTTP/1.1`)
    t.equal(res.status, 401, target)
    t.equal(JSON.parse(res.body).code, 'request_invalid', target)
    t.equal(res.headers['www-authenticate'], INVALID_REQUEST, target)
  }
})

t.test('CONNECT under /forward-auth: 401 with the challenge; elsewhere 400', async (t) => {
  const res = await rawExchange(port, 'CONNECT /forward-auth/envoy/x HTTP/1.1\r\nHost: app\r\n\r\n')
  t.equal(res.status, 401)
  t.equal(res.headers['www-authenticate'], INVALID_REQUEST)
  t.equal(JSON.parse(res.body).code, 'request_invalid')
  t.equal((await rawExchange(port, 'CONNECT idp.example.com:443 HTTP/1.1\r\nHost: idp.example.com:443\r\n\r\n')).status, 400)
})

t.test('other routes take an absolute-form target', async (t) => {
  const res = await ask('POST http://app/verify HTTP/1.1', 'Content-Length: 0\r\n')
  t.equal(res.status, 200)
  t.equal(JSON.parse(res.body).subject, 'user-123')
})
