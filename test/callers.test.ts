/**
 * Caller authentication: API keys configured only as SHA-256 hashes, checked in X-Api-Key; a failed
 * caller check is a 403 with a caller_* code, told apart from a bad token (401). The caller id labels the
 * log line, the metrics and the rate limit.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { CallerKeys, MAX_API_KEY_LENGTH } from '../src/auth/caller-keys.js'
import { ConfigError, loadConfig, parseConfig } from '../src/config/load.js'
import { ERROR_CODES } from '../src/errors.js'
import { loggerOptions } from '../src/logger.js'
import { configFor, configProblems } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { matchExactly } from './helpers/exact-match.js'
import { builtin, patchBuiltin } from './helpers/patch-builtin.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')

const BILLING_KEY = 'bk_4f8a1c2e9d7b6a5f3e2d1c0b9a8f7e6d'
const WEB_KEY = 'wk_0a1b2c3d4e5f60718293a4b5c6d7e8f9'
const callers = {
  keys: [
    { id: 'billing', sha256: sha256(BILLING_KEY), rateLimit: { max: 3 } },
    { id: 'web', sha256: sha256(WEB_KEY).toUpperCase() }
  ]
}

function capture (): { lines: Array<Record<string, unknown>>, logger: pino.Logger } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l)); cb() } })
  return { lines, logger: pino({ ...loggerOptions('info') }, stream) }
}

t.test('keys, codes and statuses', async (t) => {
  const { lines, logger } = capture()
  const app = await buildApp(configFor(issuers, { callers }), { loggerInstance: logger })
  t.teardown(() => app.close())
  const good = mint(key, idTokenClaims(ISS, 'aud'))
  const verify = async (headers: Record<string, string>, token: string = good) =>
    await app.inject({ method: 'POST', url: '/verify', headers, payload: { token } })

  const missing = await verify({})
  t.equal(missing.statusCode, 403)
  t.equal(missing.json().code, 'caller_key_missing')
  t.equal(missing.headers['www-authenticate'], undefined, 'not a token problem: no Bearer challenge')

  const wrong = await verify({ 'x-api-key': 'not-a-configured-key' })
  t.equal(wrong.statusCode, 403)
  t.equal(wrong.json().code, 'caller_key_invalid')
  t.notOk(wrong.body.includes('not-a-configured-key'), 'the key is never echoed')

  const ok = await verify({ 'x-api-key': BILLING_KEY })
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().subject, 'user-123')

  const badToken = await verify({ 'x-api-key': WEB_KEY }, 'garbage')
  t.equal(badToken.statusCode, 401, 'a good caller with a bad token gets the token family')
  t.equal(badToken.json().code, 'token_malformed')

  const bearer = await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': WEB_KEY, authorization: `Bearer ${good}` } })
  t.equal(bearer.statusCode, 200, 'the key header and the Bearer token go together')

  const apiKeyScheme = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `ApiKey ${WEB_KEY}` }, payload: { token: good } })
  t.equal(apiKeyScheme.statusCode, 403, 'Authorization carries the token, never the key')
  t.equal(apiKeyScheme.json().code, 'caller_key_missing')

  const hashAsKey = await verify({ 'x-api-key': sha256(BILLING_KEY) })
  t.equal(hashAsKey.json().code, 'caller_key_invalid', 'knowing the configured hash is not enough')

  t.test('open and protected routes', async (t) => {
    t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
    const metrics = await app.inject({ method: 'GET', url: '/metrics' })
    t.equal(metrics.statusCode, 403, '/metrics needs a key by default when callers are configured')
    t.equal(metrics.json().code, 'caller_key_missing')
    t.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': WEB_KEY } })).statusCode, 200)
    const scan = await app.inject({ method: 'GET', url: '/admin' })
    t.equal(scan.statusCode, 403, 'an unknown route without a key says nothing about routes')
    const known = await app.inject({ method: 'GET', url: '/admin', headers: { 'x-api-key': WEB_KEY } })
    t.equal(known.statusCode, 404)
    // A malformed URL is answered before routing and hooks: without a key it is refused like an unknown route.
    for (const url of ['/%zz', '/verify/%E4%B8', '/healthz/%']) {
      const noKey = await app.inject({ method: 'GET', url })
      t.equal(noKey.statusCode, 403, `${url} without a key`)
      t.equal(noKey.json().code, 'caller_key_missing')
      t.ok(noKey.headers['x-request-id'])
    }
    // A present key is not checked there (no failed-check bound without the client address): the same
    // answer for a right and a wrong key, so it tells nothing about the key.
    for (const apiKey of [WEB_KEY, 'not-a-configured-key']) {
      const keyed = await app.inject({ method: 'GET', url: '/%zz', headers: { 'x-api-key': apiKey } })
      t.equal(keyed.statusCode, 400)
      t.equal(keyed.json().code, 'request_invalid')
    }
    const forward = await app.inject({ method: 'GET', url: '/forward-auth/%zz' })
    t.equal(forward.statusCode, 401, 'under /forward-auth, still only 401 (fail closed)')
  })

  t.test('hostile keys', async (t) => {
    const cases: Array<[string, string | string[]]> = [
      ['oversized', 'k'.repeat(MAX_API_KEY_LENGTH + 1)],
      ['huge', 'k'.repeat(60000)],
      ['spaces', `${BILLING_KEY} `.repeat(2)],
      ['control character', `${BILLING_KEY}\t`],
      ['latin-1', `${BILLING_KEY}\u00e9`],
      ['two headers', [BILLING_KEY, BILLING_KEY]],
      ['two headers of which one is good', ['nope', WEB_KEY]],
      ['prefix of a good key', BILLING_KEY.slice(0, -1)],
      ['good key plus a character', `${BILLING_KEY}x`],
      ['comma-joined', `${BILLING_KEY},${WEB_KEY}`]
    ]
    for (const [name, value] of cases) {
      const res = await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': value as string }, payload: { token: good } })
      t.equal(res.statusCode, 403, name)
      t.equal(res.json().code, 'caller_key_invalid', name)
    }
    const empty = await verify({ 'x-api-key': '' })
    t.equal(empty.json().code, 'caller_key_missing', 'an empty header is no key')
  })

  t.test('the caller id is in the log line', async (t) => {
    const requestLines = lines.filter((l) => l.msg === 'request completed')
    t.match(requestLines[0], { status: 403, code: 'caller_key_missing', caller: null })
    t.match(requestLines[2], { status: 200, caller: 'billing', issuer: 'main' })
    t.match(requestLines[3], { status: 401, caller: 'web', code: 'token_malformed' })
    const text = JSON.stringify(lines)
    for (const secret of [BILLING_KEY, WEB_KEY, 'not-a-configured-key']) t.notOk(text.includes(secret), 'no key in the logs')
  })

  t.test('the caller id is in the metrics', async (t) => {
    const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': WEB_KEY } })).body)
    t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', status: '200', caller: 'billing' }), 1)
    t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', status: '200', caller: 'web' }), 1)
    t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', status: '401', caller: 'web' }), 1)
    t.equal(valueOf(samples, 'oidc_verifier_caller_rejections_total', { code: 'caller_key_missing' }), 8, 'the malformed URLs without a key too')
    t.equal(valueOf(samples, 'oidc_verifier_caller_rejections_total', { code: 'caller_key_invalid' }), 12)
  })
})

t.test('the rate limit is per caller, with per-caller limits', async (t) => {
  const app = await buildApp(configFor(issuers, { callers, rateLimit: { max: 5, windowSeconds: 60 } }))
  t.teardown(() => app.close())
  const call = async (apiKey: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': apiKey }, payload: { token: 'x' } })).statusCode
  // Both callers come from the same address: the limit follows the key, not the address.
  for (let i = 0; i < 3; i++) t.equal(await call(BILLING_KEY), 401)
  const limited = await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': BILLING_KEY }, payload: { token: 'x' } })
  t.equal(limited.statusCode, 429, 'billing has its own limit of 3')
  t.equal(limited.json().code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) >= 1)
  for (let i = 0; i < 5; i++) t.equal(await call(WEB_KEY), 401, 'web has the global limit of 5')
  t.equal(await call(WEB_KEY), 429)
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': WEB_KEY } })).body)
  t.equal(valueOf(samples, 'oidc_verifier_rate_limited_total', { route: '/verify', caller: 'billing' }), 1)
  t.equal(valueOf(samples, 'oidc_verifier_rate_limited_total', { route: '/verify', caller: 'web' }), 1)
})

t.test('one budget per caller across the verify routes, not one per route', async (t) => {
  // web may revoke here: a caller that may not is refused 403 by /revocations before any budget (openapi.yaml).
  const revoking = { keys: callers.keys.map((k) => k.id === 'web' ? { ...k, revoke: true } : k) }
  const app = await buildApp(configFor(issuers, { callers: revoking, rateLimit: { max: 2, windowSeconds: 60 }, revocation: { enabled: true } }))
  t.teardown(() => app.close())
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const verify = async (apiKey: string) => await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': apiKey, authorization: `Bearer ${token}` } })
  const batch = async (apiKey: string) => await app.inject({ method: 'POST', url: '/verify/batch', headers: { 'x-api-key': apiKey }, payload: { tokens: [token, token] } })
  const introspect = async (apiKey: string) => await app.inject({ method: 'POST', url: '/introspect', headers: { 'x-api-key': apiKey, 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${token}` })
  const revoke = async (apiKey: string) => await app.inject({ method: 'POST', url: '/revocations', headers: { 'x-api-key': apiKey }, payload: { issuer: 'main', jti: 'x' } })

  t.equal((await verify(WEB_KEY)).statusCode, 200)
  t.equal((await introspect(WEB_KEY)).statusCode, 200)
  const third = await batch(WEB_KEY)
  t.equal(third.statusCode, 429, 'rateLimit.max 2: the third request is refused, whatever its route')
  t.equal(third.json().code, 'rate_limited')
  t.ok(Number(third.headers['retry-after']) >= 1)
  t.equal(third.headers['x-ratelimit-limit'], '2')
  t.equal(third.headers['x-ratelimit-remaining'], '0')
  t.equal((await verify(WEB_KEY)).statusCode, 429)
  t.equal((await revoke(WEB_KEY)).statusCode, 429, '/revocations shares the budget too')

  // A caller's own limit (billing: 3) is one budget across the routes as well.
  t.equal((await batch(BILLING_KEY)).statusCode, 200)
  t.equal((await verify(BILLING_KEY)).statusCode, 200)
  t.equal((await introspect(BILLING_KEY)).statusCode, 200)
  t.equal((await verify(BILLING_KEY)).statusCode, 429)
  t.equal((await introspect(BILLING_KEY)).statusCode, 429)

  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': WEB_KEY } })).body)
  t.equal(valueOf(samples, 'oidc_verifier_rate_limited_total', { route: '/verify/batch', caller: 'web' }), 1, 'counted under the route that answered 429')
  t.equal(valueOf(samples, 'oidc_verifier_rate_limited_total', { route: '/introspect', caller: 'billing' }), 1)
})

t.test('without rateLimit.max the verify routes are limited only for callers with a limit of their own', async (t) => {
  const call = async (app: FastifyInstance, apiKey?: string) =>
    await app.inject({ method: 'POST', url: '/verify', headers: apiKey === undefined ? {} : { 'x-api-key': apiKey }, payload: { token: 'x' } })
  const open = await buildApp(configFor(issuers, { rateLimit: { headers: true } }))
  t.teardown(() => open.close())
  for (let i = 0; i < 30; i++) {
    const res = await call(open)
    t.equal(res.statusCode, 401)
    t.equal(res.headers['x-ratelimit-limit'], undefined, 'not counted by any limiter')
  }
  t.equal((await open.inject({ method: 'GET', url: '/nowhere' })).headers['x-ratelimit-limit'], '1000', 'unknown routes keep a limit per address')

  const some = await buildApp(configFor(issuers, { callers, rateLimit: { headers: true } }))
  t.teardown(() => some.close())
  for (let i = 0; i < 3; i++) t.equal((await call(some, BILLING_KEY)).statusCode, 401)
  t.equal((await call(some, BILLING_KEY)).statusCode, 429, 'billing has a limit of its own: 3')
  t.equal((await call(some, BILLING_KEY)).headers['x-ratelimit-limit'], '3')
  for (let i = 0; i < 30; i++) t.equal((await call(some, WEB_KEY)).statusCode, 401, 'web has none')
  t.equal((await call(some, WEB_KEY)).headers['x-ratelimit-limit'], undefined, 'and is not counted at all')

  const off = await buildApp(configFor(issuers, { callers, rateLimit: { enabled: false, max: 1 } }))
  t.teardown(() => off.close())
  for (let i = 0; i < 5; i++) t.equal((await call(off, BILLING_KEY)).statusCode, 401, 'rateLimit.enabled: false turns every limit off')
})

t.test('protectMetrics: false leaves /metrics open; no callers means no check', async (t) => {
  const open = await buildApp(configFor(issuers, { callers: { ...callers, protectMetrics: false } }))
  const off = await buildApp(configFor(issuers))
  t.teardown(() => Promise.all([open.close(), off.close()]))
  t.equal((await open.inject({ method: 'GET', url: '/metrics' })).statusCode, 200)
  t.equal((await open.inject({ method: 'POST', url: '/verify', payload: { token: 'x' } })).statusCode, 403)
  t.equal((await off.inject({ method: 'POST', url: '/verify', payload: { token: 'x' } })).statusCode, 401, 'off by default')
  t.equal((await off.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': 'anything' }, payload: { token: 'x' } })).statusCode, 401)
})

t.test('the caller family in the code table', async (t) => {
  for (const code of ['caller_key_missing', 'caller_key_invalid'] as const) {
    t.equal(ERROR_CODES[code].status, 403)
    t.equal(ERROR_CODES[code].family, 'caller')
  }
  // 403 is shared only with forward-auth's "forbidden" family (proxies pass on 401 and 403 only); on
  // every other route a 403 means "fix my credentials".
  const statuses = new Set<number>(Object.values(ERROR_CODES).filter((d) => d.family !== 'caller' && d.family !== 'forbidden').map((d) => d.status))
  t.notOk(statuses.has(403), 'no token, request or unavailable code is a 403')
})

t.test('CallerKeys compares against every hash', async (t) => {
  const keys = new CallerKeys([{ id: 'a', sha256: sha256('key-a') }, { id: 'b', sha256: sha256('key-b') }, { id: 'c', sha256: sha256('key-c') }])
  t.ok(keys.enabled)
  t.match(keys.check('key-c'), { ok: true, caller: { id: 'c' } }, 'the last entry is found')
  t.match(keys.check('key-a'), { ok: true, caller: { id: 'a' } })
  t.same(keys.check(undefined), { ok: false, code: 'caller_key_missing' })
  t.same(keys.check(['key-a']), { ok: false, code: 'caller_key_invalid' })
  t.same(keys.check('key-d'), { ok: false, code: 'caller_key_invalid' })
  t.notOk(new CallerKeys([]).enabled)

  // Every configured hash is compared, in constant time, wherever the match is and whether there is one.
  const crypto = builtin<typeof import('node:crypto')>('node:crypto')
  const timingSafeEqual = crypto.timingSafeEqual
  let comparisons = 0
  patchBuiltin(t, crypto, 'timingSafeEqual', (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => { comparisons++; return timingSafeEqual(a, b) })
  const countedKeys = new CallerKeys([{ id: 'a', sha256: sha256('key-a') }, { id: 'b', sha256: sha256('key-b') }, { id: 'c', sha256: sha256('key-c') }])
  for (const [presented, id] of [['key-a', 'a'], ['key-b', 'b'], ['key-c', 'c'], ['key-d', undefined]] as const) {
    comparisons = 0
    const result = countedKeys.check(presented)
    t.equal(result.ok ? result.caller.id : undefined, id, presented)
    t.equal(comparisons, 3, `${presented}: every hash compared with timingSafeEqual`)
  }
})

t.test('configuration', async (t) => {
  const problems = (doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string[] => {
    return configProblems({ issuers, ...doc }, env)
  }
  const plainKey = 'my-plain-secret-api-key'
  const pasted = problems({ callers: { keys: [{ id: 'a', sha256: plainKey }] } })
  matchExactly(t, pasted, [/callers\.keys\[0\]\.sha256: expected the SHA-256 of the key as 64 hex digits/])
  t.notOk(pasted.join().includes(plainKey), 'a key pasted into sha256 is not echoed')
  matchExactly(t, problems({ callers: { keys: [{ id: 'a' }] } }), [/callers\.keys\[0\]: expected sha256 .* or sha256Env/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256: sha256('x'), sha256Env: 'X' }] } }), [/mutually exclusive/])
  matchExactly(t, problems({ callers: { keys: [] } }), [/callers\.keys: expected a non-empty list/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'none', sha256: sha256('x') }] } }), [/callers\.keys\[0\]\.id: "none" is reserved/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256: sha256('x') }, { id: 'a', sha256: sha256('y') }] } }), [/callers\.keys\[1\]\.id: duplicate id "a"/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256: sha256('x') }, { id: 'b', sha256: sha256('x').toUpperCase() }] } }), [/callers\.keys\[1\]: the same key hash as callers\.keys\[0\]/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256: sha256('x'), rateLimit: { max: 0 } }] } }), [/callers\.keys\[0\]\.rateLimit\.max: expected an integer from 1/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256: sha256('x'), rateLimit: { windowSeconds: 10 } }] } }),
    [/callers\.keys\[0\]\.rateLimit\.max: missing: rateLimit\.max is not set, so this caller's limit needs its own max/])
  t.same(problems({ rateLimit: { max: 9 }, callers: { keys: [{ id: 'a', sha256: sha256('x'), rateLimit: { windowSeconds: 10 } }] } }), [])
  t.same(problems({ rateLimit: { enabled: false }, callers: { keys: [{ id: 'a', sha256: sha256('x'), rateLimit: { windowSeconds: 10 } }] } }), [], 'no limit applies with rate limiting off')
  matchExactly(t, problems({ callers: { key: [] } }), [/callers\.key: unknown option \(did you mean "keys"\?\)/, /callers\.keys: missing; expected a non-empty list/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256Env: 'A_HASH' }] } }), [/sha256Env: expected environment variable A_HASH to hold the SHA-256/])
  matchExactly(t, problems({ callers: { keys: [{ id: 'a', sha256Env: 'toString' }] } }, {}), [/sha256Env: expected environment variable toString to hold the SHA-256/], 'a name the environment object inherits')
  const fromEnv = problems({ callers: { keys: [{ id: 'a', sha256Env: 'A_HASH' }] } }, { A_HASH: plainKey })
  matchExactly(t, fromEnv, [/expected the value of A_HASH to be the SHA-256 of the key/])
  t.notOk(fromEnv.join().includes(plainKey))

  const resolved = parseConfig({ issuers, rateLimit: { max: 50, windowSeconds: 10 }, callers: { keys: [{ id: 'a', sha256Env: 'A_HASH', rateLimit: { max: 7 } }] } }, 'c.yaml', { A_HASH: ` ${sha256('x').toUpperCase()}\n` })
  // Only what the caller sets: the routes take the rest from rateLimit (src/http/route-rate-limit.ts).
  t.same(resolved.callers, { keys: [{ id: 'a', sha256: sha256('x'), rateLimit: { max: 7 } }], protectMetrics: true, maxFailuresPerMinute: 60 })
})

t.test('environment-only mode: CALLER_KEY_HASHES', async (t) => {
  const env = { OIDC_ISSUER: ISS, OIDC_AUDIENCE: 'aud' }
  const config = loadConfig({ argv: [], env: { ...env, CALLER_KEY_HASHES: `billing:${sha256(BILLING_KEY)}, web:${sha256(WEB_KEY)}` } })
  t.same(config.callers.keys.map((k) => k.id), ['billing', 'web'])
  t.equal(config.callers.keys[1]!.sha256, sha256(WEB_KEY))
  t.same(loadConfig({ argv: [], env }).callers.keys, [], 'off without the variable')
  const problems = (argv: string[], env: NodeJS.ProcessEnv): string[] => {
    try {
      loadConfig({ argv, env })
      return []
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
  }
  const pasted = problems([], { ...env, CALLER_KEY_HASHES: `billing:${BILLING_KEY}` })
  t.match(pasted, [/^environment: CALLER_KEY_HASHES \(item 1\): expected the SHA-256 of the key/])
  t.notOk(pasted.join().includes(BILLING_KEY), 'a plain key in the variable is not echoed')
  const withoutId = problems([], { ...env, CALLER_KEY_HASHES: BILLING_KEY })
  t.match(withoutId, [/CALLER_KEY_HASHES \(item 1\)/])
  t.notOk(withoutId.join().includes(BILLING_KEY), 'an item without "id:" (a key pasted alone) is not echoed as an id')
  const dir = t.testdir({ 'c.json': JSON.stringify({ issuers }) })
  t.match(problems(['--config', `${dir}/c.json`], { CALLER_KEY_HASHES: `billing:${sha256(BILLING_KEY)}` }), [/CALLER_KEY_HASHES: ambiguous/])
})

t.test('a configuration reload rotates caller keys', async (t) => {
  const { reloadConfiguration } = await import('../src/reload.js')
  const before = configFor(issuers, { callers: { keys: [{ id: 'billing', sha256: sha256(BILLING_KEY) }] } })
  const after = configFor(issuers, { callers: { keys: [{ id: 'billing', sha256: sha256(WEB_KEY) }] } })
  const app = await buildApp(before)
  t.teardown(() => app.close())
  const call = async (apiKey: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': apiKey }, payload: { token: 'x' } })).statusCode
  t.equal(await call(BILLING_KEY), 401)
  t.equal(await call(WEB_KEY), 403)
  const result = await reloadConfiguration(app, () => after)
  t.equal(result.outcome, 'applied')
  t.equal(await call(BILLING_KEY), 403, 'the old key is refused at once')
  t.equal(await call(WEB_KEY), 401, 'the new key is accepted')
})

t.test('a reload that gives a caller a limit when the service started with none applies it at the next request', async (t) => {
  const { reloadConfiguration } = await import('../src/reload.js')
  const app = await buildApp(configFor(issuers, { callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY) }] } }))
  t.teardown(() => app.close())
  const call = async (): Promise<number> => (await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': WEB_KEY }, payload: { token: 'x' } })).statusCode
  for (let i = 0; i < 4; i++) t.equal(await call(), 401, 'no limit')
  const limitedLater = configFor(issuers, { callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY), rateLimit: { max: 2 } }] } })
  const result = await reloadConfiguration(app, () => limitedLater)
  t.equal(result.outcome, 'applied')
  t.same(result.needsRestart, [], 'nothing waits for a restart')
  t.same([await call(), await call(), await call()], [401, 401, 429], 'the limit applies from the next request')
  t.equal((await reloadConfiguration(app, () => configFor(issuers, { callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY) }] } }))).outcome, 'applied')
  for (let i = 0; i < 4; i++) t.equal(await call(), 401, 'taken back: not limited')
  const withoutMax = configFor(issuers, { callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY) }] } })
  // A limit without max while the running rateLimit has none: refused by the reload, as at start.
  ;(withoutMax.callers.keys[0] as { rateLimit?: unknown }).rateLimit = { windowSeconds: 10 }
  const refused = await reloadConfiguration(app, () => withoutMax)
  t.equal(refused.outcome, 'refused')
  t.match(refused.problems, [/callers\.keys\[0\]\.rateLimit\.max: missing/])

  const limited = await buildApp(configFor(issuers, { callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY), rateLimit: { max: 2 } }] } }))
  t.teardown(() => limited.close())
  const changed = configFor(issuers, { callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY), rateLimit: { max: 1 } }] } })
  t.same((await reloadConfiguration(limited, () => changed)).needsRestart, [], 'routes built with a limit read each caller\'s own at every request')
  t.equal((await limited.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': WEB_KEY }, payload: { token: 'x' } })).statusCode, 401)
  t.equal((await limited.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': WEB_KEY }, payload: { token: 'x' } })).statusCode, 429, 'the new limit of 1')
})

t.test('failed key checks are bounded per address: then 429 until the minute ends, even with a right key', async (t) => {
  let now = Date.now()
  const app = await buildApp(configFor(issuers, { callers: { ...callers, maxFailuresPerMinute: 3 } }), { now: () => now })
  t.teardown(() => app.close())
  const good = mint(key, idTokenClaims(ISS, 'aud'))
  const verify = async (apiKey: string | undefined, remoteAddress = '10.0.0.1') =>
    await app.inject({ method: 'POST', url: '/verify', remoteAddress, headers: apiKey === undefined ? {} : { 'x-api-key': apiKey }, payload: { token: good } })

  t.equal((await verify(WEB_KEY)).statusCode, 200, 'a right key does not count')
  for (let i = 0; i < 5; i++) t.equal((await verify(undefined)).statusCode, 403, 'a missing key is refused')
  t.equal((await verify(WEB_KEY)).statusCode, 200, 'but is not a guess: it does not count')
  for (const guess of ['guess-1', 'guess-2', 'guess-3']) t.equal((await verify(guess)).statusCode, 403, `failure ${guess}`)
  const blocked = await verify(WEB_KEY)
  t.equal(blocked.statusCode, 429, 'past the bound, even the right key is refused: the answer must not tell a guess')
  t.match(blocked.json(), { code: 'rate_limited' })
  t.equal(blocked.headers['retry-after'], '60')
  t.equal(blocked.headers['x-ratelimit-limit'], '3', 'the x-ratelimit-* headers every 429 has: this bound')
  t.equal(blocked.headers['x-ratelimit-remaining'], '0')
  t.equal(blocked.headers['x-ratelimit-reset'], '60')
  t.equal((await verify(WEB_KEY, '10.0.0.2')).statusCode, 200, 'another address is not affected')
  t.equal((await verify(WEB_KEY, '2001:db8:1:2::7')).statusCode, 200)
  for (let i = 0; i < 3; i++) await verify('guess', '2001:db8:1:2::7')
  t.equal((await verify(WEB_KEY, '2001:db8:1:2::8')).statusCode, 429, 'IPv6 addresses are counted by their /64')
  t.equal((await app.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.0.0.1' })).statusCode, 200, 'open routes stay open')
  const forward = await app.inject({ method: 'GET', url: '/forward-auth', remoteAddress: '10.0.0.1', headers: { 'x-api-key': WEB_KEY, authorization: `Bearer ${good}` } })
  t.equal(forward.statusCode, 403, 'on /forward-auth the answer is 403 (a proxy turns a 429 into a 500, and a 401 sends users to log in again)')
  t.match(forward.json(), { code: 'rate_limited' })
  t.ok(Number(forward.headers['retry-after']) >= 1, 'with Retry-After')

  now += 30_000
  const later = await verify(WEB_KEY)
  t.equal(later.headers['retry-after'], '30')
  t.equal(later.headers['x-ratelimit-reset'], '30')
  now += 30_001
  t.equal((await verify(WEB_KEY)).statusCode, 200, 'a new minute, a new budget')
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': WEB_KEY } })).body)
  t.equal(valueOf(samples, 'oidc_verifier_caller_rejections_total', { code: 'rate_limited' }), 4)

  const unbounded = await buildApp(configFor(issuers, { callers: { ...callers, maxFailuresPerMinute: 0 } }))
  t.teardown(() => unbounded.close())
  for (let i = 0; i < 20; i++) await unbounded.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': 'guess' }, payload: { token: good } })
  t.equal((await unbounded.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': WEB_KEY }, payload: { token: good } })).statusCode, 200, 'maxFailuresPerMinute: 0 has no bound')
})

t.test('server.clientIpv6PrefixLength: 128 counts each IPv6 address on its own (callers sharing a /64: pods, containers)', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { clientIpv6PrefixLength: 128 }, callers: { ...callers, maxFailuresPerMinute: 3 } }))
  t.teardown(() => app.close())
  const good = mint(key, idTokenClaims(ISS, 'aud'))
  const verify = async (apiKey: string, remoteAddress: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/verify', remoteAddress, headers: { 'x-api-key': apiKey }, payload: { token: good } })).statusCode
  for (let i = 0; i < 3; i++) await verify('stale-key', '2001:db8:1:2::a:7')
  t.equal(await verify(WEB_KEY, '2001:db8:1:2::a:7'), 429, 'the pod with the stale key is held back')
  t.equal(await verify(WEB_KEY, '2001:db8:1:2::b:7'), 200, 'another pod of the same /64 is not')
  t.equal(await verify(WEB_KEY, '2001:DB8:1:2:0:0:A:7'), 429, 'the same address written another way is the same client')
  t.match(configProblems({ server: { clientIpv6PrefixLength: 16 }, issuers: [] }), [/server\.clientIpv6PrefixLength: expected an integer from 32 to 128, got 16/])
})

t.test('behind a proxy that writes ports into X-Forwarded-For, the failure bound counts the address, not each port', async (t) => {
  const app = await buildApp(configFor(issuers, {
    server: { trustProxy: ['127.0.0.1'] },
    callers: { keys: [{ id: 'web', sha256: sha256(WEB_KEY) }], maxFailuresPerMinute: 3 }
  }))
  t.teardown(() => app.close())
  const guess = async (forwardedFor: string): Promise<number> => (await app.inject({
    method: 'POST', url: '/verify', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': forwardedFor, 'x-api-key': 'wrong-guess-0123456789abcdef' }, payload: { token: 'x' }
  })).statusCode
  const newPorts: number[] = []
  for (let i = 0; i < 5; i++) newPorts.push(await guess(`198.51.100.9:${40000 + i}`))
  t.same(newPorts, [403, 403, 403, 429, 429], 'a new source port each time: blocked after 3 failures all the same')
})
