/**
 * A key file encrypted with an empty passphrase (PKCS#8 "ENCRYPTED PRIVATE KEY", or a traditional PEM with
 * "Proc-Type: 4,ENCRYPTED"): tls.createSecureContext, which is given an empty passphrase when none is set,
 * decrypts it and makes the context, while createPrivateKey refuses any encrypted key without a passphrase. It
 * is refused everywhere as an encrypted key (an unencrypted one is expected), naming the setting and the file:
 * at start, by a reload, and by the look at the files, which keeps the certificate in use, logs it once, and
 * still looks at the other listener. Before, the look and a reload whose files changed after its configuration
 * was read threw instead (src/http/tls-reload.ts, parsePair).
 */
import t from 'tap'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import { buildOpsApp } from '../src/ops-app.js'
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

/** The renewed certificate's own key, encrypted with an empty passphrase, in both PEM forms. */
const renewedKey = createPrivateKey(readFileSync(renewed.key))
const emptyPassphrase = {
  'PKCS#8 (ENCRYPTED PRIVATE KEY)': renewedKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: '' }),
  'SEC1 (Proc-Type: 4,ENCRYPTED)': renewedKey.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: '' })
}
const KEY_PROBLEM = /^server\.tls\.keyFile: expected an unencrypted PEM private key in ".*tls\.key"$/
/** The same, as the configuration check says it: after the configuration's source. */
const CONFIG_KEY_PROBLEM = /^(c\.yaml|test): server\.tls\.keyFile: expected an unencrypted PEM private key in ".*tls\.key"$/

for (const [form, key] of Object.entries(emptyPassphrase)) {
  t.test(`${form}: refused at start, naming the setting and the file`, async (t) => {
    const files = mountedSecret(t, renewed)
    writeFileSync(files.keyFile, key)
    matchExactly(t, configProblems({ issuers, server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } }), [CONFIG_KEY_PROBLEM])
  })

  t.test(`${form}: a reload whose files changed after its configuration was read is refused, and the certificate stays`, async (t) => {
    const files = mountedSecret(t, original)
    const config = (): Config => configFor(issuers, { server: { tls: { certFile: files.certFile, keyFile: files.keyFile } } })
    const app = await listening(t, config())
    // Read while the files were good, as when cert-manager rotates them during a reload.
    const parsed = config()
    files.place(renewed)
    writeFileSync(files.keyFile, key)
    const result = await reloadConfiguration(app, () => parsed)
    t.equal(result.outcome, 'refused')
    matchExactly(t, result.problems, [KEY_PROBLEM])
    t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(original.cert), 'the certificate in use is served')

    const reread = await reloadConfiguration(app, config)
    t.equal(reread.outcome, 'refused', 'read again, the configuration itself is refused')
    matchExactly(t, reread.problems, [CONFIG_KEY_PROBLEM])
  })

  t.test(`${form}: the look at the files keeps the certificate, logs once, and still renews the other listener`, async (t) => {
    const main = mountedSecret(t, original)
    const ops = mountedSecret(t, original)
    const config = (): Config => configFor(issuers, {
      server: {
        logLevel: 'info',
        certificateCheckSeconds: 86400,
        opsPort: 0,
        tls: { certFile: main.certFile, keyFile: main.keyFile },
        opsTls: { certFile: ops.certFile, keyFile: ops.keyFile }
      }
    })
    const { lines, logger } = captureLog()
    const app = await buildApp(config(), { loggerInstance: logger })
    const opsApp = await buildOpsApp(app, config())
    t.teardown(async () => { await opsApp.close(); await app.close() })
    await app.listen({ host: '127.0.0.1', port: 0 })
    await opsApp.listen({ host: '127.0.0.1', port: 0 })
    const watch = app.certificateWatch
    if (watch === undefined) throw new Error('not watching')

    main.place(renewed)
    writeFileSync(main.keyFile, key)
    ops.place(renewed)
    t.same(await watch.check(), { 'server.tls': 'refused', 'server.opsTls': 'renewed' })
    const errors = (): Array<Record<string, unknown>> => lines().filter((l) => String(l.msg).startsWith('the files of server.tls changed but cannot be used'))
    t.match(errors(), [{ level: 50, listener: 'main', setting: 'server.tls', problems: [KEY_PROBLEM] }])
    t.notOk(lines().some((l) => String(l.msg).startsWith('looking at the TLS certificate files failed')), 'no look failed')
    t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(original.cert), 'the main listener keeps its certificate')
    t.equal(await servedFingerprint(portOf(opsApp), trusting), fingerprint(renewed.cert), 'the ops listener serves the renewed one')

    t.same(await watch.check(), { 'server.tls': 'unchanged', 'server.opsTls': 'unchanged' }, 'the same files again')
    t.equal(errors().length, 1, 'logged once')
    t.notOk(JSON.stringify(lines()).includes('PRIVATE KEY'), 'no key material in the logs')

    main.place(renewed)
    t.same(await watch.check(), { 'server.tls': 'renewed', 'server.opsTls': 'unchanged' }, 'the unencrypted key is taken')
    t.equal(await servedFingerprint(portOf(app), trusting), fingerprint(renewed.cert))
  })
}
