/**
 * Caller authentication on every route but the open ones (health, back-channel logout, and /metrics unless
 * protected): the X-Api-Key header must hold a configured caller's key. A failure is 403 with a caller_*
 * code, never the 401 of a bad token. The authenticated caller's id labels the log line, the metrics and
 * the rate limit. Failed checks are bounded per client address (src/auth/failed-attempts.ts): past
 * callers.maxFailuresPerMinute, the address gets 429 rate_limited until its minute ends.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { API_KEY_HEADER, callerKeysFor, type CallerCheck, type CallerKeys } from '../auth/caller-keys.js'
import { FailedAttempts } from '../auth/failed-attempts.js'
import type { CallerKeyConfig, CallersConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import { clientAddress } from './client-address.js'
import { callerAtArrival } from './hit-lane.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The caller a request's X-Api-Key names when its check would let it through at once, for the hit lane
     * (src/http/hit-lane.ts): null when no key is configured (nothing to check), the caller's id when the key is
     * valid, the caller has no rate limit of its own and no window of failed checks runs (src/auth/failed-attempts.ts); undefined
     * otherwise: the route's hook must see the request (a refusal, a wait, a limit, a failure to count).
     */
    laneCaller: (headers: IncomingHttpHeaders) => string | null | undefined
  }
  interface FastifyRequest {
    /** The authenticated calling service (configured id), when caller authentication is on. */
    caller: { id: string, rateLimit?: CallerKeyConfig['rateLimit'], revoke?: true } | undefined
  }
}

/**
 * Routes that never need a key: probes must work without credentials, and the provider that posts a logout
 * token has no key (the signed token is its credential).
 */
export const ALWAYS_OPEN_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/backchannel-logout'])

export interface CallerAuthOptions {
  /** The callers section in force (a getter: a configuration reload may replace it). */
  callers: () => CallersConfig
  /** server.clientIpv6PrefixLength: the bits of an IPv6 address that name one client (src/http/client-address.ts). */
  ipv6PrefixLength: number
  metrics?: ServiceMetrics
  now?: () => number
}

/** The window of callers.maxFailuresPerMinute. */
const FAILURE_WINDOW_MS = 60_000

export const callerAuth = fp(async (fastify: FastifyInstance, opts: CallerAuthOptions) => {
  fastify.decorateRequest('caller', undefined)
  const failures = new FailedAttempts(FAILURE_WINDOW_MS, opts.now)
  // What the lane's check of a key found when it left the request to the route (a caller with a limit of its own, a
  // missing or wrong key): the hook takes it instead of hashing the key again. Keyed by the request's headers object,
  // which the route's request shares (the lane hands the request over in the same turn); gone with the request.
  const checkedByLane = new WeakMap<IncomingHttpHeaders, { keys: CallerKeys, result: CallerCheck }>()
  fastify.decorate('laneCaller', (headers: IncomingHttpHeaders): string | null | undefined => {
    const keys = callerKeysFor(opts.callers().keys)
    if (!keys.enabled) return null
    // While some address may be held back, which one a request comes from is the hook's to work out.
    if (failures.active) return undefined
    const result = keys.check(headers[API_KEY_HEADER])
    if (result.ok && result.caller.rateLimit === undefined) return result.caller.id
    checkedByLane.set(headers, { keys, result })
    return undefined
  })
  // Synchronous (done callback): this runs on every request, and an async hook costs a promise each time.
  fastify.addHook('onRequest', (request, reply, done) => {
    const callers = opts.callers()
    const keys = callerKeysFor(callers.keys)
    if (!keys.enabled) { done(); return }
    const route = request.routeOptions.url
    if (route !== undefined && (ALWAYS_OPEN_ROUTES.has(route) || (route === '/metrics' && !callers.protectMetrics))) { done(); return }
    // A request the lane let through on arrival and gave back later (its body held, its new token refused): checked
    // then, as Fastify checks before reading a body; a reload or another client's failed checks since change nothing.
    const arrived = callerAtArrival(reply.raw)
    if (arrived !== undefined) {
      // The lane lets through only callers without a rate limit of their own (laneCaller).
      if (arrived !== null) request.caller = { id: arrived }
      done()
      return
    }
    // The address is worked out only while some address's window runs (an IPv6 one costs microseconds to normalize).
    if (failures.active) {
      const waitSeconds = failures.blockedFor(clientAddress(request, opts.ipv6PrefixLength), callers.maxFailuresPerMinute)
      if (waitSeconds > 0) {
        opts.metrics?.callerRejected('rate_limited')
        // As every 429 has them (README): this limiter's bound, nothing left, and the wait.
        reply.header('x-ratelimit-limit', callers.maxFailuresPerMinute)
        reply.header('x-ratelimit-remaining', 0)
        reply.header('x-ratelimit-reset', waitSeconds)
        done(new VerificationError('rate_limited', { retryAfterSeconds: waitSeconds }))
        return
      }
    }
    const handed = checkedByLane.get(request.raw.headers)
    // The same keys only: a reload between the lane's look and this hook would have brought others.
    const result = handed !== undefined && handed.keys === keys ? handed.result : keys.check(request.headers[API_KEY_HEADER])
    if (!result.ok) {
      // A wrong key is a guess; a missing one is not (a probe or scraper without a key must not lock out its address).
      if (result.code === 'caller_key_invalid') failures.record(clientAddress(request, opts.ipv6PrefixLength), callers.maxFailuresPerMinute)
      opts.metrics?.callerRejected(result.code)
      done(new VerificationError(result.code))
      return
    }
    const caller: NonNullable<typeof request.caller> = { id: result.caller.id }
    if (result.caller.rateLimit !== undefined) caller.rateLimit = result.caller.rateLimit
    if (result.caller.revoke === true) caller.revoke = true
    request.caller = caller
    done()
  })
}, { name: 'caller-auth' })
