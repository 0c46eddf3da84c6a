/**
 * W3C Trace Context in the logs: a caller's valid `traceparent` puts `traceId` and `spanId` (its parent-id) on
 * every log line of the request, read only when the request logs; an invalid, repeated or oversized one is
 * ignored (no error, not echoed, not logged) and the answer is the same as without it.
 */
import t from 'tap'
import net from 'node:net'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { buildOpsApp } from '../src/ops-app.js'
import { RequestLogger } from '../src/http/request-logger.js'
import { parseTraceparent } from '../src/http/trace-context.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'
const VALID = `00-${TRACE_ID}-${PARENT_ID}-01`

type Line = Record<string, unknown>

function capture (level: pino.Level = 'info') {
  const lines: Line[] = []
  const raw: string[] = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n').filter(Boolean)) { raw.push(line); lines.push(JSON.parse(line)) }
      cb()
    }
  })
  return { lines, raw, logger: pino({ ...loggerOptions(level) }, stream) }
}

async function appWithLog (level: pino.Level = 'info') {
  const { lines, raw, logger } = capture(level)
  const app = await buildApp(configFor(issuers), { loggerInstance: logger })
  app.get('/boom', async (req) => {
    req.log.warn({ step: 1 }, 'about to fail')
    throw new Error('unexpected')
  })
  await app.ready()
  return { app, lines, raw }
}

const ofRequest = (lines: Line[], reqId: unknown): Line[] => lines.filter((l) => l.reqId === reqId)
const traceOf = (l: Line | undefined): unknown => ({ traceId: l?.traceId, spanId: l?.spanId })
const hasTrace = (l: Line): boolean => 'traceId' in l || 'spanId' in l

