/**
 * One log line per request: route, status, issuer id, caller id, error code, duration, request id. Built from chosen
 * fields only, so no token, Authorization header or personal claim can reach the log.
 */
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'

export const requestLog: FastifyPluginAsync = fp(async (fastify) => {
  fastify.decorateRequest('outcome', undefined)
  fastify.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode
    const line = {
      reqId: request.id,
      method: request.method,
      route: request.routeOptions.url ?? null,
      status,
      issuer: request.outcome?.issuer ?? null,
      caller: request.caller?.id ?? null,
      code: request.outcome?.code ?? null,
      // forward-auth: the original request's method, host and path (no query), as the proxy described it.
      ...(request.outcome?.original !== undefined ? { original: request.outcome.original } : {}),
      durationMs: Math.round(reply.elapsedTime * 1000) / 1000
    }
    if (status >= 500) request.log.error(line, 'request completed')
    else request.log.info(line, 'request completed')
  })
})
