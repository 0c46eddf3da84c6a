/**
 * Renewed certificates served without a signal: every server.certificateCheckSeconds the files of server.tls
 * and server.opsTls are read (a few kilobytes; through symlinks, so the swap with which Kubernetes updates a
 * mounted Secret is seen) and compared with what the listener serves now, by a digest of the bytes
 * (src/http/tls-reload.ts, noteInUse: recorded when the listener is built and whenever it is given new
 * certificates, by this look or by a configuration reload). When they differ, the files are checked and put
 * in use exactly as a reload does. New connections get them; open ones keep theirs. Comparing with what is in
 * use, not with the previous look, means nothing is missed: a renewal between the start and the first look,
 * or a reload that put older certificates in use while the files were renewed, is corrected at the next look.
 * And a look during which a reload put certificates in use (perhaps from other paths: a client CA dropped) puts
 * nothing over them: what it read may be what the reload replaced.
 *
 * Files that differ but cannot be used (a rotation half done, a key that does not match) are logged once per
 * content, and the listener keeps serving what it has; a change of the files is looked at again. When a
 * reload left the listener's TLS settings waiting for a restart and only the files it no longer names fail,
 * that is a warning, as the reload says it.
 *
 * Each look also logs, once, a certificate that comes to expire soon (a warning) or expires (an error) while it
 * is served unchanged (src/http/tls-reload.ts, logValidity), as it would be when put in use.
 *
 * The files are read without blocking the event loop: opened non-blocking (a FIFO put at a certificate's path
 * neither blocks the open nor is read), and read only if a regular file of at most 1 MiB (src/small-file.ts). A read that
 * hangs (a network mount gone away) holds one thread of libuv's pool, never the loop: looks never overlap, and
 * a look still running when the next is due is logged once.
 */
import { open } from 'node:fs/promises'
import type { SecureContextOptions } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { checkSmallFile, checkSmallRead, SMALL_FILE_OPEN_FLAGS } from '../small-file.js'
import { httpsOptionsOf, type TlsFileContents } from './tls.js'
import {
  checkListener, digestInUse, keptUntilRestartMessage, logValidity, onlyWaitingFiles, optionsDigest, putInUse, tlsListeners, TlsProblem, unreadable,
  type TlsFile, type TlsListener
} from './tls-reload.js'

export type CertificateCheckOutcome = 'unchanged' | 'renewed' | 'refused'

/** One of a listener's files, if it is a regular file of at most MAX_SMALL_FILE_BYTES; else the problem. */
async function readGuarded (listener: TlsListener, file: TlsFile, path: string): Promise<Buffer | TlsProblem> {
  let handle
  try {
    handle = await open(path, SMALL_FILE_OPEN_FLAGS)
    checkSmallFile(path, await handle.stat())
    return checkSmallRead(path, await handle.readFile())
  } catch (err) {
    return unreadable(listener, file, err)
  } finally {
    await handle?.close().catch(() => {})
  }
}

/** A listener's files, read as its HTTPS options; or the first that cannot be read (in the order a listener reads them). */
async function readFiles (listener: TlsListener): Promise<SecureContextOptions | TlsProblem> {
  const contents: Partial<Record<TlsFile, Buffer>> = {}
  for (const file of ['certFile', 'keyFile', 'clientCaFile'] as const) {
    const path = listener.tls[file]
    if (path === undefined) continue
    const read = await readGuarded(listener, file, path)
    if (read instanceof TlsProblem) return read
    contents[file] = read
  }
  return httpsOptionsOf(contents as TlsFileContents)
}

export class CertificateWatch {
  readonly #app: FastifyInstance
  readonly #log: FastifyBaseLogger
  /** Per listener setting: the digest (or problem) of files found unusable, so that they are logged once. */
  readonly #refused = new Map<string, string>()
  #timer: NodeJS.Timeout | undefined
  /** The look in progress: looks never overlap. */
  #looking: Promise<Record<string, CertificateCheckOutcome>> | undefined
  /** Whether the look in progress was already logged as still running when the next was due. */
  #slowLogged = false
  readonly #schedule: (tick: () => void, intervalMs: number) => NodeJS.Timeout

