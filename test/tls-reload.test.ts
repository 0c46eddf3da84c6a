/**
 * Certificates renewed by a configuration reload (src/http/tls-reload.ts), on real listeners: files replaced
 * at the same paths (as cert-manager does with a mounted Secret) or new paths are served after a reload;
 * files that cannot be used refuse the whole reload and every listener keeps its certificate; turning TLS on
 * or off, or client certificates on or off, still needs a restart. And renewed without a reload, by the
 * periodic look at the files (server.certificateCheckSeconds, src/http/tls-watch.ts).
 */
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import { buildOpsApp } from '../src/ops-app.js'
import { clientCaProblem } from '../src/config/operations.js'
import { reloadConfiguration } from '../src/reload.js'
import { hasExpired, readCertificates, useCertificates, type TlsListener } from '../src/http/tls-reload.js'
import { CertificateWatch } from '../src/http/tls-watch.js'
import { MAX_SMALL_FILE_BYTES } from '../src/small-file.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { call, servedFingerprint } from './helpers/https-call.js'
import { mountedSecret, tempDir } from './helpers/temp-dir.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'
import { builtin, patchBuiltin } from './helpers/patch-builtin.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })
const original = { cert: pki.serverCert, key: pki.serverKey }
const renewed = pki.renewServer('renewed')
const GARBAGE_KEY = '-----BEGIN PRIVATE KEY-----\nTOP-SECRET-MATERIAL\n-----END PRIVATE KEY-----\n'
const RSA_KEY = makeKey('RS256').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string

const fingerprint = (certFile: string): string => new X509Certificate(readFileSync(certFile)).fingerprint256
const trusting = { ca: pki.pem.ca }

type Pair = { cert: string, key: string }

const portOf = (app: { server: { address: () => unknown } }): number => (app.server.address() as AddressInfo).port

async function listening (t: Test, config: Config, logger?: pino.Logger): Promise<{ app: Awaited<ReturnType<typeof buildApp>>, port: number }> {
  const app = await buildApp(config, logger === undefined ? {} : { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: portOf(app) }
}

t.test('a certificate replaced at the same paths is served after a reload', async (t) => {
  const files = mountedSecret(t, original)
  const config = (): Config => configFor(issuers, { server: { logLevel: 'info', tls: { certFile: files.certFile, keyFile: files.keyFile } } })
  const { lines, text, logger } = captureLog()
  const { app, port } = await listening(t, config(), logger)
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert))

  files.place(renewed)
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert), 'not before a reload (or the periodic look, a minute away)')
  const result = await reloadConfiguration(app, config)
  t.equal(result.outcome, 'applied')
  t.same(result.needsRestart, [], 'nothing waits for a restart: the paths did not even change')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert), 'the renewed certificate is served')
  t.same(await call(port, { path: '/healthz', ca: pki.pem.ca }), { status: 200, body: '{"status":"ok"}' })

  const line = lines().find((l) => String(l.msg).startsWith('TLS certificates read again'))
  t.match(line, { level: 30, component: 'reload', listeners: [{ listener: 'main', setting: 'server.tls', fingerprint256: fingerprint(renewed.cert), validTo: String }] })
  t.match(String(line?.msg), /main listener; new connections get them/)
  const keyBody = readFileSync(renewed.key, 'utf8').split('\n')[1] ?? ''
  t.notOk(text().includes('PRIVATE KEY') || text().includes(keyBody), 'no key material in the logs')
})

t.test('changing certFile and keyFile is applied by a reload', async (t) => {
  const tls = (pair: Pair): Config => configFor(issuers, { server: { tls: { certFile: pair.cert, keyFile: pair.key } } })
  const { app, port } = await listening(t, tls(original))
  const result = await reloadConfiguration(app, () => tls(renewed))
  t.equal(result.outcome, 'applied')
  t.same(result.needsRestart, [])
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert))
  t.equal(app.verifierSlot.config.server.tls?.certFile, renewed.cert, 'the configuration in force has the new paths')
  t.same((await reloadConfiguration(app, () => tls(renewed))).needsRestart, [], 'and the next reload compares against them')
})

