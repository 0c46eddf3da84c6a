/**
 * A small upstream app for proxy tests: answers every request with 200 and JSON of what it received
 * (method, url, headers, body), and remembers the requests. Listens on 127.0.0.1, port 0.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface EchoedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

export interface EchoServer {
  port: number
  received: EchoedRequest[]
  close: () => Promise<void>
}

/** Bodies beyond this are cut: the tests only check that a body arrived. */
const MAX_BODY = 65536

export async function startEchoServer (): Promise<EchoServer> {
  const received: EchoedRequest[] = []
  // Headers up to 64 KiB (Node's default is 16): forward-auth tests send an app identity headers that large.
  const server = createServer({ maxHeaderSize: 65536 }, (req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { if (body.length < MAX_BODY) body += chunk })
    req.on('end', () => {
      const echoed = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }
      received.push(echoed)
      const json = JSON.stringify(echoed)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
      res.end(json)
    })
  })
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
