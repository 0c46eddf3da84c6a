/**
 * Load shedding with @fastify/under-pressure: when the event loop (or memory) passes a configured
 * threshold, requests are refused at once with 503 overloaded and Retry-After, before any parsing, so the
 * process recovers instead of queueing work it cannot finish in time. Probes and /metrics are never shed:
 * a restart or a blind spot during overload would make it worse.
 */
import underPressure, { type FastifyUnderPressureOptions } from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import type { LoadSheddingConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import { admittedOnArrival } from './hit-lane.js'

export const NEVER_SHED_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics'])

export interface LoadSheddingOptions {
  config: LoadSheddingConfig
  metrics?: ServiceMetrics | undefined
  /** An extra signal: resolving false sheds load (under-pressure's healthCheck), polled every sample interval. */
  healthCheck?: (() => Promise<boolean>) | undefined
}

export async function registerLoadShedding (fastify: FastifyInstance, opts: LoadSheddingOptions): Promise<void> {
  const { config } = opts
  if (!config.enabled) return
  const retryAfterSeconds = config.retryAfterSeconds
  // A non-nullish return value is sent as the reply (documented by under-pressure); an Error goes to our error handler.
  const pressureHandler = (request: { routeOptions: { url?: string | undefined } }, reply: { raw: object }, type: string): VerificationError | undefined => {
    const route = request.routeOptions.url
    if (route !== undefined && NEVER_SHED_ROUTES.has(route)) return undefined
    // A request the hit lane held while its body came (or its token was verified) was admitted when it arrived, as
    // the route admits on arrival.
    if (admittedOnArrival(reply.raw)) return undefined
    opts.metrics?.shed(type)
    return new VerificationError('overloaded', { retryAfterSeconds })
  }
  const options: FastifyUnderPressureOptions = {
    maxEventLoopDelay: config.maxEventLoopDelayMs,
    maxEventLoopUtilization: config.maxEventLoopUtilization,
    // Per sample interval: the default, cumulative since start, would react to an overload only after hours.
    eventLoopUtilizationMode: 'interval',
    maxHeapUsedBytes: config.maxHeapUsedBytes,
    maxRssBytes: config.maxRssBytes,
    sampleInterval: config.sampleIntervalMs,
    retryAfter: retryAfterSeconds,
    pressureHandler: pressureHandler as unknown as FastifyUnderPressureOptions['pressureHandler']
  }
  if (opts.healthCheck !== undefined) {
    const check = opts.healthCheck
    options.healthCheck = async () => await check()
    options.healthCheckInterval = config.sampleIntervalMs
  }
  await fastify.register(underPressure, options)
}
