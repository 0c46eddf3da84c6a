/**
 * A client CA file holding an intermediate CA without the root it chains to: OpenSSL admits a client
 * certificate only through a chain that ends at a self-signed CA of that file, so such a file admits no
 * client at all. The configuration check, a reload and the look at the files say so, naming the setting,
 * instead of starting (or renewing) a listener that refuses every client without a word.
 */
import t from 'tap'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import { reloadConfiguration } from '../src/reload.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor, configProblems } from './helpers/config.js'
import { call } from './helpers/https-call.js'
import { matchExactly } from './helpers/exact-match.js'
import { tempDir } from './helpers/temp-dir.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })
const inter = pki.intermediate('issuing-ca')

const tls = (clientCaFile: string): Record<string, unknown> => ({ certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile })

t.test('a client CA file with an intermediate CA but not its root is refused by the configuration check', async (t) => {
  matchExactly(t, configProblems({ issuers, server: { tls: tls(inter.caCert) } }),
    [/server\.tls\.clientCaFile: the CA "CN=issuing-ca" in ".*issuing-ca\.crt" is an intermediate whose issuer \("CN=ca"\) is not in the file: .*add the root CA to the file$/])
  const dir = tempDir(t)
  const bundle = join(dir, 'bundle.crt')
  writeFileSync(bundle, Buffer.concat([readFileSync(inter.caCert), pki.pem.ca]))
  t.same(configProblems({ issuers, server: { tls: tls(bundle) } }), [], 'with its root beside it')
  const unrelated = join(dir, 'unrelated.crt')
  writeFileSync(unrelated, Buffer.concat([readFileSync(inter.caCert), readFileSync(pki.otherCaCert)]))
  matchExactly(t, configProblems({ issuers, server: { tls: tls(unrelated) } }), [/server\.tls\.clientCaFile: the CA "CN=issuing-ca" in ".*unrelated\.crt" \(certificate 1 of 2\) is an intermediate/], 'another root is not its root')
  t.same(configProblems({ issuers, server: { tls: tls(pki.caCert) } }), [], 'a root alone, as ever')
})

t.test('what the check stands for: the intermediate alone admits none of its clients; with its root, they are admitted', async (t) => {
  const dir = tempDir(t)
  const clientCaFile = join(dir, 'ca.crt')
  copyFileSync(inter.caCert, clientCaFile)
  const app = await buildApp(configFor(issuers, { server: { tls: tls(pki.caCert) } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const client = { ca: pki.pem.ca, cert: inter.clientChain, key: inter.clientKey }
  const config = (): Config => configFor(issuers, { server: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile } } })

  writeFileSync(clientCaFile, Buffer.concat([readFileSync(inter.caCert), pki.pem.ca]))
  t.equal((await reloadConfiguration(app, config)).outcome, 'applied')
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200, 'the intermediate with its root: its client is admitted')

  // The root removed from the file (after the configuration was parsed): a reload that would refuse every client is refused.
  const parsed = config()
  copyFileSync(inter.caCert, clientCaFile)
  const reload = await reloadConfiguration(app, () => parsed)
  t.equal(reload.outcome, 'refused')
  t.match(reload.problems, [/^server\.tls\.clientCaFile: /])
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200, 'the client CA in use stays')

  // And what it would have done: OpenSSL with the intermediate alone refuses the intermediate's own client.
  const { createServer } = await import('node:https')
  const bare = createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey), ca: readFileSync(inter.caCert), requestCert: true, rejectUnauthorized: true }, (_req, res) => { res.end() })
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { bare.closeAllConnections(); bare.close(() => resolve()) }))
  await t.rejects(call((bare.address() as AddressInfo).port, { path: '/', ...client }), 'refused: the chain does not end at a root of the file')
})
