/**
 * The edges of the request shape the hit lane (src/http/hit-lane.ts) takes, each next to the shape just outside
 * it: the method, the content types it names, a JSON content type with no body, no content type at all, and the
 * body limit to the byte. Inside, the lane answers (the route never sees the request); outside, the route answers,
 * with its own status, whatever the cache holds. Found by mutation testing: each case is one a changed condition
 * of laneShape passed every other test with.
 */
import t, { type Test } from 'tap'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { installHitLane, laneVerdict, tokenBytes } from '../src/http/hit-lane.js'
import pino from 'pino'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]

interface Lane { app: FastifyInstance, port: number, routed: () => number }

/** An app on a real port (inject() never meets the lane); routed() counts the requests Fastify answered. */
async function laneApp (t: Test, extra: Record<string, unknown> = {}, logger?: pino.Logger): Promise<Lane> {
  const app = await buildApp(configFor(issuers, extra), logger === undefined ? {} : { loggerInstance: logger })
  let routed = 0
  app.addHook('onResponse', (_request, _reply, done) => { routed++; done() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { app, port: (app.server.address() as AddressInfo).port, routed: () => routed }
}

const bodyOf = (token: string): string => JSON.stringify({ token })
const codeOf = (body: string): unknown => { try { return (JSON.parse(body) as { code?: unknown }).code } catch { return body } }

/** A request written by hand: `head` is the request line and the headers after Host. */
const request = (head: string, body = ''): string => `${head.replace('\r\n', '\r\nHost: x\r\n')}Connection: close\r\n\r\n${body}`

/** A token verified twice by the route as a Bearer token (no body limit applies): the second admits it to the cache. */
async function cachedAsBearer (lane: Lane, token: string): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const answer = await rawExchange(lane.port, request(`POST /verify HTTP/1.1\r\nAuthorization: Bearer ${token}\r\n`))
    if (answer.status !== 200) throw new Error(`priming answered ${answer.status}: ${answer.body}`)
  }
}

t.test('a cached token\'s body with another method, with no content type, or a JSON content type and no body: the route answers', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cachedAsBearer(lane, token)
  const body = bodyOf(token)
  /** The same request through inject(), which passes through Fastify only. */
  interface Injected { method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', headers?: Record<string, string>, payload?: string }
  const cases: Array<{ name: string, raw: string, inject: Injected }> = [
    ...['PUT', 'PATCH', 'DELETE'].map((method) => ({
      name: method,
      raw: request(`${method} /verify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n`, body),
      inject: { method: method as Injected['method'], headers: { 'content-type': 'application/json' }, payload: body }
    })),
    {
      name: 'no content type',
      raw: request(`POST /verify HTTP/1.1\r\nContent-Length: ${body.length}\r\n`, body),
      inject: { method: 'POST', payload: body }
    },
    {
      // The lane would wait for a body that never comes: the route answers at once.
      name: 'a JSON content type, no Content-Length, no body',
      raw: request('POST /verify HTTP/1.1\r\nContent-Type: application/json\r\n'),
      inject: { method: 'POST', headers: { 'content-type': 'application/json' } }
    },
    {
      name: 'a JSON content type, Content-Length: 0',
      raw: request('POST /verify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\n'),
      inject: { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '0' } }
    }
  ]
  for (const c of cases) {
    const before = lane.routed()
    const answer = await rawExchange(lane.port, c.raw, 3000)
    const expected = await lane.app.inject({ url: '/verify', ...c.inject })
    t.not(expected.statusCode, 200, `${c.name}: the route refuses it (${expected.statusCode})`)
    t.equal(answer.status, expected.statusCode, `${c.name}: the route's status`)
    t.equal(codeOf(answer.body), codeOf(expected.body), `${c.name}: the route's code`)
    t.equal(lane.routed(), before + 2, `${c.name}: routed (the inject is the second)`)
  }
})

t.test('every JSON content type the lane names is answered by the lane', async (t) => {
  const lane = await laneApp(t)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cachedAsBearer(lane, token)
  const body = bodyOf(token)
  const routed = lane.routed()
  for (const type of ['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8', 'application/json; charset=UTF-8']) {
    const answer = await rawExchange(lane.port, request(`POST /verify HTTP/1.1\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n`, body))
    t.equal(answer.status, 200, type)
    t.equal(lane.routed(), routed, `${type}: answered by the lane`)
  }
})

t.test('bodyLimit to the byte: a body of exactly bodyLimit is the lane\'s, one over it is the route\'s 413 though its token is cached', async (t) => {
  // Two tokens of consecutive sizes around the limit; maxTokenBytes just under bodyLimit lets both be cached
  // (as Bearer tokens), though the longer one's body is over the limit.
  const sized = (pad: number): string => mint(key, idTokenClaims(ISS, 'aud', { pad: 'p'.repeat(pad) }))
  const fits = sized(900)
  const bodyLimit = bodyOf(fits).length
  let over = fits
  for (let pad = 901; pad < 910 && over.length <= fits.length; pad++) over = sized(pad)
  t.ok(over.length > fits.length && over.length < bodyLimit - 1, `a token longer by ${over.length - fits.length} character(s)`)
  const lane = await laneApp(t, { server: { bodyLimit, maxTokenBytes: bodyLimit - 1 } })
  await cachedAsBearer(lane, fits)
  await cachedAsBearer(lane, over)
  const post = async (token: string): Promise<{ status: number, body: string }> =>
    await rawExchange(lane.port, request(`POST /verify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${bodyOf(token).length}\r\n`, bodyOf(token)))

  const routed = lane.routed()
  t.equal((await post(fits)).status, 200, `a body of ${bodyLimit} bytes, the limit`)
  t.equal(lane.routed(), routed, 'answered by the lane')
  const refused = await post(over)
  const expected = await lane.app.inject({ method: 'POST', url: '/verify', headers: { 'content-type': 'application/json' }, payload: bodyOf(over) })
  t.equal(expected.statusCode, 413)
  t.equal(refused.status, 413, 'one byte or two over the limit: the route\'s 413, not the cached answer')
  t.equal(codeOf(refused.body), codeOf(expected.body))
  t.equal(lane.routed(), routed + 2, 'routed (the inject is the second)')
})

