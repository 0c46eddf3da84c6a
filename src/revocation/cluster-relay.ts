/**
 * Revocations between the workers of one host (WORKERS=N, src/cluster-primary.ts) with the memory store:
 * a worker that records one sends it to the primary over the cluster's IPC channel, and the primary, which
 * keeps a copy, sends it on to every other worker. A worker that starts (or replaces one that died) asks the
 * primary for its copy, sent in chunks, and is not current until it has all of it: a replacement never
 * accepts a token its predecessor would have refused. Every message is checked (parseRevocation) on arrival.
 * A revocation that does not fit a worker's list makes the list incomplete (verifications fail closed); the
 * worker asks for the copy again at its next sweep (resync), and is current again once everything fits.
 * The primary's copy has the same bound: while a revocation it could not keep has not expired, its copy is
 * said incomplete (`complete: false` on the answer), and a worker that receives it stays incomplete, asking
 * again at each sweep, rather than accept the tokens its siblings refuse.
 *
 * Only the workers of one host: replicas need the redis store.
 */
import cluster, { type Worker } from 'node:cluster'
import { LOG_LEVEL, type ClusterLog } from '../cluster-log.js'
import { parseRevocation, type Revocation } from './revocation.js'
import { RevocationList, SWEEP_INTERVAL_MS } from './revocation-list.js'
import { MAX_TIMER_MS, setTimer as defaultSetTimer, type SetTimer } from '../timers.js'
import { STORE_START_WAIT_MS } from './store.js'

const ONE = 'oidc-verifier:revocation'
const ALL = 'oidc-verifier:revocations'
const SYNC = 'oidc-verifier:revocations-sync'

/** Revocations per message of the primary's copy: one message of millions would not fit a string. */
export const SYNC_CHUNK = 5_000

/**
 * `sync` numbers a worker's request for the copy, echoed on every chunk of the answer; `complete` is true when
 * the copy holds every revocation still in force (anything else: it lacks one, and the worker fails closed);
 * when it is not, `completeAt` says when the copy will be complete again (NumericDate, seconds).
 */
type Message =
  | { type: typeof ONE, revocation: unknown }
  | { type: typeof ALL, revocations: unknown, done: unknown, sync: unknown, complete: unknown, completeAt?: unknown }
  | { type: typeof SYNC, sync: unknown }

function isMessage (value: unknown): value is Message {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
}

