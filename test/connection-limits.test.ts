/**
 * Connection bounds (src/http/connection-limits.ts): a listener takes at most maxConnections connections (a
 * client cannot exhaust the process's file descriptors), and a slow client is cut off near
 * server.headersTimeoutMs, not up to 30 s later (Node's default check interval), with 408 request_timeout in the
 * service's error shape.
 */
import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import { buildApp } from '../src/app.js'
import { connectionBounds, FALLBACK_MAX_CONNECTIONS, openFileLimit, readLimits } from '../src/http/connection-limits.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]

t.test('the bounds: three quarters of the open-file limit for the main listener, a tenth (at most 1,024) for the ops one', async (t) => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                524288               files\n'
  t.equal(openFileLimit(limits), 20000, 'the soft limit')
  t.equal(openFileLimit('Max open files            unlimited            unlimited            files\n'), undefined)
  t.equal(openFileLimit(undefined), undefined)
  t.same(connectionBounds(undefined, 20000), { main: 15000, ops: 1024 })
  t.same(connectionBounds(undefined, 1024), { main: 768, ops: 102 })
  t.same(connectionBounds(50, 20000), { main: 50, ops: 50 }, 'server.maxConnections, and the ops listener never above it')
  t.same(connectionBounds(undefined, openFileLimit(undefined)), { main: FALLBACK_MAX_CONNECTIONS, ops: 1024 }, 'no limit to go by')
  t.type(openFileLimit(readLimits()), 'number', 'read from /proc/self/limits here')
})

/** A connection that sends one request and reads its answer; resolves with the status, or 'closed' when the server hung up first. */
async function oneRequest (port: number): Promise<{ socket: net.Socket, status: string }> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setTimeout(5000, () => socket.destroy())
  const status = await new Promise<string>((resolve) => {
    let data = ''
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'))
    socket.on('data', (d) => {
      data += String(d)
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data)
      if (m !== null) resolve(m[1] as string)
    })
    socket.on('close', () => resolve('closed'))
    socket.on('error', () => resolve('closed'))
  })
  return { socket, status }
}

t.test('past server.maxConnections a new connection is closed at once; the open ones, and later ones, are served', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { maxConnections: 3 } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const open = [await oneRequest(port), await oneRequest(port), await oneRequest(port)]
  t.same(open.map((c) => c.status), ['200', '200', '200'], 'three kept-alive connections')
  const fourth = await oneRequest(port)
  t.equal(fourth.status, 'closed', 'a fourth is closed without an answer')
  open[0]?.socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const again = await oneRequest(port)
  t.equal(again.status, '200', 'once one is closed, a new one is served')
  for (const c of [...open, again]) c.socket.destroy()
})

t.test('a client that sends its headers slowly is cut off near server.headersTimeoutMs', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { headersTimeoutMs: 1000, requestTimeoutMs: 1000 } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  /** Writes `first`, then `more` every 200 ms until the server closes; what it answered, and when. */
  const stall = async (first: string, more: string): Promise<{ heldMs: number, answer: string }> => {
    const socket = net.connect(port, '127.0.0.1')
    const started = Date.now()
    let answer = ''
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    socket.on('connect', () => socket.write(first))
    const dribble = setInterval(() => { if (!socket.destroyed) socket.write(more) }, 200)
    await new Promise<void>((resolve) => { socket.on('close', () => resolve()); socket.on('error', () => resolve()) })
    clearInterval(dribble)
    return { heldMs: Date.now() - started, answer }
  }
  for (const [name, first, more] of [
    ['headers', 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n'],
    ['body', 'POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"token":"', 'a']
  ] as const) {
    const { heldMs, answer } = await stall(first, more)
    // Node's default check interval (30 s) would have held it up to 31 s; every second it is checked.
    t.ok(heldMs < 10_000, `${name}: closed after ${heldMs} ms`)
    // In the service's shape, like every refusal: a code, a hint, a request id, not Node's bare 408.
    t.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/, `${name}: 408`)
    t.match(answer, /\r\nx-request-id: [A-Za-z0-9._:-]+\r\n/i)
    t.match(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), { code: 'request_timeout', hint: /server\.requestTimeoutMs/ })
  }
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'other', status: '408', caller: 'none' }), 2, 'counted')
})

