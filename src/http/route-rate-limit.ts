/**
 * A route's @fastify/rate-limit settings as buildApp hands them to the route plugins: a limit and a window,
 * each fixed or per request (a caller's own limit), or false when rate limiting is off.
 *
 * The caller limit is one limiter shared by the routes it applies to (CallerLimitHook): a limit set in a
 * route's own `config.rateLimit` gets a store of its own from @fastify/rate-limit, so a caller would have a
 * budget per route instead of one.
 */
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { Config } from '../config/types.js'

type PerRequest = number | ((request: FastifyRequest, key: string) => number)

export type RouteRateLimit = {
  max: PerRequest
  timeWindow: PerRequest
} | false

/**
 * The caller limit as buildApp hands it to /verify, /verify/batch, /introspect and /revocations: one limiter,
 * `fastify.rateLimit(callerRouteLimit(config))`, made once and run by each route's onRequest hook
 * (callerLimitHook), so that every route counts in the same store; undefined when rate limiting is off.
 */
export type CallerLimitHook = onRequestHookHandler

/** What `fastify.rateLimit(options)` returns: @fastify/rate-limit's limiter, which throws the 429. */
export type Limiter = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

/**
 * The routes' hook around the limiter. With rateLimit.max every request is counted. Without it only a caller with
 * a limit of its own is, in the configuration in force (the caller auth hook, which runs first, read it): a request
 * of anyone else passes at once, without the limiter's promise and store lookup, so routes that no limit applies to
 * pay one property read; and a reload that gives a caller a limit, or takes it away, applies at the next request.
 */
export function callerLimitHook (limiter: Limiter, config: Pick<Config, 'rateLimit'>): CallerLimitHook {
  const everyone = limitsEveryCaller(config)
  return function callerLimit (request, reply, done) {
    if (!everyone && request.caller?.rateLimit === undefined) {
      done()
      return
    }
    limiter(request, reply).then(() => { done() }, done)
  }
}

/**
 * Whether every request of the verify routes passes the limiter (rateLimit.max, which a reload does not change):
 * then the hit lane, which knows no limits, is not installed (src/app.ts).
 */
export function limitsEveryCaller (config: Pick<Config, 'rateLimit'>): boolean {
  return config.rateLimit.enabled && config.rateLimit.max !== undefined
}

/** A caller's own limit with no max while rateLimit has none either: refused at start and on reload (callersWithoutMax). */
const UNLIMITED = Number.MAX_SAFE_INTEGER

/**
 * The verify routes' limit: each caller's own (read per request, so a reload can change it), else
 * rateLimit.max, else none (callerLimitHook then passes the request at once); false when rate limiting is off.
 * What a caller's own limit leaves out (max, windowSeconds) is rateLimit's as the routes were built, the
 * running one: a reload never changes rateLimit.
 */
export function callerRouteLimit (config: Pick<Config, 'rateLimit' | 'callers'>): RouteRateLimit {
  if (!config.rateLimit.enabled) return false
  const { max, windowSeconds } = config.rateLimit
  // Without rateLimit.max, callers without a limit of their own never reach the limiter (callerLimitHook).
  return {
    max: (request) => request.caller?.rateLimit?.max ?? max ?? UNLIMITED,
    timeWindow: (request) => (request.caller?.rateLimit?.windowSeconds ?? windowSeconds) * 1000
  }
}

/**
 * Indexes of the callers whose own limit has no max while `rateLimit` (the running one) has none either: the
 * routes would count such a caller without ever limiting it. The configuration refuses this at start; a
 * reload that changes rateLimit.max keeps the running one, so it checks again against that (src/reload.ts).
 */
export function callersWithoutMax (config: Pick<Config, 'rateLimit' | 'callers'>): number[] {
  if (!config.rateLimit.enabled || config.rateLimit.max !== undefined) return []
  return config.callers.keys.flatMap((key, i) => key.rateLimit !== undefined && key.rateLimit.max === undefined ? [i] : [])
}
