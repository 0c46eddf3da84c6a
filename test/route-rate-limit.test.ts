/**
 * The verify routes' caller limit as buildApp hands it to @fastify/rate-limit (src/http/route-rate-limit.ts),
 * read per request: a caller's own max and window before rateLimit's, callers without a limit of their own
 * skipped when rateLimit has no max, and the start/reload check for callers whose limit has no max.
 */
import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../src/config/types.js'
import { callerLimitHook, callerRouteLimit, callersWithoutMax } from '../src/http/route-rate-limit.js'

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
})

/** What the routes' hook does with a request: passes it at once, or hands it to the limiter (which may refuse it). */
async function hookOutcome (config: Limits, request: FastifyRequest, refuse = false): Promise<{ limiterCalls: number, error: unknown }> {
  let limiterCalls = 0
  const limiter = async (): Promise<void> => {
    limiterCalls++
    if (refuse) throw new Error('over the limit')
  }
  const hook = callerLimitHook(limiter, config)
  const error = await new Promise<unknown>((resolve) => { hook.call({} as never, request, {} as FastifyReply, (err?: unknown) => { resolve(err) }) })
  return { limiterCalls, error }
}

t.test('with rateLimit.max every caller is counted', async (t) => {
  const config = configOf({ max: 100 }, [undefined])
  t.same(await hookOutcome(config, requestOf(undefined)), { limiterCalls: 1, error: undefined }, 'a caller without a limit of its own')
  t.same(await hookOutcome(config, { caller: undefined } as unknown as FastifyRequest), { limiterCalls: 1, error: undefined }, 'no caller at all (limited by address)')
  const refused = await hookOutcome(config, requestOf({ max: 5 }), true)
  t.equal(refused.limiterCalls, 1)
  t.match(refused.error, { message: 'over the limit' }, 'the limiter\'s refusal is the route\'s error')
})

t.test('without rateLimit.max a caller without a max of its own is never limited', async (t) => {
  const limit = callerRouteLimit(configOf({}, [{ max: 5 }, undefined]))
  if (limit === false) return t.fail('a limit applies')
  t.equal(perRequest(limit.max, requestOf({ windowSeconds: 10 })), Number.MAX_SAFE_INTEGER, 'no limit')
  const config = configOf({}, [{ max: 5 }, undefined])
  t.same(await hookOutcome(config, requestOf(undefined), true), { limiterCalls: 0, error: undefined }, 'a caller without a limit is not counted')
  t.same(await hookOutcome(config, { caller: undefined } as unknown as FastifyRequest, true), { limiterCalls: 0, error: undefined }, 'nor a request without a caller')
  t.equal((await hookOutcome(config, requestOf({ max: 5 }))).limiterCalls, 1, 'a caller with a limit of its own is')
})

t.test('callers whose own limit has no max, when rateLimit has none either', async (t) => {
  t.same(callersWithoutMax(configOf({}, [undefined, { windowSeconds: 10 }, { max: 3 }, { windowSeconds: 5 }])), [1, 3], 'callers without a limit of their own are not listed')
  t.same(callersWithoutMax(configOf({ max: 9 }, [{ windowSeconds: 10 }])), [], "rateLimit's max applies to them")
  t.same(callersWithoutMax(configOf({ enabled: false }, [{ windowSeconds: 10 }])), [], 'no limit applies with rate limiting off')
})
