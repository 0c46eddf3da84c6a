/**
 * What both listeners (the main one and the ops one) set on their server once it exists: the headers timeout,
 * the connection bounds (src/http/connection-limits.ts), the idle bound that blank lines do not reset
 * (src/http/idle-connections.ts), the answers Node would otherwise give outside the routes
 * (src/http/client-errors.ts), and a close that ends kept-alive connections (src/http/close-kept-alive.ts).
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/types.js'
import { answerOutsideRoutes, type ClientErrorOptions } from './client-errors.js'
import { closeKeptAliveOnClose } from './close-kept-alive.js'
import { connectionBounds, limitConnections, openFileLimit, readLimits } from './connection-limits.js'
import { closeIdleConnections } from './idle-connections.js'

export function prepareListener (fastify: FastifyInstance, config: Config, answers: ClientErrorOptions, listener: 'main' | 'ops'): void {
  fastify.server.headersTimeout = config.server.headersTimeoutMs
  limitConnections(fastify.server, connectionBounds(config.server.maxConnections, openFileLimit(readLimits()))[listener])
  closeIdleConnections(fastify.server)
  answerOutsideRoutes(fastify.server, answers)
  closeKeptAliveOnClose(fastify)
}
