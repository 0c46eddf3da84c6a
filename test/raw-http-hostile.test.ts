/**
 * Hostile input below the routes, on real listeners: what inject() cannot send because it never goes through
 * Node's HTTP parser. Request smuggling shapes (Content-Length with Transfer-Encoding, conflicting lengths, bad
 * chunks), header bytes the parser refuses, other protocols on the port, CONNECT, odd request targets and
 * Expect. Each gets exactly the answer listed (a 4xx in the service's error shape with a request id, or the
 * route's own answer), never a 5xx, a silent close or a hang; nothing is fetched; and the listener still
 * answers a valid request afterwards. test/hostile-input.test.ts covers the routes through inject().
 */
import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { ERROR_CODES } from '../src/errors.js'
import { buildOpsApp } from '../src/ops-app.js'
import { configFor } from './helpers/config.js'
import { rawExchange, type RawResponse } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const config = configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }], { server: { opsPort: 0 } })
const app = await buildApp(config)
const ops = await buildOpsApp(app, config)
// A request with X-Slow is answered later than the ones before it (a slow hook, a JWKS fetch, a busy loop).
ops.addHook('onRequest', async (request) => { if (request.headers['x-slow'] !== undefined) await new Promise((resolve) => setTimeout(resolve, 300)) })
t.teardown(async () => { await ops.close(); await app.close() })
await app.listen({ host: '127.0.0.1', port: 0 })
await ops.listen({ host: '127.0.0.1', port: 0 })
const portOf = (server: FastifyInstance): number => (server.server.address() as AddressInfo).port
const ports = new Set([portOf(app), portOf(ops)])

// Every connection this process opens, except the test's own to the listeners: none may be an outbound request.
const outbound: string[] = []
let ownConnections = 0
const realConnect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  // Node passes its normalized [options, callback] pair through here too.
  const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0]
  const port = typeof first === 'number' ? first : Number((first as { port?: unknown } | undefined)?.port)
  if (ports.has(port)) ownConnections++
  else outbound.push(JSON.stringify(args[0])?.slice(0, 200) ?? 'unknown')
  return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args)
} as typeof realConnect
t.teardown(() => { net.Socket.prototype.connect = realConnect })

