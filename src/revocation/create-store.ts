/**
 * The revocation store the configuration asks for (src/revocation/store.ts), with its list. ioredis is loaded
 * only when the redis store is configured.
 */
import cluster from 'node:cluster'
import type { RevocationConfig } from '../config/types.js'
import type { Logger } from '../core/logger.js'
import { WorkerRelay } from './cluster-relay.js'
import { MemoryRevocationStore } from './memory-store.js'
import { RevocationList } from './revocation-list.js'
import type { RevocationStore } from './store.js'

export interface CreateStoreOptions {
  logger: Logger
  now?: () => number
}

/** undefined when revocation is disabled. */
export async function createRevocationStore (config: RevocationConfig, options: CreateStoreOptions): Promise<RevocationStore | undefined> {
  if (!config.enabled) return undefined
  const { logger, now } = options
  if (config.store === 'redis') {
    // The configuration check guarantees it; never fall back to the memory store silently.
    if (config.redis === undefined) throw new Error('revocation.store is redis but revocation.redis is not set')
    const { RedisRevocationStore } = await import('./redis-store.js')
    // Not current until read from Redis: verifications fail closed until then.
    return new RedisRevocationStore({ ...config.redis, list: new RevocationList(config.maxEntries, false), logger, now })
  }
  const list = new RevocationList(config.maxEntries)
  // A worker of WORKERS=N shares its revocations with the others through the cluster primary.
  return new MemoryRevocationStore(list, { relay: cluster.isWorker ? new WorkerRelay(list, now) : undefined, now, logger })
}
