/**
 * Keep-alive connections end with their last answer once the service is stopping.
 *
 * On close, Node's server stops accepting and Fastify closes the connections that are idle at that moment;
 * a connection whose request is still running stays open after its answer, idle, until its keep-alive
 * timeout (`server.keepAliveTimeoutMs`, 72 s by default) ends it. That holds the close past the grace period
 * (`server.shutdownGraceSeconds`), and the process then exits 1 at the grace limit instead of 0 when the
 * last request is done. So when the close begins, the keep-alive timeout drops to the least Node allows, and a
 * connection ends about a second after its last answer (Node adds a fixed second to the timeout, so that a
 * client is not cut off as it reuses the connection; the answer's own `Keep-Alive` header was set when its
 * request came in).
 */
import type { FastifyInstance } from 'fastify'

/** Milliseconds; Node treats 0 as "no timeout", so the least that ends a connection is 1. */
export const CLOSING_KEEP_ALIVE_MS = 1

export function closeKeptAliveOnClose (fastify: FastifyInstance): void {
  fastify.addHook('preClose', (done) => {
    fastify.server.keepAliveTimeout = CLOSING_KEEP_ALIVE_MS
    done()
  })
}
