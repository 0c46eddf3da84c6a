/**
 * The revocation routes through the app: POST /backchannel-logout (a provider's logout token, open to the
 * provider, 400 for anything that is not a valid logout token, 503 when it cannot be recorded) and POST
 * /revocations (callers with `revoke: true` only); revoked tokens refused by /verify, /verify/batch and
 * /forward-auth; readiness, metrics, and logs that never carry a sid or sub.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds, tamperPayload } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const ADMIN_KEY = 'admin-key-0123456789'
const READER_KEY = 'reader-key-0123456789'
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')
const SECRET_SID = 'sid-that-must-not-be-logged'
const SECRET_SUB = 'sub-that-must-not-be-logged'

function capture () {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  return { lines, logger: pino({ ...loggerOptions('info') }, stream) }
}

const issuer = { id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }

async function appWith (t: Test, extra: Record<string, unknown> = {}, logger?: ReturnType<typeof capture>['logger']): Promise<FastifyInstance> {
  const app = await buildApp(configFor([issuer], { ...extra, revocation: { enabled: true, ...(extra.revocation as object | undefined) } }), logger === undefined ? {} : { loggerInstance: logger })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

function logoutToken (extra: Record<string, unknown> = {}): string {
  const now = nowSeconds()
  return mint(key, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${Math.random()}`, sid: SECRET_SID, sub: SECRET_SUB, events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...extra }, { header: { typ: 'logout+jwt' } })
}

const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString()

async function logout (app: FastifyInstance, body: string, headers: Record<string, string> = {}) {
  return await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: body })
}

async function verify (app: FastifyInstance, token: string) {
  return await app.inject({ method: 'POST', url: '/verify', payload: { token } })
}

t.test('a logout token revokes its session: cached tokens too, other sessions not', async (t) => {
  const { lines, logger } = capture()
  const app = await appWith(t, {}, logger)
  const iat = nowSeconds() - 30
  const session = mint(key, idTokenClaims(ISS, AUD, { sid: SECRET_SID, sub: SECRET_SUB, iat }))
  const otherSession = mint(key, idTokenClaims(ISS, AUD, { sid: 'another-session', sub: SECRET_SUB, iat }))
  for (let i = 0; i < 3; i++) t.equal((await verify(app, session)).statusCode, 200)

  // One token, sent twice below: two tokens minted a second apart would differ in iat, hence in expiry.
  const logoutTokenOnce = logoutToken()
  const res = await logout(app, form({ logout_token: logoutTokenOnce }))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { issuer: 'main', revoked: 'sid' })
  t.equal(res.headers['cache-control'], 'no-store')

  const revoked = await verify(app, session)
  t.equal(revoked.statusCode, 401)
  t.match(revoked.json(), { code: 'token_revoked', issuer: 'main', claim: 'sid' })
  t.match(revoked.headers['www-authenticate'], /error="invalid_token"/)
  t.equal((await verify(app, otherSession)).statusCode, 200, 'another session of the same user is not logged out')

  const batch = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens: [session, otherSession] } })
  t.match(batch.json(), { results: [{ ok: false, error: { code: 'token_revoked' } }, { ok: true }] }, '/verify/batch too')
  const forward = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization: `Bearer ${session}` } })
  t.equal(forward.statusCode, 401, '/forward-auth too')

  t.equal((await logout(app, form({ logout_token: logoutTokenOnce }))).statusCode, 200, 'the same logout again is accepted (idempotent)')
  const recorded = lines.filter((l) => l.includes('"revocation recorded"'))
  t.equal(recorded.length, 2)
  t.match(JSON.parse(recorded[0] as string), { issuer: 'main', kind: 'sid', source: 'backchannel-logout', result: 'added' })
  t.match(JSON.parse(recorded[1] as string), { result: 'unchanged' })
  t.notOk(lines.some((l) => l.includes(SECRET_SID) || l.includes(SECRET_SUB)), 'no log line carries the sid or the sub')

  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /oidc_verifier_revocations\{issuer="main"\} 1/)
  t.match(metrics, /oidc_verifier_revocations_recorded_total\{source="backchannel-logout",kind="sid"\} 2/)
  t.match(metrics, /oidc_verifier_revocation_store_current\{store="memory"\} 1/)
  t.match(metrics, /oidc_verifier_verifications_total\{issuer="main",result="token_revoked"\} [1-9]/)
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.match(ready.json(), { ready: true, revocations: { store: 'memory', current: true } })
})

t.test('a logout token without sid logs out every session of its user up to the logout', async (t) => {
  const app = await appWith(t)
  const now = nowSeconds()
  const earlier = mint(key, idTokenClaims(ISS, AUD, { sub: 'u1', sid: 'a', iat: now - 60 }))
  const later = mint(key, idTokenClaims(ISS, AUD, { sub: 'u1', sid: 'b', iat: now + 1 }))
  const res = await logout(app, form({ logout_token: logoutToken({ sid: undefined, sub: 'u1', iat: now }) }))
  t.same(res.json(), { issuer: 'main', revoked: 'sub' })
  t.match((await verify(app, earlier)).json(), { code: 'token_revoked', claim: 'sub' })
  t.equal((await verify(app, later)).statusCode, 200, 'a login after the logout is accepted')
})

t.test('one user logging out over and over cannot fill the list: from maxSessionsPerUser on, the user is logged out', async (t) => {
  const { lines, logger } = capture()
  const app = await appWith(t, { revocation: { maxSessionsPerUser: 2, maxEntries: 30 } }, logger)
  const now = nowSeconds()
  const loggedOutAt = now - 60
  const stillActive = mint(key, idTokenClaims(ISS, AUD, { sub: 'u1', sid: 'active', iat: now - 90 }))
  const otherUser = mint(key, idTokenClaims(ISS, AUD, { sub: 'u2', sid: 'y', iat: now - 90 }))
  const logoutOf = async (sid: string, sub: string) => await logout(app, form({ logout_token: logoutToken({ sid, sub, iat: loggedOutAt }) }))
  for (const sid of ['s1', 's2']) t.same((await logoutOf(sid, 'u1')).json(), { issuer: 'main', revoked: 'sid' })
  t.same((await logoutOf('s2', 'u1')).json(), { issuer: 'main', revoked: 'sid' }, 'at the bound, the same logout again (a retry) is still one session')
  t.equal((await verify(app, stillActive)).statusCode, 200, 'two sessions logged out: the others stay')
  for (let i = 3; i < 12; i++) {
    t.same((await logoutOf(`s${i}`, 'u1')).json(), { issuer: 'main', revoked: 'sub' }, `logout ${i}: the user's tokens up to it`)
  }
  t.match((await verify(app, stillActive)).json(), { code: 'token_revoked', claim: 'sub' }, 'the user\'s other sessions are logged out too')
  const loggedOut = mint(key, idTokenClaims(ISS, AUD, { sub: 'u1', sid: 's11', iat: loggedOutAt - 5 }))
  t.match((await verify(app, loggedOut)).json(), { code: 'token_revoked', claim: 'sub' }, 'the session logged out, with the user\'s')
  const soonAfter = mint(key, idTokenClaims(ISS, AUD, { sub: 'u1', sid: 'new', iat: loggedOutAt + 2 }))
  t.equal((await verify(app, soonAfter)).statusCode, 200, 'a login two seconds after the last logout is accepted (the cut-off is not padded)')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /oidc_verifier_revocations\{issuer="main"\} 3/, 'eleven logouts of one user hold three entries')
  t.equal((await logoutOf('y', 'u2')).statusCode, 200)
  t.match((await verify(app, otherUser)).json(), { code: 'token_revoked', claim: 'sid' }, 'another user\'s logout is a session of its own')
  const recorded = lines.filter((l) => l.includes('"revocation recorded"')).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(recorded[2], { kind: 'sid', result: 'unchanged' })
  t.match(recorded[3], { kind: 'sub', sessionsOfUser: 2, result: 'added' }, 'the log line says why a session logout revoked the user')
  t.match(recorded[4], { kind: 'sub', result: 'unchanged' })
})

t.test('anything but a valid logout token is a 400 with a code, and changes nothing', async (t) => {
  const { lines, logger } = capture()
  const app = await appWith(t, { callers: { keys: [{ id: 'web', sha256: sha256(READER_KEY) }] } }, logger)
  const session = mint(key, idTokenClaims(ISS, AUD, { sid: SECRET_SID, sub: SECRET_SUB }))
  const cases: Array<[string, string, string, string?]> = [
    ['no logout_token', form({}), 'logout_token_invalid', 'logout_token'],
    ['an empty logout_token', form({ logout_token: '' }), 'logout_token_invalid', 'logout_token'],
    ['garbage', form({ logout_token: 'garbage' }), 'logout_token_invalid'],
    ['typed as an access token', form({ logout_token: mint(key, { iss: ISS, aud: AUD, iat: nowSeconds(), jti: 'j', sid: 's', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { header: { typ: 'at+jwt' } }) }), 'logout_token_invalid'],
    ['tampered', form({ logout_token: tamperPayload(logoutToken(), { iss: ISS, aud: AUD, iat: nowSeconds(), jti: 'x', sid: 'other', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }) }), 'logout_token_invalid'],
    ['an ID token', form({ logout_token: session }), 'logout_token_invalid'],
    ['an unknown issuer', form({ logout_token: logoutToken({ iss: 'https://evil.example' }) }), 'logout_token_invalid', 'iss'],
    ['a nonce', form({ logout_token: logoutToken({ nonce: 'n' }) }), 'logout_token_invalid', 'nonce'],
    ['repeated logout_token', `${form({ logout_token: logoutToken() })}&${form({ logout_token: logoutToken() })}`, 'request_invalid']
  ]
  for (const [what, body, code, claim] of cases) {
    const res = await logout(app, body)
    t.equal(res.statusCode, 400, what)
    t.match(res.json(), claim === undefined ? { code } : { code, claim }, what)
    t.notOk('issuer' in res.json(), `${what}: the answer names no issuer`)
    t.equal(res.headers['cache-control'], 'no-store', `${what}: no-store`)
  }
  const json = await app.inject({ method: 'POST', url: '/backchannel-logout', payload: { logout_token: logoutToken() } })
  t.equal(json.statusCode, 415, 'JSON is not a second way in')
  t.match(json.json(), { code: 'unsupported_media_type' })
  const huge = await logout(app, form({ logout_token: 'a'.repeat(2 * 1024 * 1024) }))
  t.equal(huge.statusCode, 413)
  const big = await logout(app, form({ logout_token: `${'a'.repeat(20_000)}.b.c` }))
  t.match(big.json(), { code: 'logout_token_invalid' }, 'a token above maxTokenBytes')
  const get = await app.inject({ method: 'GET', url: '/backchannel-logout', headers: { 'x-api-key': READER_KEY } })
  t.same([get.statusCode, get.headers.allow], [405, 'POST'], 'POST only')

  t.equal((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': READER_KEY }, payload: { token: session } })).statusCode, 200, 'nothing was revoked')
  const refused = lines.filter((l) => l.includes('"logout token refused"')).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(refused.some((l) => l.reason === 'signature_invalid'), 'the log names the check that failed')
  t.ok(refused.some((l) => l.reason === 'issuer_unknown'))
  t.notOk(lines.some((l) => l.includes(SECRET_SID)), 'no log line carries the sid')
  // The provider has no caller key: the route is open even with caller keys configured.
  t.equal((await logout(app, form({ logout_token: logoutToken() }))).statusCode, 200, 'no X-Api-Key needed')
})

t.test('POST /revocations: only for callers allowed to revoke', async (t) => {
  const { lines, logger } = capture()
  const app = await appWith(t, {
    callers: { keys: [{ id: 'ops', sha256: sha256(ADMIN_KEY), revoke: true }, { id: 'web', sha256: sha256(READER_KEY) }] }
  }, logger)
  const revoke = async (payload: unknown, apiKey = ADMIN_KEY) => await app.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': apiKey }, payload: payload as Record<string, unknown> })
  const now = nowSeconds()
  const token = mint(key, idTokenClaims(ISS, AUD, { sub: SECRET_SUB, iat: now - 10, jti: 'token-1' }))
  const check = async () => await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': READER_KEY }, payload: { token } })
  t.equal((await check()).statusCode, 200)

  t.match((await revoke({ issuer: 'main', sub: SECRET_SUB }, READER_KEY)).json(), { code: 'caller_not_permitted' }, 'a caller without revoke')
  // Whatever it sends: 403 before the body is read or validated, never a 400 that would describe the body.
  for (const payload of [{ issuer: 'main', sub: '' }, { nothing: true }, 'not json {']) {
    const res = await app.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': READER_KEY, 'content-type': 'application/json' }, payload: payload as string })
    t.same([res.statusCode, res.json().code], [403, 'caller_not_permitted'], `a caller without revoke, body ${JSON.stringify(payload)}`)
  }
  t.equal((await revoke({ issuer: 'main', sub: SECRET_SUB }, READER_KEY)).statusCode, 403)
  t.match((await app.inject({ method: 'POST', url: '/revocations', payload: { issuer: 'main', sub: 'x' } })).json(), { code: 'caller_key_missing' })

  const bad: Array<[unknown, string, string?]> = [
    [{ issuer: 'nope', sub: 'x' }, 'revocation_invalid', 'issuer'],
    [{ issuer: 'main' }, 'revocation_invalid'],
    [{ issuer: 'main', sub: 'x', jti: 'y' }, 'revocation_invalid'],
    [{ issuer: 'main', jti: 'y', before: now }, 'revocation_invalid', 'before'],
    [{ issuer: 'main', sub: 'x', before: now + 86400 }, 'revocation_invalid', 'before'],
    [{ issuer: 'main', sub: 'x', email: 'a@b' }, 'request_invalid'],
    [{ issuer: 'main', sub: 7 }, 'request_invalid'],
    [{ issuer: 'main', sub: '' }, 'request_invalid'],
    [{ issuer: 'main', sub: 'x'.repeat(256) }, 'request_invalid'],
    [{ issuer: 'main', all: false }, 'request_invalid'],
    [{ issuer: 'main', sub: 'x', before: 1.5 }, 'request_invalid'],
    [[], 'request_invalid']
  ]
  for (const [body, code, claim] of bad) {
    const res = await revoke(body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.json(), claim === undefined ? { code } : { code, claim }, JSON.stringify(body))
  }
  t.equal((await check()).statusCode, 200, 'nothing was revoked by the refused requests')

  const res = await revoke({ issuer: 'main', sub: SECRET_SUB })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { issuer: 'main', kind: 'sub', result: 'added' })
  t.notOk('value' in res.json(), 'the answer does not repeat the value')
  t.match((await check()).json(), { code: 'token_revoked', claim: 'sub' })
  const all = (await revoke({ issuer: 'main', all: true })).json()
  t.match(all, { kind: 'issuer', result: 'added' })
  t.ok(all.before >= now + 30 && all.before <= nowSeconds() + 30, 'before: now plus the issuer\'s clock tolerance (the clock may have ticked since)')
  t.match((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': READER_KEY }, payload: { token: mint(key, idTokenClaims(ISS, AUD, { sub: 'someone', iat: now - 5 })) } })).json(), { code: 'token_revoked', claim: 'iat' }, 'everyone issued before is logged out')

  const line = lines.find((l) => l.includes('"revocation recorded"'))
  t.match(JSON.parse(line as string), { issuer: 'main', kind: 'sub', source: 'api', caller: 'ops' })
  t.notOk(lines.some((l) => l.includes(SECRET_SUB)), 'the sub is never logged')
})

t.test('POST /backchannel-logout has a rate limit of its own, per address', async (t) => {
  const app = await appWith(t, { revocation: { logoutRateLimit: { max: 2, windowSeconds: 60 } } })
  const from = async (remoteAddress: string) => await app.inject({ method: 'POST', url: '/backchannel-logout', remoteAddress, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form({ logout_token: 'junk' }) })
  t.equal((await from('10.1.1.1')).statusCode, 400)
  t.equal((await from('10.1.1.1')).statusCode, 400)
  const limited = await from('10.1.1.1')
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { code: 'rate_limited' })
  t.ok(limited.headers['retry-after'])
  t.equal((await from('10.1.1.2')).statusCode, 400, 'another address has its own budget')
  t.equal((await app.inject({ method: 'POST', url: '/verify', remoteAddress: '10.1.1.1', payload: { token: mint(key, idTokenClaims(ISS, AUD)) } })).statusCode, 200, '/verify is not affected')
})

t.test('POST /revocations: a caller that may not revoke gets 403 even past its rate limit; one that may, 429', async (t) => {
  const app = await appWith(t, {
    rateLimit: { max: 1 },
    callers: { keys: [{ id: 'ops', sha256: sha256(ADMIN_KEY), revoke: true }, { id: 'web', sha256: sha256(READER_KEY) }] }
  })
  const verify = async (apiKey: string) => await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': apiKey }, payload: { token: mint(key, idTokenClaims(ISS, AUD)) } })
  const revoke = async (apiKey: string) => await app.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': apiKey }, payload: { issuer: 'main', sub: 'x' } })
  t.equal((await verify(READER_KEY)).statusCode, 200, 'the reader\'s one request of the window')
  t.equal((await verify(READER_KEY)).statusCode, 429, 'its budget is spent')
  const refused = await revoke(READER_KEY)
  t.same([refused.statusCode, refused.json().code], [403, 'caller_not_permitted'], 'not permitted, whatever its budget')
  t.equal((await revoke(ADMIN_KEY)).statusCode, 200)
  t.same((await revoke(ADMIN_KEY)).json().code, 'rate_limited', 'a caller that may revoke is rate limited as before')
})

t.test('POST /revocations is refused when no caller keys are configured', async (t) => {
  const app = await appWith(t)
  const res = await app.inject({ method: 'POST', url: '/revocations', payload: { issuer: 'main', sub: 'x' } })
  t.equal(res.statusCode, 403)
  t.match(res.json(), { code: 'caller_not_permitted' })
  const invalid = await app.inject({ method: 'POST', url: '/revocations', payload: { issuer: 'main', sub: '' } })
  t.same([invalid.statusCode, invalid.json().code], [403, 'caller_not_permitted'], 'an invalid body too')
})

t.test('a full list answers 503 revocations_unavailable, so the provider retries', async (t) => {
  const app = await appWith(t, { revocation: { maxEntries: 1 } })
  t.equal((await logout(app, form({ logout_token: logoutToken({ sid: 'one' }) }))).statusCode, 200)
  const res = await logout(app, form({ logout_token: logoutToken({ sid: 'two' }) }))
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'revocations_unavailable' })
  t.ok(res.headers['retry-after'])
})

t.test('revocation.enabled: false serves neither route and applies nothing', async (t) => {
  const app = await appWith(t, { revocation: { enabled: false } })
  t.equal((await logout(app, form({ logout_token: logoutToken() }))).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: '/revocations', payload: { issuer: 'main', sub: 'x' } })).statusCode, 404)
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.notOk('revocations' in ready.json())
})