t.test('the version 00 grammar, and later versions read as the specification says', async (t) => {
  t.same(parseTraceparent(VALID), { traceId: TRACE_ID, spanId: PARENT_ID })
  t.same(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`), { traceId: TRACE_ID, spanId: PARENT_ID }, 'not sampled is as valid')
  for (const later of [`01-${TRACE_ID}-${PARENT_ID}-01-extra`, `cc-${TRACE_ID}-${PARENT_ID}-01`, `01-${TRACE_ID}-${PARENT_ID}-09-a-b-c`, `fe-${TRACE_ID}-${PARENT_ID}-01-`]) {
    t.same(parseTraceparent(later), { traceId: TRACE_ID, spanId: PARENT_ID }, `${later.slice(0, 3)}…${later.slice(55)} is read as 00`)
  }
  for (const [why, value] of invalidValues()) t.equal(parseTraceparent(value), undefined, why)
})

function invalidValues (): Array<[string, string]> {
  return [
    ['empty', ''],
    ['upper-case trace-id', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['upper-case parent-id', `00-${TRACE_ID}-00F067AA0BA902B7-01`],
    ['upper-case flags', `00-${TRACE_ID}-${PARENT_ID}-0A`],
    ['upper-case version', `0A-${TRACE_ID}-${PARENT_ID}-01`],
    ['all-zero trace-id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['all-zero parent-id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['version ff with more fields', `ff-${TRACE_ID}-${PARENT_ID}-01-extra`],
    ['version not hex', `zz-${TRACE_ID}-${PARENT_ID}-01`],
    ['a three-character version', `000-${TRACE_ID}-${PARENT_ID}-01`],
    ['a short trace-id', `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ['a long trace-id', `00-${TRACE_ID}0-${PARENT_ID}-01`],
    ['a short parent-id', `00-${TRACE_ID}-${PARENT_ID.slice(1)}-01`],
    ['a long parent-id', `00-${TRACE_ID}-${PARENT_ID}0-01`],
    ['one-character flags', `00-${TRACE_ID}-${PARENT_ID}-1`],
    ['three-character flags', `00-${TRACE_ID}-${PARENT_ID}-011`],
    ['version 00 with a field after the flags', `${VALID}-extra`],
    ['version 00 with a dash after the flags', `${VALID}-`],
    ['a later version shorter than 55 characters', `01-${TRACE_ID}-${PARENT_ID}-1`],
    ['a later version with no dash after the flags', `01-${TRACE_ID}-${PARENT_ID}-01.future`],
    ['a later version with three-character flags', `01-${TRACE_ID}-${PARENT_ID}-011-x`],
    ['underscores for dashes', `00_${TRACE_ID}_${PARENT_ID}_01`],
    ['a character before it', `x${VALID}`],
    ['a space inside', `00-${TRACE_ID} -${PARENT_ID}-01`],
    ['non-hex in the trace-id', `00-${TRACE_ID.slice(0, 31)}g-${PARENT_ID}-01`],
    ['a 10 KB later version', `01-${TRACE_ID}-${PARENT_ID}-01-${'a'.repeat(10 * 1024)}`],
    ['a 10 KB version 00', `${VALID}${'a'.repeat(10 * 1024)}`]
  ]
}

t.test('a valid traceparent is on every line of its request: the request line, warnings and errors', async (t) => {
  const { app, lines } = await appWithLog('info')
  t.teardown(() => app.close())
  const traceparent = VALID
  const expired = mint(key, idTokenClaims(ISS, 'aud', { exp: 1000, iat: 900 }))
  const ok = await app.inject({ method: 'POST', url: '/verify', headers: { traceparent }, payload: { token: mint(key, idTokenClaims(ISS, 'aud')) } })
  const refused = await app.inject({ method: 'POST', url: '/verify', headers: { traceparent, authorization: `Bearer ${expired}` } })
  const boom = await app.inject({ method: 'GET', url: '/boom', headers: { traceparent } })
  const badUrl = await app.inject({ method: 'GET', url: '/verify/%zz', headers: { traceparent } })
  const unknown = await app.inject({ method: 'GET', url: '/nowhere', headers: { traceparent } })
  t.same([ok.statusCode, refused.statusCode, boom.statusCode, badUrl.statusCode, unknown.statusCode], [200, 401, 500, 400, 404])
  t.equal(refused.json().code, 'token_expired')

  const expected = { traceId: TRACE_ID, spanId: PARENT_ID }
  for (const res of [ok, refused, boom, badUrl, unknown]) {
    const own = ofRequest(lines, res.headers['x-request-id'])
    t.ok(own.some((l) => l.msg === 'request completed'), `${res.statusCode}: its request line is there`)
    for (const line of own) t.same(traceOf(line), expected, `${res.statusCode}: "${String(line.msg)}" carries the trace`)
  }
  const boomLines = ofRequest(lines, boom.headers['x-request-id'])
  t.match(boomLines.find((l) => l.msg === 'about to fail'), { level: 40, ...expected })
  t.match(boomLines.find((l) => l.msg === 'unexpected error'), { level: 50, ...expected, err: { message: 'unexpected' } })
  t.match(ofRequest(lines, refused.headers['x-request-id']).find((l) => l.msg === 'request completed'), { level: 30, code: 'token_expired', ...expected })

  const without = await app.inject({ method: 'GET', url: '/boom' })
  const withoutLines = ofRequest(lines, without.headers['x-request-id'])
  t.equal(withoutLines.length, 3, 'a request without traceparent logs as before')
  t.notOk(withoutLines.some(hasTrace), '…and its lines carry neither field')
  for (const res of [ok, refused, boom, badUrl, unknown, without]) t.notOk('traceparent' in res.headers, 'nothing is propagated in the answer')
})

t.test('a later version is read as 00 when its fields follow a dash', async (t) => {
  const { app, lines } = await appWithLog('info')
  t.teardown(() => app.close())
  for (const traceparent of [`01-${TRACE_ID}-${PARENT_ID}-01-extra`, `cc-${TRACE_ID}-${PARENT_ID}-00`]) {
    const res = await app.inject({ method: 'GET', url: '/healthz', headers: { traceparent } })
    t.equal(res.statusCode, 200)
    const line = ofRequest(lines, res.headers['x-request-id']).find((l) => l.msg === 'request completed')
    t.same(traceOf(line), { traceId: TRACE_ID, spanId: PARENT_ID }, traceparent.slice(0, 2))
  }
  t.notOk(lines.some((l) => JSON.stringify(l).includes('extra')), 'the unknown fields are not logged')
})

t.test('an invalid, repeated or oversized traceparent is ignored: same answer, no trace fields, never logged', async (t) => {
  const { app, lines, raw } = await appWithLog('info')
  t.teardown(() => app.close())
  // Refused for an audience: an answer that says nothing of the time (an expired token's offBySeconds would
  // differ between two requests a second apart).
  const token = mint(key, idTokenClaims(ISS, 'another-client'))
  const ask = (headers: Record<string, string | string[]>) => app.inject({ method: 'POST', url: '/verify', headers: { ...headers, authorization: `Bearer ${token}` } })
  const shape = (res: Awaited<ReturnType<typeof ask>>) => ({
    status: res.statusCode,
    body: { ...res.json(), requestId: undefined },
    headers: Object.keys(res.headers).sort()
  })
  const baseline = shape(await ask({}))

  // The control: these values alone are read, so what follows is ignored because of what it is.
  const later = `01-${'a'.repeat(32)}-${'b'.repeat(16)}-01-x`
  for (const alone of [VALID, later]) {
    const res = await ask({ traceparent: alone })
    t.same(shape(res), baseline)
    t.ok(ofRequest(lines, res.headers['x-request-id']).every((l) => l.traceId !== undefined), `${alone.slice(0, 2)} alone is read`)
  }

  const cases: Array<[string, string | string[]]> = [
    ...invalidValues(),
    // Node joins the lines with ", ": the joined value would pass as a later version with more fields.
    ['two traceparent lines', [later, VALID]],
    ['two identical lines', [VALID, VALID]]
  ]
  for (const [why, traceparent] of cases) {
    const res = await ask({ traceparent })
    t.same(shape(res), baseline, `${why}: the answer is unchanged`)
    const own = ofRequest(lines, res.headers['x-request-id'])
    t.ok(own.length > 0 && !own.some(hasTrace), `${why}: no trace fields`)
    for (const value of [traceparent].flat()) {
      if (value.length < 20) continue
      t.notOk(res.body.includes(value) || Object.values(res.headers).some((h) => String(h).includes(value)), `${why}: not echoed`)
    }
  }
  const all = raw.join('\n')
  for (const piece of ['extra', 'future', TRACE_ID.toUpperCase(), 'a'.repeat(64)]) t.notOk(all.includes(piece), `${piece.slice(0, 12)} is not logged`)
})

t.test('over a real connection: the header name in any case, a repeat in another case refused', async (t) => {
  const { lines, logger } = capture('info')
  const app = await buildApp(configFor(issuers), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const send = (headerLines: string) => new Promise<string>((resolve) => {
    let out = ''
    const socket = net.connect(port, '127.0.0.1', () => { socket.write(`GET /healthz HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n${headerLines}\r\n`) })
    socket.on('data', (d: Buffer) => { out += d.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => resolve(out))
    setTimeout(() => { socket.destroy(); resolve(out) }, 3000)
  })
  const idOf = (answer: string) => /\r\nx-request-id: ([^\r]+)/i.exec(answer)?.[1]
  const one = await send(`TraceParent: ${VALID}\r\n`)
  const two = await send(`TraceParent: 01-${TRACE_ID}-${PARENT_ID}-01-x\r\ntraceparent: ${VALID}\r\n`)
  t.match(one, /^HTTP\/1\.1 200 /)
  t.match(two, /^HTTP\/1\.1 200 /)
  t.same(traceOf(ofRequest(lines, idOf(one))[0]), { traceId: TRACE_ID, spanId: PARENT_ID }, 'read in any case')
  const twoLines = ofRequest(lines, idOf(two))
  t.ok(twoLines.length === 1 && !twoLines.some(hasTrace), 'two lines (names in different cases) are ignored')
})

t.test('the ops listener: its request lines carry the trace too', async (t) => {
  const { lines, logger } = capture('info')
  const config = configFor(issuers, { server: { opsPort: 0 } })
  const app = await buildApp(config, { loggerInstance: logger })
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  const probe = await ops.inject({ method: 'GET', url: '/healthz', headers: { traceparent: VALID } })
  t.equal(probe.statusCode, 200)
  t.match(ofRequest(lines, probe.headers['x-request-id']).find((l) => l.msg === 'request completed'), { listener: 'ops', traceId: TRACE_ID, spanId: PARENT_ID })
})

t.test('the header is read only when the request logs at a level in force, and once', async (t) => {
  const { lines, logger } = capture('warn')
  let reads = 0
  const headers = { traceparent: VALID }
  const request = { get headers () { reads++; return headers }, rawHeaders: ['traceparent', VALID] } as unknown as IncomingMessage
  const log = new RequestLogger(logger, { reqId: 'r-1' }, request)
  log.info('hidden')
  log.debug('hidden')
  t.equal(log.isLevelEnabled('info'), false)
  t.equal(reads, 0, 'nothing logged, nothing read')
  log.warn('shown')
  log.error('shown too')
  t.equal(reads, 1, 'read once, when the child is made')
  t.same(lines.map((l) => [l.reqId, l.traceId, l.spanId]), [['r-1', TRACE_ID, PARENT_ID], ['r-1', TRACE_ID, PARENT_ID]])
  const keys = Object.keys(lines[0] ?? {})
  t.ok(keys.indexOf('reqId') < keys.indexOf('traceId') && keys.indexOf('traceId') < keys.indexOf('spanId'), 'after reqId, as bindings')
})
