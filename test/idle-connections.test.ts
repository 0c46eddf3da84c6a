/**
 * A kept-alive connection that sends bytes which are no request (blank lines, which Node's parser skips between
 * requests without starting a message) is closed keepAliveTimeoutMs + headersTimeoutMs after its last answer
 * (src/http/idle-connections.ts). Node's keep-alive timer restarts at every byte received: such a client held its
 * connection for good, and a few of them every slot of server.maxConnections. A connection in use stays open.
 */
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'
import { makeTestPki } from './helpers/certs.js'
import { configFor } from './helpers/config.js'
import { listening, portOf } from './helpers/listening-app.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]
// The bound: max(keepAlive, connection timeout) + headers timeout = 2 s, looked at every second.
const server = { keepAliveTimeoutMs: 1000, connectionTimeoutMs: 1000, headersTimeoutMs: 1000, requestTimeoutMs: 1000 }
const HEALTHZ = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'

function open (port: number, ca?: Buffer): Promise<{ socket: Socket, received: () => string, closed: Promise<number> }> {
  return new Promise((resolve) => {
    let text = ''
    const ready = (): void => {
      const opened = Date.now()
      resolve({ socket, received: () => text, closed: new Promise((done) => socket.once('close', () => done(Date.now() - opened))) })
    }
    const socket: Socket = ca === undefined ? connect(port, '127.0.0.1', ready) : connectTls({ port, host: '127.0.0.1', ca }, ready)
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
    socket.on('error', () => {})
  })
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The app on a plain or a TLS listener, and a connection to it. */
async function appAndConnection (t: Test, transport: 'plain' | 'TLS'): ReturnType<typeof open> {
  const pki = transport === 'TLS' ? makeTestPki() : undefined
  if (pki !== undefined) t.teardown(() => { pki.remove() })
  const tls = pki === undefined ? {} : { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } }
  const app = await listening(t, configFor(issuers, { server: { ...server, ...tls } }))
  return await open(portOf(app), pki?.pem.ca)
}

for (const transport of ['plain', 'TLS'] as const) {
  t.test(`${transport}: blank lines after a request do not keep the connection open`, async (t) => {
    const { socket, received, closed } = await appAndConnection(t, transport)
    socket.write(HEALTHZ)
    let stillOpen = true
    void closed.then(() => { stillOpen = false })
    // A blank line every 300 ms: more often than the keep-alive timeout, which each one restarted.
    for (let i = 0; i < 40 && stillOpen; i++) {
      socket.write('\r\n')
      await sleep(300)
    }
    t.notOk(stillOpen, 'closed by the service')
    t.ok(await closed < 8000, 'within the bound and the sweep')
    t.match(received(), /^HTTP\/1\.1 200 /, 'the request was answered')
    socket.destroy()
  })

  t.test(`${transport}: a connection in use stays open past the bound, and one idle after it is closed`, async (t) => {
    const { socket, received, closed } = await appAndConnection(t, transport)
    let stillOpen = true
    void closed.then(() => { stillOpen = false })
    for (let i = 0; i < 10; i++) {
      socket.write(HEALTHZ)
      await sleep(400)
    }
    t.ok(stillOpen, 'open after 4 s of a request every 400 ms')
    t.equal(received().match(/HTTP\/1\.1 200 /g)?.length, 10, 'every request answered')
    t.ok(await closed > 0, 'then closed once idle')
    socket.destroy()
  })
}
