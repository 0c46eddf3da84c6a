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
import { createHash, X509Certificate } from 'node:crypto'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { clientCaProblem } from '../config/operations.js'
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
  certificate: { fingerprint256: string, validTo: string }
}

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

/** OpenSSL's reason, without its error number: "error:05800074:x509 certificate routines::key values mismatch". */
function opensslReason (err: unknown): string {
  return String((err as Error).message).split('::').pop() ?? 'refused'
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
  if ((err as NodeJS.ErrnoException).code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
    return new TlsProblem(`${setting}.keyFile`, `the private key in ${JSON.stringify(tls.keyFile)} does not belong to the certificate in ` +
      `${setting}.certFile (${JSON.stringify(tls.certFile)}); replace both files together`)
  }
  return new TlsProblem(setting, `the certificate and key in ${JSON.stringify(tls.certFile)} and ${JSON.stringify(tls.keyFile)} cannot be used (${opensslReason(err)})`)
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
  const ca = caProblem(setting, tls, options.ca)
  if (ca !== undefined) return ca
  const { fingerprint256, validTo } = new X509Certificate(options.cert as Buffer)
  return { listener, options, certificate: { fingerprint256, validTo } }
}

/** Whether a certificate's validTo, as X509Certificate writes it ("Nov 26 15:00:00 2027 GMT"), has passed. */
export function hasExpired (validTo: string, nowMs: number): boolean {
  return Date.parse(validTo) <= nowMs
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
  for (const { listener, options } of read) {
    try {
      // A new context comes with new session ticket keys: clients make a full handshake once afterwards. Kept
      // so on purpose: a session resumed with the old keys would skip the check against a rotated client CA.
      listener.server.setSecureContext(options)
      noteInUse(listener.server, options)
    } catch (err) {
      failures.push({ listener, err: err as Error })
    }
  }
  return failures
}

/**
 * Puts certificates in use (useCertificates) and logs what went wrong: a listener that could not take them
 * keeps its own, and a certificate that has already expired is served all the same (the one before may be no
 * better) but logged as an error, since clients will refuse it. Returns the certificates now in use, which
 * the caller (a reload, the look at the files) reports in its own words.
 */
export function putInUse (log: FastifyBaseLogger, read: readonly ListenerCertificates[]): ListenerCertificates[] {
  const failed = useCertificates(read)
  for (const { listener, err } of failed) {
    log.error({ listener: listener.name, setting: listener.setting, err }, `the ${listener.name} listener could not take the certificate read from ${listener.setting}; it keeps serving the previous one`)
  }
  const renewed = read.filter((r) => !failed.some((f) => f.listener === r.listener))
  for (const { listener, certificate } of renewed) logIfExpired(log, listener, certificate)
  return renewed
}

/** An error when a listener's certificate has expired (clients refuse it): when one is put in use, and at start. */
export function logIfExpired (log: FastifyBaseLogger, listener: Pick<TlsListener, 'name' | 'setting'>, certificate: ListenerCertificates['certificate']): void {
  if (!hasExpired(certificate.validTo, Date.now())) return
  log.error({ listener: listener.name, setting: listener.setting, ...certificate }, `the certificate of the ${listener.name} listener (${listener.setting}.certFile) expired on ${certificate.validTo}; renew it`)
}

/** What a listener is built with: noted as in use (noteInUse), and an error logged if it has already expired. */
export function startServing (log: FastifyBaseLogger, listener: Pick<TlsListener, 'name' | 'setting'>, server: object, options: SecureContextOptions): void {
  noteInUse(server, options)
  const { fingerprint256, validTo } = new X509Certificate(options.cert as Buffer)
  logIfExpired(log, listener, { fingerprint256, validTo })
}