const token = mint(key, idTokenClaims(ISS, 'aud'))
const body = JSON.stringify({ token })
const H = 'Host: svc\r\nConnection: close\r\n'
const JSON_BODY = `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
const chunk = (text: string): string => `${text.length.toString(16)}\r\n${text}\r\n`

/** [name, request, the statuses answered in order, the code of the last answer ('' for a route's success)]. */
type Case = [string, string | Buffer, number[], string]
const REFUSED = (name: string, request: string | Buffer): Case => [name, request, [400], 'request_invalid']
const cases: Case[] = [
  // Smuggling shapes: Node's parser refuses them all before any route sees them.
  REFUSED('Content-Length and Transfer-Encoding', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(body)}0\r\n\r\n`),
  REFUSED('two different Content-Lengths', `POST /verify HTTP/1.1\r\n${H}Content-Length: 5\r\n${JSON_BODY}`),
  REFUSED('negative Content-Length', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: -1\r\n\r\n${body}`),
  REFUSED('Content-Length with a sign', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: +${body.length}\r\n\r\n${body}`),
  REFUSED('Content-Length past 2^64', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n${body}`),
  REFUSED('an unknown transfer coding', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n`),
  REFUSED('chunked, then identity', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`),
  REFUSED('a chunk size that is not hex', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`),
  REFUSED('a chunk size past 2^64', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n${body}\r\n0\r\n\r\n`),
  REFUSED('a 20,000-byte chunk extension', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)};x=${'y'.repeat(20000)}\r\n${body}\r\n0\r\n\r\n`),
  // Header bytes the parser refuses.
  REFUSED('an obsolete line folding', `POST /verify HTTP/1.1\r\n${H}X-A: a\r\n  folded\r\n${JSON_BODY}`),
  REFUSED('NUL in a header value', `POST /verify HTTP/1.1\r\n${H}X-A: a\u0000b\r\n${JSON_BODY}`),
  REFUSED('a bare CR in a header value', `POST /verify HTTP/1.1\r\n${H}X-A: a\rb\r\n${JSON_BODY}`),
  REFUSED('bare LF line ends', `POST /verify HTTP/1.1\n${H.replace(/\r\n/g, '\n')}Content-Type: application/json\nContent-Length: ${body.length}\n\n${body}`),
  REFUSED('a space in a header name', `POST /verify HTTP/1.1\r\n${H}Content Type: application/json\r\n${JSON_BODY}`),
  REFUSED('a space before the colon', `POST /verify HTTP/1.1\r\n${H}Content-Type : application/json\r\n${JSON_BODY}`),
  // Other protocols, versions and methods.
  REFUSED('the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  REFUSED('HTTP/1.2', `GET /healthz HTTP/1.2\r\n${H}\r\n`),
  REFUSED('HTTP/3.0', `GET /healthz HTTP/3.0\r\n${H}\r\n`),
  REFUSED('a method with a bad character', `G@T /healthz HTTP/1.1\r\n${H}\r\n`),
  REFUSED('a TLS ClientHello on the plain port', Buffer.from('160301002e010000', 'hex')),
  REFUSED('binary garbage', Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) & 255))),
  REFUSED('a raw non-ASCII path', `GET /v\u00e9rify HTTP/1.1\r\n${H}\r\n`),
  REFUSED('CONNECT', `CONNECT idp.example.com:443 HTTP/1.1\r\nHost: idp.example.com:443\r\n\r\n`),
  REFUSED('HTTP/1.1 without Host', `POST /verify HTTP/1.1\r\nConnection: close\r\n${JSON_BODY}`),
  REFUSED('HTTP/1.1 without Host, to an unknown path', `GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n`),
  ['HTTP/1.0 without Host (it has none to send)', `POST /verify HTTP/1.0\r\n${JSON_BODY}`, [200], ''],
  // Request targets: routed by their path, nothing fetched from the authority they name.
  ['an absolute-form target naming another host', `POST http://169.254.169.254/verify HTTP/1.1\r\n${H}${JSON_BODY}`, [200], ''],
  ['the asterisk form', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, [404], 'not_found'],
  ['a path of bad escapes', `GET /%zz%00%ff HTTP/1.1\r\n${H}\r\n`, [400], 'request_invalid'],
  ['a query of junk', `POST /verify?%%%=&&a[b][c]=1 HTTP/1.1\r\n${H}${JSON_BODY}`, [200], ''],
  ['a 40,000-byte request line', `GET /${'a'.repeat(40000)} HTTP/1.1\r\n${H}\r\n`, [431], 'request_headers_too_large'],
  // Bodies and headers the parser takes.
  ['a chunked body', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(body)}0\r\n\r\n`, [200], ''],
  ['a chunked body past bodyLimit', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('a'.repeat(0x100000))}0\r\n\r\n`, [413], 'request_too_large'],
  ['an Authorization trailer (never read)', `POST /verify HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(body)}0\r\nAuthorization: Bearer x\r\n\r\n`, [200], ''],
  ['3,000 headers', `GET /verify HTTP/1.1\r\n${H}${Array.from({ length: 3000 }, (_, i) => `X-${i}: v`).join('\r\n')}\r\n\r\n`, [405], 'method_not_allowed'],
  ['Expect: 100-continue', `POST /verify HTTP/1.1\r\n${H}Expect: 100-continue\r\n${JSON_BODY}`, [100, 200], ''],
  ['an Expect other than 100-continue (ignored)', `POST /verify HTTP/1.1\r\n${H}Expect: 200-ok\r\n${JSON_BODY}`, [200], ''],
  ['a WebSocket upgrade (an ordinary request)', `GET /verify HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`, [405], 'method_not_allowed'],
  // Pipelined: the first request's answer comes first, then the refusal of what follows it.
  ['a request, then garbage on the same connection', `POST /verify HTTP/1.1\r\nHost: svc\r\n${JSON_BODY}GARBAGE\r\n\r\n`, [200, 400], 'request_invalid'],
  ['two requests, then garbage', `POST /verify HTTP/1.1\r\nHost: svc\r\n${JSON_BODY}POST /verify HTTP/1.1\r\nHost: svc\r\n${JSON_BODY}GARBAGE\r\n\r\n`, [200, 200, 400], 'request_invalid'],
  ['a request, then a smuggling shape', `POST /verify HTTP/1.1\r\nHost: svc\r\n${JSON_BODY}POST /verify HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [200, 400], 'request_invalid'],
  ['an h2c upgrade (an ordinary request)', `POST /verify HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n${JSON_BODY}`, [200], '']
]

/** The status lines of everything the server sent, in order. */
const statuses = (res: RawResponse): number[] => [...res.raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))

/** The body and request id of the last answer (after a 100 Continue, the final one). */
function lastAnswer (res: RawResponse): { body: Record<string, unknown>, requestId: string | undefined } {
  const last = res.raw.slice(res.raw.lastIndexOf('HTTP/1.1 '))
  const end = last.indexOf('\r\n\r\n')
  const requestId = /\r\nx-request-id: ([^\r]*)\r\n/i.exec(last.slice(0, end + 2))?.[1]
  return { body: JSON.parse(last.slice(end + 4)) as Record<string, unknown>, requestId }
}

t.test('the main listener: each request gets exactly its answer', async (t) => {
  for (const [name, request, expected, code] of cases) {
    const res = await rawExchange(portOf(app), request)
    t.same(statuses(res), expected, `${name}: statuses`)
    const { body: answer, requestId } = lastAnswer(res)
    if (code === '') {
      t.equal(answer.subject, 'user-123', `${name}: the route's own answer`)
    } else {
      t.equal(answer.code, code, `${name}: code`)
      t.ok(Object.hasOwn(ERROR_CODES, code), `${name}: a documented code`)
      t.ok(typeof answer.requestId === 'string' && answer.requestId === requestId, `${name}: the request id, in the body and the header`)
    }
  }
})

