/**
 * A route's @fastify/rate-limit settings as buildApp hands them to the route plugins: a limit and a window,
 * each fixed or per request (a caller's own limit), or false when rate limiting is off.
 *
 * The caller limit is one limiter shared by the routes it applies to (CallerLimitHook): a limit set in a
 * route's own `config.rateLimit` gets a store of its own from @fastify/rate-limit, so a caller would have a
 * budget per route instead of one.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config/types.js'

type PerRequest = number | ((request: FastifyRequest, key: string) => number)

export type RouteRateLimit = {
  max: PerRequest
  timeWindow: PerRequest
  /** Requests that are neither counted nor limited. */
  allowList?: (request: FastifyRequest, key: string) => boolean
} | false

/**
 * The caller limit as buildApp hands it to /verify, /verify/batch, /introspect and /revocations: one
 * `fastify.rateLimit(callerRouteLimit(config))`, added to each route's onRequest hooks, so that every route
 * counts in the same store; undefined when callerRouteLimit is false.
 */
export type CallerLimitHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

/** The limit of a caller without one of its own when only some callers have one (the allow list skips them first). */
const UNLIMITED = Number.MAX_SAFE_INTEGER

/**
 * Whether the verify routes (/verify, /verify/batch, /introspect, /revocations) are limited per caller: rate
 * limiting is on, and rateLimit.max or some caller's own limit (callers.keys[].rateLimit) is set. Decided at
 * start; a reload that gives a caller a limit when none applied needs a restart (src/reload.ts).
 */
export function callerLimitApplies (config: Pick<Config, 'rateLimit' | 'callers'>): boolean {
  return config.rateLimit.enabled && (config.rateLimit.max !== undefined || config.callers.keys.some((key) => key.rateLimit !== undefined))
}

/**
 * The verify routes' limit: each caller's own (read per request, so a reload can change it), else
 * rateLimit.max, else none; false when callerLimitApplies() is not true, and the routes then pay nothing.
 * What a caller's own limit leaves out (max, windowSeconds) is rateLimit's as the routes were built, the
 * running one: a reload never changes rateLimit.
 */
export function callerRouteLimit (config: Pick<Config, 'rateLimit' | 'callers'>): RouteRateLimit {
  if (!callerLimitApplies(config)) return false
  const { max, windowSeconds } = config.rateLimit
  const limit: RouteRateLimit = {
    max: (request) => request.caller?.rateLimit?.max ?? max ?? UNLIMITED,
    timeWindow: (request) => (request.caller?.rateLimit?.windowSeconds ?? windowSeconds) * 1000
  }
  // Without rateLimit.max, callers without a limit of their own are not counted at all.
  if (max === undefined) limit.allowList = (request) => request.caller?.rateLimit === undefined
  return limit
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
