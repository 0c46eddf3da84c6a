/**
 * A header Node's parser refuses (a control character in a value or name) that nginx accepts and passes on to
 * the auth subrequest with the client's other headers: /forward-auth must still answer 401, never the 400 that
 * nginx turns into a 500 ("auth request unexpected status: 400"). Other routes keep their 400.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { findNginx, nginxExampleInFront } from './helpers/nginx.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const token = mint(key, idTokenClaims(ISS, AUD))
const BAD_LINES = ['X-Note: a\x01b', 'X-Note: \x1b[31mred', 'X-Note: a\x7fb']

findNginx()
const verifier = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]))
const { nginx, upstream, verifierPort: port } = await nginxExampleInFront(t, verifier)

const ask = async (p: number, target: string, line: string) =>
  await rawExchange(p, `GET ${target} HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\n${line}\r\nConnection: close\r\n\r\n`)

t.test('directly: 401 with a Bearer challenge under /forward-auth, 400 elsewhere', async (t) => {
  for (const line of BAD_LINES) {
    // An Envoy check's path is the client's own, of any length the header limit allows.
    for (const target of ['/forward-auth', '/forward-auth?group=admins', '/forward-auth/envoy/orders?x=1', `/forward-auth/envoy/${'a'.repeat(6000)}?x=1`]) {
      const res = await ask(port, target, line)
      t.equal(res.status, 401, `${target.slice(0, 40)} ${JSON.stringify(line)}`)
      t.equal(res.headers['www-authenticate'], 'Bearer error="invalid_request", error_description="request_invalid"')
      t.equal(JSON.parse(res.body).code, 'request_invalid')
    }
    const other = await ask(port, '/verify', line)
    t.equal(other.status, 400, `/verify ${JSON.stringify(line)}: still 400`)
  }
})

t.test('through the nginx example: the client gets 401, not a 500', async (t) => {
  for (const line of BAD_LINES) {
    const res = await ask(nginx.port, '/orders', line)
    t.equal(res.status, 401, JSON.stringify(line))
    if (res.status !== 401) t.comment(nginx.errorLog().split('\n').filter((l) => l.includes('auth request')).at(-1))
  }
  t.equal(upstream.received.length, 0, 'the app never sees them')
})
