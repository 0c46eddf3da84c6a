/**
 * The memory store: revocations held by this process only, or by the workers of one host through the cluster
 * primary (src/revocation/cluster-relay.ts). Forgotten when the process (the primary, for WORKERS=N) stops;
 * use the redis store for replicas, and where a restart must not forget a logout.
 */
import type { Logger } from '../core/logger.js'
import { silentLogger } from '../core/logger.js'
import type { WorkerRelay } from './cluster-relay.js'
import type { Revocation } from './revocation.js'
import { SWEEP_INTERVAL_MS, type RevocationList } from './revocation-list.js'
import { RevocationStoreError, type PublishResult, type RevocationStore, type RevocationStoreStatus } from './store.js'


export interface MemoryRevocationStoreOptions {
  /** Set in a worker of WORKERS=N. */
  relay?: WorkerRelay
  now?: () => number
  logger?: Logger
}

export class MemoryRevocationStore implements RevocationStore {
  readonly list: RevocationList
  readonly #relay: WorkerRelay | undefined
  readonly #now: () => number
  readonly #logger: Logger
  #sweep: NodeJS.Timeout | undefined
  #lastCurrentAt: number | null = null

  constructor (list: RevocationList, options: MemoryRevocationStoreOptions = {}) {
    this.list = list
    this.#relay = options.relay
    this.#now = options.now ?? Date.now
    this.#logger = options.logger ?? silentLogger
  }

  async start (): Promise<void> {
    this.#sweep = setInterval(() => { this.sweep() }, SWEEP_INTERVAL_MS)
    this.#sweep.unref()
    if (this.#relay !== undefined) {
      if (await this.#relay.start()) {
        if (this.list.complete) this.#logger.info({ revocations: this.list.size }, 'revocations received from the cluster primary')
        else this.#logger.error({ revocations: this.list.size, maxEntries: this.list.maxEntries }, 'the revocations received from the cluster primary are incomplete (revocation.maxEntries was reached): verifications fail closed (503 revocations_unavailable) until the missing ones have expired and fit; asked again every minute')
      } else {
        this.#logger.error({}, 'the cluster primary sent no revocations: verifications fail closed (503 revocations_unavailable). Restart the service: the primary and its workers must run the same configuration')
        return
      }
    }
    this.#lastCurrentAt = this.#now()
  }

  /**
   * What the store does every SWEEP_INTERVAL_MS: forget expired revocations, and ask for the primary's whole
   * copy again when the list is incomplete and asking may help: a revocation from another worker did not fit
   * and some have expired since, or the primary's copy lacked one that has expired since.
   */
  sweep (): void {
    const nowSeconds = this.#now() / 1000
    this.list.sweep(nowSeconds)
    if (this.list.complete || this.#relay === undefined) return
    if (this.list.size < this.list.maxEntries || this.#relay.primaryCopyMayBeComplete(nowSeconds)) this.#relay.resync()
  }

  async publish (revocation: Revocation): Promise<PublishResult> {
    const nowSeconds = this.#now() / 1000
    // Shared with other workers: headroom for what they record meanwhile, which this list must hold too.
    if (this.#relay !== undefined && !this.list.hasRoomFor(revocation, this.list.sharedHeadroom, nowSeconds)) throw new RevocationStoreError('full')
    const result = this.list.apply(revocation, nowSeconds)
    if (result === 'full') throw new RevocationStoreError('full')
    // Sent even when it changed nothing here: a retry after a failed send must reach the other workers.
    try {
      await this.#relay?.send(revocation)
    } catch (err) {
      throw new RevocationStoreError('unreachable', { cause: err })
    }
    return result
  }

  status (): RevocationStoreStatus {
    return { kind: 'memory', current: this.list.available, lastCurrentAt: this.list.available ? this.#now() : this.#lastCurrentAt }
  }

  async close (): Promise<void> {
    clearInterval(this.#sweep)
    this.#relay?.close()
  }
}
