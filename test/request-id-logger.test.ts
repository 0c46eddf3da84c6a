/**
 * Request ids (a caller's safe id kept, otherwise a per-app prefix and a counter) and the per-request logger
 * that makes its pino child only when the request logs at a level in force.
 */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { requestIdGenerator, SAFE_REQUEST_ID } from '../src/http/request-id.js'
import { RequestLogger, requestChildLogger } from '../src/http/request-logger.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')

const request = (headers: Record<string, string | string[]> = {}): IncomingMessage => ({ headers }) as unknown as IncomingMessage

function capture (level: pino.Level = 'info') {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      cb()
    }
  })
  return { lines, logger: pino({ ...loggerOptions(level) }, stream) }
}

t.test('made request ids are unique, safe to echo, and differ between apps', async (t) => {
  const a = requestIdGenerator()
  const b = requestIdGenerator()
  const ids = new Set<string>()
  for (let i = 0; i < 10_000; i++) ids.add(a(request()))
  t.equal(ids.size, 10_000, 'no id made twice')
  for (const id of ids) {
    if (!SAFE_REQUEST_ID.test(id)) t.fail(`${id} would not be kept by the next service`)
  }
  const first = a(request())
  const other = b(request())
  t.not(first.split('-')[0], other.split('-')[0], 'two apps draw different prefixes')
  t.match(first, /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/)
})

t.test("a caller's request id is kept only when it is short and harmless", async (t) => {
  const gen = requestIdGenerator()
  t.equal(gen(request({ 'x-request-id': 'abc-123' })), 'abc-123')
  t.equal(gen(request({ 'x-request-id': 'trace:1.2_3' })), 'trace:1.2_3')
  for (const evil of ['', 'a b', 'a\u0000b', 'x'.repeat(65), '<script>', 'é']) {
    t.not(gen(request({ 'x-request-id': evil })), evil, `${JSON.stringify(evil.slice(0, 10))} is replaced`)
  }
  t.match(gen(request({ 'x-request-id': ['a', 'b'] })), /^[A-Za-z0-9_-]{8}-/, 'a repeated header is replaced')
  // A piece of a token (the base64url of a JSON object begins "eyJ"): it would be logged and sent back.
  const piece = 'eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6InN1Yi1QRVJT'
  t.not(gen(request({ 'x-request-id': piece })), piece, 'a token\'s payload is replaced')
  t.not(gen(request({ 'x-request-id': `req-${piece.slice(0, 40)}` })), `req-${piece.slice(0, 40)}`, 'wherever it begins')
  t.equal(gen(request({ 'x-request-id': '4bf92f3577b34da6a3ce929d0e0e4736' })), '4bf92f3577b34da6a3ce929d0e0e4736', 'nginx\'s $request_id (32 hex digits) is kept')
})

t.test('the request logger makes no pino child until something is logged at a level in force', async (t) => {
  const { lines, logger } = capture('warn')
  let children = 0
  const child = logger.child.bind(logger)
  logger.child = ((...args: Parameters<typeof logger.child>) => { children++; return child(...args) }) as typeof logger.child
  const log = new RequestLogger(logger, { reqId: 'r-1' })
  log.info({ a: 1 }, 'hidden')
  log.debug('hidden')
  log.trace('hidden')
  t.equal(children, 0, 'nothing logged, nothing built')
  t.equal(log.level, 'warn')
  t.equal(log.isLevelEnabled('info'), false)
  t.equal(log.isLevelEnabled('warn'), true)
  log.warn({ detail: 'x' }, 'shown')
  log.error(new Error('boom'))
  log.fatal('last words %s', 'here')
  t.equal(children, 1, 'one child, made once')
  t.same(lines.map((l) => [l.level, l.reqId, l.msg]), [[40, 'r-1', 'shown'], [50, 'r-1', 'boom'], [60, 'r-1', 'last words here']])
  t.equal(lines[0]?.detail, 'x')
  t.match(lines[1], { err: { type: 'Error', message: 'boom' } }, "pino's error serializer applies")
})

