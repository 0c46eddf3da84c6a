/**
 * The lane (src/http/hit-lane.ts) verifies a new token of its shape itself and answers it when it verifies: the
 * verification is asynchronous, so what happens meanwhile must be what happens to a request the route is verifying.
 * Here the keys are held back by the IdP (test/helpers/jwks-server.ts `hold`), so that each test acts while the
 * lane's verification waits: a reload, a stop, a client that goes away, a provider that fails.
 */
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { reloadConfiguration } from '../src/reload.js'
import { configFor } from './helpers/config.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { waitFor } from './helpers/wait-for.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')

interface Held {
  app: FastifyInstance
  port: number
  idp: JwksServer
  /** Lets the IdP answer the key fetches it holds. */
  release: () => void
  /** Requests to POST /verify that Fastify answered so far. */
  routed: () => number
}

/** An app whose issuer's keys come from an IdP that holds its answer until release(); `extra` configures the app. */
async function heldKeys (t: Test, extra: Record<string, unknown> = {}, served: Parameters<JwksServer['set']>[0] = { json: jwksOf(key) }): Promise<Held> {
  let release = (): void => {}
  const hold = new Promise<void>((resolve) => { release = resolve })
  const idp = await startJwksServer({ ...served, hold })
  t.teardown(async () => { release(); await idp.close() })
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwksUri: idp.jwksUrl }], extra))
  let routed = 0
  app.addHook('onResponse', (request, _reply, done) => {
    if (request.url === '/verify') routed++
    done()
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { app, port: (app.server.address() as AddressInfo).port, idp, release, routed: () => routed }
}

interface Answer { status: number, headers: http.IncomingHttpHeaders, body: string }

async function post (port: number, token: string, agent: http.Agent | false = false): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/verify', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }) })
    })
    req.on('error', reject)
    req.end(JSON.stringify({ token }))
  })
}

async function metricsOf (app: FastifyInstance): Promise<ReturnType<typeof parseMetrics>> {
  return parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
}

/** The same issuer with its keys given inline: a reload to it builds a new Verifier without waiting for any IdP. */
const inlineKeys = configFor([{ id: 'main', issuer: ISS, audiences: ['aud', 'aud2'], jwks: jwksOf(key) }])

t.test('a reload while the lane verifies: the replaced Verifier finishes the verification and is retired after it', async (t) => {
  const held = await heldKeys(t)
  const answer = post(held.port, mint(key, idTokenClaims(ISS, 'aud', { sub: 'before-reload' })))
  await waitFor('the key fetch has begun', () => held.idp.requests() >= 1)
  t.equal((await reloadConfiguration(held.app, () => inlineKeys)).outcome, 'applied')
  t.equal(held.app.verifierSlot.retiring, 1, 'the replaced Verifier is leased by the lane\'s verification')
  held.release()
  const answered = await answer
  t.equal(answered.status, 200)
  t.match(JSON.parse(answered.body), { subject: 'before-reload' })
  t.equal(held.routed(), 0, 'answered by the lane')
  t.equal(held.app.verifierSlot.retiring, 0, 'the lease was given back with the answer: the replaced Verifier is closed')
})

t.test('a client that goes away while the lane verifies gets nothing; the lease is given back and nothing is counted as answered', async (t) => {
  const held = await heldKeys(t)
  const body = JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud', { sub: 'gone' })) })
  const socket = net.connect(held.port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  await waitFor('the key fetch has begun', () => held.idp.requests() >= 1)
  t.equal((await reloadConfiguration(held.app, () => inlineKeys)).outcome, 'applied')
  socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(held.app.verifierSlot.retiring, 1, 'leased until the verification ends')
  held.release()
  await waitFor('the verification ended', async () => valueOf(await metricsOf(held.app), 'oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' }) === 1)
  t.equal(held.app.verifierSlot.retiring, 0, 'the lease was given back')
  const samples = await metricsOf(held.app)
  t.equal(valueOf(samples, 'oidc_verifier_http_requests_total', { route: '/verify', method: 'POST', status: '200' }), undefined, 'no answer counted')
  t.equal(held.routed(), 0, 'nor given to the route')
  t.equal((await post(held.port, mint(key, idTokenClaims(ISS, 'aud')))).status, 200, 'the service answers on')
})

