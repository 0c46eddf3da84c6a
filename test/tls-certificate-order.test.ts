/**
 * A certificate file in reverse order, its chain first and the server's own certificate last (as some CAs send a
 * bundle): OpenSSL serves the first certificate as the server's own, and the key is not its. What to fix is the
 * order of certFile, and that is what is said, naming the setting and the file, at start, by a reload and by the
 * look at the files; the certificate in use stays. A key that is no certificate's of the file is still the key's
 * problem.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Config } from '../src/config/types.js'
import { reloadConfiguration } from '../src/reload.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor, configProblems } from './helpers/config.js'
import { servedFingerprint } from './helpers/https-call.js'
import { matchExactly } from './helpers/exact-match.js'
import { mountedSecret } from './helpers/temp-dir.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'
import { listening, portOf } from './helpers/listening-app.js'

const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })
const original = { cert: pki.serverCert, key: pki.serverKey }
const renewed = pki.renewServer('renewed')
const trusting = { ca: pki.pem.ca }
const fingerprint = (certFile: string): string => new X509Certificate(readFileSync(certFile)).fingerprint256

// The chain first: the CA (an EC key, as the server's: OpenSSL compares them and refuses the context), or a CA
// with an RSA key (OpenSSL files the server's EC key apart and makes the context; the check must refuse it).
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=rsa-ca', '-keyout', 'rsa-ca.key', '-out', 'rsa-ca.crt'],
  { cwd: pki.dir, stdio: ['ignore', 'ignore', 'pipe'] })
const reversed = {
  'an EC CA first': Buffer.concat([pki.pem.ca, readFileSync(renewed.cert)]),
  'an RSA CA first': Buffer.concat([readFileSync(join(pki.dir, 'rsa-ca.crt')), readFileSync(renewed.cert)])
}
const ORDER_PROBLEM = /^server\.tls\.certFile: expected the server's own certificate first in ".*tls\.crt", then its chain: the private key in server\.tls\.keyFile is that of certificate 2 of 2, and the first is the one served$/
/** The same, as the configuration check says it: after the configuration's source. */
const CONFIG_ORDER_PROBLEM = new RegExp(`^(c\\.yaml|test): ${ORDER_PROBLEM.source.slice(1)}`)

for (const [first, chain] of Object.entries(reversed)) {
  t.test(`${first}: the order is the problem at start`, async (t) => {
    const files = mountedSecret(t, renewed)
    writeFileSync(files.certFile, chain)
    matchExactly(t, configProblems({ issuers, server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } }), [CONFIG_ORDER_PROBLEM])
  })

  t.test(`${first}: a reload is refused for the order, and the certificate stays`, async (t) => {
    const files = mountedSecret(t, original)
    const config = (): Config => configFor(issuers, { server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } })
    const app = await listening(t, config())
    const parsed = config()
    files.place(renewed)
    writeFileSync(files.certFile, chain)
    const result = await reloadConfiguration(app, () => parsed)
    t.equal(result.outcome, 'refused')
    matchExactly(t, result.problems, [ORDER_PROBLEM])
    t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(original.cert), 'the certificate in use is served')
  })

  t.test(`${first}: the look at the files says it once and keeps the certificate`, async (t) => {
    const files = mountedSecret(t, original)
    const { lines, logger } = captureLog()
    const app = await listening(t, configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } }), logger)
    const watch = app.certificateWatch
    if (watch === undefined) throw new Error('not watching')
    files.place(renewed)
    writeFileSync(files.certFile, chain)
    t.same(await watch.check(), { 'server.tls': 'refused' })
    t.match(lines().filter((l) => String(l.msg).startsWith('the files of server.tls changed but cannot be used')), [{ level: 50, problems: [ORDER_PROBLEM] }])
    t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(original.cert))
  })
}

t.test('a chain whose second certificate is broken (a line lost in a copy) is the certificate file\'s problem at start, named', async (t) => {
  const files = mountedSecret(t, renewed)
  const lines = pki.pem.ca.toString().split('\n')
  const broken = [...lines.slice(0, 3), ...lines.slice(4)].join('\n')
  writeFileSync(files.certFile, Buffer.concat([readFileSync(renewed.cert), Buffer.from(broken)]))
  matchExactly(t, configProblems({ issuers, server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } }),
    [/^(c\.yaml|test): server\.tls\.certFile: expected a PEM certificate chain in ".*tls\.crt": OpenSSL cannot read it \(.+\)$/])
})

t.test('a key that is no certificate\'s of a chain is still the key\'s problem', async (t) => {
  const files = mountedSecret(t, original)
  writeFileSync(files.certFile, reversed['an EC CA first'])
  writeFileSync(files.keyFile, pki.pem.strangerKey)
  matchExactly(t, configProblems({ issuers, server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } }),
    [/^c\.yaml: server\.tls\.keyFile: the private key does not belong to the certificate in server\.tls\.certFile$/])
})
