/**
 * A bound on a connection between its requests that bytes which are no request do not reset. Node's keep-alive
 * timer (server.keepAliveTimeoutMs) is the socket's idle timer: any byte received restarts it, and Node's parser
 * skips a blank line between requests without starting a message, so neither headersTimeoutMs nor requestTimeoutMs
 * runs. A client that sent "\r\n" a little more often than keepAliveTimeoutMs after one request held its connection
 * for good, in no log or metric; a few such clients held every slot of server.maxConnections.
 *
 * Once a second, each connection that has no answer in progress and has written nothing since the last look counts
 * as idle; one idle for longer than keepAliveTimeoutMs (or connectionTimeoutMs, if longer) + headersTimeoutMs (the
 * wait for a next request, then for its headers: a real next request is past headersTimeoutMs before that) is
 * closed. No work per request: the sweep reads each socket's bytesWritten (an answer writes; a blank line is never
 * answered) and its answer in progress (never cut here: while one is awaited, Node's socket timeout,
 * connectionTimeoutMs, is the bound, as before).
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'

const SWEEP_MS = 1000

interface Seen { written: number, since: number }

export function closeIdleConnections (server: Server): void {
  const seen = new Map<Socket, Seen>()
  const track = (socket: Socket): void => {
    seen.set(socket, { written: socket.bytesWritten, since: Date.now() })
    socket.once('close', () => seen.delete(socket))
  }
  // The socket the requests arrive on: over TLS, the TLS socket (the one holding the answer in progress).
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', track)
  const sweep = setInterval(() => {
    const now = Date.now()
    // A new connection's first request is Node's connection timeout's (server.timeout) to wait for.
    const boundMs = Math.max(server.keepAliveTimeout, server.timeout) + server.headersTimeout
    for (const [socket, last] of seen) {
      const written = socket.bytesWritten
      const answering = (socket as Socket & { _httpMessage?: unknown })._httpMessage
      if (written !== last.written || (answering !== null && answering !== undefined)) {
        last.written = written
        last.since = now
      } else if (now - last.since > boundMs) {
        socket.destroy()
      }
    }
  }, SWEEP_MS)
  sweep.unref()
  server.once('close', () => { clearInterval(sweep) })
}