t.test('pipelined: a 400 never takes the place of a valid request\'s answer', async (t) => {
  // Node closes the connection after the answer in progress when a later request cannot be parsed; an answer
  // queued behind it is then lost (HTTP lets the client retry it), but the 400 must not be read as that answer.
  const res = await rawExchange(portOf(ops), 'GET /healthz HTTP/1.1\r\nHost: svc\r\n\r\nGET /healthz HTTP/1.1\r\nHost: svc\r\nX-Slow: 1\r\n\r\nGARBAGE\r\n\r\n')
  const got = statuses(res)
  t.ok(JSON.stringify(got) === '[200]' || JSON.stringify(got) === '[200,200,400]', `statuses ${JSON.stringify(got)}: the first answer, then each in order or none`)
})

t.test('the ops listener answers CONNECT, Expect and a missing Host the same way', async (t) => {
  const noHost = await rawExchange(portOf(ops), 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')
  t.same([noHost.status, JSON.parse(noHost.body).code], [400, 'request_invalid'])
  t.match(noHost.raw, /\r\nx-request-id: [^\r]+\r\n/i, 'with a request id')
  const connect = await rawExchange(portOf(ops), 'CONNECT idp.example.com:443 HTTP/1.1\r\nHost: idp.example.com:443\r\n\r\n')
  t.same([connect.status, JSON.parse(connect.body).code], [400, 'request_invalid'])
  const expect = await rawExchange(portOf(ops), `GET /healthz HTTP/1.1\r\n${H}Expect: 200-ok\r\n\r\n`)
  t.same([expect.status, JSON.parse(expect.body).status], [200, 'ok'])
})

t.test('afterwards: nothing was fetched, and both listeners still answer', async (t) => {
  t.ok(ownConnections > cases.length, 'the hook sees connections')
  t.same(outbound, [], 'no outbound connection')
  const ok = await rawExchange(portOf(app), `POST /verify HTTP/1.1\r\n${H}${JSON_BODY}`)
  t.same([ok.status, JSON.parse(ok.body).subject], [200, 'user-123'])
  const health = await rawExchange(portOf(ops), `GET /healthz HTTP/1.1\r\n${H}\r\n`)
  t.equal(health.status, 200)
})

t.test('a body left unread after the answer closes the connection, rather than being read to its end', async (t) => {
  for (const [name, head] of [
    ['an endless chunked body of the wrong type', 'POST /verify HTTP/1.1\r\nHost: svc\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['a huge declared body to a route that takes none', `GET /openapi.json HTTP/1.1\r\nHost: svc\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`]
  ] as const) {
    const socket = net.connect(portOf(app), '127.0.0.1')
    let answer = ''
    let sent = 0
    const started = Date.now()
    socket.on('connect', () => socket.write(head))
    socket.on('data', (d) => { answer += String(d) })
    socket.on('error', () => {})
    // Keep sending, as an attacker would, until the server closes (or 10 s, which fails the test).
    const feed = setInterval(() => {
      if (socket.destroyed || !socket.writable) return
      const piece = 'a'.repeat(16 * 1024)
      socket.write(head.includes('chunked') ? `${piece.length.toString(16)}\r\n${piece}\r\n` : piece)
      sent += piece.length
    }, 5)
    await new Promise<void>((resolve) => { socket.on('close', () => resolve()); setTimeout(() => { socket.destroy(); resolve() }, 10_000) })
    clearInterval(feed)
    t.match(answer, /^HTTP\/1\.1 (415|200) /, `${name}: answered (${answer.slice(0, 40)})`)
    t.ok(Date.now() - started < 5000, `${name}: closed after ${Date.now() - started} ms (${Math.round(sent / 1024)} KiB sent)`)
  }
})
