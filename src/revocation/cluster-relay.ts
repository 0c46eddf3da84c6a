/**
 * Revocations between the workers of one host (WORKERS=N, src/cluster-primary.ts) with the memory store:
 * a worker that records one sends it to the primary over the cluster's IPC channel, and the primary, which
 * keeps a copy, sends it on to every other worker. A worker that starts (or replaces one that died) asks the
 * primary for its copy and is not current until it has it: a replacement never serves without the
 * revocations its predecessor knew. Every message is checked (parseRevocation) on arrival.
 *
 * Only the workers of one host: replicas need the redis store.
 */
import cluster, { type Worker } from 'node:cluster'
import { parseRevocation, type Revocation } from './revocation.js'
import { RevocationList } from './revocation-list.js'

const ONE = 'oidc-verifier:revocation'
const ALL = 'oidc-verifier:revocations'
const SYNC = 'oidc-verifier:revocations-sync'

type Message = { type: typeof ONE, revocation: unknown } | { type: typeof ALL, revocations: unknown } | { type: typeof SYNC }

function isMessage (value: unknown): value is Message {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
}

/** A worker's side: sends its revocations to the primary, applies what the primary sends. */
export class WorkerRelay {
  readonly #list: RevocationList
  readonly #now: () => number
  readonly #onMessage: (message: unknown) => void
  #synced: (() => void) | undefined

  constructor (list: RevocationList, now: () => number = Date.now) {
    this.#list = list
    this.#now = now
    this.#onMessage = (message) => { this.#receive(message) }
  }

  /** Asks the primary for its copy; resolves when it has arrived (the list is then available). */
  async start (): Promise<void> {
    this.#list.setAvailable(false)
    process.on('message', this.#onMessage)
    const synced = new Promise<void>((resolve) => { this.#synced = resolve })
    process.send?.({ type: SYNC })
    await synced
  }

  /** To the other workers, through the primary. */
  async send (revocation: Revocation): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const sent = process.send?.({ type: ONE, revocation }, undefined, {}, (err) => { if (err === null) resolve(); else reject(err) })
      if (sent === undefined) resolve()
    })
  }

  close (): void {
    process.off('message', this.#onMessage)
    this.#synced?.()
  }

  #receive (message: unknown): void {
    if (!isMessage(message)) return
    const nowSeconds = this.#now() / 1000
    if (message.type === ONE) {
      const revocation = parseRevocation(message.revocation)
      if (revocation !== undefined) this.#list.apply(revocation, nowSeconds)
    } else if (message.type === ALL && Array.isArray(message.revocations)) {
      for (const item of message.revocations as unknown[]) {
        const revocation = parseRevocation(item)
        if (revocation !== undefined) this.#list.apply(revocation, nowSeconds)
      }
      this.#list.setAvailable(true)
      this.#synced?.()
      this.#synced = undefined
    }
  }
}

/** The primary's side: keeps a copy, forwards each revocation to the other workers, answers a new worker's sync. */
export function relayRevocations (maxEntries: number, now: () => number = Date.now): RevocationList {
  const copy = new RevocationList(maxEntries)
  const listen = (worker: Worker): void => {
    worker.on('message', (message: unknown) => {
      if (!isMessage(message)) return
      if (message.type === SYNC) {
        copy.sweep(now() / 1000)
        worker.send({ type: ALL, revocations: [...copy.entries()] })
      } else if (message.type === ONE) {
        const revocation = parseRevocation(message.revocation)
        if (revocation === undefined) return
        copy.apply(revocation, now() / 1000)
        for (const other of Object.values(cluster.workers ?? {})) {
          if (other !== undefined && other !== worker && other.isConnected()) other.send({ type: ONE, revocation })
        }
      }
    })
  }
  cluster.on('fork', listen)
  const sweep = setInterval(() => copy.sweep(now() / 1000), 60_000)
  sweep.unref()
  return copy
}
