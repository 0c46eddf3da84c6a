/**
 * HTTP message edges where the connection must stay in step with what the answers say:
 * - an answer given before a large or chunked body was read closes the connection, and says so (Connection: close),
 *   so that a client does not send its next request into a closing socket;
 * - an answer given after the whole body was read (by the route, or by the hit lane) keeps the connection;
 * - a client that ends its side mid-message (a body cut short) gets no second, unasked-for answer, and is not
 *   counted as a malformed request;
 * - two Host lines are refused like a missing one (RFC 9112 §3.2), so a host rule cannot be read from one and the
 *   application behind from the other.
 */
import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { buildOpsApp } from '../src/ops-app.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
const portOf = (server: FastifyInstance): number => (server.server.address() as AddressInfo).port
const token = mint(key, idTokenClaims(ISS, 'aud'))

/** Writes `first`, waits for its whole answer (or 1 s), then `second` on the same connection; everything read until close. */
async function twoOnOneConnection (port: number, first: string, second: string): Promise<{ raw: string, secondWritten: boolean }> {
  return await new Promise((resolve) => {
    let raw = ''
    let secondWritten = false
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(first)
      setTimeout(() => {
        if (!socket.destroyed && socket.writable) { socket.write(second); secondWritten = true }
      }, 300)
    })
    const timer = setTimeout(() => { socket.destroy(); resolve({ raw, secondWritten }) }, 3000)
    socket.on('data', (d: Buffer) => { raw += d.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => { clearTimeout(timer); resolve({ raw, secondWritten }) })
  })
}

const statusLines = (raw: string): string[] => [...raw.matchAll(/HTTP\/1\.1 \d{3}[^\r]*/g)].map((m) => m[0])


/**
 * Sends the requests on one connection, each once the answer before it is read whole (each answer has a
 * Content-Length), and gives the answers' heads; ends the connection after the last, or at `timeoutMs`.
 */
async function exchangeOneAtATime (port: number, requests: string[], timeoutMs?: number): Promise<string[]> {
  const pending = [...requests]
  const heads: string[] = []
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let raw = ''
    const next = (): void => {
      const request = pending.shift()
      if (request === undefined) { socket.end(); return }
      socket.write(request)
    }
    socket.on('connect', next)
    socket.on('data', (d: Buffer) => {
      raw += d.toString('latin1')
      for (;;) {
        const end = raw.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = raw.slice(0, end)
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0)
        if (raw.length < end + 4 + length) return
        heads.push(head)
        raw = raw.slice(end + 4 + length)
        next()
      }
    })
    socket.on('error', reject)
    socket.on('close', () => { resolve() })
    if (timeoutMs !== undefined) setTimeout(() => { socket.destroy(); resolve() }, timeoutMs)
  })
  return heads
}

t.test('an answer that says keep-alive is not followed by a close that drops the next request', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  // A proxy forwarding the original body (Traefik forwardBody, Envoy with_request_body) of more than 64 KiB,
  // sent in full with a Content-Length; forward-auth never reads it.
  const first = `POST /forward-auth HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 70000\r\n\r\n${'a'.repeat(70000)}`
  const second = `GET /forward-auth HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`
  const { raw } = await twoOnOneConnection(portOf(app), first, second)
  const firstHead = raw.slice(0, raw.indexOf('\r\n\r\n'))
  t.match(firstHead, /^HTTP\/1\.1 200 /, 'the first request is answered')
  const saysClose = /\r\nconnection: close/i.test(firstHead)
  const lines = statusLines(raw)
  t.ok(saysClose || lines.length === 2, `either the first answer says Connection: close, or the second request is answered (answer said ${/\r\nconnection: ([^\r]*)/i.exec(firstHead)?.[1]}; got ${JSON.stringify(lines)})`)
})

