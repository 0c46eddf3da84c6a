/**
 * Records a revocation for the revocation routes (back-channel logout, POST /revocations): through the
 * store to every process, one log line and the metric. A store that cannot take it is 503
 * revocations_unavailable. The sid, sub or jti itself is never logged: it identifies a person or a token.
 */
import type { FastifyRequest } from 'fastify'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import type { Revocation } from '../revocation/revocation.js'
import { RevocationStoreError, type PublishResult, type RevocationStore } from '../revocation/store.js'

export async function recordRevocation (
  request: FastifyRequest,
  store: RevocationStore,
  revocation: Revocation,
  metrics: ServiceMetrics | undefined,
  logFields: Record<string, unknown> = {}
): Promise<PublishResult> {
  const { issuer, kind, source } = revocation
  let result: PublishResult
  try {
    result = await store.publish(revocation)
  } catch (err) {
    if (!(err instanceof RevocationStoreError)) throw err
    request.log.error({ err, issuer, kind, source, ...logFields }, 'revocation not recorded')
    throw new VerificationError('revocations_unavailable', { issuer })
  }
  request.log.info({ issuer, kind, source, result, ...logFields }, 'revocation recorded')
  metrics?.revocationRecorded(source, kind)
  request.outcome = { issuer }
  return result
}
