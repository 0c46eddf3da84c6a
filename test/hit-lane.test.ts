/**
 * The lane (src/http/hit-lane.ts): a cache hit or a new token of the commonest request shape is answered before
 * Fastify, on a real port (inject() never passes through it). Each test tells who answered by a hook that counts the requests
 * Fastify routes: the lane's answers must be the route's (status, headers, body, request id, log line, metrics),
 * and everything else must reach the route with its body intact.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp, type BuildAppOptions } from '../src/app.js'
import { CallerKeys } from '../src/auth/caller-keys.js'
import { laneVerdict, tokenBytes } from '../src/http/hit-lane.js'
import { LaneGate, MIN_HIT_SHARE, SAMPLE_EVERY, WINDOW } from '../src/http/lane-gate.js'
import { loggerOptions } from '../src/logger.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
const T0 = nowSeconds() * 1000

type Line = Record<string, unknown>

interface Lane {
  app: FastifyInstance
  port: number
  /** Requests to POST /verify that Fastify answered so far. */
  routed: () => number
  lines: Line[]
  raw: string[]
  /** The test's clock (ms), which the Verifier reads. */
  clock: { now: number }
}

async function laneApp (t: Test, extra: Record<string, unknown> = {}, options: BuildAppOptions = {}, setUp?: (app: FastifyInstance) => void): Promise<Lane> {
  const lines: Line[] = []
  const raw: string[] = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n').filter(Boolean)) { raw.push(line); lines.push(JSON.parse(line) as Line) }
      cb()
    }
  })
  const clock = { now: T0 }
  const app = await buildApp(configFor(issuers, extra), { loggerInstance: pino(loggerOptions('info'), stream), now: () => clock.now, ...options })
  let routed = 0
  // onResponse: every answer Fastify gives runs it, whichever hook refused the request.
  app.addHook('onResponse', (request, _reply, done) => {
    if (request.url.startsWith('/verify') && request.method === 'POST' && !request.url.startsWith('/verify/')) routed++
    done()
  })
  setUp?.(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { app, port: (app.server.address() as AddressInfo).port, routed: () => routed, lines, raw, clock }
}

interface Answer { status: number, headers: http.IncomingHttpHeaders, body: string, socket: net.Socket }

/** One request over `agent` (keep-alive: the socket is reported, so a test can tell whether it was kept). */
async function post (port: number, body: string | Buffer, headers: Record<string, string> = {}, agent?: http.Agent, path = '/verify'): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    // A header given as '' is left out (a request without a content type).
    const sent = Object.fromEntries(Object.entries({ 'content-type': 'application/json', ...headers }).filter(([, v]) => v !== ''))
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: agent ?? false, headers: sent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), socket: res.socket }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const bodyOf = (token: string): string => JSON.stringify({ token })
const codeOf = (a: { body: string }): unknown => (JSON.parse(a.body) as { code?: unknown }).code


/** A token verified twice (by the lane, when it is open): the second verification admits it to the cache. */
async function cached (lane: Lane, token: string): Promise<Answer[]> {
  return [await post(lane.port, bodyOf(token)), await post(lane.port, bodyOf(token))]
}

