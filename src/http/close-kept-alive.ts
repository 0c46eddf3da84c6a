/**
 * Keep-alive connections end with their last answer once the service is stopping.
 *
 * On close, Node's server stops accepting and Fastify closes the connections that are idle at that moment;
 * a connection whose request is still running stays open after its answer, idle, until its keep-alive
 * timeout (`server.keepAliveTimeoutMs`, 72 s by default) ends it. That held the close past the grace period
 * (`server.shutdownGraceSeconds`), and the process then exited 1 at the grace limit instead of 0 when the
 * last request was done; and a pooled client that reused the connection meanwhile got a 503.
 *
 * So when the close begins, every answer not yet started says `Connection: close`, and Node ends its
 * connection as soon as it is sent; the client opens a new one, to another replica. An answer already being
 * written cannot change its headers: for those the keep-alive timeout drops to the least Node allows, and
 * the connection ends soon after the answer (Node 20 adds a fixed second to the timeout; Node 24's
 * `keepAliveTimeoutBuffer` is set to 0 too). A client that pipelines (sends its next requests before the
 * answers) loses the requests queued behind the answer that closes the connection; HTTP lets a client retry
 * those, and common clients (undici, Node's agent, browsers) do not pipeline.
 *
 * The connections are tracked per connection, not per request: nothing is added to a request's path.
 */
import type { Socket } from 'node:net'
import { ServerResponse } from 'node:http'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'

/** Milliseconds; Node treats 0 as "no timeout", so the least that ends a connection is 1. */
export const CLOSING_KEEP_ALIVE_MS = 1

export function closeKeptAliveOnClose (fastify: FastifyInstance): void {
  const server = fastify.server
  const open = new Set<Socket>()
  // The socket HTTP reads and writes: the TLS one on an HTTPS listener, the TCP one otherwise.
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
  })
  fastify.addHook('preClose', (done) => {
    server.keepAliveTimeout = CLOSING_KEEP_ALIVE_MS
    // Node 24 (not in Node 20's typings): the margin it adds to the timeout, 1 s by default.
    if ('keepAliveTimeoutBuffer' in server) (server as { keepAliveTimeoutBuffer: number }).keepAliveTimeoutBuffer = 0
    for (const socket of open) {
      // Node keeps the answer in progress on its socket (a long-standing field, not in Node's typings).
      const answer = (socket as Socket & { _httpMessage?: unknown })._httpMessage
      if (answer instanceof ServerResponse && !answer.headersSent) answer.setHeader('connection', 'close')
    }
    done()
  })
}
