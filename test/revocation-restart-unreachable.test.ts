/**
 * The start-time warning about revocations held under an issuer id no configured issuer has
 * (src/revocation/unconfigured-issuers.ts) when Redis cannot be read at start: it comes once the store has loaded.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { buildApp } from '../src/app.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { findRedisServer, startRedis } from './helpers/redis.js'
import { jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

findRedisServer()

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const KEY_PREFIX = `restart-unreachable-${process.pid}:`

function capture (): { lines: () => Array<Record<string, unknown>>, logger: pino.Logger } {
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { raw.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  return { lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>), logger: pino(loggerOptions('info'), stream) }
}

const warnings = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
  lines.filter((l) => l.component === 'revocations' && typeof l.msg === 'string' && l.msg.includes('which no configured issuer has'))

async function logout (app: FastifyInstance, sid: string): Promise<number> {
  const now = nowSeconds()
  const token = mint(key, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${sid}`, sid, sub: 'u1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { header: { typ: 'logout+jwt' } })
  const res = await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ logout_token: token }).toString() })
  return res.statusCode
}

t.test('a replica that cannot read Redis at start warns once the store has loaded, later', async (t) => {
  // A Redis of its own, that refuses this replica at first (a password it does not know yet).
  const own = await startRedis()
  t.teardown(async () => { await own.close() })
  await own.restart(['--requirepass', 'pw'])
  const withUrl = async (url: string, ids: string[], logger: pino.Logger): Promise<FastifyInstance> => {
    const app = await buildApp(configFor(ids.map((id) => ({ id, issuer: ISS, audiences: [AUD], jwks: jwksOf(key) })), {
      loadShedding: { enabled: false },
      server: { logLevel: 'info' },
      revocation: { enabled: true, store: 'redis', redis: { url, keyPrefix: KEY_PREFIX, maxStalenessSeconds: 1, commandTimeoutMs: 500 } }
    }), { loggerInstance: logger })
    t.teardown(async () => { await app.close() })
    await app.ready()
    return app
  }
  const corp = await withUrl(`redis://:pw@127.0.0.1:${own.port}`, ['corp'], capture().logger)
  t.equal(await logout(corp, 's1'), 200)

  const renamed = capture()
  const corpEu = await withUrl(own.url, ['corp-eu'], renamed.logger)
  t.equal(corpEu.revocations?.status().current, false, 'started without its copy (Redis refused it)')
  t.same(warnings(renamed.lines()), [], 'nothing to say yet: nothing read')
  // Redis lets it in: its store loads at its next try.
  const admin = new Redis(`redis://:pw@127.0.0.1:${own.port}`, { lazyConnect: true })
  await admin.connect()
  await admin.config('SET', 'requirepass', '')
  admin.disconnect()
  for (let i = 0; i < 100 && corpEu.revocations?.status().current !== true; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(corpEu.revocations?.status().current, true, 'loaded')
  await new Promise((resolve) => setImmediate(resolve))
  t.match(warnings(renamed.lines()), [{ level: 40, issuerId: 'corp', revocationsHeld: 1 }], 'the warning, once the store has loaded')
})
