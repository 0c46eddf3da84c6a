/**
 * buildApp(config): the service as a Fastify instance, a thin shell around the verification core.
 * Tests drive it with inject() or on a real port; src/server.ts is the process around it.
 * Boot order: logging → revocations → verifier → metrics → request log → error handling → load shedding →
 * caller authentication → rate limit → routes. With server.opsPort, health and metrics are served by
 * buildOpsApp (src/ops-app.ts) instead.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { coresPerProcess } from './cluster-primary.js'
import { NO_WORKER_COUNT_YET } from './cluster-readiness.js'
import type { Config } from './config/types.js'
import { Verifier, type VerifierOptions } from './core/verifier.js'
import { isVerificationError, VerificationError } from './errors.js'
import { asVerificationError, sendError } from './http/error-reply.js'
import './http/fastify-augment.js'
import { requestIdGenerator } from './http/request-id.js'
import { sharedSchemaCompilers } from './http/schema-compilers.js'
import { requestChildLogger } from './http/request-logger.js'
import { requestLifecycle } from './http/request-lifecycle.js'
import { contractRoutes } from './http/routes/contract.js'
import { healthRoutes } from './http/routes/health.js'
import { verifyRoute } from './http/routes/verify.js'
import { installHitLane } from './http/hit-lane.js'
import { IdentityBodies } from './http/identity-bodies.js'
import type { Logger } from 'pino'
import { callerLimitHook, callerRouteLimit, limitsEveryCaller } from './http/route-rate-limit.js'
import { verifyBatchRoute } from './http/routes/verify-batch.js'
import { introspectRoute } from './http/routes/introspect.js'
import { forwardAuthRoute, routingUrl } from './http/routes/forward-auth.js'
import { backchannelLogoutRoute } from './http/routes/backchannel-logout.js'
import { revocationsRoute } from './http/routes/revocations.js'
import { createRevocationStore } from './revocation/create-store.js'
import { warnUnconfiguredIssuerRevocations } from './revocation/unconfigured-issuers.js'
import { acceptJsonBodies } from './http/json-body.js'
import { prepareListener } from './http/listener.js'
import { answerUnknownRoutes } from './http/route-methods.js'
import { frameworkErrorHandler } from './http/framework-errors.js'
import { clientErrorHandler, type ClientErrorOptions, followHeaderLimit } from './http/client-errors.js'
import { loggerOptions } from './logger.js'
import { callerAuth } from './http/caller-auth.js'
import { clientAddress } from './http/client-address.js'
import { registerLoadShedding } from './http/load-shedding.js'
import { metricsRoute } from './http/routes/metrics.js'
import { listenerHttpsOptions } from './http/tls.js'
import { CLOSING_RESPONSES } from './http/closing-response.js'
import { servedValidity, startServing, tlsListeners } from './http/tls-reload.js'
import { CertificateWatch } from './http/tls-watch.js'
import { combineEvents } from './metrics/combine-events.js'
import { ServiceMetrics } from './metrics/metrics.js'
import { VerifierSlot } from './verifier-slot.js'

/** Requests to unknown routes allowed per address per rateLimit window (fewer when rateLimit.max is lower). */
const UNKNOWN_ROUTE_LIMIT = 1000
/**
 * Scrapes of /metrics on the main port allowed per address (or caller) per rateLimit window. Prometheus scrapes a
 * target every 15-60 s; a scrape renders every series (with WORKERS, in every worker), so whoever reaches the main
 * port could otherwise keep collections running back to back. Not lowered by rateLimit.max, the verify budget.
 */
const METRICS_SCRAPE_LIMIT = 1000

export interface BuildAppOptions extends VerifierOptions {
  /** A pino logger to use instead of one built from config (tests capture logs through it). */
  loggerInstance?: FastifyServerOptions['loggerInstance']
  /** Start discovery and key fetching when the app is ready (default true). */
  startVerifier?: boolean
  /** An extra load-shedding signal: resolving false sheds load (polled every loadShedding.sampleIntervalMs). */
  pressureHealthCheck?: () => Promise<boolean>
  /** The least time between two /metrics renders (default 50 ms, src/metrics/coalesce.ts); tests that scrape case by case set 0. */
  metricsRenderMinIntervalMs?: number
}

