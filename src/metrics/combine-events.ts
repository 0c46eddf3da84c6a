import type { VerifierEvents } from '../core/verifier.js'

/** Verifier events delivered to several observers (the metrics and, for example, a test's own). */
export function combineEvents (...observers: Array<VerifierEvents | undefined>): VerifierEvents {
  const list = observers.filter((o): o is VerifierEvents => o !== undefined)
  // The usual case, one observer (the metrics): no extra call per verification.
  if (list.length === 1) return list[0] as VerifierEvents
  return {
    verification: (e) => { for (const o of list) o.verification?.(e) },
    jwksFetch: (e) => { for (const o of list) o.jwksFetch?.(e) },
    staleKeysServed: (e) => { for (const o of list) o.staleKeysServed?.(e) },
    tokenCache: (e) => { for (const o of list) o.tokenCache?.(e) }
  }
}
