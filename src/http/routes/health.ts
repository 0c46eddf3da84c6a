import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { HealthSchema, ReadinessSchema, type Readiness } from '../schemas.js'

/** This process's readiness: every issuer has usable keys and the copy of the revocations is current. */
export function ownReadiness (fastify: FastifyInstance): Readiness {
  const issuers = fastify.verifier.status()
  const store = fastify.revocations?.status()
  // A copy of the revocations that is not current fails every verification (503 revocations_unavailable).
  const ready = issuers.every((i) => i.ready) && (store === undefined || store.current)
  if (store === undefined) return { ready, issuers }
  return { ready, issuers, revocations: { store: store.kind, current: store.current, lastCurrentAt: store.lastCurrentAt === null ? null : new Date(store.lastCurrentAt).toISOString() } }
}

/**
 * Liveness never depends on an IdP; readiness is 200 only when every issuer has usable keys and the copy of
 * the revocations is current, and with WORKERS=N, only when every worker of the host says so too
 * (src/cluster-readiness.ts).
 */
export const healthRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', { schema: { response: { 200: HealthSchema } } }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', { schema: { response: { 200: ReadinessSchema, 503: ReadinessSchema } } }, async (_request, reply) => {
    const own = ownReadiness(fastify)
    const workers = fastify.workersReadiness?.workers()
    if (workers === undefined) return await reply.code(own.ready ? 200 : 503).send(own)
    const ready = own.ready && workers.ready === workers.total
    return await reply.code(ready ? 200 : 503).send({ ...own, ready, workers })
  })
}
