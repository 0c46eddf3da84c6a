/** The per-request checks a route body may ask for, validated against the Verifier in use. */
import type { RequestChecks, Verifier } from '../core/verifier.js'
import { VerificationError } from '../errors.js'

/** Copies the checks that are set (undefined fields stay absent); an unconfigured audience is a bad request. */
export function requestChecks (verifier: Verifier, fields: RequestChecks): RequestChecks {
  if (fields.audience !== undefined && !verifier.isConfiguredAudience(fields.audience)) throw new VerificationError('request_invalid')
  const checks: RequestChecks = {}
  // Spelled out rather than a loop over entries: this runs on every request.
  if (fields.nonce !== undefined) checks.nonce = fields.nonce
  if (fields.maxAge !== undefined) checks.maxAge = fields.maxAge
  if (fields.accessToken !== undefined) checks.accessToken = fields.accessToken
  if (fields.audience !== undefined) checks.audience = fields.audience
  if (fields.mode !== undefined) checks.mode = fields.mode
  return checks
}
