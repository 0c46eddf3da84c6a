import type { FastifyPluginAsync, preHandlerAsyncHookHandler } from 'fastify'
import { Type } from 'typebox'
import type { ServiceMetrics } from '../../metrics/metrics.js'

/** The answer's schema, made once: its compiled serializer is kept beside it (src/http/schema-compilers.ts). */
const MetricsTextSchema = Type.String({ description: 'Prometheus text format 0.0.4' })

/**
 * GET /metrics: Prometheus text exposition format. No parameters; the query string is ignored. `preHandler`: the
 * main port's per-address limit (src/app.ts); the ops port has none (only Prometheus should reach it). Never shed.
 */
export const metricsRoute: FastifyPluginAsync<{ metrics: ServiceMetrics, preHandler?: preHandlerAsyncHookHandler }> = async (fastify, opts) => {
  fastify.get('/metrics', {
    ...(opts.preHandler !== undefined ? { preHandler: opts.preHandler } : {}),
    // A text body: Fastify does not JSON-serialize a string sent with a non-JSON content type.
    schema: { response: { 200: MetricsTextSchema } }
  }, async (_request, reply) => {
    const text = await opts.metrics.text()
    return reply.type(opts.metrics.contentType).send(text)
  })
}
