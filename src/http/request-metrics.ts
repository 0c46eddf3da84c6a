/** Counts every response by route pattern, status and caller id; 429s also count as rate limited. */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { ServiceMetrics } from '../metrics/metrics.js'

export const requestMetrics = fp(async (fastify: FastifyInstance, opts: { metrics: ServiceMetrics }) => {
  fastify.addHook('onResponse', async (request, reply) => {
    opts.metrics.requestCompleted({
      route: request.routeOptions.url,
      method: request.method,
      status: reply.statusCode,
      caller: request.caller?.id,
      code: request.outcome?.code,
      durationSeconds: reply.elapsedTime / 1000
    })
  })
}, { name: 'request-metrics' })
