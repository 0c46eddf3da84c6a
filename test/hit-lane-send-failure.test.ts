/**
 * The lane's answer to a new token fails before anything is sent (src/http/hit-lane.ts, verifyNew): the request is
 * given to the route as if the lane had not taken it, with what was thrown as the verdict, the body it read put
 * back, the Verifier's lease given back, and the failure logged. Nothing in the service throws there today (the
 * request id generator and the route's serializer do not); the lane must still never lose a request to it.
 * A plain server with the lane in front of a route written here: each part the lane is given is one it calls.
 */
import t, { type Test } from 'tap'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hitLane, laneVerdict } from '../src/http/hit-lane.js'
import { IdentityBodies } from '../src/http/identity-bodies.js'
import type { VerifiedIdentity } from '../src/core/identity.js'
import { ClosingServerResponse } from '../src/http/closing-response.js'
import { captureLog } from './helpers/log-capture.js'
import { rawExchange } from './helpers/raw-http.js'

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln'

interface Parts {
  port: number
  /** What the route was given: the body it read and the lane's verdict on the token it found. */
  routed: Array<{ body: string, verdict: unknown }>
  leases: () => { taken: number, given: number }
  log: ReturnType<typeof captureLog>
}

async function laneBeforeRoute (t: Test, breaks: { serializer?: boolean, requestId?: boolean }): Promise<Parts> {
  const routed: Parts['routed'] = []
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    // As Fastify's body reader does: a body the lane read and gave back is paused.
    req.resume()
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      const token = body === '' ? (req.headers.authorization ?? '').slice('Bearer '.length) : (JSON.parse(body) as { token: string }).token
      const verdict = laneVerdict(res, token)
      routed.push({ body, verdict: verdict === undefined ? undefined : (verdict.error as Error).message })
      res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'internal', from: 'route' }))
    })
  }
  let taken = 0
  let given = 0
  const identity = { issuer: { id: 'main' }, subject: 'a' } as unknown as VerifiedIdentity
  const verifier = {
    tokenKey: () => 'key',
    cachedIdentity: () => undefined,
    verifyNow: async () => identity
  }
  const log = captureLog()
  const server = http.createServer({ ServerResponse: ClosingServerResponse })
  server.on('request', hitLane(route, {
    verifiers: {
      current: verifier,
      lease: () => { taken++; return { verifier } },
      release: () => { given++ }
    } as never,
    open: () => true,
    caller: () => null,
    requestId: () => { if (breaks.requestId === true) throw new Error('request ids broke'); return 'req-1' },
    logger: log.logger,
    metrics: undefined,
    bodies: new IdentityBodies(() => { if (breaks.serializer === true) throw new Error('the serializer broke'); return '{}' }),
    maxBodyBytes: 1 << 20
  }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  return { port: (server.address() as AddressInfo).port, routed, leases: () => ({ taken, given }), log }
}

const bodyRequest = (body: string): string =>
  `POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`

t.test('a body of the lane\'s shape whose answer cannot be rendered: the route gets the body back and the verdict', async (t) => {
  const parts = await laneBeforeRoute(t, { serializer: true })
  const body = JSON.stringify({ token: TOKEN })
  const answer = await rawExchange(parts.port, bodyRequest(body))
  t.equal(answer.status, 500)
  t.same(JSON.parse(answer.body), { code: 'internal', from: 'route' }, 'the route answered')
  t.same(parts.routed, [{ body, verdict: 'the serializer broke' }], 'with the whole body, and what the lane met')
  t.same(parts.leases(), { taken: 1, given: 1 }, 'the lease given back')
  t.match(parts.log.lines(), [{ level: 50, msg: 'unexpected error', err: { message: 'the serializer broke' } }])
})

t.test('a Bearer token whose answer fails before its head (the request id): the route answers it', async (t) => {
  const parts = await laneBeforeRoute(t, { requestId: true })
  const answer = await rawExchange(parts.port, `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`)
  t.equal(answer.status, 500)
  t.same(parts.routed, [{ body: '', verdict: 'request ids broke' }])
  t.same(parts.leases(), { taken: 1, given: 1 })
  t.match(parts.log.lines(), [{ level: 50, msg: 'unexpected error', err: { message: 'request ids broke' } }])
})

t.test('the same parts unbroken: the lane answers and the route sees nothing', async (t) => {
  const parts = await laneBeforeRoute(t, {})
  const answer = await rawExchange(parts.port, bodyRequest(JSON.stringify({ token: TOKEN })))
  t.equal(answer.status, 200)
  t.equal(answer.body, '{}')
  t.same(parts.routed, [])
  t.same(parts.leases(), { taken: 1, given: 1 })
})
