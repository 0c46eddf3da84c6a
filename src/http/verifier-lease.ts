/**
 * Each request holds a lease on the Verifier generation current when it arrived, so that a configuration
 * reload closes a replaced Verifier only after the requests that may still be using it are done.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Lease, VerifierSlot } from '../verifier-slot.js'

export const verifierLease = fp(async (fastify: FastifyInstance, opts: { slot: VerifierSlot }) => {
  const leases = new WeakMap<FastifyRequest, Lease>()
  const release = async (request: FastifyRequest): Promise<void> => {
    leases.get(request)?.release()
    leases.delete(request)
  }
  fastify.addHook('onRequest', async (request) => { leases.set(request, opts.slot.lease()) })
  fastify.addHook('onResponse', release)
  fastify.addHook('onRequestAbort', release)
}, { name: 'verifier-lease' })
