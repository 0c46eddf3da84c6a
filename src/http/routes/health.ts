import type { FastifyPluginAsync } from 'fastify'
import { HealthSchema, ReadinessSchema } from '../schemas.js'

/**
 * Liveness never depends on an IdP; readiness is 200 only when every issuer has usable keys and the copy of
 * the revocations is current.
 */
export const healthRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', { schema: { response: { 200: HealthSchema } } }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', { schema: { response: { 200: ReadinessSchema, 503: ReadinessSchema } } }, async (_request, reply) => {
    const issuers = fastify.verifier.status()
    const store = fastify.revocations?.status()
    // A copy of the revocations that is not current fails every verification (503 revocations_unavailable).
    const ready = issuers.every((i) => i.ready) && (store === undefined || store.current)
    const revocations = store === undefined
      ? undefined
      : { store: store.kind, current: store.current, lastCurrentAt: store.lastCurrentAt === null ? null : new Date(store.lastCurrentAt).toISOString() }
    return reply.code(ready ? 200 : 503).send(revocations === undefined ? { ready, issuers } : { ready, issuers, revocations })
  })
}
