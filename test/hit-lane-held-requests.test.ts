/**
 * The hit lane (src/http/hit-lane.ts) holds a request while its body arrives and only then hands it to Fastify:
 * what Fastify does at routing (its stop-time 503, its request timer) must not then differ from what it did when
 * the route received the request as it arrived.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]

type Line = Record<string, unknown>

async function started (t: Test, extra: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, port: number, lines: Line[], closed: () => boolean }> {
  const lines: Line[] = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Line)
      cb()
    }
  })
  const app = await buildApp(configFor(issuers, extra), { loggerInstance: pino(loggerOptions('info'), stream) })
  let closed = false
  app.addHook('onClose', async () => { closed = true })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { if (!closed) await app.close() })
  return { app, port: (app.server.address() as AddressInfo).port, lines, closed: () => closed }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A request written in two parts, `pauseMs` apart (the second part after `between` has run); resolves to what came back. */
async function inTwoParts (port: number, first: string, second: string, pauseMs: number, between: () => void = () => {}): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.setNoDelay(true)
      socket.write(first)
      setTimeout(() => {
        between()
        setTimeout(() => { socket.write(second) }, 50)
      }, pauseMs)
    })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no answer')) }, 5000)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString()) })
  })
}

const head = (body: string, extra = ''): string =>
  `POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extra}Connection: close\r\n\r\n`

t.test('a request in flight when the stop begins is finished by the route, not refused with Fastify\'s 503', async (t) => {
  for (const tokenCache of [{ enabled: false }, { enabled: true }]) {
    // Without a token cache there is no lane: the route's answer is the reference.
    await t.test(`tokenCache.enabled: ${String(tokenCache.enabled)}`, async (t) => {
      const { app, port } = await started(t, { tokenCache })
      const body = JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud', { sub: 'in-flight' })) })
      let closing: Promise<void> | undefined
      const raw = await inTwoParts(port, head(body) + body.slice(0, 40), body.slice(40), 50, () => { closing = app.close() })
      await closing
      t.match(raw, /^HTTP\/1\.1 200 /, 'the request that arrived before the stop is answered')
      t.match(raw, /"subject":"in-flight"/)
      t.match(raw, /\r\nconnection: close\r\n/i, 'and its connection ends with it')
    })
  }
})

t.test('a new token\'s request line and metrics count from its arrival, as the route counted before the lane', async (t) => {
  for (const tokenCache of [{ enabled: false }, { enabled: true }]) {
    await t.test(`tokenCache.enabled: ${String(tokenCache.enabled)}`, async (t) => {
      const { port, lines } = await started(t, { tokenCache })
      const body = JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud', { sub: 'slow' })) })
      const raw = await inTwoParts(port, head(body, 'X-Request-Id: slow-upload\r\n') + body.slice(0, 40), body.slice(40), 400)
      t.match(raw, /^HTTP\/1\.1 200 /)
      const line = lines.find((l) => l.reqId === 'slow-upload')
      t.ok(typeof line?.durationMs === 'number' && line.durationMs >= 400, `the body's 450 ms are in the request's duration (${String(line?.durationMs)} ms)`)
    })
  }
})

t.test('a request admitted as it arrived is not shed because load shedding began while its body came', async (t) => {
  for (const tokenCache of [{ enabled: false }, { enabled: true }]) {
    await t.test(`tokenCache.enabled: ${String(tokenCache.enabled)}`, async (t) => {
      let healthy = true
      const app = await buildApp(configFor(issuers, { tokenCache, loadShedding: { sampleIntervalMs: 10, maxEventLoopDelayMs: 0 } }), { pressureHealthCheck: async () => healthy })
      await app.listen({ host: '127.0.0.1', port: 0 })
      t.teardown(async () => { await app.close() })
      const port = (app.server.address() as AddressInfo).port
      // under-pressure counts its health check failed until the first one has run.
      await sleep(100)
      const body = JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud', { sub: 'admitted' })) })
      const raw = await inTwoParts(port, head(body) + body.slice(0, 40), body.slice(40), 100, () => { healthy = false })
      t.match(raw, /^HTTP\/1\.1 200 /, 'answered: it was admitted when it arrived')
      await sleep(50)
      const after = await inTwoParts(port, head(body) + body.slice(0, 40), body.slice(40), 20)
      t.match(after, /^HTTP\/1\.1 503 /, 'a request that arrives under pressure is shed')
    })
  }
})

t.test('while the stop runs, requests are answered but /readyz says not ready', async (t) => {
  const { app, port } = await started(t)
  // A request in flight holds the stop open while /readyz is asked on another connection opened before it.
  const body = JSON.stringify({ token: mint(key, idTokenClaims(ISS, 'aud', { sub: 'holding' })) })
  const ready = head('').replace('POST /verify', 'GET /readyz').replace('Content-Type: application/json\r\nContent-Length: 0\r\n', '')
  const probe = net.connect(port, '127.0.0.1')
  await new Promise((resolve) => probe.once('connect', resolve))
  const answers: string[] = []
  probe.on('data', (c: Buffer) => answers.push(c.toString()))
  const held = inTwoParts(port, head(body) + body.slice(0, 40), body.slice(40), 150, () => { probe.write(ready) })
  await sleep(50)
  const closing = app.close()
  const raw = await held
  await closing
  t.match(raw, /^HTTP\/1\.1 200 /, 'the request in flight is finished')
  t.match(answers.join(''), /^HTTP\/1\.1 503 [^]*"ready":false/, '/readyz during the stop: 503, not ready')
  probe.destroy()
})
