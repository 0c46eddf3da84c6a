/**
 * A real nginx (auth_request) in front of an echo upstream, configured with examples/nginx as shipped:
 * allowed, denied, smuggled identity headers overwritten or removed, the token stripped, 403 for a missing
 * group, the verifier down. Fails (does not skip) when nginx is not installed.
 */
import t from 'tap'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { startEchoServer, type EchoedRequest } from './helpers/echo-server.js'
import { findNginx, LISTEN, startNginx } from './helpers/nginx.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

const example = (name: string): string => readFileSync(new URL(`../examples/nginx/${name}`, import.meta.url), 'utf8')

/** The shipped example with this test's addresses; fails loudly if the example no longer has them. */
function exampleFor (verifierPort: number, appPort: number): string {
  let text = example('oidc-verifier.conf')
  for (const [from, to] of [['server 127.0.0.1:8080;', `server 127.0.0.1:${verifierPort};`], ['server 127.0.0.1:3000;', `server 127.0.0.1:${appPort};`], ['listen 8000;', `listen ${LISTEN};`]]) {
    if (!text.includes(from!)) throw new Error(`examples/nginx/oidc-verifier.conf no longer contains "${from}"`)
    text = text.replace(from!, to!)
  }
  return text
}

interface Answer { status: number, headers: IncomingHttpHeaders, body: string }

async function send (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { ...headers, connection: 'close' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
    })
    req.setTimeout(10_000, () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
    req.end(body)
  })
}

// First, so that a missing nginx fails at once with its message, before anything else is started.
findNginx()

const logLines: string[] = []
const logger = pino(loggerOptions('info'), new Writable({ write (chunk, _e, cb) { logLines.push(String(chunk)); cb() } }))
const verifier: FastifyInstance = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { loggerInstance: logger })
await verifier.listen({ host: '127.0.0.1', port: 0 })
const verifierPort = (verifier.server.address() as { port: number }).port
const upstream = await startEchoServer()
const nginx = await startNginx(exampleFor(verifierPort, upstream.port), { 'oidc-verifier-auth-request.conf': example('oidc-verifier-auth-request.conf') })
t.teardown(async () => {
  await nginx.close()
  await upstream.close()
  await verifier.close()
})

const token = (extra: Record<string, unknown> = {}): string => mint(key, idTokenClaims(ISS, AUD, { groups: ['staff'], ...extra }))
const lastUpstream = (): EchoedRequest => upstream.received.at(-1)!

t.test('no token: 401 with WWW-Authenticate from the verifier, the app never sees the request', async (t) => {
  const before = upstream.received.length
  const res = await send(nginx.port, 'GET', '/orders')
  t.equal(res.status, 401)
  if (res.status !== 401) t.comment(nginx.errorLog())
  t.equal(res.headers['www-authenticate'], 'Bearer')
  t.equal(upstream.received.length, before)
})

t.test('a bad token: 401 invalid_token', async (t) => {
  const res = await send(nginx.port, 'GET', '/orders', { authorization: `Bearer ${token({ exp: 1000, iat: 900 })}` })
  t.equal(res.status, 401)
  t.match(String(res.headers['www-authenticate']), /error="invalid_token", error_description="token_expired"/)
})

