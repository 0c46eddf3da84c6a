/**
 * The validity of the certificates the listeners serve (src/http/tls-reload.ts): on /metrics, the notAfter and
 * notBefore of each listener's leaf certificate (oidc_verifier_tls_certificate_expiry_timestamp_seconds and
 * …_not_before_timestamp_seconds{listener}), from start and after every renewal (the look at the files, a
 * reload); in the logs, a certificate clients refuse because it is not yet valid (an error, as an expired one),
 * and one that expires soon (a warning), when put in use, and once while served as it nears its end.
 */
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { sign, X509Certificate } from 'node:crypto'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AggregatorRegistry } from 'prom-client'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import { validityState } from '../src/http/tls-reload.js'
import { ServiceMetrics } from '../src/metrics/metrics.js'
import { buildOpsApp } from '../src/ops-app.js'
import { reloadConfiguration } from '../src/reload.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { mountedSecret, tempDir } from './helpers/temp-dir.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'

const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }]
const pki = makeTestPki()
t.teardown(() => { pki.remove() })

const DAY = 86_400_000
/** Dates a whole second away from now, as certificates have them. */
const at = (offsetMs: number): Date => new Date(Math.floor((Date.now() + offsetMs) / 1000) * 1000)
const EXPIRY = 'oidc_verifier_tls_certificate_expiry_timestamp_seconds'
const NOT_BEFORE = 'oidc_verifier_tls_certificate_not_before_timestamp_seconds'

type Pair = { cert: string, key: string }
const x509 = (pair: Pair): X509Certificate => new X509Certificate(readFileSync(pair.cert))
const notAfterOf = (pair: Pair): number => Date.parse(x509(pair).validTo) / 1000
const notBeforeOf = (pair: Pair): number => Date.parse(x509(pair).validFrom) / 1000

/** What was said of a certificate's validity: the log lines at warn or error that name one. */
const said = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
  lines.filter((l) => Number(l.level) >= 40 && String(l.msg).startsWith('the certificate of the '))

async function gauges (app: { inject: Awaited<ReturnType<typeof buildApp>>['inject'] }): Promise<(name: string, listener: string) => number | undefined> {
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  return (name, listener) => valueOf(samples, name, { listener })
}

t.test('each listener\'s certificate validity is a gauge from start; none without TLS; nothing logged of valid certificates', async (t) => {
  const main = { cert: pki.serverCert, key: pki.serverKey }
  const ops = pki.dated('ops-long', at(-10 * DAY), at(80 * DAY))
  const { lines, logger } = captureLog()
  const config = configFor(issuers, { server: { logLevel: 'info', opsPort: 0, tls: { certFile: main.cert, keyFile: main.key }, opsTls: { certFile: ops.cert, keyFile: ops.key } } })
  const app = await buildApp(config, { loggerInstance: logger })
  const opsApp = await buildOpsApp(app, config)
  t.teardown(async () => { await opsApp.close(); await app.close() })
  const v = await gauges(opsApp)
  t.equal(v(EXPIRY, 'main'), notAfterOf(main), 'the main listener\'s notAfter, in seconds')
  t.equal(v(EXPIRY, 'ops'), notAfterOf(ops), 'the ops listener\'s own')
  t.equal(v(NOT_BEFORE, 'main'), notBeforeOf(main))
  t.equal(v(NOT_BEFORE, 'ops'), notBeforeOf(ops))
  t.same(said(lines()), [], 'a certificate of a day, fresh, and one of 90 days with 80 left: nothing said')
  t.same(lines().filter((l) => Number(l.level) >= 40), [], 'no warning nor error at all')

  const plain = await buildApp(configFor(issuers))
  t.teardown(() => plain.close())
  const text = (await plain.inject({ method: 'GET', url: '/metrics' })).body
  t.notMatch(text, /oidc_verifier_tls_certificate/, 'no TLS, no certificate series')
})

t.test('the gauges follow a renewed certificate: the look at the files, then a reload', async (t) => {
  const original = pki.dated('original', at(-60 * DAY), at(30 * DAY))
  const looked = pki.dated('looked', at(-DAY), at(89 * DAY))
  const reloaded = pki.dated('reloaded', at(-2 * DAY), at(88 * DAY))
  const files = mountedSecret(t, original)
  const { lines, logger } = captureLog()
  const config = (): Config => configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } })
  const app = await buildApp(config(), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const watch = app.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  t.equal((await gauges(app))(EXPIRY, 'main'), notAfterOf(original))

  files.place(looked)
  t.same(await watch.check(), { 'server.tls': 'renewed' })
  let v = await gauges(app)
  t.equal(v(EXPIRY, 'main'), notAfterOf(looked), 'the renewed notAfter once the look put it in use')
  t.equal(v(NOT_BEFORE, 'main'), notBeforeOf(looked))
  t.equal(v(EXPIRY, 'ops'), undefined, 'no ops listener, no series for it')

  files.place(reloaded)
  t.equal((await reloadConfiguration(app, config)).outcome, 'applied')
  v = await gauges(app)
  t.equal(v(EXPIRY, 'main'), notAfterOf(reloaded), 'and after a reload')
  t.equal(v(NOT_BEFORE, 'main'), notBeforeOf(reloaded))

  // Files that cannot be used are not served: the gauge stays with what is.
  copyFileSync(original.cert, files.certFile)
  t.same(await watch.check(), { 'server.tls': 'refused' })
  t.equal((await gauges(app))(EXPIRY, 'main'), notAfterOf(reloaded), 'a refused certificate is not what is served')
  t.same(said(lines()), [], 'nothing said of valid certificates')
})

