/**
 * A listener started with a certificate that has already expired: every client refuses it, so the start says
 * so, as a reload or the look at the files does when they put one in use (src/http/tls-reload.ts, putInUse).
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
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
const expired = pki.expired('expired', 'server')

t.test('a listener built with an expired certificate logs an error naming the setting', async (t) => {
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { raw.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  const { validTo, fingerprint256 } = new X509Certificate(readFileSync(expired.cert))
  const config = configFor(issuers, { server: { logLevel: 'info', opsPort: 0, tls: { certFile: expired.cert, keyFile: expired.key }, opsTls: { certFile: expired.cert, keyFile: expired.key } } })
  const app = await buildApp(config, { loggerInstance: pino(loggerOptions('info'), stream) })
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  const errors = raw.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 50)
  t.match(errors, [
    { listener: 'main', setting: 'server.tls', validTo, fingerprint256, msg: `the certificate of the main listener (server.tls.certFile) expired on ${validTo}; renew it` },
    { listener: 'ops', setting: 'server.opsTls', validTo, fingerprint256, msg: `the certificate of the ops listener (server.opsTls.certFile) expired on ${validTo}; renew it` }
  ])
  t.equal(errors.length, 2)

  raw.length = 0
  const fresh = configFor(issuers, { server: { logLevel: 'info', tls: { certFile: pki.serverCert, keyFile: pki.serverKey } } })
  const valid = await buildApp(fresh, { loggerInstance: pino(loggerOptions('info'), stream) })
  t.teardown(() => valid.close())
  t.same(raw.filter((l) => l.includes('expired')), [], 'nothing said of a valid one')
})