t.test('a good token: the app gets the identity headers, the client\'s copies are overwritten or removed, no token', async (t) => {
  const res = await send(nginx.port, 'GET', '/orders/7?x=1', {
    authorization: `Bearer ${token({ email: undefined, groups: ['staff', 'a,b', 'Zoë'] })}`,
    'x-auth-subject': 'root',
    'x-auth-groups': 'admins',
    'x-auth-email': 'ceo@example.com',
    'x-auth-identity': 'eyJzdWJqZWN0Ijoicm9vdCJ9',
    'x-auth-issuer-id': 'evil'
  })
  t.equal(res.status, 200)
  if (res.status !== 200) t.comment(nginx.errorLog())
  const seen = lastUpstream()
  t.equal(seen.url, '/orders/7?x=1')
  t.equal(seen.headers['x-auth-subject'], 'user-123')
  t.equal(seen.headers['x-auth-issuer'], ISS)
  t.equal(seen.headers['x-auth-issuer-id'], 'main')
  t.equal(seen.headers['x-auth-name'], 'Ada Lovelace')
  t.equal(seen.headers['x-auth-email-verified'], 'false', 'no email, so not a verified one')
  t.same(String(seen.headers['x-auth-groups']).split(',').map(decodeURIComponent), ['staff', 'a,b', 'Zoë'])
  t.notOk('x-auth-email' in seen.headers, 'an empty identity header is dropped by nginx: the client\'s copy is gone')
  t.notOk('x-auth-identity' in seen.headers, 'the client\'s identity header is gone')
  t.notOk('x-auth-roles' in seen.headers)
  t.notOk('authorization' in seen.headers, 'the token is stripped before the app')
})

t.test('the verifier sees the original request, never its body', async (t) => {
  const res = await send(nginx.port, 'POST', '/orders?page=2', { authorization: `Bearer ${token()}`, 'content-type': 'application/json' }, '{"order":1}')
  t.equal(res.status, 200)
  if (res.status !== 200) t.comment(nginx.errorLog())
  t.equal(lastUpstream().body, '{"order":1}', 'the app gets the body')
  const line = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed').at(-1)
  // nginx's subrequest is a GET whatever the original method; the original is in X-Original-Method.
  t.match(line, { method: 'GET', route: '/forward-auth', status: 200, issuer: 'main', original: { method: 'POST', path: '/orders' } })
})

t.test('a route that requires a group: 403 without it, 200 with it', async (t) => {
  const before = upstream.received.length
  const denied = await send(nginx.port, 'GET', '/admin/users', { authorization: `Bearer ${token()}` })
  t.equal(denied.status, 403)
  t.equal(upstream.received.length, before, 'the app never sees it')
  const allowed = await send(nginx.port, 'GET', '/admin/users', { authorization: `Bearer ${token({ groups: ['admins'] })}` })
  t.equal(allowed.status, 200)
  t.equal(lastUpstream().headers['x-auth-groups'], 'admins')
  const anonymous = await send(nginx.port, 'GET', '/admin/users')
  t.equal(anonymous.status, 401, 'no token is still 401 there')
})

t.test('hostile requests through nginx: still only 401/403, never the verifier\'s 4xx as a 500', async (t) => {
  const good = token()
  for (const [method, path, headers, body] of [
    ['POST', '/orders', { authorization: `Bearer ${good}`, 'content-type': ';;;' }, 'x'.repeat(100_000)],
    ['PUT', '/orders', { authorization: `Bearer ${good}`, 'content-type': 'application/json' }, '{broken'],
    ['GET', '/%E4%B8%AD/a%2Fb/..%2F%25zz?q=%zz', { authorization: `Bearer ${good}` }, undefined],
    ['GET', '/orders', { authorization: 'Bearer not a token' }, undefined],
    ['GET', '/orders', { authorization: `Bearer ${'a'.repeat(7000)}` }, undefined],
    ['GET', '/orders', { cookie: 'x=1', 'x-original-uri': '/admin' }, undefined]
  ] as Array<[string, string, Record<string, string>, string | undefined]>) {
    const res = await send(nginx.port, method, path, headers, body)
    t.ok([200, 401, 403].includes(res.status), `${method} ${path}: ${res.status}`)
  }
})

t.test('the verifier down: 500 from nginx, the app never sees the request (fail closed)', async (t) => {
  const before = upstream.received.length
  await verifier.close()
  const res = await send(nginx.port, 'GET', '/orders', { authorization: `Bearer ${token()}` })
  t.equal(res.status, 500)
  t.equal(upstream.received.length, before)
})