t.test('a cache hit of the common shape is answered before routing, as the route answers it', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud', { email: 'a@example.com', jti: 'j1' }))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  let connections = 0
  lane.app.server.on('connection', () => { connections++ })

  const verified = await cached(lane, token)
  t.equal(lane.routed(), 0, 'the first two verifications are the lane\'s too (a new token)')
  const viaRoute = await lane.app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(viaRoute.statusCode, 200)
  t.equal(lane.routed(), 1, 'inject() passes through Fastify only')
  t.same(verified.map((a) => a.body), [viaRoute.body, viaRoute.body], 'a new token\'s answer is byte for byte the route\'s too')

  const first = await post(lane.port, bodyOf(token), {}, agent)
  const second = await post(lane.port, bodyOf(token), { 'x-request-id': 'caller-id.42' }, agent)
  t.equal(lane.routed(), 1, 'hits never reach Fastify')
  for (const hit of [first, second]) {
    t.equal(hit.status, 200)
    t.equal(hit.body, viaRoute.body, 'byte for byte the route\'s answer (same clock)')
    t.equal(hit.headers['content-type'], viaRoute.headers['content-type'])
    t.equal(hit.headers['cache-control'], 'no-store')
    t.equal(hit.headers['content-length'], String(Buffer.byteLength(viaRoute.body)))
    t.equal(hit.headers.connection, 'keep-alive', 'the connection is kept')
    const names = (h: Record<string, unknown>): string[] => Object.keys(h).filter((n) => !['date', 'connection', 'keep-alive'].includes(n)).sort()
    t.same(names(hit.headers), names(viaRoute.headers), 'the same header names as the route\'s')
  }
  t.match(first.headers['x-request-id'], /^[A-Za-z0-9_-]+-[0-9a-z]+$/, 'a request id made by the app\'s generator')
  t.equal(second.headers['x-request-id'], 'caller-id.42', 'a caller\'s safe request id is kept')
  t.equal(first.socket, second.socket, 'both on one connection')
  t.equal(connections, 3, 'the two new-token requests opened one each (no agent); the hits shared one')

  // The request line, as the route writes it (the inject's); the first line is the lane's for a new token.
  const routeLine = lane.lines.find((l) => l.msg === 'request completed' && l.reqId === viaRoute.headers['x-request-id'])
  const laneLine = lane.lines.find((l) => l.reqId === 'caller-id.42')
  const newTokenLine = lane.lines.find((l) => l.msg === 'request completed' && l.route === '/verify')
  t.ok(routeLine !== undefined && laneLine !== undefined && newTokenLine !== undefined && newTokenLine !== routeLine)
  t.same(Object.keys(laneLine ?? {}).sort(), Object.keys(routeLine ?? {}).sort(), 'the same fields as the route\'s line')
  t.same(Object.keys(newTokenLine ?? {}).sort(), Object.keys(routeLine ?? {}).sort(), 'a new token\'s line too')
  t.match(newTokenLine, { level: 30, method: 'POST', route: '/verify', status: 200, issuer: 'main', caller: null, code: null, durationMs: Number })
  t.match(laneLine, { level: 30, method: 'POST', route: '/verify', status: 200, issuer: 'main', caller: null, code: null, durationMs: Number, msg: 'request completed' })
  t.notOk(lane.raw.some((l) => l.includes(token) || l.includes(token.split('.')[2] as string)), 'no token in any line')

  // Metrics: every request once, hits as hits.
  const samples = parseMetrics((await lane.app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', method: 'POST', status: '200' }), 5, 'two new tokens, two hits, one inject')
  t.equal(valueOf(samples, 'oidc_verifier_token_cache_hits_total', { issuer: 'main' }), 3)
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' }), 5)
})

t.test('the request line of a hit carries the trace of a valid traceparent', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cached(lane, token)
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736'
  const hit = await post(lane.port, bodyOf(token), { traceparent: `00-${trace}-00f067aa0ba902b7-01`, 'x-request-id': 'traced' })
  t.equal(hit.status, 200)
  t.equal(lane.routed(), 0)
  t.match(lane.lines.find((l) => l.reqId === 'traced'), { traceId: trace, spanId: '00f067aa0ba902b7', status: 200 })
  const fresh = await post(lane.port, bodyOf(mint(key, idTokenClaims(ISS, 'aud', { sub: 'fresh' }))), { traceparent: `00-${trace}-00f067aa0ba902b8-01`, 'x-request-id': 'traced-new' })
  t.equal(fresh.status, 200)
  t.equal(lane.routed(), 0, 'a new token: the lane\'s too')
  t.match(lane.lines.find((l) => l.reqId === 'traced-new'), { traceId: trace, spanId: '00f067aa0ba902b8', status: 200 })
})

t.test('a Bearer token and no body: a hit or a new token is answered before routing, anything else by the route', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const bearer = { authorization: `Bearer ${token}` }
  const bare = async (headers: Record<string, string>): Promise<Answer> => await post(lane.port, '', { 'content-type': '', ...headers }, agent)
  await cached(lane, token)
  const viaRoute = await lane.app.inject({ method: 'POST', url: '/verify', headers: bearer })
  const routed = lane.routed()
  const hits = [await bare(bearer), await bare({ ...bearer, 'content-type': 'application/json', 'content-length': '0' }), await bare({ authorization: `bearer  ${token}` })]
  t.equal(lane.routed(), routed, 'three hits, none routed')
  for (const hit of hits) {
    t.equal(hit.status, 200)
    t.equal(hit.body, viaRoute.body)
    t.equal(hit.headers.connection, 'keep-alive')
  }
  t.equal(hits[0]?.socket, hits[2]?.socket, 'one connection')

  const other = mint(key, idTokenClaims(ISS, 'aud', { sub: 'other' }))
  const cases: Array<{ name: string, headers: Record<string, string>, body?: string, lane?: boolean }> = [
    { name: 'a token not cached', headers: { authorization: `Bearer ${other}` }, lane: true },
    { name: 'a body besides', headers: { ...bearer, 'content-type': 'application/json' }, body: bodyOf(token) },
    { name: 'an empty JSON object besides', headers: { ...bearer, 'content-type': 'application/json' }, body: '{}' },
    { name: 'another scheme', headers: { authorization: `Basic ${token}` } },
    { name: 'no token after the scheme', headers: { authorization: 'Bearer' } },
    { name: 'a text/plain content type', headers: { ...bearer, 'content-type': 'text/plain' } },
    { name: 'chunked', headers: { ...bearer, 'transfer-encoding': 'chunked', 'content-type': 'application/json' } }
  ]
  for (const c of cases) {
    const before = lane.routed()
    const answer = await post(lane.port, c.body ?? '', { 'content-type': '', ...c.headers })
    const expected = await lane.app.inject({ method: 'POST', url: '/verify', headers: c.headers, ...(c.body !== undefined ? { payload: c.body } : {}) })
    t.equal(lane.routed(), before + (c.lane === true ? 1 : 2), c.lane === true ? `${c.name}: the lane's (the inject is routed)` : `${c.name}: routed (the inject is the second)`)
    t.equal(answer.status, expected.statusCode, `${c.name}: the route's status (${expected.statusCode})`)
    t.equal(codeOf(answer), codeOf(expected), `${c.name}: the route's code`)
    if (c.lane === true) t.equal(answer.body, expected.body, `${c.name}: the route's answer`)
  }
  // Two Authorization lines (Node keeps the first): only a raw request can send them.
  const two = await rawExchange(lane.port, `POST /verify HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer ${other}\r\nConnection: close\r\n\r\n`)
  t.equal(two.status, 400)
  t.equal(codeOf(two), 'token_ambiguous')
})

