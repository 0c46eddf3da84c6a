/**
 * One JSON log line per request with route, status, issuer id, code, duration and request id; never the
 * token, the Authorization header or personal claims. Also: the /verify rate limit.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')

function capture (level: 'info' | 'warn' = 'info') {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  return { lines, logger: pino({ ...loggerOptions(level) }, stream) }
}

t.test('request log lines carry outcome fields and no secrets', async (t) => {
  const { lines, logger } = capture()
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]), { loggerInstance: logger })
  t.teardown(() => app.close())
  const good = mint(key, idTokenClaims(ISS, 'aud', { email: 'secret.person@example.com', name: 'Secret Person' }))
  const expired = mint(key, idTokenClaims(ISS, 'aud', { exp: 1000, iat: 900 }))
  await app.inject({ method: 'POST', url: '/verify', payload: { token: good } })
  await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${expired}`, 'x-request-id': 'req-77' } })
  await app.inject({ method: 'POST', url: '/verify', payload: `{"token": "${good.slice(0, 30)}`, headers: { 'content-type': 'application/json' } })
  await app.inject({ method: 'GET', url: '/healthz' })

  const requestLines = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed')
  t.equal(requestLines.length, 4, 'one line per request')
  t.match(requestLines[0], { route: '/verify', method: 'POST', status: 200, issuer: 'main', code: null })
  t.type(requestLines[0].durationMs, 'number')
  t.type(requestLines[0].reqId, 'string')
  t.match(requestLines[1], { status: 401, issuer: 'main', code: 'token_expired', reqId: 'req-77' })
  t.match(requestLines[2], { status: 400, code: 'request_invalid' })
  t.match(requestLines[3], { route: '/healthz', status: 200 })
  for (const line of lines.filter((l) => l.includes('"request completed"'))) {
    t.equal(line.match(/"reqId":/g)?.length, 1, 'the request id once per line (JSON with a repeated key is read differently by different tools)')
  }
  const all = lines.join('\n')
  for (const secret of [good, expired, good.slice(0, 30), good.split('.')[1] as string, 'secret.person', 'Secret Person', 'Bearer']) {
    t.notOk(all.includes(secret), `logs never contain ${secret.slice(0, 12)}…`)
  }
})

t.test('a malformed URL, answered before any hook, still has a request id, a log line and a count', async (t) => {
  const { lines, logger } = capture()
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]), { loggerInstance: logger })
  t.teardown(() => app.close())
  const given = await app.inject({ method: 'GET', url: '/verify/%zz', headers: { 'x-request-id': 'bad-url-1' } })
  t.equal(given.statusCode, 400)
  t.equal(given.headers['x-request-id'], 'bad-url-1', 'the caller\'s request id is echoed')
  t.match(given.json(), { code: 'request_invalid', requestId: 'bad-url-1' })
  t.notOk(given.body.includes('%zz'), 'the URL is not echoed')
  const made = await app.inject({ method: 'GET', url: '/forward-auth/%zz' })
  t.equal(made.statusCode, 401)
  t.type(made.headers['x-request-id'], 'string')
  t.equal(made.headers['x-request-id'], made.json().requestId)

  const requestLines = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed')
  t.equal(requestLines.length, 2, 'one line per request')
  t.match(requestLines[0], { reqId: 'bad-url-1', route: null, method: 'GET', status: 400, code: 'request_invalid' })
  t.match(requestLines[1], { reqId: made.headers['x-request-id'], route: null, status: 401, code: 'request_invalid' })
  t.notOk(lines.join('\n').includes('%zz'), 'nor logged')

  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'GET', status: '400', caller: 'none' }), 1)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'GET', status: '401', caller: 'none' }), 1)
})

t.test('above info, only a failed request (5xx) is logged, at error', async (t) => {
  const { lines, logger } = capture('warn')
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]), { loggerInstance: logger })
  t.teardown(() => app.close())
  // A route that fails unexpectedly stands for any 5xx.
  app.get('/boom', async () => { throw new Error('unexpected') })
  const good = mint(key, idTokenClaims(ISS, 'aud'))
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: good } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: 'garbage' } })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/boom', headers: { 'x-request-id': 'req-500' } })).statusCode, 500)
  const requestLines = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed')
  t.equal(requestLines.length, 1, 'the 200 and the 401 are not logged at warn')
  t.match(requestLines[0], { level: 50, status: 500, reqId: 'req-500', route: '/boom' })
})

t.test('a 503 is logged at warn, a /readyz 503 at info', async (t) => {
  const { lines, logger } = capture('info')
  const app = await buildApp(configFor([{ id: 'down', issuer: ISS, audiences: ['aud'], jwksUri: 'http://127.0.0.1:9/jwks' }], { fetch: { timeoutMs: 200 } }), { loggerInstance: logger })
  t.teardown(() => app.close())
  const unavailable = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(ISS, 'aud')) } })
  t.equal(unavailable.statusCode, 503)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503)
  const requestLines = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed')
  t.match(requestLines, [{ level: 40, route: '/verify', status: 503, code: 'keys_unavailable', issuer: 'down' }, { level: 30, route: '/readyz', status: 503 }])
  const cause = lines.map((l) => JSON.parse(l)).find((l) => String(l.msg).startsWith('JWKS fetch from'))
  t.match(cause, { level: 40, issuer: 'down', url: 'http://127.0.0.1:9/jwks' }, 'the cause has its own warning, naming the issuer')
})

t.test('the rate limit stops a runaway caller, with a code and Retry-After', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'] , jwks: jwksOf(key) }], { rateLimit: { max: 5, windowSeconds: 60 } }))
  t.teardown(() => app.close())
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const statuses: number[] = []
  for (let i = 0; i < 7; i++) statuses.push((await app.inject({ method: 'POST', url: '/verify', payload: { token } })).statusCode)
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429])
  const limited = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(limited.json().code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) >= 1)
  t.equal(limited.headers['x-ratelimit-limit'], '5', 'a 429 says the limit')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health is not limited')
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
})

t.test('x-ratelimit-* headers on answers within the limit only when configured', async (t) => {
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const quiet = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }], { rateLimit: { max: 5, windowSeconds: 60 } }))
  t.teardown(() => quiet.close())
  const plain = await quiet.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(plain.statusCode, 200)
  t.same(Object.keys(plain.headers).filter((h) => h.startsWith('x-ratelimit')), [], 'none by default')
  const told = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }], { rateLimit: { max: 5, windowSeconds: 60, headers: true } }))
  t.teardown(() => told.close())
  const res = await told.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-ratelimit-limit'], '5')
  t.equal(res.headers['x-ratelimit-remaining'], '4')
  t.ok(Number(res.headers['x-ratelimit-reset']) >= 1)
})

t.test('the default limit never stops a busy backend', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]))
  t.teardown(() => app.close())
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const results = await Promise.all(Array.from({ length: 3000 }, () => app.inject({ method: 'POST', url: '/verify', payload: { token } })))
  t.ok(results.every((r) => r.statusCode === 200), '3000 requests in a burst from one caller pass')
})