t.test('an answer written at once to a request without a body keeps the connection (Bearer cache hits, /readyz)', async (t) => {
  // Node marks such a request complete only in its parser's next callback: answers written before then said
  // Connection: close, so every Bearer cache hit cost the caller a new connection (a TLS handshake with TLS).
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  let connections = 0
  app.server.on('connection', () => { connections++ })
  const bearer = `POST /verify HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\n\r\n`
  const requests = [bearer, bearer, bearer, 'GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n', 'GET /readyz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n']
  const heads = await exchangeOneAtATime(portOf(app), requests)
  t.equal(heads.length, 5, 'all five answered on one connection')
  t.same(heads.map((h) => h.split('\r\n')[0]), Array(5).fill('HTTP/1.1 200 OK'))
  t.notOk(heads.some((h) => /\r\nconnection: close/i.test(h)), 'none says Connection: close')
  t.equal(connections, 1)
})

t.test('a client that half-closes after its answer gets no second, unsolicited answer', async (t) => {
  const config = configFor(issuers, { server: { opsPort: 0 } })
  const app = await buildApp(config)
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await ops.listen({ host: '127.0.0.1', port: 0 })
  for (const [name, port, request] of [
    ['main: a 405 to a request whose declared body never comes', portOf(app), 'GET /verify HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\n'],
    ['ops: a probe with a stray Content-Length', portOf(ops), 'GET /healthz HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\n']
  ] as const) {
    const raw = await new Promise<string>((resolve) => {
      let out = ''
      const socket = net.connect(port, '127.0.0.1', () => { socket.write(request); setTimeout(() => socket.end(), 300) })
      socket.on('data', (d: Buffer) => { out += d.toString('latin1') })
      socket.on('error', () => {})
      socket.on('close', () => resolve(out))
      setTimeout(() => { socket.destroy(); resolve(out) }, 3000)
    })
    t.equal(statusLines(raw).length, 1, `${name}: one request, one answer (got ${JSON.stringify(statusLines(raw))})`)
  }
  // And nothing counted as a request refused "before its headers were read": there was none.
  const samples = parseMetrics((await ops.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'other', status: '400', caller: 'none' }) ?? 0, 0, 'no phantom 400 in the metrics')
})

t.test('a client giving up half-way through its body is not a 400 request_invalid in the metrics', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => {
    const socket = net.connect(portOf(app), '127.0.0.1', () => {
      socket.write('POST /verify HTTP/1.1\r\nHost: svc\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"token":')
      setTimeout(() => socket.end(), 200)
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve())
    socket.resume()
    setTimeout(() => { socket.destroy(); resolve() }, 3000)
  })
  const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'other', status: '400', caller: 'none' }) ?? 0, 0, 'an aborted upload is not counted as a malformed request')
})