t.test('every other request reaches the route with its body as sent', async (t) => {
  const lane = await laneApp(t, { server: { bodyLimit: 4096, maxTokenBytes: 2048 } })
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const other = mint(key, idTokenClaims(ISS, 'aud', { sub: 'other' }))
  await cached(lane, token)
  const escaped = bodyOf(token).replace('"token":"e', '"token":"\\u0065')
  const cases: Array<{ name: string, body: string | Buffer, headers?: Record<string, string>, path?: string, lane?: boolean }> = [
    { name: 'another field', body: JSON.stringify({ token, nonce: 'n' }) },
    { name: 'JSON whitespace', body: `{ "token": "${token}" }` },
    { name: 'a trailing newline', body: `${bodyOf(token)}\n` },
    { name: 'an escape in the token', body: escaped },
    { name: 'a query', body: bodyOf(token), path: '/verify?audience=aud' },
    { name: 'a trailing slash', body: bodyOf(token), path: '/verify/' },
    { name: 'a Bearer token too', body: bodyOf(token), headers: { authorization: `Bearer ${token}` } },
    { name: 'text/plain', body: bodyOf(token), headers: { 'content-type': 'text/plain' } },
    { name: 'a UTF-16 charset', body: bodyOf(token), headers: { 'content-type': 'application/json; charset=utf-16' } },
    { name: 'upper-case media type', body: bodyOf(token), headers: { 'content-type': 'Application/JSON' } },
    { name: 'a token not cached (the lane verifies it)', body: bodyOf(other), lane: true },
    { name: 'the token with more after it', body: bodyOf(`${token}.x`) },
    { name: 'the token cut short', body: bodyOf(token.slice(0, -1)) },
    { name: 'a token past maxTokenBytes', body: bodyOf(`${token}${'A'.repeat(2048)}`) },
    { name: 'a body past bodyLimit', body: bodyOf(`${token}${'A'.repeat(4096)}`) },
    { name: 'bytes outside ASCII', body: Buffer.concat([Buffer.from('{"token":"'), Buffer.from(token.slice(0, 10)), Buffer.from([0xc3, 0xa9, 0xff]), Buffer.from(token.slice(10)), Buffer.from('"}')]) },
    { name: 'a quote closing the token early', body: `{"token":"${token}","x":"1"}` },
    { name: 'not JSON', body: `{"token":"${token}"` },
    { name: 'an empty token', body: '{"token":""}' }
  ]
  for (const c of cases) {
    const before = lane.routed()
    const answer = await post(lane.port, c.body, c.headers ?? {}, undefined, c.path ?? '/verify')
    const expected = await lane.app.inject({ method: 'POST', url: c.path ?? '/verify', payload: c.body, headers: { 'content-type': 'application/json', ...c.headers } })
    if (!(c.path ?? '/verify').startsWith('/verify/')) t.equal(lane.routed(), before + (c.lane === true ? 1 : 2), c.lane === true ? `${c.name}: the lane's (the inject is routed)` : `${c.name}: routed (the inject is the second)`)
    t.equal(answer.status, expected.statusCode, `${c.name}: the route's status (${expected.statusCode})`)
    t.equal(expected.statusCode === 200 ? undefined : codeOf(answer), expected.statusCode === 200 ? undefined : codeOf(expected), `${c.name}: the route's code`)
  }
  // Each answer above is checked against the route's; that the route read the body the lane gave back shows in the
  // verified ones: they are 200 with the right subject.
  const before = lane.routed()
  const routedOther = await post(lane.port, `{ "token": "${other}" }`)
  t.equal(lane.routed(), before + 1)
  t.equal((JSON.parse(routedOther.body) as { subject: string }).subject, 'other')
})

