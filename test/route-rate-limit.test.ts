/**
 * The verify routes' caller limit as buildApp hands it to @fastify/rate-limit (src/http/route-rate-limit.ts),
 * read per request: a caller's own max and window before rateLimit's, callers without a limit of their own
 * skipped when rateLimit has no max, and the start/reload check for callers whose limit has no max.
 */
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import type { Config } from '../src/config/types.js'
import { callerRouteLimit, callersWithoutMax } from '../src/http/route-rate-limit.js'

type Limits = Pick<Config, 'rateLimit' | 'callers'>
type CallerLimit = { max?: number, windowSeconds?: number } | undefined

const configOf = (rateLimit: { enabled?: boolean, max?: number, windowSeconds?: number }, callerLimits: CallerLimit[]): Limits => ({
  rateLimit: { enabled: true, windowSeconds: 60, ...rateLimit },
  callers: { keys: callerLimits.map((rateLimit, i) => ({ id: `c${i}`, rateLimit })) }
}) as unknown as Limits

const requestOf = (rateLimit: CallerLimit): FastifyRequest => ({ caller: { id: 'c', rateLimit } }) as unknown as FastifyRequest

const perRequest = (value: number | ((request: FastifyRequest, key: string) => number), request: FastifyRequest): number =>
  typeof value === 'number' ? value : value(request, 'k')

t.test("a caller's own window is the one its requests are counted in", async (t) => {
  const limit = callerRouteLimit(configOf({ max: 100, windowSeconds: 60 }, [{ windowSeconds: 10 }]))
  if (limit === false) return t.fail('a limit applies')
  t.equal(perRequest(limit.timeWindow, requestOf({ windowSeconds: 10 })), 10_000, 'its own window')
  t.equal(perRequest(limit.timeWindow, requestOf({ max: 5 })), 60_000, "rateLimit's window where it sets none")
  t.equal(perRequest(limit.max, requestOf({ windowSeconds: 10 })), 100, "rateLimit's max where it sets none")
  t.equal(perRequest(limit.max, requestOf({ max: 5 })), 5)
  t.equal(limit.allowList, undefined, 'with rateLimit.max every caller is counted')
})

t.test('without rateLimit.max a caller without a max of its own is never limited', async (t) => {
  const limit = callerRouteLimit(configOf({}, [{ max: 5 }, undefined]))
  if (limit === false) return t.fail('a limit applies')
  t.equal(perRequest(limit.max, requestOf({ windowSeconds: 10 })), Number.MAX_SAFE_INTEGER, 'no limit')
  t.equal(limit.allowList?.(requestOf(undefined), 'k'), true, 'a caller without a limit is not counted')
  t.equal(limit.allowList?.(requestOf({ max: 5 }), 'k'), false)
})

t.test('callers whose own limit has no max, when rateLimit has none either', async (t) => {
  t.same(callersWithoutMax(configOf({}, [undefined, { windowSeconds: 10 }, { max: 3 }, { windowSeconds: 5 }])), [1, 3], 'callers without a limit of their own are not listed')
  t.same(callersWithoutMax(configOf({ max: 9 }, [{ windowSeconds: 10 }])), [], "rateLimit's max applies to them")
  t.same(callersWithoutMax(configOf({ enabled: false }, [{ windowSeconds: 10 }])), [], 'no limit applies with rate limiting off')
})
