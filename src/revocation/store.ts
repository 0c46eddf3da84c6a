/**
 * Where revocations are kept and how they reach every process that verifies tokens. The RevocationList
 * (src/revocation/revocation-list.ts) is each process's copy, read synchronously on every verification; a
 * store keeps it current:
 *
 *   memory  this process only, or the workers of one host (WORKERS=N) through the cluster primary
 *           (src/revocation/cluster-relay.ts). Forgotten on restart.
 *   redis   shared by every replica (src/revocation/redis-store.ts): written to Redis, announced by pub/sub,
 *           read whole at start and after every reconnection. While the store cannot tell whether the copy is
 *           current for longer than revocation.redis.maxStalenessSeconds, the list is marked unavailable and
 *           verifications fail closed (503 revocations_unavailable).
 */
import type { Revocation } from './revocation.js'
import type { ApplyResult, RevocationList } from './revocation-list.js'

/**
 * The longest a store's start() waits for its first copy (Redis, or the cluster primary's): start() runs in an
 * onReady hook, which Fastify fails after its plugin timeout (10 s by default), and the service would then exit
 * instead of starting not current (503s, /readyz 503) and catching up later.
 */
export const STORE_START_WAIT_MS = 8_000

/** What a publish changed in this process's list ('full' is thrown as RevocationStoreError). */
export type PublishResult = Exclude<ApplyResult, 'full'>

export interface RevocationStoreStatus {
  kind: 'memory' | 'redis'
  /** Whether the list is current (RevocationList.available). */
  current: boolean
  /** When the store was last known current, in milliseconds since the epoch; null before the first load. */
  lastCurrentAt: number | null
}

export interface RevocationStore {
  /** The copy this store keeps current. */
  readonly list: RevocationList
  /** Connects and loads; resolves once the list is current or the first attempt failed (it keeps trying). */
  start(): Promise<void>
  /**
   * Resolves the first time the list has been read whole from a shared store (redis): at start, or later when it
   * could not be read then. Absent for a store whose start() is its only load.
   */
  readonly loaded?: Promise<void>
  /**
   * Records a revocation for every process: resolves once it is stored where every process will see it, and
   * applied to this process's list. Rejects (RevocationStoreError) when it cannot be stored or does not fit;
   * the caller answers 503 (revocations_unavailable).
   */
  publish(revocation: Revocation): Promise<PublishResult>
  status(): RevocationStoreStatus
  close(): Promise<void>
}

/** A revocation could not be stored: the store is unreachable or full. */
export class RevocationStoreError extends Error {
  readonly reason: 'unreachable' | 'full'
  constructor (reason: 'unreachable' | 'full', options?: { cause?: unknown }) {
    super(reason === 'full' ? 'the revocation list is full (revocation.maxEntries)' : 'the revocation store is unreachable', options)
    this.name = 'RevocationStoreError'
    this.reason = reason
  }
}
