/**
 * Mutual TLS refusals leave a trace: Node ends the handshake of a client without a certificate, or with one that
 * fails verification (expired, another CA's), without a word to either side (the client sees "socket hang up"),
 * so the server logs why, once per refused connection. Other handshake failures are no request: not logged.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { connect, type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { call } from './helpers/https-call.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })
const expired = pki.expired('expired-client', 'client')

t.test('a client refused by mutual TLS is logged with the reason', async (t) => {
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { raw.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  const config = configFor(issuers, { server: { logLevel: 'info', tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert } } })
  const app = await buildApp(config, { loggerInstance: pino(loggerOptions('info'), stream) })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const refusals = async (attempt: () => Promise<unknown>): Promise<Array<Record<string, unknown>>> => {
    raw.length = 0
    await attempt().catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 100))
    return raw.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.msg).startsWith('client certificate refused'))
  }
  const trusting = { path: '/healthz', ca: pki.pem.ca }

  t.match(await refusals(() => call(port, trusting)), [{ level: 30, reason: 'no client certificate', clientAddress: '127.0.0.1' }])
  t.match(await refusals(() => call(port, { ...trusting, maxVersion: 'TLSv1.2' })), [{ level: 30, reason: 'no client certificate' }], 'TLS 1.2 alike')
  t.match(await refusals(() => call(port, { ...trusting, cert: readFileSync(expired.cert), key: readFileSync(expired.key) })), [{ level: 30, reason: 'CERT_HAS_EXPIRED', clientAddress: '127.0.0.1' }])
  t.match(await refusals(() => call(port, { ...trusting, cert: pki.pem.strangerCert, key: pki.pem.strangerKey })), [{ level: 30, reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }])
  const [line] = await refusals(() => call(port, trusting))
  t.match(line?.msg, /server\.tls\.clientCaFile/, 'the message names the setting')

  t.same(await refusals(() => call(port, { ...trusting, cert: pki.pem.clientCert, key: pki.pem.clientKey })), [], 'an admitted client: nothing')
  t.same(await refusals(() => new Promise<void>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'))
    socket.on('close', () => resolve())
    socket.on('error', () => {})
  })), [], 'plain HTTP on the TLS port is not a client certificate refusal')
})