t.test('a 408 for a request past headersTimeoutMs or requestTimeoutMs is recorded with the time it took, not 0', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { headersTimeoutMs: 1000, requestTimeoutMs: 3000 } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  /** Writes `first`, then `more` every 200 ms until the server closes (at most 8 s); the answer's status line. */
  const stall = async (first: string, more: string): Promise<string> => {
    const socket = net.connect(port, '127.0.0.1')
    let answer = ''
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    socket.on('connect', () => socket.write(first))
    const dribble = setInterval(() => { if (!socket.destroyed) socket.write(more) }, 200)
    await new Promise<void>((resolve) => { socket.on('close', () => resolve()); socket.on('error', () => resolve()); setTimeout(resolve, 8000) })
    clearInterval(dribble)
    socket.destroy()
    return answer.slice(0, answer.indexOf('\r\n'))
  }
  const none = async (): Promise<{ count: number, sum: number, under: (le: string) => number }> => {
    const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
    const name = 'oidc_verifier_http_request_duration_seconds'
    return {
      count: valueOf(samples, `${name}_count`, { route: 'none' }) ?? 0,
      sum: valueOf(samples, `${name}_sum`, { route: 'none' }) ?? 0,
      under: (le) => valueOf(samples, `${name}_bucket`, { route: 'none', le }) ?? 0
    }
  }
  // Headers that never end, on a bare socket (no request object yet): past headersTimeoutMs (1 s) since their first byte.
  t.equal(await stall('GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n'), 'HTTP/1.1 408 Request Timeout')
  const headers = await none()
  t.equal(headers.count, 1, 'one request refused outside the routes')
  t.equal(headers.under('0.5'), 0, 'not in the lowest buckets, as a request answered at once')
  t.ok(headers.sum >= 1 && headers.sum <= 2, `at least headersTimeoutMs, at most a check interval more (${headers.sum} s)`)
  // A body that never ends: past requestTimeoutMs (3 s).
  t.equal(await stall('POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"token":"', 'a'), 'HTTP/1.1 408 Request Timeout')
  const body = await none()
  t.equal(body.count, 2)
  t.equal(body.under('2.5'), headers.under('2.5'), 'the second one past 2.5 s')
  t.ok(body.sum - headers.sum >= 3 && body.sum - headers.sum <= 4, `at least requestTimeoutMs (${body.sum - headers.sum} s)`)
})

t.test('a body that stops arriving for server.connectionTimeoutMs gets 408 request_timeout; silent headers are closed without one', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { connectionTimeoutMs: 1000, headersTimeoutMs: 10_000, requestTimeoutMs: 10_000 } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const silent = async (text: string): Promise<{ heldMs: number, answer: string }> => {
    const socket = net.connect(port, '127.0.0.1')
    const started = Date.now()
    let answer = ''
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    socket.on('connect', () => socket.write(text))
    await new Promise<void>((resolve) => { socket.on('close', () => resolve()); socket.on('error', () => resolve()); setTimeout(resolve, 8000) })
    socket.destroy()
    return { heldMs: Date.now() - started, answer }
  }
  const body = await silent('POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"token":"')
  t.ok(body.heldMs < 5000, `a stalled body: closed after ${body.heldMs} ms (connectionTimeoutMs 1000, requestTimeoutMs 10000)`)
  t.match(body.answer, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  t.match(JSON.parse(body.answer.slice(body.answer.indexOf('\r\n\r\n') + 4)), { code: 'request_timeout', hint: /server\.connectionTimeoutMs/ })
  // Recorded with the silence it waited out (connectionTimeoutMs), not 0.
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_request_duration_seconds_count', { route: 'none' }), 1)
  t.ok((valueOf(samples, 'oidc_verifier_http_request_duration_seconds_sum', { route: 'none' }) ?? 0) >= 1, 'at least connectionTimeoutMs')
  const headers = await silent('GET /healthz HTTP/1.1\r\nHost: x\r\n')
  t.ok(headers.heldMs < 5000, `stalled headers: closed after ${headers.heldMs} ms`)
  t.equal(headers.answer, '', 'without an answer (Node has no request yet)')
  const idle = await silent('')
  t.ok(idle.heldMs < 5000 && idle.answer === '', 'an idle connection: closed, no answer')
})