t.test('files that cannot be used refuse the reload; the certificate in use keeps being served', async (t) => {
  const files = mountedSecret(t, original)
  const config = (): Config => configFor(issuers, { server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } })
  const { app, port } = await listening(t, config())
  const verifier = app.verifier
  // Parsed while the files were good: the reload's own reading finds what went wrong since.
  const parsed = config()
  const cases: Array<[string, () => void, RegExp]> = [
    ['a key that is not a key', () => { files.place(renewed); writeFileSync(files.keyFile, GARBAGE_KEY) },
      /^server\.tls\.keyFile: expected an unencrypted PEM private key in ".*tls\.key"$/],
    ['the key of another certificate', () => { files.place(renewed); copyFileSync(original.key, files.keyFile) },
      /^server\.tls\.keyFile: the private key in ".*tls\.key" does not belong to the certificate in server\.tls\.certFile \(".*tls\.crt"\); replace both files together$/],
    // OpenSSL takes a key of another type than the certificate's into a slot of its own (an RSA key beside an EC
    // certificate): the context is made, and every handshake would then fail for want of a key for the certificate.
    ['a key of another type than the certificate\'s', () => { files.place(renewed); writeFileSync(files.keyFile, RSA_KEY) },
      /^server\.tls\.keyFile: the private key in ".*tls\.key" does not belong to the certificate in server\.tls\.certFile \(".*tls\.crt"\); replace both files together$/],
    ['a missing key', () => { files.place(renewed); rmSync(files.keyFile) }, /^server\.tls\.keyFile: cannot read ".*tls\.key": no such file$/],
    ['a certificate that is not PEM', () => { files.place(renewed); writeFileSync(files.certFile, 'not a certificate') },
      /^server\.tls\.certFile: expected a PEM certificate \(chain\) in ".*tls\.crt" \(no start line\)$/],
    // Read synchronously on a reload: a FIFO nobody writes to would stop every request while it waited.
    ['a FIFO', () => { files.place(renewed); rmSync(files.keyFile); execFileSync('mkfifo', [files.keyFile]) },
      /^server\.tls\.keyFile: cannot read ".*tls\.key": it is not a regular file \(a directory, FIFO, device or socket\)$/],
    ['a directory', () => { rmSync(files.keyFile); files.place(renewed); rmSync(files.keyFile); mkdirSync(files.keyFile) },
      /^server\.tls\.keyFile: cannot read ".*tls\.key": it is not a regular file/],
    ['a file larger than a certificate can be', () => { rmSync(files.keyFile, { recursive: true }); files.place(renewed); writeFileSync(files.keyFile, Buffer.alloc(MAX_SMALL_FILE_BYTES + 1, 0x41)) },
      /^server\.tls\.keyFile: cannot read ".*tls\.key": it is larger than 1048576 bytes/]
  ]
  for (const [name, breakFiles, problem] of cases) {
    breakFiles()
    const result = await reloadConfiguration(app, () => parsed)
    t.equal(result.outcome, 'refused', name)
    t.equal(result.problems.length, 1, `${name}: one problem`)
    t.match(result.problems, [problem], name)
    t.notOk(result.problems.join().includes('TOP-SECRET'), `${name}: key material is never quoted`)
    t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert), `${name}: the old certificate is served`)
    t.equal(app.verifier, verifier, `${name}: nothing else changed either`)
  }

  // Read from the file again, the configuration itself is refused, with the same setting named.
  files.place(renewed)
  writeFileSync(files.keyFile, GARBAGE_KEY)
  const reread = await reloadConfiguration(app, config)
  t.equal(reread.outcome, 'refused')
  t.equal(reread.problems.length, 1)
  t.match(reread.problems, [/server\.tls\.keyFile: expected an unencrypted PEM private key/])
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert))

  files.place(renewed)
  t.equal((await reloadConfiguration(app, config)).outcome, 'applied', 'once the files are right, the next reload applies them')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert))
})

