/**
 * How often the Redis revocation store PINGs its subscriber connection, and what that implies for
 * commandTimeoutMs. Shared by the store and the configuration check (this module loads nothing else).
 *
 * The list counts as current from Redis's last answer. A Redis that stops answering is noticed when a PING
 * times out: at worst one interval after the last answer, plus commandTimeoutMs. For verifications to fail
 * closed within maxStalenessSeconds, commandTimeoutMs must fit in what the interval leaves.
 */
const MAX_PING_INTERVAL_MS = 5_000
const MIN_PING_INTERVAL_MS = 250

/** A third of maxStalenessSeconds, from 250 ms to 5 s. */
export function pingIntervalMs (maxStalenessMs: number): number {
  return Math.min(MAX_PING_INTERVAL_MS, Math.max(MIN_PING_INTERVAL_MS, Math.floor(maxStalenessMs / 3)))
}