t.test('a stop that begins while the lane verifies: the request is answered, its kept connection closed, and the stop completes', async (t) => {
  const held = await heldKeys(t)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const answer = post(held.port, mint(key, idTokenClaims(ISS, 'aud', { sub: 'in-flight' })), agent)
  await waitFor('the key fetch has begun', () => held.idp.requests() >= 1)
  const closing = held.app.close()
  await new Promise((resolve) => setTimeout(resolve, 50))
  held.release()
  const answered = await answer
  await closing
  t.equal(answered.status, 200)
  t.match(JSON.parse(answered.body), { subject: 'in-flight' })
  t.equal(answered.headers.connection, 'close', 'the answer ends its connection (Node closes kept connections once the server stops listening)')
})

t.test('a provider that fails while the lane verifies: the route\'s answer, the token verified once', async (t) => {
  const held = await heldKeys(t, {}, { status: 500, json: { error: 'down' } })
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const answer = post(held.port, token)
  await waitFor('the key fetch has begun', () => held.idp.requests() >= 1)
  held.release()
  const answered = await answer
  t.equal(held.routed(), 1, 'given to the route with the lane\'s verdict')
  const expected = await held.app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(answered.status, expected.statusCode)
  t.equal(answered.status, 503)
  const { requestId: _a, ...fields } = JSON.parse(answered.body) as Record<string, unknown>
  const { requestId: _b, ...expectedFields } = JSON.parse(expected.body) as Record<string, unknown>
  t.same(fields, expectedFields, 'the route\'s error, field for field')
  t.equal(fields.code, 'keys_unavailable')
  t.equal(answered.headers['retry-after'], expected.headers['retry-after'], 'with its Retry-After')
  const samples = await metricsOf(held.app)
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'main', result: 'keys_unavailable' }), 2, 'two requests, two verifications: the lane\'s one was not repeated by the route')
})

t.test('a hit pipelined behind a new token the lane verifies: counted when its answer is written, not at all if the client goes first', async (t) => {
  const held = async (): Promise<{ idp: JwksServer, release: () => void }> => {
    let release = (): void => {}
    const idp = await startJwksServer({ json: jwksOf(key), hold: new Promise<void>((resolve) => { release = resolve }) })
    t.teardown(async () => { release(); await idp.close() })
    return { idp, release }
  }
  const [first, second] = [await held(), await held()]
  const fast = makeKey('ES256')
  const FAST = 'https://fast.example.com'
  const SECOND = 'https://second.example.com'
  const app = await buildApp(configFor([
    { id: 'main', issuer: ISS, audiences: ['aud'], jwksUri: first.idp.jwksUrl },
    { id: 'second', issuer: SECOND, audiences: ['aud'], jwksUri: second.idp.jwksUrl },
    { id: 'fast', issuer: FAST, audiences: ['aud'], jwks: jwksOf(fast) }
  ]))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const port = (app.server.address() as AddressInfo).port
  const hit = mint(fast, idTokenClaims(FAST, 'aud'))
  for (let i = 0; i < 2; i++) t.equal((await post(port, hit)).status, 200)
  const answered200 = async (): Promise<number> => (await metricsOf(app))
    .filter((s) => s.name === 'oidc_verifier_http_requests_total' && s.labels.route === '/verify' && s.labels.status === '200')
    .reduce((n, s) => n + s.value, 0)
  t.equal(await answered200(), 2)
  const request = (token: string): string => { const body = JSON.stringify({ token }); return `POST /verify HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` }
  const pipelined = async (issuer: string, idp: JwksServer): Promise<net.Socket> => {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
    // The new token waits for its keys; the hit behind it is answered at once, into the queue behind the first answer.
    socket.write(request(mint(key, idTokenClaims(issuer, 'aud'))) + request(hit))
    await waitFor('the key fetch has begun', () => idp.requests() >= 1)
    await new Promise((resolve) => setTimeout(resolve, 100))
    return socket
  }
  const kept = await pipelined(ISS, first.idp)
  t.equal(await answered200(), 2, 'the hit\'s answer is queued, not written: not counted yet')
  first.release()
  await waitFor('both answered', async () => await answered200() === 4)
  kept.destroy()
  const gone = await pipelined(SECOND, second.idp)
  t.equal(await answered200(), 4)
  gone.resetAndDestroy()
  second.release()
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(await answered200(), 4, 'the client went before either answer was written: neither counted')
})
