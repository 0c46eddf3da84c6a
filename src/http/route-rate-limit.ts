/**
 * A route's @fastify/rate-limit settings as buildApp hands them to the route plugins: a limit and a window,
 * each fixed or per request (a caller's own limit), or false when rate limiting is off.
 */
import type { FastifyRequest } from 'fastify'

type PerRequest = number | ((request: FastifyRequest, key: string) => number)

export type RouteRateLimit = { max: PerRequest, timeWindow: PerRequest } | false