t.test('both listeners: renewed together, or neither when one cannot be', async (t) => {
  const main = mountedSecret(t, original)
  const ops = mountedSecret(t, original)
  const config = (): Config => configFor(issuers, {
    server: { logLevel: 'info', opsPort: 0, tls: { certFile: main.certFile, keyFile: main.keyFile }, opsTls: { certFile: ops.certFile, keyFile: ops.keyFile } }
  })
  const { lines, logger } = captureLog()
  const app = await buildApp(config(), { loggerInstance: logger })
  const opsApp = await buildOpsApp(app, config())
  t.teardown(async () => { await opsApp.close(); await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await opsApp.listen({ host: '127.0.0.1', port: 0 })
  t.equal(app.opsApp, opsApp, 'the main app knows its ops listener')

  const parsed = config()
  main.place(renewed)
  ops.place(renewed)
  writeFileSync(ops.keyFile, GARBAGE_KEY)
  const refused = await reloadConfiguration(app, () => parsed)
  t.equal(refused.outcome, 'refused')
  t.equal(refused.problems.length, 1, 'one problem: the ops key')
  t.match(refused.problems, [/^server\.opsTls\.keyFile: expected an unencrypted PEM private key/])
  t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(original.cert), 'the main listener keeps its certificate too')
  t.equal(await servedFingerprint(portOf(opsApp), trusting), fingerprint(original.cert))

  ops.place(renewed)
  t.equal((await reloadConfiguration(app, config)).outcome, 'applied')
  t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(renewed.cert))
  t.equal(await servedFingerprint(portOf(opsApp), trusting), fingerprint(renewed.cert), 'the ops listener serves the renewed certificate')
  t.equal((await call(portOf(opsApp), { path: '/healthz', ca: pki.pem.ca })).status, 200)
  const line = lines().find((l) => String(l.msg).startsWith('TLS certificates read again'))
  t.match(line, { listeners: [{ listener: 'main', setting: 'server.tls' }, { listener: 'ops', setting: 'server.opsTls' }] })
  t.match(String(line?.msg), /main and ops listeners/)
})

t.test('mutual TLS: a client CA replaced in place, or at a new path, decides who is admitted after a reload', async (t) => {
  const dir = tempDir(t)
  const clientCaFile = join(dir, 'ca.crt')
  copyFileSync(pki.caCert, clientCaFile)
  const config = (caFile: string): Config => configFor(issuers, { server: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: caFile } } })
  const { app, port } = await listening(t, config(clientCaFile))
  const client = { ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey }
  const stranger = { ca: pki.pem.ca, cert: pki.pem.strangerCert, key: pki.pem.strangerKey }
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200)
  await t.rejects(call(port, { path: '/healthz', ...stranger }), 'a client of another CA is refused')

  copyFileSync(pki.otherCaCert, clientCaFile)
  const replaced = await reloadConfiguration(app, () => config(clientCaFile))
  t.equal(replaced.outcome, 'applied')
  t.same(replaced.needsRestart, [])
  t.equal((await call(port, { path: '/healthz', ...stranger })).status, 200, 'the new CA\'s clients are admitted')
  await t.rejects(call(port, { path: '/healthz', ...client }), 'the old CA\'s clients no longer are')

  const moved = await reloadConfiguration(app, () => config(pki.caCert))
  t.equal(moved.outcome, 'applied')
  t.same(moved.needsRestart, [], 'a new path for clientCaFile is applied')
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200)
  await t.rejects(call(port, { path: '/healthz', ...stranger }))

  // Parsed while it was a CA: read again, a client CA that is not one is refused (OpenSSL alone would accept it).
  const parsed = config(clientCaFile)
  copyFileSync(pki.serverCert, clientCaFile)
  const notCa = await reloadConfiguration(app, () => parsed)
  t.equal(notCa.outcome, 'refused')
  t.equal(notCa.problems.length, 1)
  t.match(notCa.problems, [/^server\.tls\.clientCaFile: expected a CA certificate \(basicConstraints CA:TRUE\)/])
  // Every certificate of a bundle is trusted: a leaf after a good CA would be an anchor too.
  writeFileSync(clientCaFile, Buffer.concat([pki.pem.ca, pki.pem.clientCert]))
  const leafInBundle = (await reloadConfiguration(app, () => parsed)).problems
  t.match(leafInBundle, [/^server\.tls\.clientCaFile: expected a CA certificate \(basicConstraints CA:TRUE\) in ".*ca\.crt" \(certificate 2 of 2 is not\)/])
  writeFileSync(clientCaFile, Buffer.concat([pki.pem.ca, readFileSync(pki.otherCaCert)]))
  t.equal((await reloadConfiguration(app, () => parsed)).outcome, 'applied', 'a bundle of two CAs')
  copyFileSync(pki.caCert, clientCaFile)
  t.equal((await reloadConfiguration(app, () => parsed)).outcome, 'applied')
  writeFileSync(clientCaFile, 'not a certificate')
  const notPem = (await reloadConfiguration(app, () => parsed)).problems
  t.equal(notPem.length, 1)
  t.match(notPem, [/^server\.tls\.clientCaFile: expected a PEM CA certificate in ".*ca\.crt"$/])
  t.equal((await call(port, { path: '/healthz', ...client })).status, 200, 'the CA in use stays')
})

