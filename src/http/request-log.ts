/**
 * One log line per request: route, status, issuer id, caller id, error code, duration, request id. Built from chosen
 * fields only, so no token, Authorization header or personal claim can reach the log.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'

/**
 * error: the service failed (500, a bug, with its own "unexpected error" line). warn: it could not answer now
 * (503: keys unavailable, overloaded; the cause has its own warning, from the JWKS cache or load shedding).
 * info: everything else, a /readyz 503 too, which is the probe's answer, not a failure of the request.
 */
function levelOf (status: number, request: FastifyRequest): 'error' | 'warn' | 'info' {
  if (status < 500) return 'info'
  // Read only here: Fastify's routeOptions getter builds an object on every call.
  if (status === 503) return request.routeOptions.url === '/readyz' ? 'info' : 'warn'
  return 'error'
}

/** What the request line says of one request, read from Fastify's request and reply or given by the hit lane. */
export interface CompletedRequest {
  method: string
  route: string | null
  status: number
  outcome: FastifyRequest['outcome']
  caller: string | null
  durationMs: number
}

/** The request line's fields (the message is always "request completed"). */
export function requestLine (done: CompletedRequest): Record<string, unknown> {
  const outcome = done.outcome
  return {
    method: done.method,
    route: done.route,
    status: done.status,
    issuer: outcome?.issuer ?? null,
    caller: done.caller,
    code: outcome?.code ?? null,
    // A token error's details: the registered algorithm it names, how far off its times are.
    ...(outcome?.algorithm !== undefined ? { algorithm: outcome.algorithm } : {}),
    ...(outcome?.offBySeconds !== undefined ? { offBySeconds: outcome.offBySeconds } : {}),
    ...(outcome?.nearIssuer !== undefined ? { nearIssuer: outcome.nearIssuer, issuerDifference: outcome.issuerDifference } : {}),
    // A refused request: the part of it at fault (body.nonce, query.audience), a name the route defines.
    ...(outcome?.parameter !== undefined ? { parameter: outcome.parameter } : {}),
    ...(outcome?.nearRoute !== undefined ? { nearRoute: outcome.nearRoute, nearRouteMethods: outcome.nearRouteMethods } : {}),
    // forward-auth: the original request's method, host and path (no query), as the proxy described it.
    ...(outcome?.original !== undefined ? { original: outcome.original } : {}),
    durationMs: Math.round(done.durationMs * 1000) / 1000
  }
}

/** Writes the request's line; nothing is built when the level in force hides it (most busy deployments). */
export function logCompletedRequest (request: FastifyRequest, reply: FastifyReply, durationMs = reply.elapsedTime): void {
  const status = reply.statusCode
  const level = levelOf(status, request)
  // Fastify's logger type does not declare it, but the logger is always pino (a child per request).
  if (!(request.log as unknown as Logger).isLevelEnabled(level)) return
  // reqId comes from the request's logger (Fastify binds it): written here too, it would appear twice in the line.
  const line = requestLine({
    method: request.method,
    route: request.routeOptions.url ?? null,
    status,
    outcome: request.outcome,
    caller: request.caller?.id ?? null,
    durationMs
  })
  request.log[level](line, 'request completed')
}
