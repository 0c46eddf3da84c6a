/** The per-request checks a route body may ask for, validated against the Verifier in use. */
import type { RequestChecks, Verifier } from '../core/verifier.js'
import { VerificationError } from '../errors.js'

/**
 * The checks as given (the core reads an undefined field as "not asked for"); an audience that no issuer is
 * configured for is a bad request, not a token that fails.
 */
export function requestChecks (verifier: Verifier, fields: RequestChecks): RequestChecks {
  if (fields.audience !== undefined && !verifier.isConfiguredAudience(fields.audience)) throw new VerificationError('request_invalid', { parameter: 'body.audience' })
  return fields
}
