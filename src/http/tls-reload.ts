/**
 * Certificates renewed by a configuration reload (src/reload.ts). cert-manager and the like rotate a
 * certificate by replacing the files of a mounted Secret, at the same paths: so every reload reads the files
 * of server.tls and server.opsTls again, whether their paths changed or not, and puts them in use with
 * server.setSecureContext(). New connections get the new certificate; open ones keep theirs.
 *
 * The files of every listener are read and checked (tls.createSecureContext, the same call the listener
 * makes) before any listener is touched, so a reload is refused as a whole when one cannot be used, and every
 * listener keeps serving the certificate it has. Only the secure context changes: whether a listener speaks
 * TLS at all, and whether it asks for client certificates (requestCert), are fixed when it is created.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { certificateOrderProblem, clientCaProblem, opensslReason } from '../config/operations.js'
import { fileErrorReason } from '../small-file.js'
import type { Config, TlsConfig } from '../config/types.js'
import { httpsOptions } from './tls.js'

export type TlsFile = keyof TlsConfig

/** A listener that speaks TLS, with the settings its certificates come from. */
export interface TlsListener {
  /** Its name in logs: main or ops. */
  name: 'main' | 'ops'
  /** The setting it is configured by, as problems name it: server.tls or server.opsTls. */
  setting: 'server.tls' | 'server.opsTls'
  tls: TlsConfig
  server: Pick<TlsServer, 'setSecureContext'>
}

/** A listener's certificates, read and checked, ready to be put in use. */
export interface ListenerCertificates {
  listener: TlsListener
  options: SecureContextOptions
  /** What a log line may say of the certificate now served (public; the key is never logged). */
  certificate: ServedCertificate
}

/** The leaf certificate of a listener (the first of its certificate file), as logs say it. */
export interface ServedCertificate { fingerprint256: string, validFrom: string, validTo: string }

/**
 * Why a listener's files cannot be served, and the setting to fix: the file's own setting
 * ("server.tls.keyFile"), or the listener's ("server.tls") when OpenSSL refuses the pair as a whole. Its text
 * is what logs and reload results say: "server.tls.keyFile: expected an unencrypted PEM private key in …".
 */
export class TlsProblem {
  constructor (readonly setting: string, readonly reason: string) {}

  toString (): string {
    return `${this.setting}: ${this.reason}`
  }
}

export type CertificatesOrProblems = { ok: true, read: ListenerCertificates[] } | { ok: false, problems: TlsProblem[] }

/**
 * The listeners of `app` that speak TLS under `config` (the configuration in force, whose server.tls and
 * server.opsTls are on exactly when they were at start: turning TLS on or off needs a restart).
 */
export function tlsListeners (app: FastifyInstance, config: Config): TlsListener[] {
  const listeners: TlsListener[] = []
  const { tls, opsTls } = config.server
  // An https server under Fastify's http typing: buildApp and buildOpsApp made it with these settings.
  if (tls !== undefined) listeners.push({ name: 'main', setting: 'server.tls', tls, server: app.server as unknown as TlsServer })
  if (opsTls !== undefined && app.opsApp !== undefined) {
    listeners.push({ name: 'ops', setting: 'server.opsTls', tls: opsTls, server: app.opsApp.server as unknown as TlsServer })
  }
  return listeners
}

function refusedBy (options: SecureContextOptions): unknown {
  try {
    createSecureContext(options)
    return undefined
  } catch (err) {
    return err
  }
}

