/**
 * TLS and mutual TLS on a real port, with certificates made for the test: a client needs the CA to trust
 * the server; with clientCaFile, only a client certificate that chains to that CA gets an HTTP answer.
 */
import t from 'tap'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildApp } from '../src/app.js'
import { buildOpsApp } from '../src/ops-app.js'
import { configFor, configProblems } from './helpers/config.js'
import { makeTestPki } from './helpers/certs.js'
import { call } from './helpers/https-call.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { matchExactly } from './helpers/exact-match.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })

/** The configuration problems of a server section (none: []). */
function serverProblems (server: Record<string, unknown>): string[] {
  return configProblems({ issuers, server })
}

t.test('TLS: the listener speaks HTTPS with the configured certificate', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port

  t.same(await call(port, { path: '/healthz', ca: pki.pem.ca }), { status: 200, body: '{"status":"ok"}' })
  const verified = await call(port, { path: '/verify', method: 'POST', ca: pki.pem.ca, payload: JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud')) }) })
  t.equal(verified.status, 200)
  t.equal(JSON.parse(verified.body).subject, 'user-123')
  await t.rejects(call(port, { path: '/healthz' }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'a client that does not trust the CA refuses the server')

  // Plain HTTP to the TLS port gets no HTTP answer; the server keeps serving.
  const plain = await new Promise<string>((resolve) => {
    const socket = netConnect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'))
    let got = ''
    socket.on('data', (d) => { got += d.toString('latin1') })
    socket.on('close', () => resolve(got))
    socket.on('error', () => resolve(got))
    socket.setTimeout(3000, () => socket.destroy())
  })
  t.notMatch(plain, /HTTP\/1\.1 200/, 'no HTTP over plain TCP')
  // Garbage after a good handshake is a 400, not a crash.
  const garbage = await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.pem.ca }, () => socket.write('\u0000\u0001 NOT HTTP \r\n\r\n'))
    let got = ''
    socket.on('data', (d) => { got += d.toString('latin1') })
    socket.on('close', () => resolve(got))
    socket.on('error', reject)
    socket.setTimeout(3000, () => socket.destroy())
  })
  t.match(garbage, /^HTTP\/1\.1 400/)
  t.equal((await call(port, { path: '/healthz', ca: pki.pem.ca })).status, 200, 'still serving')
})

t.test('mutual TLS: only clients with a certificate of the configured CA', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert } } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port

  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const admitted = await call(port, { path: '/verify', method: 'POST', ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey, payload: JSON.stringify({ token }) })
  t.equal(admitted.status, 200, 'a client certificate of the CA is admitted')
  await t.rejects(call(port, { path: '/healthz', ca: pki.pem.ca }), 'no client certificate: no HTTP answer')
  await t.rejects(call(port, { path: '/healthz', ca: pki.pem.ca, cert: pki.pem.strangerCert, key: pki.pem.strangerKey }), 'a certificate of another CA: no HTTP answer')
  // The server's own certificate is not a client certificate (extendedKeyUsage serverAuth only).
  await t.rejects(call(port, { path: '/healthz', ca: pki.pem.ca, cert: pki.pem.serverCert, key: (await import('node:fs')).readFileSync(pki.serverKey) }))
  t.equal((await call(port, { path: '/healthz', ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey })).status, 200, 'still serving')
})

t.test('server.opsTls: the ops listener speaks HTTPS; the main listener keeps its own setting', async (t) => {
  const config = configFor(issuers, { server: { opsPort: 0, opsTls: { certFile: pki.serverCert, keyFile: pki.serverKey } } })
  const app = await buildApp(config)
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  await ops.listen({ host: '127.0.0.1', port: 0 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const opsPort = (ops.server.address() as AddressInfo).port

  t.same(await call(opsPort, { path: '/healthz', ca: pki.pem.ca }), { status: 200, body: '{"status":"ok"}' })
  const metrics = await call(opsPort, { path: '/metrics', ca: pki.pem.ca })
  t.equal(metrics.status, 200)
  t.match(metrics.body, /oidc_verifier_http_requests_total/)
  await t.rejects(call(opsPort, { path: '/healthz' }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'a client that does not trust the CA refuses the ops listener')
  const mainPort = (app.server.address() as AddressInfo).port
  const plain = await fetch(`http://127.0.0.1:${mainPort}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud')) }) })
  t.equal(plain.status, 200, 'the main listener is plain HTTP without server.tls')

  const problems = serverProblems
  matchExactly(t, problems({ opsTls: { certFile: pki.serverCert, keyFile: pki.serverKey } }), [/server\.opsTls: expected server\.opsPort with it/])
  matchExactly(t, problems({ opsPort: 9090, opsTls: { certFile: join(pki.dir, 'nope.crt'), keyFile: pki.serverKey } }), [/server\.opsTls\.certFile: cannot read ".*nope\.crt": no such file/])
  matchExactly(t, problems({ opsPort: 9090, opsTls: { certFile: pki.serverCert, keyFile: join(pki.dir, 'client.key') } }), [/server\.opsTls\.keyFile: the private key does not belong to the certificate in server\.opsTls\.certFile/])
  matchExactly(t, problems({ opsPort: 9090, opsTls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert } }), [/server\.opsTls\.clientCaFile: unknown option/], 'no mutual TLS on the ops listener: probes have no client certificate')
})

t.test('TLS configuration problems are reported with their path', async (t) => {
  const problems = (tls: Record<string, unknown>): string[] => serverProblems({ tls })
  const garbage = join(pki.dir, 'garbage.pem')
  writeFileSync(garbage, '-----BEGIN PRIVATE KEY-----\nTOP-SECRET-MATERIAL\n-----END PRIVATE KEY-----\n')
  t.same(problems({ certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert }), [])
  matchExactly(t, problems({ certFile: join(pki.dir, 'nope.crt'), keyFile: pki.serverKey }), [/server\.tls\.certFile: cannot read ".*nope\.crt": no such file/])
  const bad = problems({ certFile: pki.serverCert, keyFile: garbage })
  matchExactly(t, bad, [/server\.tls\.keyFile: expected an unencrypted PEM private key/])
  t.notOk(bad.join().includes('TOP-SECRET'), 'key material is never quoted')
  matchExactly(t, problems({ certFile: garbage, keyFile: pki.serverKey }), [/server\.tls\.certFile: expected a PEM certificate/])
  matchExactly(t, problems({ certFile: pki.serverCert, keyFile: join(pki.dir, 'client.key') }), [/server\.tls\.keyFile: the private key does not belong to the certificate/])
  matchExactly(t, problems({ certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.serverCert }), [/server\.tls\.clientCaFile: expected a CA certificate/])
  matchExactly(t, problems({ certFile: pki.serverCert }), [/server\.tls\.keyFile: missing/])
  matchExactly(t, problems({ certFile: pki.serverCert, keyFile: pki.serverKey, ca: pki.caCert }), [/server\.tls\.ca: unknown option/])
})