t.test('client CA bundles: every block OpenSSL trusts is checked', async (t) => {
  const dir = tempDir(t)
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }) }
  // An X.509 v1 self-signed root (no extensions, no basicConstraints): OpenSSL takes it as a CA.
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'v1.key', '-subj', '/CN=v1 root', '-out', 'v1.csr'])
  run(['x509', '-req', '-in', 'v1.csr', '-signkey', 'v1.key', '-days', '1', '-out', 'v1.crt'])
  // A certificate that is neither a CA nor a self-signed v1 root is a leaf.
  run(['x509', '-req', '-in', 'v1.csr', '-CA', pki.caCert, '-CAkey', join(pki.dir, 'ca.key'), '-CAcreateserial', '-days', '1', '-out', 'v1-leaf.crt'])
  // The client certificate as a TRUSTED CERTIFICATE block, which OpenSSL also loads as a trust anchor.
  writeFileSync(join(dir, 'client.crt'), pki.pem.clientCert)
  run(['x509', '-in', 'client.crt', '-trustout', '-out', 'client.trusted.pem'])
  const read = (name: string): Buffer => readFileSync(join(dir, name))
  t.equal(clientCaProblem('ca.pem', Buffer.concat([pki.pem.ca, read('v1.crt')])), undefined, 'a CA and a v1 self-signed root')
  t.match(clientCaProblem('ca.pem', Buffer.concat([pki.pem.ca, read('v1-leaf.crt')])), /expected a CA certificate \(basicConstraints CA:TRUE\) in "ca\.pem" \(certificate 2 of 2 is not\)/, 'a v1 leaf')
  t.equal(clientCaProblem('ca.pem', Buffer.concat([pki.pem.ca, read('client.trusted.pem')])),
    'expected only CERTIFICATE blocks in "ca.pem", got a TRUSTED CERTIFICATE block; each block is trusted', 'a trusted leaf after a good CA')
})

