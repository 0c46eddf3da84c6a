/**
 * A client CA file holding a root and, after it, the same root cross-signed by another CA that is not in the
 * file (a bundle taken from a PKI that moved to a new root, or a downloaded chain): OpenSSL finds the root
 * first and admits its clients, the cross-signed copy is never used. The check that an intermediate of the
 * file chains to a root of the file must not refuse it, at start or on a reload.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { buildApp } from '../src/app.js'
import { reloadConfiguration } from '../src/reload.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor, configProblems } from './helpers/config.js'
import { call } from './helpers/https-call.js'
import { matchExactly } from './helpers/exact-match.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })

// The CA's own name and key, issued by other-ca.
const openssl = (args: string[]): void => { execFileSync('openssl', args, { cwd: pki.dir, stdio: ['ignore', 'ignore', 'pipe'] }) }
writeFileSync(join(pki.dir, 'cross.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n')
openssl(['req', '-new', '-key', 'ca.key', '-subj', '/CN=ca', '-out', 'cross.csr'])
openssl(['x509', '-req', '-in', 'cross.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-CAcreateserial', '-days', '1', '-out', 'cross.crt', '-extfile', 'cross.ext'])
const cross = readFileSync(join(pki.dir, 'cross.crt'))
const rootThenCross = join(pki.dir, 'root-then-cross.crt')
writeFileSync(rootThenCross, Buffer.concat([pki.pem.ca, cross]))
const crossThenRoot = join(pki.dir, 'cross-then-root.crt')
writeFileSync(crossThenRoot, Buffer.concat([cross, pki.pem.ca]))

const tls = (clientCaFile: string): Record<string, unknown> => ({ certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile })

t.test('a root followed by a cross-signed copy of it is accepted by the configuration check', async (t) => {
  t.same(configProblems({ issuers, server: { tls: tls(rootThenCross) } }), [])
  // First, the copy is what OpenSSL finds for the root's name, and no chain through it reaches a root of the file.
  matchExactly(t, configProblems({ issuers, server: { tls: tls(crossThenRoot) } }),
    [/server\.tls\.clientCaFile: the CA "CN=ca" in ".*cross-then-root\.crt" \(certificate 1 of 2\) is an intermediate whose issuer \("CN=other-ca"\) is not in the file/])
})

t.test('such a bundle admits the root\'s clients, and a reload with it is applied', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { tls: tls(rootThenCross) } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const client = { ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey }
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200, 'the root\'s client is admitted')
  const reload = await reloadConfiguration(app, () => configFor(issuers, { server: { tls: tls(rootThenCross) } }))
  t.same(reload.problems, [])
  t.equal(reload.outcome, 'applied')
})

// The same copy with the root's EC key written compressed (02/03 and x, where the root has 04, x and y): one key,
// two SPKI encodings. It is still the root's copy: OpenSSL finds the root first, as above.
openssl(['ec', '-in', 'ca.key', '-conv_form', 'compressed', '-out', 'ca-compressed.key'])
openssl(['req', '-new', '-key', 'ca-compressed.key', '-subj', '/CN=ca', '-out', 'cross-compressed.csr'])
openssl(['x509', '-req', '-in', 'cross-compressed.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-CAcreateserial', '-days', '1',
  '-out', 'cross-compressed.crt', '-extfile', 'cross.ext'])
const crossCompressed = readFileSync(join(pki.dir, 'cross-compressed.crt'))
const rootThenCompressedCross = join(pki.dir, 'root-then-compressed-cross.crt')
writeFileSync(rootThenCompressedCross, Buffer.concat([pki.pem.ca, crossCompressed]))

t.test('a cross-signed copy whose key is written compressed is the root\'s copy too', async (t) => {
  const spki = (pem: Buffer): Buffer => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })
  // The point's first byte, after the SPKI's algorithm and the bit string's header.
  t.ok([0x02, 0x03].includes(spki(crossCompressed)[26] ?? 0), 'the copy\'s point is compressed')
  t.equal(spki(pki.pem.ca)[26], 0x04, 'the root\'s is not')
  t.same(configProblems({ issuers, server: { tls: tls(rootThenCompressedCross) } }), [])
  const app = await buildApp(configFor(issuers, { server: { tls: tls(rootThenCompressedCross) } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const client = { ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey }
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200, 'OpenSSL admits the root\'s client')
  const reload = await reloadConfiguration(app, () => configFor(issuers, { server: { tls: tls(rootThenCompressedCross) } }))
  t.same(reload.problems, [])
  t.equal(reload.outcome, 'applied')
})
