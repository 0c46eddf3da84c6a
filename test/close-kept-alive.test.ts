/**
 * Closing with a kept-alive connection whose request is still running (src/http/close-kept-alive.ts): the
 * answer says `Connection: close` and its connection ends with it, so the close finishes with the last
 * answer instead of waiting for the connection's keep-alive timeout (72 s by default, past the grace period).
 * Real listener, a keep-alive client, a request held by a slow JWKS refresh; HTTP and HTTPS.
 */
import t from 'tap'
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp } from '../src/app.js'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://close-kept-alive.example.com'
const key = makeKey('ES256')
const stranger = makeKey('ES256') // its kid is not in the JWKS: its check waits for a refresh

interface Answer { status: number, connection: string | undefined, socketClosed: Promise<void> }

for (const scheme of ['http', 'https'] as const) {
  t.test(`${scheme}: an answer in flight when the close begins ends its kept-alive connection`, async (t) => {
    const idp = await startJwksServer({ json: jwksOf(key) })
    t.teardown(() => idp.close())
    const pki = scheme === 'https' ? makeTestPki() : undefined
    t.teardown(() => pki?.remove())
    const app = await buildApp(configFor([{ id: 'c', issuer: ISS, audiences: ['aud'], jwksUri: idp.jwksUrl }], {
      server: { host: '127.0.0.1', port: 0, ...(pki !== undefined ? { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } } : {}) },
      jwks: { unknownKidCooldownSeconds: 0 }
    }))
    let closed = false
    t.teardown(async () => { if (!closed) await app.close() })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = app.server.address() as { port: number }
    // Warm: the keys are loaded, and the client's connection is open and idle in its pool.
    const agent = scheme === 'https' ? new HttpsAgent({ keepAlive: true, ca: pki?.pem.ca }) : new HttpAgent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const post = async (token: string): Promise<Answer> => await new Promise((resolve, reject) => {
      const request = scheme === 'https' ? httpsRequest : httpRequest
      const req = request({ host: '127.0.0.1', port, path: '/verify', method: 'POST', agent, headers: { authorization: `Bearer ${token}` } }, (res: IncomingMessage) => {
        const socket = res.socket as Socket
        const socketClosed = new Promise<void>((resolve) => { if (socket.destroyed) resolve(); else socket.once('close', () => resolve()) })
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, socketClosed }))
      })
      req.on('error', reject)
      req.end()
    })
    const warm = await post(mint(key, idTokenClaims(ISS, 'aud')))
    t.equal(warm.status, 200)
    t.equal(warm.connection, 'keep-alive', 'before the close, connections are kept alive')

    idp.set({ json: jwksOf(key), delayMs: 1500 })
    idp.resetCounts()
    const inFlight = post(mint(stranger, idTokenClaims(ISS, 'aud')))
    while (idp.requests() === 0) await sleep(10)
    const closing = app.close().then(() => { closed = true })
    const answer = await inFlight
    t.equal(answer.status, 401, 'the request in flight is answered (key_not_found after the refresh)')
    t.equal(answer.connection, 'close', 'and told that its connection ends')
    await answer.socketClosed
    // The close ends with the last answer: well before the keep-alive timeout (72 s) or any grace period.
    const timer = new AbortController()
    const raced = await Promise.race([closing.then(() => 'closed'), sleep(5000, 'still open', { signal: timer.signal }).catch(() => 'closed')])
    timer.abort()
    t.equal(raced, 'closed', 'the close finished once the last answer was sent')
  })
}