t.test('turning TLS or client certificates on or off needs a restart, reported on every reload until then', async (t) => {
  const tls = { certFile: pki.serverCert, keyFile: pki.serverKey }
  const withCa = { ...tls, clientCaFile: pki.caCert }

  const { app: plain, port: plainPort } = await listening(t, configFor(issuers))
  for (const attempt of ['first', 'second']) {
    const result = await reloadConfiguration(plain, () => configFor(issuers, { server: { tls } }))
    t.same(result.needsRestart, ['server.tls'], `${attempt} reload: turning TLS on`)
  }
  t.equal((await fetch(`http://127.0.0.1:${plainPort}/healthz`)).status, 200, 'still plain HTTP')
  t.equal(plain.verifierSlot.config.server.tls, undefined)
  t.same((await reloadConfiguration(plain, () => configFor(issuers))).needsRestart, [], 'changed back: nothing to report')

  const { app: secure, port: securePort } = await listening(t, configFor(issuers, { server: { tls } }))
  t.same((await reloadConfiguration(secure, () => configFor(issuers))).needsRestart, ['server.tls'], 'turning TLS off')
  t.equal((await call(securePort, { path: '/healthz', ca: pki.pem.ca })).status, 200, 'still HTTPS')
  for (const attempt of ['first', 'second']) {
    t.same((await reloadConfiguration(secure, () => configFor(issuers, { server: { tls: withCa } }))).needsRestart, ['server.tls.clientCaFile'], `${attempt} reload: asking for client certificates`)
  }
  t.equal((await call(securePort, { path: '/healthz', ca: pki.pem.ca })).status, 200, 'still no client certificate asked for')

  const { app: mutual, port: mutualPort } = await listening(t, configFor(issuers, { server: { tls: withCa } }))
  t.same((await reloadConfiguration(mutual, () => configFor(issuers, { server: { tls } }))).needsRestart, ['server.tls.clientCaFile'], 'no longer asking for them')
  await t.rejects(call(mutualPort, { path: '/healthz', ca: pki.pem.ca }), 'a client without a certificate is still refused')
  t.equal((await call(mutualPort, { path: '/healthz', ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey })).status, 200)
})

t.test('readCertificates names the setting of each listener that cannot be served', async (t) => {
  const server = { setSecureContext: () => { throw new Error('not called') } }
  const listener = (setting: TlsListener['setting'], certFile: string, keyFile: string): TlsListener =>
    ({ name: setting === 'server.tls' ? 'main' : 'ops', setting, tls: { certFile, keyFile }, server })
  const good = readCertificates([listener('server.tls', renewed.cert, renewed.key)])
  t.ok(good.ok)
  if (good.ok) t.match(good.read, [{ certificate: { fingerprint256: fingerprint(renewed.cert) } }])
  const missing = join(pki.dir, 'nope.crt')
  const bad = readCertificates([listener('server.tls', missing, renewed.key), listener('server.opsTls', renewed.cert, original.key)])
  t.same(bad.ok ? [] : bad.problems.map((p) => p.setting), ['server.tls.certFile', 'server.opsTls.keyFile'], 'every problem, each with its setting')
})

t.test('renewing certificates does not wait for an identity provider', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(key) })
  const files = mountedSecret(t, original)
  const config = (): Config => configFor([{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwksUri: idp.jwksUrl }], {
    server: { tls: { certFile: files.certFile, keyFile: files.keyFile } }
  })
  const { app, port } = await listening(t, config())
  for (let i = 0; i < 100 && !app.verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok(app.verifier.ready, 'keys loaded')
  await idp.close()
  files.place(renewed)
  const result = await reloadConfiguration(app, config, { readyTimeoutMs: 300 })
  t.equal(result.outcome, 'applied')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert), 'the renewed certificate is served while the provider is down')
})