export async function buildApp (config: Config, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const https = config.server.tls === undefined ? undefined : { ...listenerHttpsOptions(config.server.tls, config.server.connectionTimeoutMs), ...CLOSING_RESPONSES }
  const requestIds = requestIdGenerator()
  // Answers written on the socket, outside the routes (src/http/client-errors.ts).
  const bareAnswers: ClientErrorOptions = { requestId: () => requestIds(), logger: () => fastify.log, metrics: () => fastify.metrics }
  // Server timeouts are explicit (config.server), so a slow or idle client cannot hold a connection for ever.
  const fastify = Fastify({
    ...(https !== undefined ? { https } : { http: CLOSING_RESPONSES }),
    ...(options.loggerInstance !== undefined ? { loggerInstance: options.loggerInstance } : { logger: loggerOptions(config.server.logLevel) }),
    // Our own request log line (src/http/request-log.ts) replaces Fastify's, which would log URLs and errors.
    logController: new LogController({ disableRequestLogging: true }),
    // Each request's child logger is made when the request first logs at a level in force.
    childLoggerFactory: requestChildLogger,
    bodyLimit: config.server.bodyLimit,
    connectionTimeout: config.server.connectionTimeoutMs,
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    // Fastify would answer a bare 503 (not our shape, no request id, metrics or log line) to any request it is handed
    // once the stop has begun: a request the hit lane held while its body arrived or its token was verified, in flight
    // since before the stop, reaches Fastify only then. Requests in flight are finished; each answer during the stop says Connection: close.
    return503OnClosing: false,
    trustProxy: config.server.trustProxy,
    // A caller's request id is kept when it is short and harmless, so logs can be joined across services.
    genReqId: requestIds,
    // Envoy's checks carry the app's path after /forward-auth/envoy: routed without decoding it (forward-auth.ts).
    rewriteUrl: (req) => routingUrl(req.url ?? '/'),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // Route schemas compiled once per process (src/http/schema-compilers.ts), not again by every instance.
    schemaController: sharedSchemaCompilers,
    // Malformed URLs get our error shape (and a 401 under /forward-auth) instead of Fastify's own 400, with
    // what the hooks, which do not run for them, give every answer: request id, key refusal, metrics, log line.
    frameworkErrors: frameworkErrorHandler({ forwardAuth: true, callers: () => fastify.verifierSlot.config.callers, metrics: () => fastify.metrics }),
    // Headers past the limit, or a request Node cannot parse: our error shape and a request id, not Fastify's body.
    clientErrorHandler: clientErrorHandler({ ...bareAnswers, forwardAuth: true })
  }) as unknown as FastifyInstance // an https server has the same routes and hooks
  prepareListener(fastify, config, { ...bareAnswers, forwardAuth: true }, 'main')
  // Room for a token of server.maxTokenBytes in a header beside ordinary headers (Node's default is 16 KiB in
  // all), read at each new connection from the configuration in force, so that a reload applies (HTTP and HTTPS).
  followHeaderLimit(fastify.server, () => fastify.verifierSlot.config.server.maxTokenBytes)

  // JSON only: a token sent as text/plain would be a second, looser way in. UTF-8 only, and empty is no body.
  fastify.removeContentTypeParser('text/plain')
  acceptJsonBodies(fastify)

  // The Verifier is replaceable at run time (src/reload.ts): routes read fastify.verifier per request.
  // One registry per app; key gauges read the Verifier in use at scrape time.
  // Revocations outlive Verifiers (a reload keeps them); the store is started when the app is ready.
  const revocations = await createRevocationStore(config.revocation, { logger: fastify.log.child({ component: 'revocations' }), now: options.now })
  fastify.decorate('revocations', revocations)
  if (revocations !== undefined) {
    fastify.addHook('onReady', async () => {
      await revocations.start()
      // A restart under a renamed issuer id leaves the revocations of the old one behind: say so, once the store
      // has loaded (Redis not reachable at start: when it is first read, later).
      const warn = (): void => {
        warnUnconfiguredIssuerRevocations(fastify.log.child({ component: 'revocations' }), revocations.list, fastify.verifierSlot.config.issuers.map((issuer) => issuer.id))
      }
      if (revocations.loaded === undefined) warn()
      else void revocations.loaded.then(warn)
    })
    fastify.addHook('onClose', async () => { await revocations.close() })
  }
  // The certificates of the listeners that speak TLS (server.tls, server.opsTls: on or off until a restart).
  const tlsCertificates = config.server.tls === undefined && config.server.opsTls === undefined
    ? undefined
    : () => servedValidity(tlsListeners(fastify, fastify.verifierSlot.config))
  const metrics = config.metrics.enabled ? new ServiceMetrics({
    status: () => fastify.verifier.status(),
    now: options.now,
    revocations,
    tlsCertificates,
    callerConfigured: (id) => fastify.verifierSlot.config.callers.keys.some((k) => k.id === id),
    renderMinIntervalMs: options.metricsRenderMinIntervalMs
  }) : undefined
  fastify.decorate('metrics', metrics)
  const events = metrics === undefined ? options.events : combineEvents(metrics.verifierEvents, options.events)
  // Shared by the workers of one host (WORKERS=N): decides where signature checks run under `auto`.
  const cores = options.coresPerProcess ?? coresPerProcess(process.env, availableParallelism(), cluster.isWorker)
  const slot = new VerifierSlot(config, (cfg) => new Verifier(cfg, { ...options, coresPerProcess: cores, events, revocations: revocations?.list, logger: fastify.log.child({ component: 'verifier' }) }))
  fastify.decorate('verifierSlot', slot)
  // Requests still arriving during the stop are answered (Fastify's own bare 503 is off, return503OnClosing), but
  // the process is no longer ready: load balancers that still send traffic are told to stop.
  fastify.decorate('stopping', false)
  fastify.addHook('preClose', (done) => { fastify.stopping = true; done() })
  fastify.decorate('verifier', { getter: () => slot.current })
  // Set by buildOpsApp: a reload reaches the ops listener through the main app (src/reload.ts).
  fastify.decorate('opsApp', undefined)
  // Set by a cluster worker once it listens (src/start.ts); before, a worker has no count of the host's workers.
  fastify.decorate('workersReadiness', cluster.isWorker ? NO_WORKER_COUNT_YET : undefined)
  // What the listener serves, for the look at its files (src/http/tls-watch.ts) and /metrics; logged if clients refuse it or it expires soon.
  if (https !== undefined) startServing(fastify.log, { name: 'main', setting: 'server.tls' }, fastify.server, https)
  fastify.addHook('onClose', async () => { slot.close() })
  const { tls, opsTls, certificateCheckSeconds } = config.server
  const watch = certificateCheckSeconds > 0 && (tls !== undefined || opsTls !== undefined) ? new CertificateWatch(fastify, fastify.log.child({ component: 'tls' })) : undefined
  fastify.decorate('certificateWatch', watch)
  if (watch !== undefined) {
    // On ready: buildOpsApp, which makes the ops listener known, runs between buildApp and listen.
    fastify.addHook('onReady', async () => { watch.start(certificateCheckSeconds * 1000) })
    fastify.addHook('onClose', async () => { watch.stop() })
  }
  await fastify.register(requestLifecycle, { slot, metrics })

  fastify.setErrorHandler((err, request, reply) => {
    const error = asVerificationError(err, request)
    if (error.status >= 500 && !isVerificationError(err)) {
      request.log.error({ err }, 'unexpected error')
    }
    return sendError(request, reply, error)
  })

  await registerLoadShedding(fastify, { config: config.loadShedding, metrics, healthCheck: options.pressureHealthCheck })
  // Caller keys are read from the configuration in force, so a reload can rotate them.
  await fastify.register(callerAuth, { callers: () => fastify.verifierSlot.config.callers, ipv6PrefixLength: config.server.clientIpv6PrefixLength, metrics, now: options.now })

  await fastify.register(rateLimit, {
    global: false,
    // Within the limit, the three x-ratelimit-* headers only when asked for: every header costs on every answer.
    addHeadersOnExceeding: { 'x-ratelimit-limit': config.rateLimit.headers, 'x-ratelimit-remaining': config.rateLimit.headers, 'x-ratelimit-reset': config.rateLimit.headers },
    // An authenticated caller is limited by its id (wherever it connects from), others by address (IPv6 by /64).
    keyGenerator: (request) => request.caller !== undefined ? `caller:${request.caller.id}` : clientAddress(request, config.server.clientIpv6PrefixLength),
    errorResponseBuilder: (_request, context) => {
      const err = new VerificationError('rate_limited', { retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)) })
      return Object.assign(err, { statusCode: 429 })
    }
  })

  const { enabled: limited, windowSeconds } = config.rateLimit
  // Unknown routes (404) and methods (405) are rate limited per address, so scanning costs the scanner.
  answerUnknownRoutes(fastify,
    { preHandler: limited ? fastify.rateLimit({ max: Math.min(config.rateLimit.max ?? UNKNOWN_ROUTE_LIMIT, UNKNOWN_ROUTE_LIMIT), timeWindow: windowSeconds * 1000 }) : undefined })

  // With a separate ops port, health and metrics live there only (src/ops-app.ts).
  if (config.server.opsPort === undefined) {
    await fastify.register(healthRoutes)
    if (metrics !== undefined) {
      await fastify.register(metricsRoute, { metrics, preHandler: limited ? fastify.rateLimit({ max: METRICS_SCRAPE_LIMIT, timeWindow: windowSeconds * 1000 }) : undefined })
    }
  }
  const verifyLimit = callerRouteLimit(config)
  // One limiter, made once, for every route of the caller limit: one store, so one budget per caller across
  // /verify, /verify/batch, /introspect and /revocations (a route's own config.rateLimit has its own store). Its
  // hook passes at once a request that no limit applies to, so a reload can give a caller a limit of its own.
  const callerLimit = verifyLimit === false ? undefined : callerLimitHook(fastify.rateLimit(verifyLimit), config)
  // Answers for tokens the Verifier serves from its cache are rendered once per cache entry.
  const bodies = new IdentityBodies()
  await fastify.register(verifyRoute, { rateLimit: callerLimit, bodies })
  // Requests of the commonest shape are answered before routing, a cache hit at once and a new token once it verifies
  // (src/http/hit-lane.ts), unless every request must pass the caller limit (rateLimit.max), which lives in the
  // route's hooks; a caller with a limit of its own is the route's (laneCaller). The lane finds tokens by their cache
  // key: without the verified-token cache, the route answers every request.
  if (config.tokenCache.enabled && !limitsEveryCaller(config)) {
    const underPressure = config.loadShedding.enabled ? () => fastify.isUnderPressure() : () => false
    installHitLane(fastify.server, {
      verifiers: slot,
      // Load shedding is the route's hooks' to apply; a request whose caller key the lane cannot settle too.
      open: () => !fastify.stopping && !underPressure(),
      caller: (headers) => fastify.laneCaller(headers),
      requestId: requestIds,
      logger: fastify.log as unknown as Logger,
      metrics,
      bodies,
      maxBodyBytes: config.server.bodyLimit
    })
  }
  await fastify.register(verifyBatchRoute, { rateLimit: callerLimit, bodyLimit: config.batch.maxBodyBytes })
  await fastify.register(introspectRoute, { rateLimit: callerLimit })
  if (revocations !== undefined) {
    const { retentionSeconds, maxSessionsPerUser, logoutTokenMaxAgeSeconds, logoutRateLimit } = config.revocation
    // Open to anyone (no caller key): a limit of its own, per address, whatever rateLimit.max is.
    const logoutLimit = limited ? { max: logoutRateLimit.max, timeWindow: logoutRateLimit.windowSeconds * 1000 } : false
    await fastify.register(backchannelLogoutRoute, { store: revocations, retentionSeconds, maxSessionsPerUser, logoutTokenMaxAgeSeconds, rateLimit: logoutLimit, now: options.now })
    await fastify.register(revocationsRoute, { store: revocations, retentionSeconds, issuers: () => fastify.verifierSlot.config.issuers, rateLimit: callerLimit, now: options.now })
  }
  // Never rate limited: nginx turns a 429 into a 500, and the proxy in front is its only caller.
  await fastify.register(forwardAuthRoute)

  // The contract, served: /openapi.json and /docs (openapi.yaml is read once, at start).
  await fastify.register(contractRoutes)

  if (options.startVerifier !== false) fastify.addHook('onReady', async () => { slot.current.start() })
  return fastify
}
