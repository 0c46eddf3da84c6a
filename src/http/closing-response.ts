/**
 * The listeners' response class: an answer given before the request's body has been read to its end (an error,
 * a 404, forward-auth, a route that takes no body) says Connection: close, and Node closes the connection once it
 * is sent. Nothing more could be read on that connection until the body ends: Node would go on reading, and
 * dropping, whatever the client keeps sending (a chunked body for as long as requestTimeoutMs, at a core's worth of
 * CPU), a client that stalled would get a 408 after the answer, and one told keep-alive would send its next request
 * into a closing socket.
 *
 * A subclass given to http.createServer (ServerResponse option), rather than a hook: the check is one property read
 * when the head is written, and Fastify's fast path without onSend hooks stays (an onSend hook cost every answer
 * about 3 µs of CPU in the benchmark). inject() uses its own response and is not affected.
 */
import { ServerResponse } from 'node:http'

export class ClosingServerResponse extends ServerResponse {}

const writeHead = ServerResponse.prototype.writeHead
// Node writes every head through writeHead (an implicit one too), and decides Connection from shouldKeepAlive there.
ClosingServerResponse.prototype.writeHead = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
  if (this.req.complete === false) this.shouldKeepAlive = false
  return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args)
} as typeof writeHead

/** Options for http.createServer or https.createServer that make its responses ClosingServerResponse. */
export const CLOSING_RESPONSES = { ServerResponse: ClosingServerResponse as typeof ServerResponse }