t.test('a listener whose TLS change waits for a restart keeps its certificate when its running files are gone', async (t) => {
  const dir = tempDir(t)
  const clientCaFile = join(dir, 'ca.crt')
  copyFileSync(pki.caCert, clientCaFile)
  const tls = { certFile: pki.serverCert, keyFile: pki.serverKey }
  const { lines, logger } = captureLog()
  // A day between looks at the files: the test looks itself.
  const server = { logLevel: 'info' as const, certificateCheckSeconds: 86400 }
  const { app, port } = await listening(t, configFor(issuers, { server: { ...server, tls: { ...tls, clientCaFile } } }), logger)
  // The operator drops client certificates from the configuration, and the CA file from the Secret with them.
  rmSync(clientCaFile)
  const result = await reloadConfiguration(app, () => configFor(issuers, { server: { ...server, tls } }))
  t.equal(result.outcome, 'applied', 'not refused for a file that only the running configuration names')
  t.same(result.needsRestart, ['server.tls.clientCaFile'])
  const kept = { level: 40, listener: 'main', setting: 'server.tls', problems: [/^server\.tls\.clientCaFile: cannot read ".*ca\.crt": no such file$/] }
  const keptLines = (): Array<Record<string, unknown>> => lines().filter((l) => String(l.msg).startsWith('the main listener keeps its certificate'))
  t.equal(keptLines().length, 1, 'one warning, from the reload')
  t.match(keptLines(), [{ ...kept, component: 'reload' }])
  // The look at the files finds the CA gone too: the same warning, not an error about a failed renewal.
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  t.same(await watch.check(), { 'server.tls': 'refused' })
  t.equal(keptLines().length, 2, 'one more warning, from the look')
  t.match(keptLines(), [{ ...kept, component: 'reload' }, { ...kept, component: 'tls' }])
  t.same(keptLines().map((l) => (l.problems as unknown[] | undefined)?.length), [1, 1], 'each names one problem')
  t.same(lines().filter((l) => l.level === 50), [], 'no error logged')
  await t.rejects(call(port, { path: '/healthz', ca: pki.pem.ca }), 'client certificates are still asked for, until the restart')
  t.equal((await call(port, { path: '/healthz', ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey })).status, 200, 'with the CA in use')
})

t.test('a file the new configuration names still refuses the reload while a TLS change waits for a restart', async (t) => {
  const files = mountedSecret(t, original)
  const dir = tempDir(t)
  const clientCaFile = join(dir, 'ca.crt')
  copyFileSync(pki.caCert, clientCaFile)
  const tls = { certFile: files.certFile, keyFile: files.keyFile }
  const { app, port } = await listening(t, configFor(issuers, { server: { tls: { ...tls, clientCaFile } } }))
  const next = configFor(issuers, { server: { tls } })
  // Client certificates turned off (waits for a restart), the CA file removed with them, and a broken key.
  rmSync(clientCaFile)
  writeFileSync(files.keyFile, GARBAGE_KEY)
  const result = await reloadConfiguration(app, () => next)
  t.equal(result.outcome, 'refused', 'the key is named by the new configuration too: not held')
  t.equal(result.problems.length, 1)
  t.match(result.problems, [/^server\.tls\.keyFile: expected an unencrypted PEM private key in ".*tls\.key"$/])
  t.same(result.needsRestart, ['server.tls.clientCaFile'], 'the refusal says what waits for a restart')
  t.equal((await call(port, { path: '/healthz', ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey })).status, 200, 'the listener is unchanged')
})

t.test('hasExpired reads the dates X509Certificate writes', async (t) => {
  const { validTo } = new X509Certificate(readFileSync(renewed.cert))
  t.ok(Number.isFinite(Date.parse(validTo)), `parsed: ${validTo}`)
  t.notOk(hasExpired(validTo, Date.now()), 'a certificate issued for a day has not expired')
  t.ok(hasExpired(validTo, Date.parse(validTo) + 1000), 'a second after its end it has')
  t.ok(hasExpired('Jan  1 00:00:00 2020 GMT', Date.now()))
})

t.test('without a reload: the files are looked at every certificateCheckSeconds, and a renewed certificate is served', async (t) => {
  const files = mountedSecret(t, original)
  const { lines, logger } = captureLog()
  const { app, port } = await listening(t, configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 1, tls: { certFile: files.certFile, keyFile: files.keyFile } } }), logger)
  t.ok(app.certificateWatch !== undefined, 'watching')
  files.place(renewed)
  let served = ''
  for (let i = 0; i < 40 && served !== fingerprint(renewed.cert); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    served = await servedFingerprint(port, trusting)
  }
  t.equal(served, fingerprint(renewed.cert), 'served within a few seconds, with no signal')
  t.match(lines().find((l) => String(l.msg).startsWith('TLS certificate renewed from the files of server.tls')), {
    level: 30, component: 'tls', listener: 'main', setting: 'server.tls', fingerprint256: fingerprint(renewed.cert)
  })
})

