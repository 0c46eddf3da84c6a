/**
 * What every request does on arrival and at its end, in one pair of synchronous hooks (each async hook
 * costs a promise and a microtask on every request's path):
 * - arrival: the x-request-id response header; an HTTP/1.1 request without Host, or any with two, is refused
 *   (RFC 9112 §3.2; Node leaves that to us, src/http/client-errors.ts);
 * - first use of request.verifier: a lease on the Verifier generation in force, so that a configuration reload
 *   closes a replaced Verifier only after the requests that use it are done;
 * - end (response or abort): the lease given back, the request counted in the metrics, the request log line.
 * An answer given before the request's body was read whole closes the connection: src/http/closing-response.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import type { Verifier } from '../core/verifier.js'
import type { Lease, VerifierSlot } from '../verifier-slot.js'
import { repeatedHeader } from './bearer.js'
import { requestElapsedMs } from './hit-lane.js'
import { logCompletedRequest } from './request-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Held from the request's first use of `verifier` to its end (see VerifierSlot). */
    verifierLease: Lease | undefined
    /**
     * The Verifier this request verifies with: the current one when the request first reads it, leased until
     * the request ends, so that a reload (or two) meanwhile never closes the Verifier it is using.
     */
    readonly verifier: Verifier
  }
}

export interface RequestLifecycleOptions {
  /** The Verifier slot whose generations requests lease; none on the ops listener, which only reads. */
  slot?: VerifierSlot | undefined
  metrics?: ServiceMetrics | undefined
}

export const requestLifecycle = fp(async (fastify: FastifyInstance, opts: RequestLifecycleOptions) => {
  const { slot, metrics } = opts
  fastify.decorateRequest('outcome', undefined)
  fastify.decorateRequest('verifierLease', undefined)
  // Leased on first use, not on arrival: a reload while the body arrives would otherwise leave the request holding
  // one Verifier and verifying on the next, which a second reload could close under it.
  fastify.decorateRequest('verifier', {
    getter (this: FastifyRequest): Verifier {
      if (slot === undefined) return fastify.verifier
      this.verifierLease ??= slot.lease()
      return this.verifierLease.verifier
    }
  })

  const giveBack = (request: FastifyRequest): void => {
    const lease = request.verifierLease
    if (lease === undefined || slot === undefined) return
    // A request may end by abort and then by response: the lease goes back once.
    request.verifierLease = undefined
    slot.release(lease)
  }

  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    // RFC 9112 §3.2: a request without Host (HTTP/1.1) or with more than one is 400. Node keeps the first of two.
    if ((request.headers.host === undefined && request.raw.httpVersion === '1.1') || repeatedHeader(request.raw.rawHeaders, 'host')) {
      done(new VerificationError('request_invalid', { parameter: 'header.host' }))
      return
    }
    done()
  })
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    giveBack(request)
    // From the request's arrival, also for one the hit lane held while its body came or its token was verified
    // (src/http/hit-lane.ts).
    const elapsedMs = requestElapsedMs(reply.raw, reply.elapsedTime)
    metrics?.requestCompleted(request.routeOptions.url, request.method, reply.statusCode, request.caller?.id, request.outcome?.code, elapsedMs / 1000)
    logCompletedRequest(request, reply, elapsedMs)
    done()
  })
  fastify.addHook('onRequestAbort', (request, done) => {
    giveBack(request)
    done()
  })
}, { name: 'request-lifecycle' })
