/**
 * Fastify answers a malformed URL (bad percent-encoding in the path) or an oversized path parameter by
 * itself, before routing and before any hook or error handler, with its own body that quotes the URL. This
 * sends them through ours instead: the one error shape everywhere (the URL never echoed), and under the
 * forward-auth prefix a 401 (nginx would turn a 400 into a 500). Envoy's checks, whose path after
 * /forward-auth/envoy is the app's own, never come here: they are routed without decoding it (routingUrl).
 *
 * No hook runs for such a request, so what the hooks do for every answer is done here: the x-request-id
 * header, the caller-key refusal (with caller keys configured, a request without a key is refused 403 as an
 * unknown route would be, so a scan learns nothing), the metrics and the request log line (route "none").
 * A key that is present is not checked: the failed-check bound needs the client address, which trustProxy
 * decides and Fastify does not give these requests, and an unbounded check would let keys be guessed; so
 * the answer (400 request_invalid) is the same for a right and a wrong key, and names no caller.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { performance } from 'node:perf_hooks'
import { API_KEY_HEADER, callerKeysFor } from '../auth/caller-keys.js'
import type { CallersConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import { fromFrameworkError, sendError } from './error-reply.js'
import { logCompletedRequest } from './request-log.js'
import { isForwardAuthUrl, sendDenial } from './routes/forward-auth.js'

export interface FrameworkErrorOptions {
  /** The callers section in force (a getter: a reload may replace it); absent where no caller key is asked (the ops listener). */
  callers?: () => CallersConfig
  /** Whether this listener serves /forward-auth (the main one): there a malformed URL is denied with 401. */
  forwardAuth?: boolean
  /** Where the answer is counted (a getter: made after the Fastify instance). */
  metrics?: () => ServiceMetrics | undefined
}

export type FrameworkErrorHandler = (error: Error, request: FastifyRequest, reply: FastifyReply) => FastifyReply

export function frameworkErrorHandler (opts: FrameworkErrorOptions = {}): FrameworkErrorHandler {
  return (error, request, reply) => {
    const start = performance.now()
    reply.header('x-request-id', request.id)
    if (opts.forwardAuth === true && isForwardAuthUrl(request.raw.url)) {
      // Fail closed: without a route there is no configuration at hand, and a malformed URL is never allowed.
      sendDenial(request, reply, fromFrameworkError(error as { code?: string, statusCode?: number }), { keysUnavailableStatus: 401 })
    } else {
      const key = request.headers[API_KEY_HEADER]
      const keyMissing = (key === undefined || key === '') && opts.callers !== undefined && callerKeysFor(opts.callers().keys).enabled
      if (keyMissing) opts.metrics?.()?.callerRejected('caller_key_missing')
      sendError(request, reply, keyMissing ? new VerificationError('caller_key_missing') : fromFrameworkError(error as { code?: string, statusCode?: number }))
    }
    opts.metrics?.()?.requestCompleted(undefined, request.method, reply.statusCode, undefined, request.outcome?.code, (performance.now() - start) / 1000)
    logCompletedRequest(request, reply)
    return reply
  }
}
