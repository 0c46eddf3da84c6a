/**
 * What the Redis revocation store's tests share: revocations to publish, a logger that keeps its lines, stores
 * and raw clients closed with the test, and a bounded wait.
 */
import type { Test } from 'tap'
import { Redis } from 'ioredis'
import type { Logger } from '../../src/core/logger.js'
import { RedisRevocationStore, type RedisRevocationStoreOptions } from '../../src/revocation/redis-store.js'
import type { Revocation } from '../../src/revocation/revocation.js'
import { RevocationList } from '../../src/revocation/revocation-list.js'

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** A revocation of issuer "main", valid for an hour; sub and issuer revocations cut off at now. */
export function revocation (kind: Revocation['kind'], value: string, extra: Partial<Revocation> = {}): Revocation {
  const cutoff = kind === 'sub' || kind === 'issuer'
  return { issuer: 'main', kind, value, before: cutoff ? nowSeconds() : null, expiresAt: nowSeconds() + 3600, source: 'api', ...extra }
}

export interface Captured { level: string, obj: object, msg: string | undefined }

/** A Logger that keeps every line, to check what the store logs and that no personal data is in it. */
export function capturingLogger (): { logger: Logger, lines: Captured[], text: () => string } {
  const lines: Captured[] = []
  const at = (level: string) => (obj: object, msg?: string): void => { lines.push({ level, obj, msg }) }
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger }
  return { logger, lines, text: () => lines.map((l) => `${l.level} ${JSON.stringify(l.obj)} ${l.msg ?? ''}`).join('\n') }
}

let prefixCounter = 0
/** A key prefix of its own for each store set, so that tests sharing one Redis do not meet. */
export const newPrefix = (): string => `oidc-verifier-test-${process.pid}-${++prefixCounter}:`

/** A store with a list of its own (not available until loaded), closed when the test ends. */
export function newStore (t: Test, options: Partial<RedisRevocationStoreOptions> & { url: string, keyPrefix: string }, maxEntries = 1000): RedisRevocationStore {
  const store = new RedisRevocationStore({ maxStalenessSeconds: 5, commandTimeoutMs: 2000, list: new RevocationList(maxEntries, false), ...options })
  t.teardown(async () => { await store.close() })
  return store
}

/** A plain client of the same Redis, to look at or disturb what the store does. */
export function rawClient (t: Test, url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return client
}

export { waitFor } from './wait-for.js'