t.test('tokenBytes takes only the exact shape; laneVerdict only a verdict left for a token of the same length', async (t) => {
  t.equal(tokenBytes(Buffer.from('{"token":"abc"}'))?.toString(), 'abc')
  for (const body of ['["token":"abc"}', '{"token":"abc"]', '{"token":"abc\'}', '{\'token":"abc"}']) {
    t.equal(tokenBytes(Buffer.from(body)), undefined, body)
  }
  const error = new Error('refused')
  t.same(laneVerdict({ laneVerdict: { error, length: 3 } }, 'abc'), { error, length: 3 })
  t.equal(laneVerdict({ laneVerdict: { error, length: 3 } }, 'abcd'), undefined, 'another length: another token, not the lane\'s verdict')
  t.equal(laneVerdict({ laneVerdict: undefined }, 'abc'), undefined)
  t.equal(laneVerdict({}, 'abc'), undefined, 'a response of another class (inject()\'s)')
})

t.test('the lane is installed only in front of exactly one request listener', async (t) => {
  const options = {} as Parameters<typeof installHitLane>[1] // never read: the listeners are counted first
  t.throws(() => { installHitLane(http.createServer(), options) }, /expects one request listener on the server, found 0/)
  const two = http.createServer(() => {})
  two.on('request', () => {})
  t.throws(() => { installHitLane(two, options) }, /found 2/)
})

t.test('an error after the lane sent its answer: the request is answered and counted once, and the route never runs it', async (t) => {
  // A log destination that throws on one write (a synchronous destination throws a write error such as ENOSPC):
  // the lane's request line for the request "boom", written after its answer was sent.
  const lines: string[] = []
  const destination = {
    write (line: string): void {
      if (line.includes('"reqId":"boom"') && line.includes('request completed')) throw new Error('disk full')
      lines.push(line)
    }
  }
  const lane = await laneApp(t, {}, pino(loggerOptions('info'), destination))
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  await cachedAsBearer(lane, token)
  const counts = async (): Promise<[number, number]> => {
    const samples = parseMetrics((await lane.app.inject({ method: 'GET', url: '/metrics' })).body)
    return [valueOf(samples, 'oidc_verifier_token_cache_hits_total', { issuer: 'main' }) ?? 0, valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' }) ?? 0]
  }
  const before = await counts()
  const routed = lane.routed()
  // A hit as a Bearer token, a hit in a body, a new token in a body (answered once its verification ends).
  const fresh = mint(key, idTokenClaims(ISS, 'aud', { sub: 'fresh' }))
  for (const [head, body] of [[`POST /verify HTTP/1.1\r\nAuthorization: Bearer ${token}\r\n`, ''], [`POST /verify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${bodyOf(token).length}\r\n`, bodyOf(token)], [`POST /verify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${bodyOf(fresh).length}\r\n`, bodyOf(fresh)]] as const) {
    // A kept connection, held open a while after the answer: a second answer, had the route run, would come on it.
    const raw = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = []
      const socket = net.connect(lane.port, '127.0.0.1', () => {
        socket.write(`${head.replace('\r\n', '\r\nHost: x\r\n')}X-Request-Id: boom\r\n\r\n${body}`)
        setTimeout(() => { socket.end(); resolve(Buffer.concat(chunks).toString()) }, 200)
      })
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('error', reject)
    })
    t.match(raw, /^HTTP\/1\.1 200 /)
    t.equal((raw.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'one answer')
  }
  // The route's hooks would count its answer (onResponse), its verification a second hit, its reply a warning.
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(await counts(), [before[0] + 2, before[1] + 3], 'each hit counted once, each verification once')
  t.equal(lane.routed(), routed + 1, 'only the later scrape of /metrics was routed')
  t.equal(lines.filter((l) => l.includes('unexpected error')).length, 3, 'the error is logged')
  t.notOk(lines.some((l) => /already sent/i.test(l)), 'the route did not answer again')
})

t.test('a body the lane gives back is read whole by the route though an onRequest hook waits before the route reads it', async (t) => {
  // No hook of the app's waits today; one that did (an async onRequest) would meet a stream that the lane left
  // flowing with no reader, and the body would be dropped before the route asked for it: a request never answered.
  const app = await buildApp(configFor(issuers))
  app.addHook('onRequest', async () => { await new Promise((resolve) => setImmediate(resolve)) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const port = (app.server.address() as AddressInfo).port
  for (const sub of ['new-1', 'new-2']) {
    const body = bodyOf(mint(key, idTokenClaims(ISS, 'aud', { sub })))
    const answer = await rawExchange(port, request(`POST /verify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n`, body), 3000)
    t.equal(answer.status, 200, `${sub}: answered`)
    t.match(answer.body, `"subject":"${sub}"`)
  }
})