/** Which file OpenSSL refused, tried one at a time: the context was refused as a whole. */
function blame (setting: string, tls: TlsConfig, options: SecureContextOptions, err: unknown): TlsProblem {
  const certError = refusedBy({ cert: options.cert })
  if (certError !== undefined) {
    return new TlsProblem(`${setting}.certFile`, `expected a PEM certificate (chain) in ${JSON.stringify(tls.certFile)} (${opensslReason(certError)})`)
  }
  // Never the key's content, nor OpenSSL's words about it: only that it is not a usable key.
  if (refusedBy({ key: options.key }) !== undefined) {
    return new TlsProblem(`${setting}.keyFile`, `expected an unencrypted PEM private key in ${JSON.stringify(tls.keyFile)}`)
  }
  if ((err as NodeJS.ErrnoException).code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') return keyMismatch(setting, tls, options)
  return new TlsProblem(setting, `the certificate and key in ${JSON.stringify(tls.certFile)} and ${JSON.stringify(tls.keyFile)} cannot be used (${opensslReason(err)})`)
}

/** A key that is not the first certificate's: a later one's (the file in reverse order), or another certificate's. */
function keyMismatch (setting: string, tls: TlsConfig, options: SecureContextOptions, parsed?: KeyObject): TlsProblem {
  let key = parsed
  try {
    key ??= createPrivateKey(options.key as Buffer)
  } catch {
    return keyOfAnotherCertificate(setting, tls)
  }
  const order = certificateOrderProblem(tls.certFile, `${setting}.keyFile`, options.cert as Buffer, key)
  return order === undefined ? keyOfAnotherCertificate(setting, tls) : new TlsProblem(`${setting}.certFile`, order)
}

function keyOfAnotherCertificate (setting: string, tls: TlsConfig): TlsProblem {
  return new TlsProblem(`${setting}.keyFile`, `the private key in ${JSON.stringify(tls.keyFile)} does not belong to the certificate in ` +
    `${setting}.certFile (${JSON.stringify(tls.certFile)}); replace both files together`)
}

/** The leaf certificate and the key of bytes createSecureContext accepted, parsed by node:crypto. */
interface ParsedPair { leaf: X509Certificate, key: KeyObject }

/**
 * Parses what createSecureContext accepted, for the checks it does not make. Not every such file parses: an
 * encrypted key (ENCRYPTED PRIVATE KEY, or Proc-Type: 4,ENCRYPTED) whose passphrase is empty is decrypted by
 * createSecureContext, which asks for no passphrase and is given an empty one, while createPrivateKey refuses
 * any encrypted key without a passphrase. Such a key is refused here as at start (an unencrypted key is
 * expected): a problem, never a throw, which would end the look at the files (and every listener after this
 * one) or a reload whose files changed after its configuration was read. Leaves no OpenSSL error behind
 * (test/openssl-error-queue.test.ts).
 */
function parsePair (setting: string, tls: TlsConfig, options: SecureContextOptions): ParsedPair | TlsProblem {
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(options.cert as Buffer)
  } catch {
    return new TlsProblem(`${setting}.certFile`, `expected a PEM certificate (chain) in ${JSON.stringify(tls.certFile)}`)
  }
  try {
    return { leaf, key: createPrivateKey(options.key as Buffer) }
  } catch {
    // Never the key's content, nor OpenSSL's words about it.
    return new TlsProblem(`${setting}.keyFile`, `expected an unencrypted PEM private key in ${JSON.stringify(tls.keyFile)}`)
  }
}

/**
 * Whether the key is the leaf certificate's. createSecureContext compares them only when they are of one type:
 * OpenSSL files a key of another type (an RSA key beside an EC certificate) under that type, the context is made,
 * and every handshake then fails, the certificate having no key. X509Certificate.checkPrivateKey compares across
 * types and leaves no OpenSSL error behind (test/openssl-error-queue.test.ts).
 */
function keyBelongsToCertificate ({ leaf, key }: ParsedPair): boolean {
  return leaf.checkPrivateKey(key)
}

/**
 * The client CA is checked apart: OpenSSL ignores what is not a certificate in it, which would leave the
 * listener with no CA at all, refusing every client.
 */
function caProblem (setting: string, tls: TlsConfig, ca: SecureContextOptions['ca']): TlsProblem | undefined {
  if (tls.clientCaFile === undefined || !Buffer.isBuffer(ca)) return undefined
  const problem = clientCaProblem(tls.clientCaFile, ca)
  return problem === undefined ? undefined : new TlsProblem(`${setting}.clientCaFile`, problem)
}

