/**
 * What every request does on arrival and at its end, in one pair of synchronous hooks (each async hook
 * costs a promise and a microtask on every request's path):
 * - arrival: the x-request-id response header, and a lease on the Verifier generation in force, so that a
 *   configuration reload closes a replaced Verifier only after the requests that may still use it are done;
 *   an HTTP/1.1 request without Host is refused (RFC 9112 §3.2; Node leaves that to us, src/http/client-errors.ts);
 *   a large or chunked body left unread when the answer is sent closes the connection;
 * - end (response or abort): the lease given back, the request counted in the metrics, the request log line.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import type { Lease, VerifierSlot } from '../verifier-slot.js'
import { logCompletedRequest } from './request-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Held from arrival to the end of the request (see VerifierSlot). */
    verifierLease: Lease | undefined
  }
}

/** A body this large, or chunked, is watched: one left unread when the answer is sent closes its connection. */
const LARGE_BODY_BYTES = 65_536

export interface RequestLifecycleOptions {
  /** The Verifier slot whose generations requests lease; none on the ops listener, which only reads. */
  slot?: VerifierSlot | undefined
  metrics?: ServiceMetrics | undefined
}

export const requestLifecycle = fp(async (fastify: FastifyInstance, opts: RequestLifecycleOptions) => {
  const { slot, metrics } = opts
  fastify.decorateRequest('outcome', undefined)
  fastify.decorateRequest('verifierLease', undefined)

  const giveBack = (request: FastifyRequest): void => {
    const lease = request.verifierLease
    if (lease === undefined || slot === undefined) return
    // A request may end by abort and then by response: the lease goes back once.
    request.verifierLease = undefined
    slot.release(lease)
  }

  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      done(new VerificationError('request_invalid'))
      return
    }
    if (slot !== undefined) request.verifierLease = slot.lease()
    // A large or chunked body: if the answer goes before it has been read to its end (an error, forward-auth, a
    // route that takes no body), Node would go on reading, and dropping, whatever the client keeps sending, for
    // as long as server.requestTimeoutMs, at a core's worth of CPU. The connection closes with the answer instead.
    if (request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length']) > LARGE_BODY_BYTES) {
      const raw = request.raw
      reply.raw.once('finish', () => { if (!raw.complete) raw.socket.destroySoon() })
    }
    done()
  })
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    giveBack(request)
    metrics?.requestCompleted(request.routeOptions.url, request.method, reply.statusCode, request.caller?.id, request.outcome?.code, reply.elapsedTime / 1000)
    logCompletedRequest(request, reply)
    done()
  })
  fastify.addHook('onRequestAbort', (request, done) => {
    giveBack(request)
    done()
  })
}, { name: 'request-lifecycle' })
