/**
 * Renewed certificates served without a signal: every server.certificateCheckSeconds the files of server.tls
 * and server.opsTls are read (a few kilobytes; through symlinks, so the swap with which Kubernetes updates a
 * mounted Secret is seen) and compared with what the listener serves now, by a digest of the bytes
 * (src/http/tls-reload.ts, noteInUse: recorded when the listener is built and whenever it is given new
 * certificates, by this look or by a configuration reload). When they differ, the files are checked and put
 * in use exactly as a reload does. New connections get them; open ones keep theirs. Comparing with what is in
 * use, not with the previous look, means nothing is missed: a renewal between the start and the first look,
 * or a reload that put older certificates in use while the files were renewed, is corrected at the next look.
 *
 * Files that differ but cannot be used (a rotation half done, a key that does not match) are logged once per
 * content, and the listener keeps serving what it has; a change of the files is looked at again. A file that
 * is not a regular file, or is larger than MAX_FILE_BYTES, is not read (a FIFO would block the event loop).
 */
import { statSync } from 'node:fs'
import type { SecureContextOptions } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { checkListener, digestInUse, optionsDigest, putInUse, readListenerFiles, tlsListeners, type TlsListener } from './tls-reload.js'

export type CertificateCheckOutcome = 'unchanged' | 'renewed' | 'refused'

/** Certificates, keys and CA bundles are kilobytes; anything larger at those paths is not one. */
export const MAX_FILE_BYTES = 1024 * 1024

/** The listener's files, read if each is a regular file of at most MAX_FILE_BYTES; else the problem. */
function readGuarded (listener: TlsListener): SecureContextOptions | string {
  for (const [file, path] of Object.entries(listener.tls)) {
    if (typeof path !== 'string') continue
    try {
      const stat = statSync(path)
      if (!stat.isFile()) return `${listener.setting}.${file}: ${JSON.stringify(path)} is not a regular file`
      if (stat.size > MAX_FILE_BYTES) return `${listener.setting}.${file}: ${JSON.stringify(path)} is larger than ${MAX_FILE_BYTES} bytes`
    } catch {
      break // readListenerFiles says which file and why
    }
  }
  return readListenerFiles(listener)
}

export class CertificateWatch {
  readonly #app: FastifyInstance
  readonly #log: FastifyBaseLogger
  /** Per listener setting: the digest (or problem) of files found unusable, so that they are logged once. */
  readonly #refused = new Map<string, string>()
  #timer: NodeJS.Timeout | undefined

  constructor (app: FastifyInstance, log: FastifyBaseLogger) {
    this.#app = app
    this.#log = log
  }

  /** Looks every `intervalMs` until stop(). */
  start (intervalMs: number): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => {
      try {
        this.check()
      } catch (err) {
        // Nothing here is expected to throw; if something does, the next look tries again, the process lives on.
        this.#log.error({ err }, 'looking at the TLS certificate files failed')
      }
    }, intervalMs)
    // A look at a few files never keeps the process alive.
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One look at every TLS listener's files; what happened to each, by setting. */
  check (): Record<string, CertificateCheckOutcome> {
    const outcomes: Record<string, CertificateCheckOutcome> = {}
    // The listeners of the configuration in force: a reload may have changed their paths.
    for (const listener of tlsListeners(this.#app, this.#app.verifierSlot.config)) outcomes[listener.setting] = this.#look(listener)
    return outcomes
  }

  #look (listener: TlsListener): CertificateCheckOutcome {
    const { name, setting } = listener
    const options = readGuarded(listener)
    const digest = typeof options === 'string' ? `!${options}` : optionsDigest(options)
    if (digest === digestInUse(listener.server)) {
      this.#refused.delete(setting)
      return 'unchanged'
    }
    if (digest === this.#refused.get(setting)) return 'unchanged'
    const checked = typeof options === 'string' ? options : checkListener(listener, options)
    if (typeof checked === 'string') {
      this.#refused.set(setting, digest)
      this.#log.error({ listener: name, setting, problems: [checked] },
        `the files of ${setting} changed but cannot be used; the ${name} listener keeps serving its certificate until they can`)
      return 'refused'
    }
    // Not taken (logged): not remembered as refused, so the next look tries again.
    if (putInUse(this.#log, [checked]).length === 0) return 'refused'
    this.#refused.delete(setting)
    this.#log.info({ listener: name, setting, ...checked.certificate }, `TLS certificate renewed from the files of ${setting}: the ${name} listener serves it to new connections`)
    return 'renewed'
  }
}
