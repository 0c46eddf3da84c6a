/**
 * The wait after a failed fetch of discovery metadata or a JWKS, the same for every retry of either (the cache's
 * retries and unknown-kid refreshes, discovery and rediscovery): the caller's backoff, lengthened to what the
 * provider asked for with Retry-After on a 429 or 503 (src/net/retry-after.ts). That is capped by the caller
 * (jwks.backoffMaxSeconds), so that a broken or hostile provider can hold a key refresh back no longer than a
 * run of failures would.
 */
import { FetchError } from '../net/fetch-json.js'

/** The wait a provider asked for with the failure (a FetchError, or an error caused by one), in ms. */
function askedWaitMs (failure: unknown): number | undefined {
  let err: unknown = failure
  // DiscoveryError wraps the FetchError; a short walk, never a long or circular one.
  for (let depth = 0; depth < 3 && err instanceof Error; depth++) {
    if (err instanceof FetchError) return err.retryAfterMs
    err = err.cause
  }
  return undefined
}

export interface RetryWait {
  /** The wait before the next attempt: the backoff, or the provider's (capped) when that is longer. */
  delayMs: number
  /** For the failure's message, /readyz lastError and the log line: what the provider asked, and until when. */
  note: string | undefined
  /**
   * The provider's own wait (capped), in ms from the failure; undefined when it asked for none. It holds back every
   * fetch of the URL, warm() and a reload's new fetcher included, even where the backoff (when that is longer) would not.
   */
  askedMs: number | undefined
}

/**
 * The wait after a failed fetch: `backoffMs`, lengthened to what the provider asked for (Retry-After), that
 * capped at `capMs` (`capName` names the setting in the note). Never shorter than the backoff: a provider's
 * "Retry-After: 1" does not make us retry sooner.
 */
export function waitAfterFailure (failure: unknown, backoffMs: number, capMs: number, capName: string, nowMs: number): RetryWait {
  const asked = askedWaitMs(failure)
  if (asked === undefined) return { delayMs: backoffMs, note: undefined, askedMs: undefined }
  const honoured = Math.min(asked, capMs)
  const delayMs = Math.max(backoffMs, honoured)
  const seconds = Math.ceil(asked / 1000)
  const capped = honoured < asked ? ` (capped by ${capName}: ${Math.ceil(capMs / 1000)} s)` : ''
  return { delayMs, askedMs: honoured, note: `the provider asked to wait ${seconds} s (Retry-After): no new attempt before ${new Date(nowMs + delayMs).toISOString()}${capped}` }
}
