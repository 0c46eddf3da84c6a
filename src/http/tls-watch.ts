/**
 * Renewed certificates served without a signal: every server.certificateCheckSeconds the files of server.tls
 * and server.opsTls are read (a few kilobytes; through symlinks, so the swap with which Kubernetes updates a
 * mounted Secret is seen) and compared by their SHA-256 with what was read last (modification times can be
 * coarse or copied along); when they changed, the listener's certificates are checked and put in use exactly
 * as a configuration reload does (src/http/tls-reload.ts). New connections get them; open ones keep theirs.
 *
 * Files that changed but cannot be used (a rotation half done, a key that does not match) are logged once per
 * change, and the listener keeps serving the certificate it has; the next change is looked at again.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { readCertificates, tlsListeners, useCertificates, type TlsListener } from './tls-reload.js'

export type CertificateCheckOutcome = 'unchanged' | 'renewed' | 'refused'

/** The files' contents, hashed into one comparable string (never logged); a file that cannot be read counts by its error. */
export function filesStamp (paths: readonly string[]): string {
  return paths.map((path) => {
    try {
      return createHash('sha256').update(readFileSync(path)).digest('base64')
    } catch (err) {
      return `!${(err as NodeJS.ErrnoException).code ?? 'error'}`
    }
  }).join('|')
}

const filesOf = (listener: TlsListener): string[] => Object.values(listener.tls).filter((path): path is string => typeof path === 'string')

export class CertificateWatch {
  readonly #app: FastifyInstance
  readonly #log: FastifyBaseLogger
  /** Per listener setting (server.tls, server.opsTls): the stamp of its files when last looked at. */
  readonly #stamps = new Map<string, string>()
  #timer: NodeJS.Timeout | undefined

  constructor (app: FastifyInstance, log: FastifyBaseLogger) {
    this.#app = app
    this.#log = log
  }

  /** Notes the files as they are now (the listeners serve them), then looks every `intervalMs`. */
  start (intervalMs: number): void {
    for (const listener of this.#listeners()) this.#stamps.set(listener.setting, filesStamp(filesOf(listener)))
    this.#timer = setInterval(() => { this.check() }, intervalMs)
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
    for (const listener of this.#listeners()) {
      const stamp = filesStamp(filesOf(listener))
      const before = this.#stamps.get(listener.setting)
      this.#stamps.set(listener.setting, stamp)
      outcomes[listener.setting] = before === undefined || before === stamp ? 'unchanged' : this.#renew(listener)
    }
    return outcomes
  }

  /** The listeners of the configuration in force: a reload may have changed their paths. */
  #listeners (): TlsListener[] {
    return tlsListeners(this.#app, this.#app.verifierSlot.config)
  }

  #renew (listener: TlsListener): CertificateCheckOutcome {
    const { name, setting } = listener
    const result = readCertificates([listener])
    if (!result.ok) {
      this.#log.error({ listener: name, setting, problems: result.problems },
        `the files of ${setting} changed but cannot be used; the ${name} listener keeps serving its certificate until they can`)
      return 'refused'
    }
    const failed = useCertificates(result.read)
    if (failed.length > 0) {
      this.#log.error({ listener: name, setting, err: failed[0]?.err }, `the ${name} listener could not take the certificate read from ${setting}; it keeps serving the previous one`)
      return 'refused'
    }
    this.#log.info({ listener: name, setting, ...result.read[0]?.certificate }, `TLS certificate renewed from the files of ${setting}: the ${name} listener serves it to new connections`)
    return 'renewed'
  }
}