  /** `schedule`: a test hook, to run the looks' ticks by hand; default setInterval (stop() clears what it returns). */
  constructor (app: FastifyInstance, log: FastifyBaseLogger,
    schedule: (tick: () => void, intervalMs: number) => NodeJS.Timeout = (tick, intervalMs) => setInterval(tick, intervalMs)) {
    this.#app = app
    this.#log = log
    this.#schedule = schedule
  }

  /** Looks every `intervalMs` until stop(). */
  start (intervalMs: number): void {
    if (this.#timer !== undefined) return
    this.#timer = this.#schedule(() => {
      if (this.#looking !== undefined) {
        if (!this.#slowLogged) {
          this.#slowLogged = true
          this.#log.warn({ intervalMs }, 'the TLS certificate files are still being read since the last look (a file system that does not answer?); the next look waits for it')
        }
        return
      }
      this.check().catch((err: unknown) => {
        // Nothing here is expected to throw; if something does, the next look tries again, the process lives on.
        this.#log.error({ err }, 'looking at the TLS certificate files failed (server.tls, server.opsTls; a bug: the next look, in server.certificateCheckSeconds, tries again)')
      })
    }, intervalMs)
    // A look at a few files never keeps the process alive.
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One look at every TLS listener's files (the one in progress, if any); what happened to each, by setting. */
  async check (): Promise<Record<string, CertificateCheckOutcome>> {
    this.#looking ??= this.#lookAtAll().finally(() => {
      this.#looking = undefined
      this.#slowLogged = false
    })
    return await this.#looking
  }

  async #lookAtAll (): Promise<Record<string, CertificateCheckOutcome>> {
    const outcomes: Record<string, CertificateCheckOutcome> = {}
    // The listeners of the configuration in force: a reload may have changed their paths.
    for (const listener of tlsListeners(this.#app, this.#app.verifierSlot.config)) {
      const before = digestInUse(listener.server)
      const read = await readFiles(listener)
      // A reload while the files were read put its own in use, perhaps from other paths (a client CA removed):
      // what was read is not put over it. The next look compares the files in force with what it put in use.
      outcomes[listener.setting] = this.#superseded(listener, before) ? 'unchanged' : this.#take(listener, read)
      // Whatever it serves now: a certificate that has come to expire soon, or expired, while served is logged once.
      logValidity(this.#log, listener, listener.server, Date.now())
    }
    return outcomes
  }

  /** Whether a reload changed the listener's files or what it serves since `before` was noted. */
  #superseded (listener: TlsListener, before: string | undefined): boolean {
    if (digestInUse(listener.server) !== before) return true
    const inForce = tlsListeners(this.#app, this.#app.verifierSlot.config).find((l) => l.setting === listener.setting)
    return inForce === undefined || JSON.stringify(inForce.tls) !== JSON.stringify(listener.tls)
  }

  /** Puts the files read in use if they differ from what the listener serves and can be used. */
  #take (listener: TlsListener, options: SecureContextOptions | TlsProblem): CertificateCheckOutcome {
    const { name, setting } = listener
    const digest = options instanceof TlsProblem ? `!${String(options)}` : optionsDigest(options)
    if (digest === digestInUse(listener.server)) {
      this.#refused.delete(setting)
      return 'unchanged'
    }
    if (digest === this.#refused.get(setting)) return 'unchanged'
    const checked = options instanceof TlsProblem ? options : checkListener(listener, options)
    if (checked instanceof TlsProblem) {
      this.#refused.set(setting, digest)
      const problems = [String(checked)]
      if (onlyWaitingFiles(listener, [checked])) {
        this.#log.warn({ listener: name, setting, problems }, keptUntilRestartMessage(listener))
      } else {
        this.#log.error({ listener: name, setting, problems },
          `the files of ${setting} changed but cannot be used; the ${name} listener keeps serving its certificate until they can`)
      }
      return 'refused'
    }
    // Not taken (logged): not remembered as refused, so the next look tries again.
    if (putInUse(this.#log, [checked]).length === 0) return 'refused'
    this.#refused.delete(setting)
    this.#log.info({ listener: name, setting, ...checked.certificate }, `TLS certificate renewed from the files of ${setting}: the ${name} listener serves it to new connections`)
    return 'renewed'
  }
}
