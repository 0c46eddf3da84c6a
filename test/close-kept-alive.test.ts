/**
 * Closing with a kept-alive connection whose request is still running (src/http/close-kept-alive.ts): the
 * answer says `Connection: close` and its connection ends with it, so the close finishes with the last
 * answer instead of waiting for the connection's keep-alive timeout (72 s by default, past the grace period).
 * Real listener, a keep-alive client, a request held by a slow JWKS refresh; HTTP and HTTPS.
 */
import t from 'tap'
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Server, Socket } from 'node:net'
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

/** Polls `condition` every 10 ms, at most 300 times; throws saying what never happened. */
async function until (what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return
    await sleep(10)
  }
  throw new Error(`gave up waiting for ${what} (300 tries, 10 ms apart)`)
}

/** The connections a listener still holds. */
async function connections (server: Server): Promise<number> {
  return await new Promise((resolve, reject) => {
    server.getConnections((err, count) => { if (err !== null && err !== undefined) reject(err); else resolve(count) })
  })
}

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
    await until('the JWKS refresh to reach the IdP', () => idp.requests() > 0)
    void app.close().then(() => { closed = true })
    const answer = await inFlight
    t.equal(answer.status, 401, 'the request in flight is answered (key_not_found after the refresh)')
    t.equal(answer.connection, 'close', 'and told that its connection ends')
    let socketClosed = false
    void answer.socketClosed.then(() => { socketClosed = true })
    await until('the client\'s connection to close', () => socketClosed)
    // The close ends with the last answer, not at the keep-alive timeout (72 s) or a grace period: the
    // server holds no connection once it is sent, and nothing else keeps the close waiting.
    await until('the server to let go of the connection', async () => await connections(app.server) === 0)
    await until('the close to finish', () => closed)
    t.ok(closed, 'the close finished once the last answer was sent')
  })
}
