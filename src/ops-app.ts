/**
 * buildOpsApp(app, config): the listener for server.opsPort, serving only /healthz, /readyz and /metrics of
 * the main app, so that a network policy can expose /verify to services and /metrics only to Prometheus.
 * It has no caller authentication, no load shedding and no /verify; HTTPS with server.opsTls (server
 * authentication only: orchestrator probes have no client certificate), plain HTTP otherwise (keep it on a
 * private network). It shares the main app's Verifier (read per request: a reload is seen) and metrics registry,
 * and is known to the main app as app.opsApp, so that a reload renews its certificates (src/http/tls-reload.ts).
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Config } from './config/types.js'
import { isVerificationError } from './errors.js'
import { asVerificationError, sendError } from './http/error-reply.js'
import { frameworkErrorHandler } from './http/framework-errors.js'
import { clientErrorHandler, type ClientErrorOptions } from './http/client-errors.js'
import './http/fastify-augment.js'
import { requestIdGenerator } from './http/request-id.js'
import { requestLifecycle } from './http/request-lifecycle.js'
import { requestChildLogger } from './http/request-logger.js'
import { answerUnknownRoutes } from './http/route-methods.js'
import { prepareListener } from './http/listener.js'
import { listenerHttpsOptions } from './http/tls.js'
import { CLOSING_RESPONSES } from './http/closing-response.js'
import { startServing } from './http/tls-reload.js'
import { healthRoutes } from './http/routes/health.js'
import { metricsRoute } from './http/routes/metrics.js'
import { sharedSchemaCompilers } from './http/schema-compilers.js'

export async function buildOpsApp (app: FastifyInstance, config: Config): Promise<FastifyInstance> {
  const https = config.server.opsTls === undefined ? undefined : { ...listenerHttpsOptions(config.server.opsTls, config.server.connectionTimeoutMs), ...CLOSING_RESPONSES }
  const logger = app.log.child({ listener: 'ops' })
  // As on the main listener: a caller's safe X-Request-Id is kept (a probe's or Prometheus' logs join ours).
  const requestIds = requestIdGenerator()
  // Answers written on the socket, outside the routes (src/http/client-errors.ts).
  const bareAnswers: ClientErrorOptions = { requestId: () => requestIds(), logger: () => logger, metrics: () => app.metrics }
  const ops = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    // As on the main listener: the child logger made when first needed, with a caller's traceparent ids.
    childLoggerFactory: requestChildLogger,
    genReqId: requestIds,
    bodyLimit: 1024, // no route takes a body
    connectionTimeout: config.server.connectionTimeoutMs,
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    // A malformed URL gets the service's error shape (Fastify's own would quote the URL), request id, count and log line.
    frameworkErrors: frameworkErrorHandler({ metrics: () => app.metrics }),
    // And so does a request Node cannot parse, or whose headers pass Node's default limit (no token comes here).
    clientErrorHandler: clientErrorHandler(bareAnswers),
    schemaController: sharedSchemaCompilers,
    ...(https !== undefined ? { https } : { http: CLOSING_RESPONSES })
  })
  // What the listener serves, for the look at its files (src/http/tls-watch.ts) and /metrics; logged if clients refuse it or it expires soon.
  if (https !== undefined) startServing(app.log, { name: 'ops', setting: 'server.opsTls' }, ops.server, https)
  prepareListener(ops, config, bareAnswers, 'ops')
  ops.decorate('verifier', { getter: () => app.verifier })
  ops.decorate('verifierSlot', { getter: () => app.verifierSlot })
  ops.decorate('metrics', app.metrics)
  ops.decorate('revocations', app.revocations)
  ops.decorate('workersReadiness', { getter: () => app.workersReadiness })

  await ops.register(requestLifecycle, { metrics: app.metrics })
  ops.setErrorHandler((err, request, reply) => {
    const error = asVerificationError(err, request)
    // An error of ours (a code) is no bug, and is answered and logged by the request line.
    if (error.status >= 500 && !isVerificationError(err)) request.log.error({ err }, 'unexpected error')
    return sendError(request, reply, error)
  })
  answerUnknownRoutes(ops)

  await ops.register(healthRoutes)
  if (app.metrics !== undefined) await ops.register(metricsRoute, { metrics: app.metrics })
  app.opsApp = ops
  return ops
}
