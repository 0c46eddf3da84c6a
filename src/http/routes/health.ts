import type { FastifyPluginAsync } from 'fastify'
import { HealthSchema, ReadinessSchema } from '../schemas.js'

/** Liveness never depends on an IdP; readiness is 200 only when every issuer has usable keys. */
export const healthRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', { schema: { response: { 200: HealthSchema } } }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', { schema: { response: { 200: ReadinessSchema, 503: ReadinessSchema } } }, async (_request, reply) => {
    const issuers = fastify.verifier.status()
    const ready = issuers.every((i) => i.ready)
    return reply.code(ready ? 200 : 503).send({ ready, issuers })
  })
}
