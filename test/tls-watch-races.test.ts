/**
 * The look at the certificate files (src/http/tls-watch.ts) and a configuration reload (src/reload.ts) at the
 * same time: a look that read the files of the configuration in force when it began must not put them in use
 * after a reload moved the listener to other files.
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import { reloadConfiguration } from '../src/reload.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { call, servedFingerprint } from './helpers/https-call.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })
const old = pki.renewServer('old')
const fingerprint = (certFile: string): string => new X509Certificate(readFileSync(certFile)).fingerprint256

t.test('a look that began before a reload changed the paths does not put the old files back in use', async (t) => {
  const config = (cert: string, keyFile: string, clientCaFile: string): Config =>
    configFor(issuers, { server: { certificateCheckSeconds: 86400, tls: { certFile: cert, keyFile, clientCaFile } } })
  const app = await buildApp(config(old.cert, old.key, pki.otherCaCert))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  const stranger = { ca: pki.pem.ca, cert: pki.pem.strangerCert, key: pki.pem.strangerKey }
  const client = { ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey }
  // The old certificate, and the client CA an operator is moving away from (its key leaked, say).
  t.equal((await call(port, { path: '/healthz', ...stranger })).status, 200, 'the old CA\'s clients are admitted')

  // A look begins (it reads the files off the event loop); a reload moves the listener to new files meanwhile.
  // (The files the look reads are those served: nothing to renew, had the reload not come.)
  const look = watch.check()
  const reload = await reloadConfiguration(app, () => config(pki.serverCert, pki.serverKey, pki.caCert))
  t.equal(reload.outcome, 'applied')
  await look

  t.equal(await servedFingerprint(port, { ...client }), fingerprint(pki.serverCert), 'the certificate the reload put in use is served, not the old one')
  await t.rejects(call(port, { path: '/healthz', ...stranger }), 'the client CA the reload removed admits no one')
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200, 'the new CA\'s clients are admitted')
})
