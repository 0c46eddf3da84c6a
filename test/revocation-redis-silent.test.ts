/**
 * A Redis that accepts TCP connections but never answers, with a commandTimeoutMs (20 s) whose start-up wait
 * would pass Fastify's 10 s onReady timeout: the service must still start, not ready and failing closed
 * (503 revocations_unavailable), as with a Redis that refuses connections. No redis-server needed.
 */
import t from 'tap'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')

t.test('a silent Redis: ready() resolves in bounded time, /readyz and /verify 503', async (t) => {
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => {
    // Reads, never writes.
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => { sockets.delete(socket) })
  })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  const address = silent.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => silent.close(resolve))
  })

  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }], {
    revocation: { enabled: true, store: 'redis', redis: { url: `redis://127.0.0.1:${address.port}`, keyPrefix: `silent-test-${process.pid}:`, maxStalenessSeconds: 60, commandTimeoutMs: 20_000 } }
  }))
  t.teardown(async () => {
    // What Redis would answer to QUIT never comes: end the connections, so that close() does not wait for it.
    for (const socket of sockets) socket.destroy()
    await app.close()
  })
  // Fastify rejects ready() when an onReady hook runs past its plugin timeout (10 s): resolving is the check.
  await app.ready()
  t.ok(sockets.size > 0, 'the store did connect to the silent listener')

  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, 'not ready')
  t.match(ready.json(), { ready: false, revocations: { store: 'redis', current: false } })
  const verified = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(ISS, 'aud')) } })
  t.equal(verified.statusCode, 503)
  t.match(verified.json(), { code: 'revocations_unavailable' })
})
