/**
 * POST /backchannel-logout: a logout token that is not valid yet (nbf, RFC 7519 §4.1.5) is refused like an ID
 * token would be; a logout lost because the issuer's keys cannot be obtained leaves an error log line that
 * names the issuer, as a revocation that cannot be recorded does (the provider rarely retries); and a logout
 * token whose iat has a fraction (RFC 7519 §2 allows it) leaves a cut-off POST /revocations can answer with.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

function logoutToken (extra: Record<string, unknown> = {}): string {
  const now = nowSeconds()
  return mint(key, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${Math.random()}`, sid: 's1', sub: 'u1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...extra }, { header: { typ: 'logout+jwt' } })
}

async function logout (app: FastifyInstance, token: string) {
  return await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ logout_token: token }).toString() })
}

t.test('a logout token whose nbf is ahead is not acted upon (RFC 7519 §4.1.5), as an ID token is not', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { revocation: { enabled: true } }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const session = mint(key, idTokenClaims(ISS, AUD, { sid: 's1', sub: 'u1', iat: nowSeconds() - 10 }))
  const ahead = await logout(app, logoutToken({ nbf: nowSeconds() + 3600 }))
  t.equal(ahead.statusCode, 400)
  t.match(ahead.json(), { code: 'logout_token_invalid', claim: 'nbf' })
  t.equal((await logout(app, logoutToken({ nbf: 'soon' }))).statusCode, 400, 'an nbf that is not a NumericDate')
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: session } })).statusCode, 200, 'nothing was revoked')
  t.equal((await logout(app, logoutToken({ nbf: nowSeconds() - 5 }))).statusCode, 200, 'an nbf passed is fine')
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: session } })).statusCode, 401)
})

t.test('a logout lost because the keys cannot be obtained: an error log line naming the issuer', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  const failing = async (): Promise<never> => { throw new Error('IdP down') }
  const app = await buildApp(configFor([{ id: 'down', issuer: ISS, audiences: [AUD], jwksUri: 'https://idp.example.com/jwks' }], { revocation: { enabled: true } }),
    { fetcher: failing as never, startVerifier: false, loggerInstance: pino({ ...loggerOptions('info') }, stream) })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const res = await logout(app, logoutToken())
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'keys_unavailable' })
  t.notOk('issuer' in res.json(), 'the answer of the open route names no issuer')
  t.equal(res.headers['cache-control'], 'no-store')
  const lost = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'revocation not recorded')
  t.equal(lost.length, 1, 'one "revocation not recorded" line, as the README tells operators to watch')
  t.match(lost[0], { level: 50, issuer: 'down', source: 'backchannel-logout', reason: 'keys_unavailable' })
})

t.test('a fractional iat: the user\'s cut-off is a whole second, and POST /revocations can still answer', async (t) => {
  const OPS_KEY = 'ops-key-0123456789abcdef'
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
    revocation: { enabled: true },
    callers: { keys: [{ id: 'ops', sha256: createHash('sha256').update(OPS_KEY).digest('hex'), revoke: true }] }
  }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const iat = nowSeconds() - 10.5
  const before = mint(key, idTokenClaims(ISS, AUD, { sub: 'u1', iat: Math.floor(iat) }))
  const res = await logout(app, logoutToken({ sid: undefined, sub: 'u1', iat }))
  t.same(res.json(), { issuer: 'main', revoked: 'sub' })
  t.equal((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': OPS_KEY }, payload: { token: before } })).statusCode, 401, 'a token of the second of the logout is revoked')
  // The operator revokes the same user with an earlier cut-off: the answer is the revocation as held (the logout's).
  const revoke = await app.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': OPS_KEY }, payload: { issuer: 'main', sub: 'u1', before: Math.floor(iat) - 100 } })
  t.equal(revoke.statusCode, 200, 'not a 500 after the revocation was recorded')
  t.match(revoke.json(), { issuer: 'main', kind: 'sub', before: Math.ceil(iat), result: 'unchanged' })
})