t.test('Host: none (HTTP/1.0 is allowed one), two, or HTTP/1.1 without', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cached(lane, token)
  const body = bodyOf(token)
  const request = (version: string, host: string): string => `POST /verify HTTP/${version}\r\n${host}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
  // Refused, whoever refuses them (Node refuses some before any listener sees them).
  const two = await rawExchange(lane.port, request('1.1', 'Host: a\r\nHost: b\r\n'))
  t.equal(two.status, 400)
  t.equal(codeOf(two), 'request_invalid')
  const none = await rawExchange(lane.port, request('1.1', ''))
  t.equal(none.status, 400)
  const routed = lane.routed()
  const old = await rawExchange(lane.port, request('1.0', ''))
  t.equal(old.status, 200, 'HTTP/1.0 may leave Host out')
  t.equal(lane.routed(), routed + 1, 'the route answered it')
  const one = await rawExchange(lane.port, request('1.1', 'Host: a\r\n'))
  t.equal(one.status, 200)
  t.equal(lane.routed(), routed + 1, 'one Host: the lane')
})

t.test('a cached token the route would refuse is left to the route, and counted once', async (t) => {
  const lane = await laneApp(t, { revocation: { enabled: true } })
  const claims = idTokenClaims(ISS, 'aud')
  const token = mint(key, { ...claims, jti: 'keep-me', exp: Math.floor(T0 / 1000) + 120 })
  const revoked = mint(key, { ...claims, sub: 'r', jti: 'revoke-me' })
  await cached(lane, token)
  await cached(lane, revoked)
  t.equal((await post(lane.port, bodyOf(token))).status, 200)
  t.equal((await post(lane.port, bodyOf(revoked))).status, 200)
  t.equal(lane.routed(), 0, 'both tokens verified and both hits in the lane')

  await lane.app.revocations?.publish({ issuer: 'main', kind: 'jti', value: 'revoke-me', before: null, source: 'api', expiresAt: Math.floor(T0 / 1000) + 3600 })
  const refused = await post(lane.port, bodyOf(revoked))
  t.equal(refused.status, 401)
  t.equal(codeOf(refused), 'token_revoked')

  lane.clock.now += 10 * 60_000
  const expired = await post(lane.port, bodyOf(token))
  t.equal(expired.status, 401)
  t.equal(codeOf(expired), 'token_expired')
  t.equal(lane.routed(), 2, 'both refusals came from the route')
  const samples = parseMetrics((await lane.app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'token_revoked' }), 1, 'counted once, by the route')
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'token_expired' }), 1)
})

t.test('the lane stays closed while the route\'s hooks must see every request', async (t) => {
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await t.test('a per-caller rate limit', async (t) => {
    const lane = await laneApp(t, { rateLimit: { max: 3, windowSeconds: 60 } })
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) statuses.push((await post(lane.port, bodyOf(token))).status)
    t.same(statuses, [200, 200, 200, 429], 'hits count against the limit')
    t.equal(lane.routed(), 4)
  })
  await t.test('load shedding', async (t) => {
    let healthy = true
    const lane = await laneApp(t, { loadShedding: { sampleIntervalMs: 10, maxEventLoopDelayMs: 0 } }, { pressureHealthCheck: async () => healthy })
    // under-pressure counts its health check failed until the first one has run.
    await new Promise((resolve) => setTimeout(resolve, 100))
    await cached(lane, token)
    t.equal((await post(lane.port, bodyOf(token))).status, 200)
    t.equal(lane.routed(), 0)
    healthy = false
    await new Promise((resolve) => setTimeout(resolve, 100))
    const shed = await post(lane.port, bodyOf(token))
    t.equal(shed.status, 503)
    t.equal(codeOf(shed), 'overloaded')
    t.equal(lane.routed(), 1)
    const fresh = await post(lane.port, bodyOf(mint(key, idTokenClaims(ISS, 'aud', { sub: 'fresh' }))))
    t.equal(codeOf(fresh), 'overloaded', 'a new token too: the route sheds it')
    t.equal(lane.routed(), 2)
  })
  await t.test('no token cache', async (t) => {
    const lane = await laneApp(t, { tokenCache: { enabled: false } })
    for (let i = 0; i < 3; i++) t.equal((await post(lane.port, bodyOf(token))).status, 200)
    t.equal(lane.routed(), 3)
  })
})

t.test('bodies that arrive in pieces, stop half-way or come pipelined', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const fresh = mint(key, idTokenClaims(ISS, 'aud', { sub: 'fresh' }))
  await cached(lane, token)
  const body = bodyOf(token)
  const head = (b: string, close = true): string => `POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`

  // A byte at a time: answered once the last one is in.
  const slow = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(lane.port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('close', () => { resolve(Buffer.concat(chunks).toString()) })
    socket.on('error', reject)
    socket.setNoDelay(true)
    socket.write(head(body))
    let i = 0
    const next = (): void => {
      if (i >= body.length) return
      socket.write(body.slice(i, i + 64))
      i += 64
      setTimeout(next, 2)
    }
    next()
  })
  t.match(slow, /^HTTP\/1\.1 200 /)
  t.equal(lane.routed(), 0, 'answered by the lane')

  // Half a body, then the client goes: nothing answered, nothing broken.
  await new Promise<void>((resolve) => {
    const socket = net.connect(lane.port, '127.0.0.1', () => {
      socket.write(head(body) + body.slice(0, 100))
      setTimeout(() => { socket.destroy(); resolve() }, 50)
    })
  })
  t.equal((await post(lane.port, body)).status, 200, 'the service answers on')

  // Four requests in one write: a hit and a new token (the lane), a token the lane verifies and the route then refuses
  // (its body given back), a broken body (the route); answered in order, though the lane answers the second later.
  const broken = '{"token":"'
  const refused = bodyOf(mint(key, idTokenClaims(ISS, 'other-aud')))
  const routed = lane.routed()
  const pipelined = await rawExchange(lane.port, head(body, false) + body + head(bodyOf(fresh), false) + bodyOf(fresh) + head(refused, false) + refused + head(broken) + broken)
  const statuses = [...pipelined.raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1])
  t.same(statuses, ['200', '200', '401', '400'])
  t.match(pipelined.raw, /"subject":"fresh"[^]*"code":"audience_mismatch"[^]*"code":"request_invalid"/, 'each answer the request\'s own, in order')
  t.equal(lane.routed(), routed + 2, 'the refused token and the broken body were routed')
})

t.test('tokenBytes, and the verdict the route receives for a token the lane verified and the verification refused', async (t) => {
  t.equal(tokenBytes(Buffer.from('{"token":"abc"}'))?.toString(), 'abc')
  for (const body of ['{"token":""}', '{"token":"abc"} ', ' {"token":"abc"}', '{"token": "abc"}', '{"Token":"abc"}', '{"token":"abc}', '{"token":"', '"}', '']) {
    t.equal(tokenBytes(Buffer.from(body)), undefined, JSON.stringify(body))
  }
  const wrongAudience = mint(key, idTokenClaims(ISS, 'other-aud'))
  const seen: unknown[] = []
  // A verdict reaches the route only for a token the lane verified: a body of its shape, or a Bearer token.
  const lane = await laneApp(t, {}, {}, (app) => {
    app.addHook('preHandler', (request, reply, done) => {
      const body = request.body as { token?: string } | undefined
      const token = body?.token ?? request.headers.authorization?.slice('Bearer '.length)
      seen.push(token === undefined ? undefined : (laneVerdict(reply.raw, token)?.error as { code?: string } | undefined)?.code)
      done()
    })
  })
  const answers = [
    await post(lane.port, bodyOf(wrongAudience)),
    await post(lane.port, '', { 'content-type': '', authorization: `Bearer ${wrongAudience}` }),
    await post(lane.port, `{ "token": "${wrongAudience}" }`),
    await post(lane.port, bodyOf(wrongAudience).replace('"token":"e', '"token":"\\u0065'))
  ]
  t.same(answers.map((a) => [a.status, codeOf(a)]), Array(4).fill([401, 'audience_mismatch']), 'the route\'s answer every time')
  t.same(seen, ['audience_mismatch', 'audience_mismatch', undefined, undefined], 'the lane\'s verdict for its shapes; no verdict for a body of another shape or with an escape')
  const samples = parseMetrics((await lane.app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'audience_mismatch' }), 4, 'each token verified once: by the lane or by the route, never both')
})

t.test('a body that ends like the lane\'s shape but has more fields, or bytes no token has, is only the route\'s: nothing verified twice', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud', { nonce: 'n-0' }))
  // {"token":T,"nonce":"n-1"} starts with {"token":" and ends with "}: the bytes between are no token.
  const bodies = [
    JSON.stringify({ token, nonce: 'n-1' }),
    JSON.stringify({ token, audience: 'aud', nonce: 'n-1' }),
    `{"token":"${token}\t"}`,
    `{"token":"${token}","token":"${token}"}`
  ]
  const answers = []
  for (const body of bodies) answers.push(await post(lane.port, body))
  t.same(answers.map((a) => [a.status, codeOf(a)]), [[401, 'nonce_mismatch'], [401, 'nonce_mismatch'], [400, 'request_invalid'], [400, 'request_invalid']], 'the route\'s answers')
  t.equal(lane.routed(), 4)
  const samples = parseMetrics((await lane.app.inject({ method: 'GET', url: '/metrics' })).body)
  const counted = samples.filter((s) => s.name === 'oidc_verifier_verifications_total' && s.value > 0).map((s) => `${s.labels.issuer}:${s.labels.result}=${s.value}`)
  t.same(counted, ['main:nonce_mismatch=2'], 'only the route\'s verifications: no token_malformed or token_encrypted of the lane\'s')
})

t.test('the lane steps aside for bodies while they rarely hit, and comes back when they do', async (t) => {
  const gate = new LaneGate(32)
  const tryAll = (n: number, hit: boolean): number => {
    let tried = 0
    for (let i = 0; i < n; i++) {
      if (!gate.shouldTry()) continue
      tried++
      gate.record(hit)
    }
    return tried
  }
  t.equal(tryAll(32, false), 32, 'a first window is tried whole')
  t.ok(gate.aside, 'no hit in a window: aside')
  t.equal(tryAll(SAMPLE_EVERY * 4, false), 4, `aside, one request in ${SAMPLE_EVERY} is tried`)
  // 3 hits in 32 sampled tries is below one in MIN_HIT_SHARE: still aside.
  tryAll(SAMPLE_EVERY * 25, false)
  tryAll(SAMPLE_EVERY * 3, true)
  t.ok(gate.aside, `3 hits in 32 tries is under one in ${MIN_HIT_SHARE}`)
  tryAll(SAMPLE_EVERY * 28, false)
  tryAll(SAMPLE_EVERY * 4, true)
  t.notOk(gate.aside, `4 hits in 32 tries: open again`)
  t.equal(tryAll(10, true), 10, 'open: every request is tried')

  // Wired into the app: a window of new tokens that verify keeps the lane open (it answers them); a window of tokens it
  // gives back (the verification refused them) puts it aside; a cached token is then answered by the route (the same
  // answer) except on the sampled tries.
  const lane = await laneApp(t)
  for (let i = 0; i < WINDOW; i++) t.equal((await post(lane.port, bodyOf(mint(key, idTokenClaims(ISS, 'aud', { sub: `n${i}` }))))).status, 200)
  t.equal(lane.routed(), 0, 'a window of new tokens, each answered by the lane')
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cached(lane, token)
  t.equal(lane.routed(), 0, 'still open')
  for (let i = 0; i < WINDOW - 2; i++) await post(lane.port, bodyOf(mint(key, idTokenClaims(ISS, 'other-aud', { sub: `u${i}` }))))
  const routed = lane.routed()
  t.equal(routed, WINDOW - 2, 'every refused one went to the route')
  const answers: Answer[] = []
  for (let i = 0; i < SAMPLE_EVERY; i++) answers.push(await post(lane.port, bodyOf(token)))
  t.ok(answers.every((a) => a.status === 200 && a.body === answers[0]?.body), 'the same answer whoever gives it')
  t.equal(lane.routed(), routed + SAMPLE_EVERY - 1, `aside: the route answered ${SAMPLE_EVERY - 1}, the lane the sampled one`)
  // Bearer tokens are not gated: a miss costs the route nothing.
  await post(lane.port, '', { 'content-type': '', authorization: `Bearer ${token}` })
  t.equal(lane.routed(), routed + SAMPLE_EVERY - 1)
})

t.test('with caller keys, a request whose key lets it through is the lane\'s, named by its caller; any other is the route\'s', async (t) => {
  const apiKey = 'k'.repeat(32)
  const lane = await laneApp(t, { callers: { maxFailuresPerMinute: 1, keys: [{ id: 'web', sha256: createHash('sha256').update(apiKey).digest('hex') }] } })
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const withKey = { 'x-api-key': apiKey }
  const answers = [await post(lane.port, bodyOf(token), withKey), await post(lane.port, bodyOf(token), withKey), await post(lane.port, '', { 'content-type': '', authorization: `Bearer ${token}`, ...withKey })]
  t.same(answers.map((a) => a.status), [200, 200, 200], 'a new token, its second verification, a hit as a Bearer token')
  t.equal(lane.routed(), 0, 'all three in the lane')
  const viaRoute = await lane.app.inject({ method: 'POST', url: '/verify', payload: { token }, headers: withKey })
  t.equal(answers[2]?.body, viaRoute.body, 'the route\'s answer')
  const lines = lane.lines.filter((l) => l.msg === 'request completed' && l.route === '/verify')
  t.same(lines.map((l) => l.caller), ['web', 'web', 'web', 'web'], 'each request line names the caller, the lane\'s as the route\'s')
  const samples = parseMetrics((await lane.app.inject({ method: 'GET', url: '/metrics', headers: withKey })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', method: 'POST', status: '200', caller: 'web' }), 4, 'counted under the caller')

  const missing = await post(lane.port, bodyOf(token))
  t.same([missing.status, codeOf(missing)], [403, 'caller_key_missing'], 'no key: the route\'s refusal')
  const wrong = await post(lane.port, bodyOf(token), { 'x-api-key': 'w'.repeat(32) })
  t.same([wrong.status, codeOf(wrong)], [403, 'caller_key_invalid'], 'a wrong key: the route\'s refusal')
  t.equal(lane.routed(), 3, 'both refusals (and the inject) by the route')
  // One failed check is callers.maxFailuresPerMinute here: the address is held back, valid key or not, and only the
  // route's hook knows which address that is.
  const held = await post(lane.port, bodyOf(token), withKey)
  t.same([held.status, codeOf(held)], [429, 'rate_limited'], 'an address held back for a failed check: the route\'s 429, though the key is valid')
  t.equal(lane.routed(), 4)
  // Once the window has ended, the lane answers keyed requests again (the address is still in the tracker's memory).
  lane.clock.now += 61_000
  const after = await post(lane.port, bodyOf(token), withKey)
  t.equal(after.status, 200)
  t.equal(lane.routed(), 4, 'the window over: the lane again')
})

t.test('a reload that adds caller keys: the lane answers only requests whose key lets them through, and follows later reloads of the callers', async (t) => {
  const { reloadConfiguration } = await import('../src/reload.js')
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cached(lane, token)
  t.equal((await post(lane.port, bodyOf(token))).status, 200)
  t.equal(lane.routed(), 0, 'the new token and the hit in the lane')
  const apiKey = 'k'.repeat(32)
  const keyed = configFor(issuers, { callers: { keys: [{ id: 'web', sha256: createHash('sha256').update(apiKey).digest('hex') }] } })
  t.equal((await reloadConfiguration(lane.app, () => keyed)).outcome, 'applied')
  const refused = await post(lane.port, bodyOf(token))
  t.equal(refused.status, 403, 'no key: refused, as the route refuses')
  t.equal(codeOf(refused), 'caller_key_missing')
  await cached(lane, token)
  t.equal(lane.routed(), 3, 'every request without a key went to the route')
  t.equal((await post(lane.port, bodyOf(token), { 'x-api-key': apiKey })).status, 200)
  t.equal(lane.routed(), 3, 'the one with its key: the lane')
  // A caller given a rate limit of its own by a reload: the route's hooks must see its requests.
  const limited = configFor(issuers, { callers: { keys: [{ id: 'web', sha256: createHash('sha256').update(apiKey).digest('hex'), rateLimit: { max: 100, windowSeconds: 60 } }] }, rateLimit: { max: 1000, windowSeconds: 60 } })
  t.equal((await reloadConfiguration(lane.app, () => limited)).outcome, 'applied')
  t.equal((await post(lane.port, bodyOf(token), { 'x-api-key': apiKey })).status, 200)
  t.equal(lane.routed(), 4, 'a caller with a rate limit of its own: the route')
  // A reload that would leave no key at all is refused (turning caller authentication off takes a restart).
  t.equal((await reloadConfiguration(lane.app, () => configFor(issuers))).outcome, 'refused')
  t.equal((await post(lane.port, bodyOf(token))).status, 403, 'still no key, still refused')
  t.equal(lane.routed(), 5)
  t.equal((await reloadConfiguration(lane.app, () => keyed)).outcome, 'applied')
  t.equal((await post(lane.port, bodyOf(token), { 'x-api-key': apiKey })).status, 200)
  t.equal(lane.routed(), 5, 'its own limit taken away: the lane answers it again (a reload of the callers keeps the Verifier and its cache)')
})

t.test('callers with limits of their own, from the start or from a reload: theirs are the route\'s and limited, the others\' the lane\'s', async (t) => {
  const { reloadConfiguration } = await import('../src/reload.js')
  const webKey = 'w'.repeat(32)
  const billingKey = 'b'.repeat(32)
  const keyOf = (id: string, apiKey: string, rateLimit?: Record<string, number>): Record<string, unknown> =>
    ({ id, sha256: createHash('sha256').update(apiKey).digest('hex'), ...(rateLimit === undefined ? {} : { rateLimit }) })
  const lane = await laneApp(t, { callers: { keys: [keyOf('web', webKey), keyOf('billing', billingKey, { max: 2, windowSeconds: 60 })] } })
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const statuses = async (apiKey: string, n: number): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push((await post(lane.port, bodyOf(token), { 'x-api-key': apiKey })).status)
    return out
  }
  t.same(await statuses(webKey, 4), [200, 200, 200, 200], 'web has no limit')
  t.equal(lane.routed(), 0, 'and is the lane\'s, though another caller has a limit')
  // Each key is hashed and compared once per request: the route's hook takes what the lane's look found.
  const check = CallerKeys.prototype.check
  let checks = 0
  CallerKeys.prototype.check = function (this: CallerKeys, presented) { checks++; return check.call(this, presented) }
  t.teardown(() => { CallerKeys.prototype.check = check })
  t.same(await statuses(billingKey, 3), [200, 200, 429], 'billing has its own: 2')
  t.equal(lane.routed(), 3, 'every request of billing went to the route, the refused one too')
  t.equal(checks, 3, 'one check per request')
  CallerKeys.prototype.check = check

  // A reload gives web a limit of its own: it applies at the next request, by the route (no restart).
  const webLimited = configFor(issuers, { callers: { keys: [keyOf('web', webKey, { max: 1, windowSeconds: 60 }), keyOf('billing', billingKey, { max: 2, windowSeconds: 60 })] } })
  const reloaded = await reloadConfiguration(lane.app, () => webLimited)
  t.equal(reloaded.outcome, 'applied')
  t.same(reloaded.needsRestart, [], 'nothing waits for a restart')
  t.same(await statuses(webKey, 2), [200, 429], 'web: 1 from now on')
  t.equal(lane.routed(), 5)
  // And takes both limits away again.
  t.equal((await reloadConfiguration(lane.app, () => configFor(issuers, { callers: { keys: [keyOf('web', webKey), keyOf('billing', billingKey)] } }))).outcome, 'applied')
  t.same(await statuses(billingKey, 4), [200, 200, 200, 200], 'billing without a limit: never refused')
  t.equal(lane.routed(), 5, 'and in the lane')
  // Last: a wrong key starts a window of failed checks, during which the route's hook sees every keyed request.
  checks = 0
  CallerKeys.prototype.check = function (this: CallerKeys, presented) { checks++; return check.call(this, presented) }
  const wrong = await post(lane.port, bodyOf(token), { 'x-api-key': 'x'.repeat(32) })
  t.same([wrong.status, codeOf(wrong), checks], [403, 'caller_key_invalid', 1], 'a wrong key: refused by the route, checked once')
})

t.test('over TLS with client certificates, hits are answered by the lane on a kept connection', async (t) => {
  const pki = makeTestPki()
  t.teardown(() => { pki.remove() })
  const lane = await laneApp(t, { server: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert } } })
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.pem.ca, cert: pki.pem.clientCert, key: pki.pem.clientKey })
  t.teardown(() => { agent.destroy() })
  const send = async (): Promise<Answer> => await new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: lane.port, path: '/verify', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), socket: res.socket }) })
    })
    req.on('error', reject)
    req.end(bodyOf(token))
  })
  const answers = [await send(), await send(), await send(), await send()]
  t.same(answers.map((a) => a.status), [200, 200, 200, 200])
  t.equal(lane.routed(), 0, 'the new token and the hits, all by the lane')
  t.equal(answers[3]?.body, answers[2]?.body)
  t.equal((JSON.parse(answers[2]?.body ?? '{}') as { subject?: string }).subject, 'user-123')
  t.ok(answers.every((a) => a.socket === answers[0]?.socket), 'one TLS connection for all four')
})

t.test('each window of the gate is judged on its own tries and hits', async (t) => {
  const gate = new LaneGate(8)
  for (let i = 0; i < 8; i++) gate.record(true)
  t.notOk(gate.aside, 'a window of hits: open')
  for (let i = 0; i < 8; i++) gate.record(false)
  t.ok(gate.aside, 'a window of misses after it: aside (the hits of the window before are not carried over)')
  for (let i = 0; i < 7; i++) gate.record(true)
  t.ok(gate.aside, 'a window not yet complete changes nothing')
  gate.record(true)
  t.notOk(gate.aside, 'its last try completes it: open')
})

t.test('a body the lane held and gave back keeps the caller check of its arrival, as Fastify checks before any body', async (t) => {
  const { reloadConfiguration } = await import('../src/reload.js')
  const apiKey = 'k'.repeat(32)
  const callers = { maxFailuresPerMinute: 1, keys: [{ id: 'web', sha256: createHash('sha256').update(apiKey).digest('hex') }] }
  const held = async (lane: Lane, meanwhile: () => Promise<void>): Promise<{ status: number, code: unknown }> => {
    const body = JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud')), nonce: 'n-1' })
    const head = `POST /verify HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nX-Api-Key: ${apiKey}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`
    const socket = net.connect(lane.port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    const closed = new Promise<void>((resolve) => socket.on('close', () => { resolve() }))
    await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
    socket.write(head + body.slice(0, 10))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await meanwhile()
    socket.write(body.slice(10))
    await closed
    const text = Buffer.concat(chunks).toString()
    return { status: Number(text.split(' ')[1]), code: (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code?: unknown }).code }
  }
  const windowed = await laneApp(t, { callers })
  const wrongKey = async (): Promise<void> => { t.equal((await post(windowed.port, bodyOf('x.y.z'), { 'x-api-key': 'w'.repeat(32) })).status, 403) }
  t.same(await held(windowed, wrongKey), { status: 401, code: 'nonce_mismatch' }, 'a wrong key from its address while its body came: not held back (429) for it')
  const reloaded = await laneApp(t, { callers })
  const rotate = async (): Promise<void> => {
    const other = configFor(issuers, { callers: { ...callers, keys: [{ id: 'web2', sha256: createHash('sha256').update('z'.repeat(32)).digest('hex') }] } })
    t.equal((await reloadConfiguration(reloaded.app, () => other)).outcome, 'applied')
  }
  t.same(await held(reloaded, rotate), { status: 401, code: 'nonce_mismatch' }, 'its key removed by a reload while its body came: it was let through on arrival (not 403)')
})
