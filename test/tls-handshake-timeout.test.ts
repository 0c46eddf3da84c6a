/**
 * A connection to a TLS listener that never completes its handshake is bounded like an idle socket
 * (server.connectionTimeoutMs), not by Node's own 120 s, on the main and the ops listener; and its end is not
 * an HTTP request: no 400 logged or counted for it.
 */
import t from 'tap'
import { connect, type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { buildOpsApp } from '../src/ops-app.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })

/** How long a TCP connection that sends nothing stays open, in ms; -1 when still open after `limitMs`. */
function silentFor (port: number, limitMs: number): Promise<number> {
  return new Promise((resolve) => {
    const start = Date.now()
    const socket = connect(port, '127.0.0.1')
    socket.on('error', () => {})
    const limit = setTimeout(() => { socket.destroy(); resolve(-1) }, limitMs)
    socket.on('close', () => { clearTimeout(limit); resolve(Date.now() - start) })
  })
}

t.test('a handshake that never comes is cut at server.connectionTimeoutMs, on both listeners', async (t) => {
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { raw.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  const tls = { certFile: pki.serverCert, keyFile: pki.serverKey }
  const config = configFor(issuers, { server: { logLevel: 'info', connectionTimeoutMs: 1000, headersTimeoutMs: 1000, requestTimeoutMs: 2000, opsPort: 0, tls, opsTls: tls } })
  const app = await buildApp(config, { loggerInstance: pino(loggerOptions('info'), stream) })
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await ops.listen({ host: '127.0.0.1', port: 0 })
  const [main, opsOpen] = await Promise.all([silentFor((app.server.address() as AddressInfo).port, 5000), silentFor((ops.server.address() as AddressInfo).port, 5000)])
  t.ok(main > 0 && main < 3000, `main listener: closed after ${main} ms`)
  t.ok(opsOpen > 0 && opsOpen < 3000, `ops listener: closed after ${opsOpen} ms`)
  t.same(raw.map((l) => JSON.parse(l) as { msg: string }).filter((l) => /refused|timeout/.test(l.msg)), [], 'no request was refused: there was none')
  const metrics = await ops.inject({ url: '/metrics' })
  t.notMatch(metrics.body, /oidc_verifier_http_requests_total\{[^}]*status="400"/, 'nor counted as one')
})
