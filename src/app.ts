/**
 * buildApp(config): the service as a Fastify instance, a thin shell around the verification core.
 * Tests drive it with inject() or on a real port; src/server.ts is the process around it.
 * Boot order: logging → request log → error handling → rate limit → verifier → routes.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { randomUUID } from 'node:crypto'
import type { Config } from './config/types.js'
import { Verifier, type VerifierOptions } from './core/verifier.js'
import { isVerificationError, VerificationError } from './errors.js'
import { fromFrameworkError, sendError } from './http/error-reply.js'
import './http/fastify-augment.js'
import { requestLog } from './http/request-log.js'
import { healthRoutes } from './http/routes/health.js'
import { verifyRoute } from './http/routes/verify.js'
import { loggerOptions } from './logger.js'

/** Server timeouts (ms): explicit, so a slow or idle client cannot hold a connection for ever. */
export const CONNECTION_TIMEOUT_MS = 10_000
export const REQUEST_TIMEOUT_MS = 15_000
/** Longer than the usual 60 s idle timeout of load balancers, so they close first. */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

export interface BuildAppOptions extends VerifierOptions {
  /** A pino logger to use instead of one built from config (tests capture logs through it). */
  loggerInstance?: FastifyServerOptions['loggerInstance']
  /** Start discovery and key fetching when the app is ready (default true). */
  startVerifier?: boolean
}

export async function buildApp (config: Config, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({
    ...(options.loggerInstance !== undefined ? { loggerInstance: options.loggerInstance } : { logger: loggerOptions(config.server.logLevel) }),
    // Our own request log line (src/http/request-log.ts) replaces Fastify's, which would log URLs and errors.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimit,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    trustProxy: config.server.trustProxy,
    // A caller's request id is kept when it is short and harmless, so logs can be joined across services.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID()
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } }
  })

  // JSON only: a token sent as text/plain would be a second, looser way in.
  fastify.removeContentTypeParser('text/plain')

  const logger = fastify.log.child({ component: 'verifier' })
  const verifier = new Verifier(config, { ...options, logger })
  fastify.decorate('verifier', verifier)
  fastify.addHook('onClose', async () => { verifier.close() })

  await fastify.register(requestLog)
  fastify.addHook('onRequest', async (request, reply) => { reply.header('x-request-id', request.id) })

  fastify.setErrorHandler((err, request, reply) => {
    const error = isVerificationError(err) ? err : fromFrameworkError(err as { code?: string, statusCode?: number, validation?: unknown })
    if (error.status >= 500 && !isVerificationError(err)) {
      request.log.error({ err }, 'unexpected error')
    }
    return sendError(request, reply, error)
  })

  await fastify.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => {
      const err = new VerificationError('rate_limited', { retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)) })
      return Object.assign(err, { statusCode: 429 })
    }
  })

  const limit = config.rateLimit.enabled ? { max: config.rateLimit.max, timeWindow: config.rateLimit.windowSeconds * 1000 } : false
  // Unknown routes are rate limited too, so scanning costs the scanner.
  fastify.setNotFoundHandler(
    { preHandler: limit === false ? undefined : fastify.rateLimit({ max: Math.min(limit.max, 1000), timeWindow: limit.timeWindow }) },
    async (request, reply) => sendError(request, reply, new VerificationError('not_found'))
  )

  await fastify.register(healthRoutes)
  await fastify.register(verifyRoute, { rateLimit: limit })

  if (options.startVerifier !== false) fastify.addHook('onReady', async () => { verifier.start() })
  return fastify
}
