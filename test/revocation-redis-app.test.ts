/**
 * The redis revocation store through the service, two replicas against one real redis-server: a revocation
 * made through one is refused by the other, cache hits included; readiness and metrics report the store; and
 * when Redis goes away for longer than maxStalenessSeconds both fail closed (503, /readyz 503) until it is back.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { findRedisServer, startRedis } from './helpers/redis.js'
import { waitFor } from './helpers/wait-for.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

findRedisServer()
const redis = await startRedis()
t.teardown(async () => { await redis.close() })

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const OPS_KEY = 'ops-key-0123456789abcdef'
const APP_KEY = 'app-key-0123456789abcdef'
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')

async function replica (): Promise<FastifyInstance> {
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }], {
    callers: { keys: [{ id: 'ops', sha256: sha256(OPS_KEY), revoke: true }, { id: 'app', sha256: sha256(APP_KEY) }] },
    revocation: { enabled: true, store: 'redis', redis: { url: redis.url, keyPrefix: `app-test-${process.pid}:`, maxStalenessSeconds: 1, commandTimeoutMs: 500 } }
  }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

const a = await replica()
const b = await replica()
const token = mint(key, idTokenClaims(ISS, 'aud', { sub: 'victim', iat: nowSeconds() - 60 }))
const verify = async (app: FastifyInstance) => await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': APP_KEY }, payload: { token } })

t.test('a revocation through one replica is refused by the other, cache hits included', async (t) => {
  for (let i = 0; i < 3; i++) t.equal((await verify(b)).statusCode, 200, 'cached on B')
  const ready = await b.inject({ method: 'GET', url: '/readyz' })
  t.match(ready.json(), { ready: true, revocations: { store: 'redis', current: true } })
  const res = await a.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': OPS_KEY }, payload: { issuer: 'main', sub: 'victim' } })
  t.equal(res.statusCode, 200)
  await waitFor('B refuses the token', async () => (await verify(b)).statusCode === 401)
  t.match((await verify(b)).json(), { code: 'token_revoked', claim: 'sub' })
  t.match((await verify(a)).json(), { code: 'token_revoked' })
  const metrics = (await b.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': APP_KEY } })).body
  t.match(metrics, /oidc_verifier_revocation_store_current\{store="redis"\} 1/)
  t.match(metrics, /oidc_verifier_revocations\{issuer="main"\} 1/)
})

t.test('values beyond ASCII: astral characters go through Redis; a lone surrogate is refused before it', async (t) => {
  const sid = 'session-\ud83d\ude00-\u00e9'
  const session = mint(key, idTokenClaims(ISS, 'aud', { sub: 'someone', sid, iat: nowSeconds() - 60 }))
  const check = async (app: FastifyInstance) => await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': APP_KEY }, payload: { token: session } })
  t.equal((await check(b)).statusCode, 200)
  const revoke = async (body: string) => await a.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': OPS_KEY, 'content-type': 'application/json' }, payload: body })
  t.equal((await revoke(JSON.stringify({ issuer: 'main', sid }))).statusCode, 200)
  await waitFor('B refuses the session', async () => (await check(b)).statusCode === 401)
  t.match((await check(b)).json(), { code: 'token_revoked', claim: 'sid' })
  // "\ud800" is valid JSON, but no UTF-8 and no Lua script can carry it: 400, not a store that looks down.
  const lone = await revoke('{"issuer":"main","sid":"session-\\ud800"}')
  t.same([lone.statusCode, lone.json().code, lone.json().claim], [400, 'revocation_invalid', 'sid'])
})

t.test('Redis gone longer than maxStalenessSeconds: fail closed; back: current again', async (t) => {
  await redis.stop()
  await waitFor('B fails closed', async () => (await verify(b)).statusCode === 503)
  t.match((await verify(b)).json(), { code: 'revocations_unavailable' })
  t.equal((await b.inject({ method: 'GET', url: '/readyz' })).statusCode, 503)
  const refused = await a.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': OPS_KEY }, payload: { issuer: 'main', sub: 'other' } })
  t.equal(refused.statusCode, 503, 'a revocation cannot be recorded meanwhile')
  t.ok(refused.headers['retry-after'])
  await redis.restart()
  await waitFor('B current again', async () => (await b.inject({ method: 'GET', url: '/readyz' })).statusCode === 200)
  // The restarted Redis is empty (no persistence in this test): each replica keeps what it held.
  t.match((await verify(b)).json(), { code: 'token_revoked' }, 'revocations held in memory are kept across the outage')
})
