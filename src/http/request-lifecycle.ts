/**
 * What every request does on arrival and at its end, in one pair of synchronous hooks (each async hook
 * costs a promise and a microtask on every request's path):
 * - arrival: the x-request-id response header; an HTTP/1.1 request without Host, or any with two, is refused
 *   (RFC 9112 §3.2; Node leaves that to us, src/http/client-errors.ts); a large or chunked body left unread when
 *   the answer is sent closes the connection, and the answer says so;
 * - first use of request.verifier: a lease on the Verifier generation in force, so that a configuration reload
 *   closes a replaced Verifier only after the requests that use it are done;
 * - end (response or abort): the lease given back, a connection whose request body is not read whole closed, the
 *   request counted in the metrics, the request log line.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import type { Verifier } from '../core/verifier.js'
import type { Lease, VerifierSlot } from '../verifier-slot.js'
import { repeatedHeader } from './bearer.js'
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

/** A body this large, or chunked, is watched: one left unread when the answer is sent closes its connection. */
const LARGE_BODY_BYTES = 65_536

export interface RequestLifecycleOptions {
  /** The Verifier slot whose generations requests lease; none on the ops listener, which only reads. */
  slot?: VerifierSlot | undefined
  metrics?: ServiceMetrics | undefined
}

/**
 * Closes the connection after the answer when the request's body has not been read to its end by then, and says
 * so in the answer (Connection: close): a client told keep-alive would send its next request into a closing socket.
 * Only for the few requests with a large or chunked body: the answer's head is written through a wrapper.
 */
function closeIfUnread (raw: FastifyRequest['raw'], res: FastifyReply['raw']): void {
  const writeHead = res.writeHead
  res.writeHead = function (this: typeof res, ...args: Parameters<typeof writeHead>) {
    if (!raw.complete) this.shouldKeepAlive = false
    return writeHead.apply(this, args)
  } as typeof writeHead
  res.once('finish', () => { if (!raw.complete) raw.socket.destroySoon() })
}

/** Ends a connection once what is written has gone out (inject()'s stand-in socket has nothing to end). */
function closeSoon (socket: FastifyRequest['raw']['socket'] | undefined): void {
  if (typeof socket?.destroySoon === 'function') socket.destroySoon()
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
      done(new VerificationError('request_invalid'))
      return
    }
    // A large or chunked body: if the answer goes before it has been read to its end (an error, forward-auth, a
    // route that takes no body), Node would go on reading, and dropping, whatever the client keeps sending, for
    // as long as server.requestTimeoutMs, at a core's worth of CPU. The connection closes with the answer instead.
    if (request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length']) > LARGE_BODY_BYTES) {
      closeIfUnread(request.raw, reply.raw)
    }
    done()
  })
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    giveBack(request)
    // Answered before its body arrived whole (a 415, a 404, an early refusal of a small body): nothing more can be
    // read on this connection until that body ends, and a client that stalls would later get a 408 after this
    // answer. The connection closes instead (a large or chunked body was told so in the answer: closeIfUnread).
    if (!request.raw.complete) closeSoon(request.raw.socket)
    metrics?.requestCompleted(request.routeOptions.url, request.method, reply.statusCode, request.caller?.id, request.outcome?.code, reply.elapsedTime / 1000)
    logCompletedRequest(request, reply)
    done()
  })
  fastify.addHook('onRequestAbort', (request, done) => {
    giveBack(request)
    done()
  })
}, { name: 'request-lifecycle' })