/**
 * What each TLS server serves now: a digest of the certificate, key and CA bytes it was built with or last
 * given (noteInUse), so that a look at the files (src/http/tls-watch.ts) compares them with what is in use,
 * whoever put it there. Never logged.
 */
const inUse = new WeakMap<object, string>()

/** A digest of a listener's certificate, key and CA bytes. */
export function optionsDigest (options: SecureContextOptions): string {
  const hash = createHash('sha256')
  for (const part of [options.cert, options.key, options.ca]) hash.update(part === undefined ? '-' : Buffer.isBuffer(part) ? part : String(part)).update('\0')
  return hash.digest('base64')
}

/** Records what `server` serves: at its creation (buildApp, buildOpsApp) and whenever it is given new certificates. */
export function noteInUse (server: object, options: SecureContextOptions): void {
  inUse.set(server, optionsDigest(options))
}

/**
 * Per TLS server: the leaf certificate it serves (noted by startServing and useCertificates), with the state of its
 * validity last logged, so that the look at the files logs a certificate that nears its end while served, once.
 */
const served = new WeakMap<object, { certificate: ServedCertificate, logged: ValidityState }>()

/** The leaf certificate (the first of the chain) of a listener's options, as logs say it. */
export function leafCertificate (options: SecureContextOptions): ServedCertificate {
  return servedCertificate(new X509Certificate(options.cert as Buffer))
}

function servedCertificate ({ fingerprint256, validFrom, validTo }: X509Certificate): ServedCertificate {
  return { fingerprint256, validFrom, validTo }
}

/** The validity of the leaf certificate each of `listeners` serves, in milliseconds since the epoch (for /metrics). */
export function servedValidity (listeners: ReadonlyArray<Pick<TlsListener, 'name' | 'server'>>): Array<{ listener: 'main' | 'ops', notBefore: number, notAfter: number }> {
  return listeners.flatMap(({ name, server }) => {
    const certificate = served.get(server)?.certificate
    if (certificate === undefined) return []
    // A date OpenSSL could not read (validityState: unreadable) is 0, as long past: NaN would make any alert on it false.
    const ms = (date: string): number => { const parsed = Date.parse(date); return Number.isNaN(parsed) ? 0 : parsed }
    return [{ listener: name, notBefore: ms(certificate.validFrom), notAfter: ms(certificate.validTo) }]
  })
}

/** The digest of what `server` serves (undefined for a server nobody noted). */
export function digestInUse (server: object): string | undefined {
  return inUse.get(server)
}

/**
 * Per TLS server: the file settings that only the running configuration names ("server.tls.clientCaFile"),
 * kept in force because their change waits for a restart (noted by every applied reload). When those files
 * cannot be used, the listener keeps what it serves until the restart: a warning, not an error.
 */
const waitingForRestart = new WeakMap<object, ReadonlySet<string>>()

/** Records which of a listener's file settings wait for a restart (none: an empty list). */
export function noteWaitingForRestart (server: object, settings: Iterable<string>): void {
  waitingForRestart.set(server, new Set(settings))
}

/** Whether every problem is with a file whose change waits for a restart on this listener. */
export function onlyWaitingFiles (listener: TlsListener, problems: readonly TlsProblem[]): boolean {
  const waiting = waitingForRestart.get(listener.server)
  return waiting !== undefined && problems.every((p) => waiting.has(p.setting))
}

/** What is logged of a listener that keeps its certificate while a change of its TLS settings waits for a restart. */
export function keptUntilRestartMessage (listener: TlsListener): string {
  return `the ${listener.name} listener keeps its certificate: the files of ${listener.setting} in force cannot be used, ` +
    'and its TLS settings changed and wait for a restart'
}

/** Reads a listener's files, or says which one cannot be read. */
export function readListenerFiles (listener: TlsListener): SecureContextOptions | TlsProblem {
  const { setting, tls } = listener
  try {
    return httpsOptions(tls)
  } catch (err) {
    const path = (err as NodeJS.ErrnoException).path
    const file = (['certFile', 'keyFile', 'clientCaFile'] as TlsFile[]).find((name) => path !== undefined && tls[name] === path)
    if (file === undefined) return new TlsProblem(setting, `cannot read its files: ${(err as Error).message}`)
    return unreadable(listener, file, err)
  }
}