t.test('two Host lines: 400 request_invalid (RFC 9112 §3.2), like a missing Host', async (t) => {
  const app = await buildApp(configFor(issuers, {
    forwardAuth: { rules: [{ hosts: ['admin.example.com'], require: { groups: ['root'] } }] }
  }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const one = await rawExchange(portOf(app), `GET /forward-auth/envoy/x HTTP/1.1\r\nHost: admin.example.com\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  t.equal(one.status, 403, 'Envoy: the host rule applies to the request\'s Host')
  const two = await rawExchange(portOf(app), `GET /forward-auth/envoy/x HTTP/1.1\r\nHost: www.example.com\r\nHost: admin.example.com\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  t.not(two.status, 200, 'Envoy: a second Host line does not slip past the host rule')
  const verify = await rawExchange(portOf(app), `POST /verify HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
  t.equal(verify.status, 400, '/verify: two Host lines are refused')
})

t.test('an answer given before a small body arrived whole is the only answer: the connection closes, no 408 follows', async (t) => {
  const app = await buildApp(configFor(issuers, { server: { headersTimeoutMs: 1000, requestTimeoutMs: 1000 } }))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  for (const [name, head, status] of [
    ['a body type not taken', 'POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n', '415'],
    ['two Host lines', 'POST /verify HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n', '400'],
    // Fastify reads the body of a request to an unknown path before its 404: the stalled body is then the answer's.
    ['an unknown path', 'POST /nothing-here HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n', '408']
  ] as const) {
    const socket = net.connect(portOf(app), '127.0.0.1')
    let answer = ''
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    socket.on('connect', () => socket.write(`${head}{"tok`))
    // The client stalls, sending a byte now and then, past requestTimeoutMs.
    const dribble = setInterval(() => { if (!socket.destroyed) socket.write('a') }, 200)
    await new Promise<void>((resolve) => { socket.on('close', () => resolve()); socket.on('error', () => resolve()); setTimeout(resolve, 5000) })
    clearInterval(dribble)
    socket.destroy()
    t.same(statusLines(answer).map((l) => l.slice(9, 12)), [status], `${name}: one answer, ${status}`)
  }
})

t.test('a request timing out while an answer is being written gets no 408 added to that answer', async (t) => {
  for (const [name, server, dribble] of [
    // Node's check (clientErrorHandler): the body still arriving, a byte now and then, past requestTimeoutMs.
    ['requestTimeoutMs', { headersTimeoutMs: 1000, requestTimeoutMs: 1000 }, true],
    // The socket's idle timeout (answerOutsideRoutes): the body stopped arriving for connectionTimeoutMs.
    ['connectionTimeoutMs', { connectionTimeoutMs: 1000, headersTimeoutMs: 10_000, requestTimeoutMs: 10_000 }, false]
  ] as const) {
    const app = await buildApp(configFor(issuers, { server }))
    // An answer whose head is out, and which is not finished, while its request's body is still due. In the
    // service, an answer given before the body (an error, a 404) that the client leaves unread past the socket's
    // buffers (some MiB on loopback): its 'finish' waits, and the connection stays open with the answer begun.
    let begun = false
    app.post('/test-answer-begun', {
      onRequest: (_req, reply) => {
        reply.hijack()
        reply.raw.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' })
        reply.raw.write('the first part of an answer; ')
        begun = true
      }
    }, async () => 'never reached: the body never ends')
    await app.listen({ host: '127.0.0.1', port: 0 })
    const socket = net.connect(portOf(app), '127.0.0.1')
    let answer = ''
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    socket.on('connect', () => socket.write('POST /test-answer-begun HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"tok'))
    const trickle = dribble ? setInterval(() => { if (!socket.destroyed) socket.write('a') }, 200) : undefined
    const closed = await new Promise<boolean>((resolve) => { socket.on('close', () => resolve(true)); socket.on('error', () => resolve(true)); setTimeout(() => resolve(false), 5000) })
    clearInterval(trickle)
    socket.destroy()
    t.ok(begun && closed, `${name}: the answer had begun; the connection was closed at the timeout`)
    t.same(statusLines(answer).map((l) => l.slice(9, 12)), ['200'], `${name}: one head, the answer's; no 408 written into its body (got ${JSON.stringify(answer)})`)
    const samples = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
    t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: 'none', method: 'other', status: '408', caller: 'none' }) ?? 0, 0, `${name}: no 408 counted for a request that had its answer`)
    await app.close()
  }
})

t.test('a small body answered early (415) then sent whole promptly: the answer says keep-alive, so the connection must serve the next request', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const body = 'x'.repeat(100)
  const raw = await new Promise<string>((resolve) => {
    let out = ''
    const socket = net.connect(portOf(app), '127.0.0.1', () => {
      socket.write(`POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n${body.slice(0, 10)}`)
      // The client (e.g. a pool that writes head and body in two writes) sends the rest at once, then reuses the connection.
      setTimeout(() => {
        if (socket.destroyed || !socket.writable) return
        socket.write(body.slice(10))
        setTimeout(() => {
          if (!socket.destroyed && socket.writable) socket.write(`POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${JSON.stringify({ token }).length}\r\nConnection: close\r\n\r\n${JSON.stringify({ token })}`)
        }, 100)
      }, 50)
    })
    const timer = setTimeout(() => { socket.destroy(); resolve(out) }, 3000)
    socket.on('data', (d: Buffer) => { out += d.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => { clearTimeout(timer); resolve(out) })
  })
  const firstHead = raw.slice(0, raw.indexOf('\r\n\r\n'))
  t.match(firstHead, /^HTTP\/1\.1 415 /)
  const saysClose = /\r\nconnection: close/i.test(firstHead)
  const lines = statusLines(raw)
  t.ok(saysClose || lines.length === 2, `the first answer says Connection: close, or the second request is answered (answer said ${/\r\nconnection: ([^\r]*)/i.exec(firstHead)?.[1]}; got ${JSON.stringify(lines)})`)
})

t.test('an answer given after the route read the whole body keeps the connection (Content-Length and chunked)', async (t) => {
  for (const tokenCache of [{ enabled: false }, { enabled: true }]) {
    // Without a token cache there is no hit lane: every body is the route's to read.
    await t.test(`tokenCache.enabled: ${String(tokenCache.enabled)}`, async (t) => {
      const app = await buildApp(configFor(issuers, { tokenCache }))
      t.teardown(() => app.close())
      await app.listen({ host: '127.0.0.1', port: 0 })
      let connections = 0
      app.server.on('connection', () => { connections++ })
      const body = JSON.stringify({ token })
      const sized = `POST /verify HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
      const chunked = `POST /verify HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
      const requests = [sized, chunked, sized, chunked]
      const heads = await exchangeOneAtATime(portOf(app), requests, 5000)
      t.same(heads.map((h) => h.split('\r\n')[0]), Array(4).fill('HTTP/1.1 200 OK'), 'all four answered on one connection')
      t.notOk(heads.some((h) => /\r\nconnection: close/i.test(h)), 'none says Connection: close')
      t.equal(connections, 1)
    })
  }
})

t.test('an answer given while a body is still coming (chunked, a single byte, a GET\'s) says Connection: close, and the connection ends', async (t) => {
  const app = await buildApp(configFor(issuers))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  // Part of a body, and then nothing: Node would go on reading, and dropping, whatever came next.
  for (const [name, request] of [
    ['forward-auth, which never reads a body', `POST /forward-auth HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n`],
    ['an unknown path', 'POST /nowhere HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n'],
    // Header values are as sent: Node's parser takes the coding whatever its case, and so must the check.
    ['an unknown path, the coding spelled "Chunked"', 'POST /nowhere HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: Chunked\r\n\r\n10\r\n0123456789abcdef\r\n'],
    ['an unknown path, a coding before chunked', 'POST /nowhere HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n10\r\n0123456789abcdef\r\n'],
    ['a GET to forward-auth with a body, part of it sent', `GET /forward-auth HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer ${token}\r\nContent-Length: 10\r\n\r\n01234`],
    // The smallest body there is: its one byte, still due, is as much a body as a thousand.
    ['a body type not taken, its one byte not sent', 'POST /verify HTTP/1.1\r\nHost: app\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n']
  ] as const) {
    const { raw, closedByServer } = await new Promise<{ raw: string, closedByServer: boolean }>((resolve) => {
      let out = ''
      const socket = net.connect(portOf(app), '127.0.0.1', () => { socket.write(request) })
      const timer = setTimeout(() => { socket.destroy(); resolve({ raw: out, closedByServer: false }) }, 2000)
      socket.on('data', (d: Buffer) => { out += d.toString('latin1') })
      socket.on('error', () => {})
      socket.on('close', () => { clearTimeout(timer); resolve({ raw: out, closedByServer: true }) })
    })
    t.equal(statusLines(raw).length, 1, `${name}: answered (${JSON.stringify(statusLines(raw))})`)
    t.match(raw.slice(0, raw.indexOf('\r\n\r\n')), /\r\nconnection: close/i, `${name}: the answer says Connection: close`)
    t.ok(closedByServer, `${name}: the server ends the connection with it`)
  }
})