t.test('a certificate not yet valid is logged as an error: at start, and when the look puts one in use', async (t) => {
  const tomorrow = pki.dated('tomorrow', at(DAY), at(91 * DAY))
  const later = pki.dated('later', at(2 * DAY), at(92 * DAY))
  const files = mountedSecret(t, tomorrow)
  const { lines, logger } = captureLog()
  const config = configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } })
  const app = await buildApp(config, { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const { validFrom, validTo, fingerprint256 } = x509(tomorrow)
  t.match(said(lines()), [{
    level: 50, listener: 'main', setting: 'server.tls', validFrom, validTo, fingerprint256,
    msg: `the certificate of the main listener (server.tls.certFile) is not valid before ${validFrom}, and clients refuse it until then: ` +
      'check the clock of this host (and of the issuing CA), or serve a certificate that is already valid'
  }])
  t.equal(said(lines()).length, 1)
  t.equal((await gauges(app))(NOT_BEFORE, 'main'), notBeforeOf(tomorrow), 'the gauge shows it too: not_before > time()')

  files.place(later)
  t.same(await app.certificateWatch?.check(), { 'server.tls': 'renewed' })
  t.match(said(lines())[1], { level: 50, component: 'tls', listener: 'main', validFrom: x509(later).validFrom, msg: /is not valid before/ })
  t.equal(said(lines()).length, 2, 'once per certificate put in use')
})

t.test('a certificate that expires soon is a warning: at start, when put in use, and once while served as it nears its end', async (t) => {
  const soon = pki.dated('soon', at(-60 * DAY), at(3 * DAY + 3_600_000))
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor(issuers, { server: { logLevel: 'info', tls: { certFile: soon.cert, keyFile: soon.key } } }), { loggerInstance: logger })
  t.teardown(() => app.close())
  const { validTo, fingerprint256 } = x509(soon)
  t.match(said(lines()), [{
    level: 40, listener: 'main', setting: 'server.tls', validTo, fingerprint256,
    msg: `the certificate of the main listener (server.tls.certFile) expires on ${validTo}, in 3 days 0 hours; ` +
      'renew it (is its renewal, cert-manager or the like, running?): clients refuse it once expired'
  }])
  t.equal(said(lines()).length, 1)

  // Served unchanged for weeks: the look at the files says it once it nears its end, and once it has ended.
  const long = pki.dated('long', at(-10 * DAY), at(20 * DAY))
  const files = mountedSecret(t, long)
  const watched = captureLog()
  const served = await buildApp(configFor(issuers, { server: { logLevel: 'info', certificateCheckSeconds: 86400, tls: { certFile: files.certFile, keyFile: files.keyFile } } }), { loggerInstance: watched.logger })
  t.teardown(() => served.close())
  await served.ready()
  const watch = served.certificateWatch
  if (watch === undefined) throw new Error('not watching')
  t.same(await watch.check(), { 'server.tls': 'unchanged' })
  t.same(said(watched.lines()), [], '20 days left: nothing')
  const realNow = Date.now
  let offsetMs = 0
  Date.now = () => realNow() + offsetMs
  t.teardown(() => { Date.now = realNow })
  offsetMs = 14 * DAY
  t.same(await watch.check(), { 'server.tls': 'unchanged' })
  t.match(said(watched.lines()), [{ level: 40, component: 'tls', listener: 'main', validTo: x509(long).validTo, msg: /expires on .*, in 5 days 23 hours; renew it/ }])
  await watch.check()
  t.equal(said(watched.lines()).length, 1, 'said once, not at every look')
  offsetMs = 21 * DAY
  await watch.check()
  t.match(said(watched.lines())[1], { level: 50, component: 'tls', msg: `the certificate of the main listener (server.tls.certFile) expired on ${x509(long).validTo}; renew it` })
  await watch.check()
  t.equal(said(watched.lines()).length, 2, 'and its end once')
})

t.test('expires soon: a week before its end, or a third of its lifetime when that is shorter', async (t) => {
  const now = Date.parse('2026-06-01T00:00:00Z')
  const cert = (from: number, to: number): { validFrom: string, validTo: string } => ({ validFrom: new Date(now + from).toUTCString(), validTo: new Date(now + to).toUTCString() })
  t.equal(validityState(cert(-80 * DAY, 8 * DAY), now), 'valid', '90 days, 8 left')
  t.equal(validityState(cert(-83 * DAY, 7 * DAY - 60_000), now), 'expiresSoon', '90 days, a minute short of 7 left')
  t.equal(validityState(cert(-14 * 3_600_000, 10 * 3_600_000), now), 'valid', 'a day, 10 hours left: not yet renewed, nothing amiss')
  t.equal(validityState(cert(-17 * 3_600_000, 7 * 3_600_000), now), 'expiresSoon', 'a day, 7 hours left: its renewal, due at 16 hours, did not come')
  t.equal(validityState(cert(-DAY, 0), now), 'expired', 'at notAfter')
  t.equal(validityState(cert(1000, DAY), now), 'notYetValid', 'a second before notBefore')
  t.equal(validityState(cert(0, DAY), now), 'valid', 'at notBefore')
})