/** The worker's channel to the primary: the process's IPC channel, or a stand-in in tests. */
export interface RelayPort {
  /** undefined without a channel (not a worker). */
  send: ((message: object, callback: (error: Error | null) => void) => void) | undefined
  on(event: 'message', listener: (message: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
}

const processPort: RelayPort = {
  send: process.send === undefined ? undefined : (message, callback) => { process.send?.(message, undefined, {}, callback) },
  on: (event, listener) => process.on(event, listener),
  off: (event, listener) => process.off(event, listener)
}

/** The relay's timers: `start`, the wait for the first copy; `retry`, asking again when the primary's copy is complete. */
export type RelayTimer = SetTimer<'start' | 'retry'>

/** A worker's side: sends its revocations to the primary, applies what the primary sends. */
export class WorkerRelay {
  readonly #list: RevocationList
  readonly #now: () => number
  readonly #port: RelayPort
  readonly #setTimer: RelayTimer
  readonly #onMessage: (message: unknown) => void
  #synced: (() => void) | undefined
  /** The latest request for the copy: chunks of an earlier answer are ignored. */
  #sync = 0
  /** Whether a revocation of the copy being received did not fit. */
  #syncOverflowed = false
  /**
   * When the primary's last copy lacked a revocation: the time (seconds) it said its copy is complete again
   * (-Infinity when it did not say); undefined when its last copy was complete.
   */
  #primaryCompleteAt: number | undefined
  /** Asks again when the primary's copy is complete again, rather than at the next minute sweep after it. */
  #retry: NodeJS.Timeout | undefined

  /** `setTimer`: a test hook; default setTimeout. */
  constructor (list: RevocationList, now: () => number = Date.now, port: RelayPort = processPort,
    setTimer: RelayTimer = defaultSetTimer) {
    this.#list = list
    this.#now = now
    this.#port = port
    this.#setTimer = setTimer
    this.#onMessage = (message) => { this.#receive(message) }
  }

  /**
   * Asks the primary for its copy; resolves when it has arrived (the list is then available), or after
   * STORE_START_WAIT_MS without it: the worker then serves, failing verifications closed until a copy arrives,
   * rather than never listening (a primary started with another configuration does not relay). Returns whether
   * it arrived.
   */
  async start (timeoutMs = STORE_START_WAIT_MS): Promise<boolean> {
    this.#list.setAvailable(false)
    this.#port.on('message', this.#onMessage)
    let timer: NodeJS.Timeout | undefined
    const synced = new Promise<boolean>((resolve) => {
      this.#synced = () => { resolve(true) }
      timer = this.#setTimer(() => { resolve(false) }, timeoutMs, 'start')
      timer.unref()
    })
    this.resync()
    const arrived = await synced
    clearTimeout(timer)
    return arrived
  }

  /**
   * Whether asking the primary again may now give a complete copy: its last one lacked a revocation that has
   * expired since. (A list that is full for that very reason would otherwise never ask again: the list asks
   * when a revocation of its own has expired and made room.)
   */
  primaryCopyMayBeComplete (nowSeconds: number): boolean {
    return this.#primaryCompleteAt !== undefined && nowSeconds >= this.#primaryCompleteAt
  }

  /** Asks the primary for its whole copy again (after a revocation did not fit). */
  resync (): void {
    this.#sync++
    this.#syncOverflowed = false
    this.#port.send?.({ type: SYNC, sync: this.#sync }, () => {})
  }

  /** To the other workers, through the primary. Rejects when the channel to the primary is gone. */
  async send (revocation: Revocation): Promise<void> {
    const send = this.#port.send
    if (send === undefined) return
    await new Promise<void>((resolve, reject) => {
      send({ type: ONE, revocation }, (err) => { if (err === null) resolve(); else reject(err) })
    })
  }

  close (): void {
    clearTimeout(this.#retry)
    this.#port.off('message', this.#onMessage)
    this.#synced?.()
  }

  #receive (message: unknown): void {
    if (!isMessage(message)) return
    const nowSeconds = this.#now() / 1000
    if (message.type === ONE) {
      const revocation = parseRevocation(message.revocation)
      if (revocation !== undefined) this.#list.receive(revocation, nowSeconds)
    } else if (message.type === ALL && Array.isArray(message.revocations) && message.sync === this.#sync) {
      for (const item of message.revocations as unknown[]) {
        const revocation = parseRevocation(item)
        if (revocation !== undefined && this.#list.receive(revocation, nowSeconds) === 'full') this.#syncOverflowed = true
      }
      if (message.done !== true) return
      // Complete only when everything fitted here and the primary's copy lacked nothing.
      const completeAt = message.completeAt
      this.#primaryCompleteAt = message.complete === true
        ? undefined
        : typeof completeAt === 'number' && Number.isFinite(completeAt) ? completeAt : Number.NEGATIVE_INFINITY
      clearTimeout(this.#retry)
      if (this.#primaryCompleteAt !== undefined && Number.isFinite(this.#primaryCompleteAt)) {
        // A second late, so that the primary's copy is complete when asked. Timers hold at most ~24.8 days:
        // anything later is left to the sweep (MemoryRevocationStore.sweep).
        const delayMs = Math.max(0, this.#primaryCompleteAt * 1000 - this.#now()) + 1000
        if (delayMs <= MAX_TIMER_MS) {
          this.#retry = this.#setTimer(() => { this.resync() }, delayMs, 'retry')
          this.#retry.unref()
        }
      }
      if (!this.#syncOverflowed && message.complete === true) this.#list.markComplete()
      else this.#list.markIncomplete()
      this.#list.setAvailable(true)
      this.#synced?.()
      this.#synced = undefined
    }
  }
}

/** Sends to a worker; a worker that has just died is not an error of the primary (the 'exit' handler replaces it). */
function sendTo (worker: Worker, message: object): void {
  if (worker.isConnected()) worker.send(message, undefined, {}, () => {})
}

/**
 * The primary's side: keeps a copy, forwards each revocation to the other workers, answers a new worker's
 * sync. A revocation the copy cannot hold is logged (`log`), and until it expires the copy is sent as
 * incomplete: a worker that starts meanwhile fails closed instead of accepting the tokens it covers.
 */
export function relayRevocations (maxEntries: number, log: ClusterLog = () => {}, now: () => number = Date.now): RevocationList {
  const copy = new RevocationList(maxEntries)
  /** The latest expiry (seconds) of the revocations the copy could not hold: incomplete until then. */
  let missingUntil = Number.NEGATIVE_INFINITY
  const listen = (worker: Worker): void => {
    worker.on('message', (message: unknown) => {
      if (!isMessage(message)) return
      if (message.type === SYNC) {
        const nowSeconds = now() / 1000
        copy.sweep(nowSeconds)
        const complete = nowSeconds >= missingUntil
        const all = [...copy.entries()]
        for (let i = 0; i === 0 || i < all.length; i += SYNC_CHUNK) {
          sendTo(worker, {
            type: ALL, revocations: all.slice(i, i + SYNC_CHUNK), done: i + SYNC_CHUNK >= all.length, sync: message.sync, complete, completeAt: complete ? null : missingUntil
          })
        }
      } else if (message.type === ONE) {
        const revocation = parseRevocation(message.revocation)
        if (revocation === undefined) return
        if (copy.apply(revocation, now() / 1000) === 'full') {
          missingUntil = Math.max(missingUntil, revocation.expiresAt)
          log(`the primary's copy of the revocations is full (revocation.maxEntries): it cannot keep a ${revocation.kind} revocation of issuer ${revocation.issuer}, so a worker started before ${new Date(missingUntil * 1000).toISOString()} fails closed (503 revocations_unavailable) until then`, LOG_LEVEL.error)
        }
        for (const other of Object.values(cluster.workers ?? {})) {
          if (other !== undefined && other !== worker) sendTo(other, { type: ONE, revocation })
        }
      }
    })
  }
  cluster.on('fork', listen)
  const sweep = setInterval(() => copy.sweep(now() / 1000), SWEEP_INTERVAL_MS)
  sweep.unref()
  return copy
}