t.test('a look that finds unusable files logs once and keeps the certificate; the next change is taken', async (t) => {
  const files = mountedSecret(t, original)
  const { lines, logger } = captureLog()
  // A day between looks: the test looks itself.
  const { app, port } = await listening(t, configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } }), logger)
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  t.same(await watch.check(), { 'server.tls': 'unchanged' }, 'nothing changed since start')

  // A rotation half done: the new certificate is there, its key not yet.
  copyFileSync(renewed.cert, files.certFile)
  t.same(await watch.check(), { 'server.tls': 'refused' })
  const errors = (): Array<Record<string, unknown>> => lines().filter((l) => String(l.msg).startsWith('the files of server.tls changed but cannot be used'))
  t.equal(errors().length, 1)
  t.equal((errors()[0]?.problems as unknown[] | undefined)?.length, 1, 'one problem')
  t.match(errors(), [{ level: 50, listener: 'main', problems: [/^server\.tls\.keyFile: the private key in ".*tls\.key" does not belong to the certificate/] }])
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert), 'the certificate in use stays')
  t.same(await watch.check(), { 'server.tls': 'unchanged' }, 'the same files again: not checked nor logged again')
  t.equal(errors().length, 1, 'logged once')

  copyFileSync(renewed.key, files.keyFile)
  t.same(await watch.check(), { 'server.tls': 'renewed' }, 'the rotation completed')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert))
})

t.test('a look that finds a key of another type than the certificate\'s keeps the certificate', async (t) => {
  const files = mountedSecret(t, original)
  const { lines, logger } = captureLog()
  const { app, port } = await listening(t, configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } }), logger)
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  // A move from EC to RSA half done, the new key first: OpenSSL takes it beside the EC certificate.
  writeFileSync(files.keyFile, RSA_KEY)
  t.same(await watch.check(), { 'server.tls': 'refused' })
  t.match(lines().filter((l) => String(l.msg).startsWith('the files of server.tls changed but cannot be used')),
    [{ level: 50, problems: [/^server\.tls\.keyFile: the private key in ".*tls\.key" does not belong to the certificate/] }])
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert), 'the certificate in use stays, and handshakes work')
})

t.test('no look at the files with certificateCheckSeconds 0, or without TLS', async (t) => {
  const files = mountedSecret(t, original)
  const { app: off } = await listening(t, configFor(issuers, { server: { certificateCheckSeconds: 0, tls: { certFile: files.certFile, keyFile: files.keyFile } } }))
  t.equal(off.certificateWatch, undefined)
  const { app: plain } = await listening(t, configFor(issuers))
  t.equal(plain.certificateWatch, undefined)
})

t.test('the look compares the files with what is served, whoever put it there', async (t) => {
  const files = mountedSecret(t, original)
  const config = (): Config => configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } })
  const { lines, logger } = captureLog()
  const app = await buildApp(config(), { loggerInstance: logger })
  t.teardown(() => app.close())
  // Renewed after the listener read its files, before it is ready (revocations loading, say).
  files.place(renewed)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = portOf(app)
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  t.same(await watch.check(), { 'server.tls': 'renewed' }, 'a renewal during start-up is not missed')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert))

  files.place(original)
  t.equal((await reloadConfiguration(app, config)).outcome, 'applied')
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert))
  t.same(await watch.check(), { 'server.tls': 'unchanged' }, 'what a reload put in use is not renewed again')

  // A slow reload that read the files before a renewal, and puts them in use after it.
  const stale = readCertificates([{ name: 'main', setting: 'server.tls', tls: { certFile: original.cert, keyFile: original.key }, server: app.server as never }])
  files.place(renewed)
  if (!stale.ok) throw new Error('unreadable')
  t.same(await watch.check(), { 'server.tls': 'renewed' })
  useCertificates(stale.read)
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert), 'the older certificate went back in')
  t.same(await watch.check(), { 'server.tls': 'renewed' }, 'and the next look corrects it')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert))
  t.equal(lines().filter((l) => String(l.msg).startsWith('TLS certificate renewed')).length, 3)
})