t.test('with WORKERS, the host shows its worst worker: the earliest expiry, the latest notBefore', async (t) => {
  // Two workers between looks: one has picked up the renewal, the other still serves the old certificate.
  const old = { listener: 'main' as const, notBefore: Date.parse('2026-01-01T00:00:00Z'), notAfter: Date.parse('2026-04-01T00:00:00Z') }
  const renewed = { listener: 'main' as const, notBefore: Date.parse('2026-03-01T00:00:00Z'), notAfter: Date.parse('2026-06-01T00:00:00Z') }
  const workers = [old, renewed].map((c) => new ServiceMetrics({ status: () => [], tlsCertificates: () => [c] }))
  const host = AggregatorRegistry.aggregate(await Promise.all(workers.map(async (w) => await w.registry.getMetricsAsJSON())))
  const samples = parseMetrics(await host.metrics())
  t.equal(valueOf(samples, EXPIRY, { listener: 'main' }), old.notAfter / 1000, 'min: expiry alerts fire while one worker serves the old certificate')
  t.equal(valueOf(samples, NOT_BEFORE, { listener: 'main' }), renewed.notBefore / 1000, 'max: a worker serving a certificate not yet valid shows')
})

/**
 * A self-signed server certificate whose notAfter OpenSSL cannot read (a UTCTime with month 13), signed again:
 * Node serves it, X509Certificate's validTo is "Bad time value", and clients refuse it. Paths of the pair.
 */
function unreadableNotAfter (t: Test): Pair {
  const dir = tempDir(t)
  const pair = { cert: join(dir, 'bad.crt'), key: join(dir, 'bad.key') }
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=127.0.0.1',
    '-keyout', pair.key, '-out', pair.cert], { stdio: ['ignore', 'ignore', 'pipe'] })
  const der = new X509Certificate(readFileSync(pair.cert)).raw
  /** The header length and content length of the DER element at `at`. */
  const element = (at: number): [number, number] => {
    const first = der[at + 1] ?? 0
    if (first < 0x80) return [2, first]
    let length = 0
    for (let i = 0; i < (first & 0x7f); i++) length = length * 256 + (der[at + 2 + i] ?? 0)
    return [2 + (first & 0x7f), length]
  }
  const times: number[] = []
  // The two UTCTimes of the validity: tag 0x17, length 13, YYMMDDHHMMSSZ (not bytes of the random serial that look alike).
  for (let i = 0; i < der.length - 15; i++) if (der[i] === 0x17 && der[i + 1] === 0x0d && /^\d{12}Z$/.test(der.toString('latin1', i + 2, i + 15))) times.push(i)
  der.write('261399235959Z', (times[1] ?? 0) + 2, 'latin1')
  const [outer] = element(0)
  const [tbsHead, tbsLength] = element(outer)
  const tbs = der.subarray(outer, outer + tbsHead + tbsLength)
  const [algHead, algLength] = element(outer + tbsHead + tbsLength)
  const alg = der.subarray(outer + tbsHead + tbsLength, outer + tbsHead + tbsLength + algHead + algLength)
  const length = (n: number): Buffer => Buffer.from(n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff])
  const signature = sign('sha256', tbs, readFileSync(pair.key))
  const bits = Buffer.concat([Buffer.from([0x03]), length(signature.length + 1), Buffer.from([0]), signature])
  const body = Buffer.concat([tbs, alg, bits])
  const cert = Buffer.concat([Buffer.from([0x30]), length(body.length), body])
  writeFileSync(pair.cert, `-----BEGIN CERTIFICATE-----\n${cert.toString('base64').match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END CERTIFICATE-----\n`)
  return pair
}

t.test('a certificate whose validity cannot be read is an error, and its expiry gauge fires the alert', async (t) => {
  const bad = unreadableNotAfter(t)
  t.equal(x509(bad).validTo, 'Bad time value', 'what Node says of it')
  t.equal(validityState({ validFrom: x509(bad).validFrom, validTo: 'Bad time value' }, Date.now()), 'unreadable')
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor(issuers, { server: { logLevel: 'info', tls: { certFile: bad.cert, keyFile: bad.key } } }), { loggerInstance: logger })
  t.teardown(() => app.close())
  t.match(said(lines()), [{ level: 50, listener: 'main', validTo: 'Bad time value', msg: /cannot be read.*clients refuse it/ }], 'said, as an expired one')
  const v = await gauges(app)
  t.equal(v(EXPIRY, 'main'), 0, 'not NaN (an alert on `expiry - time() < …` is false on NaN): 0, as long expired')
})
