/**
 * Revocations are kept by configured issuer id. A process started with an issuer's id renamed finds those
 * recorded under the old id in the shared store (redis) and does not apply them: at start it warns, naming the
 * id and how many, once the store has loaded (src/revocation/unconfigured-issuers.ts), later when Redis cannot be
 * read at start. A reload that renames an id has its own warning (test/reload-issuer-rename.test.ts).
 */
import t from 'tap'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { buildApp } from '../src/app.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { RevocationList } from '../src/revocation/revocation-list.js'
import { unconfiguredIssuerRevocations } from '../src/revocation/unconfigured-issuers.js'
import { configFor } from './helpers/config.js'
import { findRedisServer, startRedis } from './helpers/redis.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'

findRedisServer()
const redis = await startRedis()
t.teardown(async () => { await redis.close() })

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const KEY_PREFIX = `restart-rename-${process.pid}:`

/**
 * A replica on a Redis (the shared one unless `url` says another) whose issuers have these ids (every one the
 * same issuer URL but the first).
 */
async function replica (ids: string[], logger: pino.Logger, url = redis.url): Promise<FastifyInstance> {
  const issuers = ids.map((id, i) => ({ id, issuer: i === 0 ? ISS : `https://other-${i}.example.com`, audiences: [AUD], jwks: jwksOf(key) }))
  const app = await buildApp(configFor(issuers, {
    loadShedding: { enabled: false },
    server: { logLevel: 'info' },
    revocation: { enabled: true, store: 'redis', redis: { url, keyPrefix: KEY_PREFIX, maxStalenessSeconds: 1, commandTimeoutMs: 500 } }
  }), { loggerInstance: logger })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

const warnings = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
  lines.filter((l) => l.component === 'revocations' && typeof l.msg === 'string' && l.msg.includes('which no configured issuer has'))

async function logout (app: FastifyInstance, sid: string): Promise<number> {
  const now = nowSeconds()
  const token = mint(key, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${sid}`, sid, sub: 'u1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { header: { typ: 'logout+jwt' } })
  const res = await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ logout_token: token }).toString() })
  return res.statusCode
}

const session = mint(key, idTokenClaims(ISS, AUD, { sid: 's1', sub: 'u1', iat: nowSeconds() - 10 }))
const verify = async (app: FastifyInstance) => (await app.inject({ method: 'POST', url: '/verify', payload: { token: session } })).json()

t.test('a replica started with the issuer id renamed warns about the revocations left under the old id', async (t) => {
  const first = captureLog()
  const corp = await replica(['corp'], first.logger)
  t.equal(await logout(corp, 's1'), 200)
  t.equal(await logout(corp, 's2'), 200)
  t.match(await verify(corp), { code: 'token_revoked' })
  t.same(warnings(first.lines()), [], 'the first replica had nothing to warn about')

  const renamed = captureLog()
  const corpEu = await replica(['corp-eu', 'other'], renamed.logger)
  const found = warnings(renamed.lines())
  t.equal(found.length, 1, 'one warning, for the one id no issuer has')
  t.match(found[0], { level: 40, issuerId: 'corp', revocationsHeld: 2 })
  t.match(found[0]?.msg, /^2 revocations are recorded under the issuer id "corp"/)
  t.match(found[0]?.msg, /Restore the id "corp".*"all": true/, 'and what to do')
  // What the warning is about: the revoked session is accepted under the new id.
  t.match(await verify(corpEu), { issuer: { id: 'corp-eu' } })

  const again = captureLog()
  const corpAgain = await replica(['corp'], again.logger)
  t.same(warnings(again.lines()), [], 'the id restored: no warning')
  t.match(await verify(corpAgain), { code: 'token_revoked' }, 'and the revocation applies again')
})

t.test('unconfiguredIssuerRevocations: ids with revocations and no configured issuer, in id order', async (t) => {
  const list = new RevocationList(100)
  const now = nowSeconds()
  for (const [issuer, value] of [['zeta', 's1'], ['alpha', 's1'], ['alpha', 's2'], ['kept', 's1']] as const) {
    list.apply({ issuer, kind: 'sid', value, before: null, expiresAt: now + 600, source: 'backchannel-logout' }, now)
  }
  t.same(unconfiguredIssuerRevocations(list, ['kept']), [{ issuerId: 'alpha', revocationsHeld: 2 }, { issuerId: 'zeta', revocationsHeld: 1 }])
  t.same(unconfiguredIssuerRevocations(list, ['kept', 'alpha', 'zeta']), [])
  t.same(unconfiguredIssuerRevocations(new RevocationList(100), []), [], 'an empty list')
})

t.test('a replica that cannot read Redis at start warns once the store has loaded, later', async (t) => {
  // A Redis of its own, that refuses this replica at first (a password it does not know yet).
  const own = await startRedis()
  t.teardown(async () => { await own.close() })
  await own.restart(['--requirepass', 'pw'])
  const corp = await replica(['corp'], captureLog().logger, `redis://:pw@127.0.0.1:${own.port}`)
  t.equal(await logout(corp, 's1'), 200)

  const renamed = captureLog()
  const corpEu = await replica(['corp-eu'], renamed.logger, own.url)
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
