/** The per-request checks a route body may ask for, validated against the Verifier in use. */
import type { RequestChecks, Verifier } from '../core/verifier.js'
import { VerificationError } from '../errors.js'

/** Copies the checks that are set (undefined fields stay absent); an unconfigured audience is a bad request. */
export function requestChecks (verifier: Verifier, fields: RequestChecks): RequestChecks {
  if (fields.audience !== undefined && !verifier.isConfiguredAudience(fields.audience)) throw new VerificationError('request_invalid')
  const checks: RequestChecks = {}
  for (const [name, value] of Object.entries(fields) as Array<[keyof RequestChecks, unknown]>) {
    if (value !== undefined) (checks as Record<string, unknown>)[name] = value
  }
  return checks
}