/** A file of a listener that could not be read, and why ("no such file", "permission denied", …). */
export function unreadable (listener: TlsListener, file: TlsFile, err: unknown): TlsProblem {
  return new TlsProblem(`${listener.setting}.${file}`, `cannot read ${JSON.stringify(listener.tls[file])}: ${fileErrorReason(err)}`)
}

/** Reads a listener's files once (the bytes checked are the bytes used) and checks them. */
function readListener (listener: TlsListener): ListenerCertificates | TlsProblem {
  const options = readListenerFiles(listener)
  return options instanceof TlsProblem ? options : checkListener(listener, options)
}

/** Checks bytes read for a listener as the listener would use them. */
export function checkListener (listener: TlsListener, options: SecureContextOptions): ListenerCertificates | TlsProblem {
  const { setting, tls } = listener
  const refused = refusedBy(options)
  if (refused !== undefined) return blame(setting, tls, options, refused)
  const pair = parsePair(setting, tls, options)
  if (pair instanceof TlsProblem) return pair
  if (!keyBelongsToCertificate(pair)) return keyMismatch(setting, tls, options, pair.key)
  const ca = caProblem(setting, tls, options.ca)
  if (ca !== undefined) return ca
  return { listener, options, certificate: servedCertificate(pair.leaf) }
}

/** Whether a certificate's validTo, as X509Certificate writes it ("Nov 26 15:00:00 2027 GMT"), has passed. */
export function hasExpired (validTo: string, nowMs: number): boolean {
  return Date.parse(validTo) <= nowMs
}

/**
 * A certificate expires soon when less than this is left: a week, time for a person to act on a warning; less
 * for a certificate that lives less than three weeks (below).
 */
export const EXPIRES_SOON_MS = 7 * 86_400_000

/**
 * What clients make of a certificate: `notYetValid`, `expired` and `unreadable` (a date OpenSSL cannot read:
 * X509Certificate says "Bad time value", yet the certificate is served) are refused; `expiresSoon` not yet.
 */
export type ValidityState = 'valid' | 'expiresSoon' | 'expired' | 'notYetValid' | 'unreadable'

/**
 * The state of a certificate at `nowMs`: `expiresSoon` once less than EXPIRES_SOON_MS is left, or less than a
 * third of its lifetime when that is shorter: a short-lived certificate (a day, an hour) is renewed at two thirds
 * of its life (cert-manager's default), so one with less left missed its renewal, while one freshly issued is no
 * warning.
 */
export function validityState (certificate: Pick<ServedCertificate, 'validFrom' | 'validTo'>, nowMs: number): ValidityState {
  const notBefore = Date.parse(certificate.validFrom)
  const notAfter = Date.parse(certificate.validTo)
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) return 'unreadable'
  if (hasExpired(certificate.validTo, nowMs)) return 'expired'
  if (notBefore > nowMs) return 'notYetValid'
  return notAfter - nowMs < Math.min(EXPIRES_SOON_MS, (notAfter - notBefore) / 3) ? 'expiresSoon' : 'valid'
}

/** Reads and checks the certificates of every listener; the problems of all of them, or none. */
export function readCertificates (listeners: readonly TlsListener[]): CertificatesOrProblems {
  const results = listeners.map(readListener)
  const problems = results.filter((r) => r instanceof TlsProblem)
  return problems.length > 0 ? { ok: false, problems } : { ok: true, read: results as ListenerCertificates[] }
}

/**
 * Puts certificates read by readCertificates in use. They were checked with the same call, so this does not
 * fail in practice; if it did for one listener, that one keeps its certificate: returned, never thrown.
 */
