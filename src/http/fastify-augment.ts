import type { Verifier } from '../core/verifier.js'
import type { ErrorCode } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    verifier: Verifier
  }
  interface FastifyRequest {
    /** What the request log line reports: the configured issuer id and the error code, never token data. */
    outcome: { code?: ErrorCode, issuer?: string } | undefined
  }
}
