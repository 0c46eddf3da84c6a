/**
 * Whether the configured token cache (and revocation list) fits in the process's V8 heap. The container image caps the old
 * generation (ENV NODE_OPTIONS=--max-old-space-size=…, README "Memory") so that RSS stays near the cache's
 * bound; a configuration whose cache cannot fit under that cap is refused at start (and on reload, and by
 * `check-config`) instead of running until the heap is full and the process dies under load.
 */
import { getHeapStatistics } from 'node:v8'
import { ConfigError } from './load.js'
import type { Config } from './types.js'

const MiB = 1024 * 1024

/**
 * What the service needs beside the token cache: code, the key sets, requests in flight and room for the
 * collector. Measured with a full cache at its defaults: the whole V8 heap in use peaked at 64 MB, of which
 * ~26 MB were the cache (docs/benchmarks.md, "Memory").
 */
export const HEAP_HEADROOM_BYTES = 48 * MiB

/**
 * The live heap of one revocation (src/revocation/revocation-list.ts), with strings parsed out of JSON as a
 * request makes them (Node 20): 167 bytes for a session (sid) of 36 characters; 298 when it also names its
 * user (a sub of 36 characters, each entry another user, so that user's session count too); 381 for a sid of
 * 255 characters, the longest accepted, and 731 with a sub as long. Counted as 400: above what UUID-sized
 * values take, below the longest values' worst case. A full list of revocation.maxEntries needs that many.
 */
export const REVOCATION_ENTRY_BYTES = 400

/** V8's heap limit for this process: old generation plus young generation, as --max-old-space-size and friends set it. */
export function heapLimitBytes (): number {
  return getHeapStatistics().heap_size_limit
}

/** undefined when the cache fits; otherwise the problem, in the words of the configuration's other problems. */
export function heapBudgetProblem (config: Config, limitBytes: number): string | undefined {
  const cacheBytes = config.tokenCache.enabled ? config.tokenCache.maxBytes : 0
  const revocationBytes = config.revocation.enabled ? config.revocation.maxEntries * REVOCATION_ENTRY_BYTES : 0
  const needed = cacheBytes + revocationBytes + HEAP_HEADROOM_BYTES
  if (limitBytes >= needed) return undefined
  const mib = (bytes: number): string => `${Math.ceil(bytes / MiB)} MiB`
  if (revocationBytes === 0) {
    return `tokenCache.maxBytes: ${mib(cacheBytes)} does not fit in this process's V8 heap: its limit is ${mib(limitBytes)}, and the cache ` +
      `needs ${mib(needed)} with the ${mib(HEAP_HEADROOM_BYTES)} the rest of the service uses; raise the limit ` +
      `(NODE_OPTIONS=--max-old-space-size=${Math.ceil(needed / MiB)} or more, within the container's memory limit) or lower tokenCache.maxBytes`
  }
  return `tokenCache.maxBytes (${mib(cacheBytes)}) and revocation.maxEntries (${config.revocation.maxEntries}, up to ${mib(revocationBytes)}) ` +
    `do not fit in this process's V8 heap: its limit is ${mib(limitBytes)}, and they need ${mib(needed)} with the ${mib(HEAP_HEADROOM_BYTES)} ` +
    `the rest of the service uses; raise the limit (NODE_OPTIONS=--max-old-space-size=${Math.ceil(needed / MiB)} or more, within the ` +
    'container\'s memory limit), or lower tokenCache.maxBytes or revocation.maxEntries'
}

/** Returns `config` when its cache fits in the heap; throws ConfigError otherwise. */
export function withinHeapBudget (config: Config, limitBytes: number = heapLimitBytes()): Config {
  const problem = heapBudgetProblem(config, limitBytes)
  if (problem !== undefined) throw new ConfigError([problem])
  return config
}