export function useCertificates (read: readonly ListenerCertificates[]): Array<{ listener: TlsListener, err: Error }> {
  const failures: Array<{ listener: TlsListener, err: Error }> = []
  for (const { listener, options, certificate } of read) {
    try {
      // A new context comes with new session ticket keys: clients make a full handshake once afterwards. Kept
      // so on purpose: a session resumed with the old keys would skip the check against a rotated client CA.
      listener.server.setSecureContext(options)
      noteInUse(listener.server, options)
      served.set(listener.server, { certificate, logged: 'valid' })
    } catch (err) {
      failures.push({ listener, err: err as Error })
    }
  }
  return failures
}

/**
 * Puts certificates in use (useCertificates) and logs what went wrong: a listener that could not take them
 * keeps its own, and a certificate that clients will refuse (expired, or not yet valid) is served all the same
 * (the one before may be no better) but logged as an error; one that expires soon, as a warning. Returns the
 * certificates now in use, which the caller (a reload, the look at the files) reports in its own words.
 */
export function putInUse (log: FastifyBaseLogger, read: readonly ListenerCertificates[]): ListenerCertificates[] {
  const failed = useCertificates(read)
  for (const { listener, err } of failed) {
    log.error({ listener: listener.name, setting: listener.setting, err }, `the ${listener.name} listener could not take the certificate read from ${listener.setting}; it keeps serving the previous one`)
  }
  const renewed = read.filter((r) => !failed.some((f) => f.listener === r.listener))
  for (const { listener } of renewed) logValidity(log, listener, listener.server, Date.now(), true)
  return renewed
}

/** A duration as a log line says it: "3 days 4 hours", "5 hours 12 minutes", "40 minutes". */
function remaining (ms: number): string {
  const minutes = Math.max(0, Math.floor(ms / 60_000))
  const [days, hours] = [Math.floor(minutes / 1440), Math.floor(minutes / 60) % 24]
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`
  if (days > 0) return `${plural(days, 'day')} ${plural(hours, 'hour')}`
  return hours > 0 ? `${plural(hours, 'hour')} ${plural(minutes % 60, 'minute')}` : plural(minutes, 'minute')
}

/**
 * Logs the validity of the certificate `server` serves (noted by startServing or useCertificates) when clients
 * refuse it or it expires soon: when it is put in use (`always`: whatever was logged of the one before), or,
 * from the look at the files, when its state has changed since it was last logged (a certificate that nears
 * its end, or ends, while served: once each). Nothing for a valid certificate.
 */
export function logValidity (log: FastifyBaseLogger, listener: Pick<TlsListener, 'name' | 'setting'>, server: object, nowMs: number, always = false): void {
  const entry = served.get(server)
  if (entry === undefined) return
  const { certificate } = entry
  const state = validityState(certificate, nowMs)
  if (!always && state === entry.logged) return
  entry.logged = state
  const { name, setting } = listener
  const fields = { listener: name, setting, ...certificate }
  const file = `the certificate of the ${name} listener (${setting}.certFile)`
  if (state === 'expired') {
    log.error(fields, `${file} expired on ${certificate.validTo}; renew it`)
  } else if (state === 'notYetValid') {
    log.error(fields, `${file} is not valid before ${certificate.validFrom}, and clients refuse it until then: ` +
      'check the clock of this host (and of the issuing CA), or serve a certificate that is already valid')
  } else if (state === 'unreadable') {
    log.error(fields, `${file} has a validity that cannot be read (from ${certificate.validFrom} to ${certificate.validTo}), and clients refuse it; renew it`)
  } else if (state === 'expiresSoon') {
    log.warn(fields, `${file} expires on ${certificate.validTo}, in ${remaining(Date.parse(certificate.validTo) - nowMs)}; ` +
      'renew it (is its renewal, cert-manager or the like, running?): clients refuse it once expired')
  }
}

/**
 * What a listener is built with: noted as in use (noteInUse), and logged if clients refuse it (expired, not yet
 * valid) or it expires soon.
 */
export function startServing (log: FastifyBaseLogger, listener: Pick<TlsListener, 'name' | 'setting'>, server: object, options: SecureContextOptions): void {
  noteInUse(server, options)
  served.set(server, { certificate: leafCertificate(options), logged: 'valid' })
  logValidity(log, listener, server, Date.now(), true)
}