t.test('the look skips what is not a certificate file', async (t) => {
  const files = mountedSecret(t, original)
  const { app, port } = await listening(t, configFor(issuers, { server: { certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } }))
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  rmSync(files.keyFile)
  mkdirSync(files.keyFile)
  t.same(await watch.check(), { 'server.tls': 'refused' }, 'a directory')
  rmSync(files.keyFile, { recursive: true })
  writeFileSync(files.keyFile, Buffer.alloc(MAX_SMALL_FILE_BYTES + 1, 0x41))
  t.same(await watch.check(), { 'server.tls': 'refused' }, 'a file larger than a certificate can be')
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert))
  copyFileSync(original.key, files.keyFile)
  t.same(await watch.check(), { 'server.tls': 'unchanged' }, 'back to what is served')

  // A FIFO nobody writes to: opening or reading it would wait forever.
  rmSync(files.keyFile)
  execFileSync('mkfifo', [files.keyFile])
  t.same(await watch.check(), { 'server.tls': 'refused' }, 'a FIFO is neither waited for nor read')
  t.equal(await servedFingerprint(port, trusting), fingerprint(original.cert), 'the loop kept serving')
})

t.test('looks at the files never overlap', async (t) => {
  const files = mountedSecret(t, original)
  const { lines, logger } = captureLog()
  const { app, port } = await listening(t, configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } }), logger)
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  files.place(renewed)
  const looks = [watch.check(), watch.check()]
  t.same(await Promise.all(looks), [{ 'server.tls': 'renewed' }, { 'server.tls': 'renewed' }], 'a look asked for during another is that look')
  t.equal(lines().filter((l) => String(l.msg).startsWith('TLS certificate renewed')).length, 1, 'renewed once')
  t.equal(await servedFingerprint(port, trusting), fingerprint(renewed.cert))
  t.same(await watch.check(), { 'server.tls': 'unchanged' }, 'the next look is a new one')
})

t.test('a look that does not return (a file system that stopped answering) is waited for, and logged once', async (t) => {
  // Every open hangs, as on a network mount gone away.
  let opens = 0
  patchBuiltin(t, builtin<typeof import('node:fs/promises')>('node:fs/promises'), 'open', async () => { opens++; return await new Promise<never>(() => {}) })
  const { lines, logger } = captureLog()
  const server = { setSecureContext: () => { throw new Error('not called') } }
  const app = { server, opsApp: undefined, verifierSlot: { config: configFor(issuers, { server: { tls: { certFile: original.cert, keyFile: original.key } } }) } }
  // The watch's ticks, run by hand: each is a moment the next look is due.
  const ticks: Array<() => void> = []
  const watch = new CertificateWatch(app as never, logger, (tick, intervalMs) => {
    t.equal(intervalMs, 20, 'ticks every intervalMs')
    ticks.push(tick)
    // A handle for stop()'s clearInterval that never ticks itself.
    const handle = setInterval(() => {}, intervalMs)
    clearInterval(handle)
    return handle
  })
  watch.start(20)
  t.teardown(() => { watch.stop() })
  t.equal(ticks.length, 1, 'one interval')
  const tick = ticks[0]
  if (tick === undefined) throw new Error('no interval')
  const slow = (): Array<Record<string, unknown>> => lines().filter((l) => String(l.msg).startsWith('the TLS certificate files are still being read since the last look'))
  tick()
  t.equal(opens, 1, 'the first tick starts a look, which hangs in its first open')
  t.same(slow(), [], 'nothing to say yet')
  for (let i = 0; i < 3; i++) tick()
  t.equal(slow().length, 1, 'one warning for a look that has not returned, however many ticks passed')
  t.match(slow(), [{ level: 40, intervalMs: 20 }])
  t.equal(opens, 1, 'no look was started beside it')
})
