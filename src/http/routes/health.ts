import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { HealthSchema, ReadinessSchema, type Readiness } from '../schemas.js'
import type { IssuerStatus } from '../../core/verifier.js'
import type { ServerConfig } from '../../config/types.js'

/**
 * Whether the issuers let the process take traffic. `every-issuer`: each has usable keys. `any-issuer`: each has
 * been tried, so that no request comes before the keys it needs are loaded (a fetch may still be running), and one
 * has usable keys: a provider that stays down makes its own tokens 503 keys_unavailable, on every replica alike,
 * instead of taking every replica out of the load balancer with the other providers' users.
 */
export function issuersReady (issuers: readonly IssuerStatus[], policy: ServerConfig['readiness']): boolean {
  if (policy === 'every-issuer') return issuers.every((i) => i.ready)
  return issuers.some((i) => i.ready) && issuers.every((i) => i.ready || i.lastError !== null)
}

/** This process's readiness: the issuers are ready and the copy of the revocations is current. */
export function ownReadiness (fastify: FastifyInstance): Readiness {
  const issuers = fastify.verifier.status()
  const store = fastify.revocations?.status()
  // A copy of the revocations that is not current fails every verification (503 revocations_unavailable).
  // A process that is stopping is not ready, whatever its issuers (the main listener answers until it has closed).
  const ready = !fastify.stopping && issuersReady(issuers, fastify.verifierSlot.config.server.readiness) && (store === undefined || store.current)
  if (store === undefined) return { ready, issuers }
  return { ready, issuers, revocations: { store: store.kind, current: store.current, lastCurrentAt: store.lastCurrentAt === null ? null : new Date(store.lastCurrentAt).toISOString() } }
}

/**
 * Liveness never depends on an IdP; readiness is 200 only when the issuers are ready (issuersReady) and the copy
 * of the revocations is current, and with WORKERS=N, only when every worker of the host says so too
 * (src/cluster-readiness.ts).
 */
export const healthRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', { schema: { response: { 200: HealthSchema } } }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', { schema: { response: { 200: ReadinessSchema, 503: ReadinessSchema } } }, async (_request, reply) => {
    const own = ownReadiness(fastify)
    const workers = fastify.workersReadiness?.workers()
    if (fastify.workersReadiness === undefined) return await reply.code(own.ready ? 200 : 503).send(own)
    // A cluster worker without a count from the primary yet (listening, its first report not answered) cannot speak for the host.
    if (workers === undefined) return await reply.code(503).send({ ...own, ready: false })
    const ready = own.ready && workers.ready === workers.total
    return await reply.code(ready ? 200 : 503).send({ ...own, ready, workers })
  })
}