t.test('the request logger writes what a pino child writes, redaction included', async (t) => {
  const ours = capture('info')
  const pinos = capture('info')
  const entry = { token: 'eyJ.secret.sig', req: { headers: { authorization: 'Bearer x' } }, n: 3 }
  new RequestLogger(ours.logger, { reqId: 'same' }).info(entry, 'line')
  pinos.logger.child({ reqId: 'same' }).info(entry, 'line')
  const strip = (l: Record<string, unknown> | undefined): unknown => ({ ...l, time: undefined, pid: undefined })
  t.same(strip(ours.lines[0]), strip(pinos.lines[0]))
  t.equal(ours.lines[0]?.token, '[redacted]')
})

t.test('the request logger follows the level of the app logger (a reload changes it)', async (t) => {
  const { lines, logger } = capture('warn')
  const log = new RequestLogger(logger, { reqId: 'r-2' })
  log.info('before')
  logger.level = 'info'
  log.info('after')
  t.same(lines.map((l) => l.msg), ['after'])
  log.level = 'error'
  t.equal(log.level, 'error', 'a level set on it is its own')
  t.equal(logger.level, 'info', 'and not the app logger’s')
  log.warn('hidden now')
  t.same(lines.map((l) => l.msg), ['after'])
})

t.test('child() and bindings() answer as pino does', async (t) => {
  const { lines, logger } = capture('info')
  const log = new RequestLogger(logger, { reqId: 'r-3' })
  t.same(log.bindings(), logger.child({ reqId: 'r-3' }).bindings())
  t.match(log.bindings(), { reqId: 'r-3', service: 'oidc-verifier' })
  log.child({ part: 'x' }).info('from a grandchild')
  t.match(lines[0], { reqId: 'r-3', part: 'x', msg: 'from a grandchild' })
  log.silent()
  t.equal(lines.length, 1)
})

t.test("a route's own log level or serializers get pino's child at once", async (t) => {
  const { logger } = capture('warn')
  const factory = requestChildLogger as unknown as (l: unknown, b: pino.Bindings, o: pino.ChildLoggerOptions) => unknown
  t.type(factory(logger, { reqId: 'a' }, {}), RequestLogger)
  const withLevel = factory(logger, { reqId: 'b' }, { level: 'debug' }) as pino.Logger
  t.notOk(withLevel instanceof RequestLogger)
  t.equal(withLevel.level, 'debug')
  t.notOk(factory(logger, { reqId: 'c' }, { serializers: {} }) instanceof RequestLogger)
})

t.test('in the app: request ids in headers, bodies and log lines, and errors logged with the request id', async (t) => {
  const { lines, logger } = capture('info')
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]), { loggerInstance: logger })
  t.teardown(() => app.close())
  app.get('/boom', async (req) => {
    t.type(req.log, RequestLogger, 'requests get the lazy logger')
    req.log.warn({ step: 1 }, 'about to fail')
    throw new Error('unexpected')
  })
  await app.ready()
  const ok = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(ISS, 'aud')) } })
  const bad = await app.inject({ method: 'POST', url: '/verify', payload: { token: 'garbage' } })
  const boom = await app.inject({ method: 'GET', url: '/boom' })
  const okId = ok.headers['x-request-id'] as string
  const badId = bad.headers['x-request-id'] as string
  const boomId = boom.headers['x-request-id'] as string
  t.match(okId, /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/)
  t.not(okId, badId)
  t.equal(okId.split('-')[0], badId.split('-')[0], 'one prefix per app')
  t.equal(bad.json().requestId, badId)
  t.equal(boom.json().requestId, boomId)
  const done = lines.filter((l) => l.msg === 'request completed')
  t.same(done.map((l) => l.reqId), [okId, badId, boomId])
  t.match(lines.find((l) => l.msg === 'about to fail'), { reqId: boomId, step: 1, level: 40 })
  t.match(lines.find((l) => l.msg === 'unexpected error'), { reqId: boomId, level: 50, err: { message: 'unexpected' } })
})
