/**
 * The header limit of the main listener: a token of up to server.maxTokenBytes fits in a header beside
 * ordinary headers (Node's own limit is 16 KiB in all), over HTTP and HTTPS, and follows a reload of
 * maxTokenBytes; what does not fit, or cannot be parsed, is answered in the service's error shape (431
 * request_headers_too_large, 400 request_invalid) with a request id. On real listeners: inject() has no
 * header limit.
 */
import t from 'tap'
import { connect } from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { ERROR_CODES } from '../src/errors.js'
import { reloadConfiguration } from '../src/reload.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]

/** A valid token of about `length` characters (a padding claim). */
function tokenOfLength (length: number): string {
  const base = mint(key, idTokenClaims(ISS, 'aud', { pad: '' }))
  const token = mint(key, idTokenClaims(ISS, 'aud', { pad: 'x'.repeat(Math.floor((length - base.length) * 3 / 4)) }))
  if (token.length > length || token.length < length - 8) throw new Error(`token of ${token.length}, not ${length}`)
  return token
}

const portOf = (app: FastifyInstance): number => (app.server.address() as AddressInfo).port
/** Headers a proxy adds: a few KiB of cookies and the usual names. */
const ORDINARY = 'X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nUser-Agent: test\r\nCookie: ' + 'session=' + 's'.repeat(3000) + '\r\n'

t.test('a token of maxTokenBytes in a header passes beside ordinary headers', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const token = tokenOfLength(16384) // server.maxTokenBytes, the default
  for (const request of [
    `GET /forward-auth HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\n${ORDINARY}Connection: close\r\n\r\n`,
    `POST /verify HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\n${ORDINARY}Content-Length: 0\r\nConnection: close\r\n\r\n`
  ]) {
    const res = await rawExchange(portOf(app), request)
    t.equal(res.status, 200, request.slice(0, 16))
  }
})

t.test('headers past the limit: 431 request_headers_too_large in the error shape, with a request id', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  for (const path of ['/verify', '/forward-auth']) {
    const res = await rawExchange(portOf(app), `GET ${path} HTTP/1.1\r\nHost: app\r\nX-Big: ${'b'.repeat(16384 + 16384)}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 431, path)
    t.match(res.headers['content-type'], /^application\/json/)
    const body = JSON.parse(res.body)
    t.same(Object.keys(body).sort(), ['code', 'hint', 'message', 'requestId'])
    t.match(body, { code: 'request_headers_too_large', message: ERROR_CODES.request_headers_too_large.message })
    t.equal(res.headers['x-request-id'], body.requestId)
  }
  const garbage = await rawExchange(portOf(app), 'NOT HTTP AT ALL\r\n\r\n')
  t.equal(garbage.status, 400, 'a request Node cannot parse')
  t.match(JSON.parse(garbage.body), { code: 'request_invalid', requestId: String })

  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'other', status: '431', caller: 'none' }), 2, 'counted')
})

t.test('the limit follows a reload of server.maxTokenBytes', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const token = tokenOfLength(36000)
  const ask = async () => await rawExchange(portOf(app), `POST /verify HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
  const before = await ask()
  t.equal(before.status, 431, 'past 16 KiB + 16 KiB')
  await reloadConfiguration(app, () => configFor(issuers, { server: { maxTokenBytes: 40000 } }))
  t.equal((await ask()).status, 200, 'a new connection after the reload takes the new limit')
})

t.test('over HTTPS too', async (t) => {
  const pki = makeTestPki()
  t.teardown(() => pki.remove())
  const app = await buildApp(configFor(issuers, { server: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const exchange = async (request: string): Promise<string> => await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: portOf(app), ca: pki.pem.ca }, () => socket.write(request))
    let out = ''
    socket.on('data', (d: Buffer) => { out += d.toString('latin1') })
    socket.on('close', () => resolve(out))
    socket.on('error', reject)
  })
  const token = tokenOfLength(16384)
  const ok = await exchange(`POST /verify HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\n${ORDINARY}Content-Length: 0\r\nConnection: close\r\n\r\n`)
  t.match(ok, /^HTTP\/1\.1 200 /)
  const big = await exchange(`GET /verify HTTP/1.1\r\nHost: app\r\nX-Big: ${'b'.repeat(40000)}\r\nConnection: close\r\n\r\n`)
  t.match(big, /^HTTP\/1\.1 431 /)
  t.match(big, /"code":"request_headers_too_large"/)
})
