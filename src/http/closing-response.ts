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

/**
 * Set on a request by a reader that has taken every byte its Content-Length announced (src/http/hit-lane.ts):
 * Node marks the request complete only in a later callback of its parser, after the reader's turn, yet nothing
 * more of this request can arrive, so the connection may be kept.
 */
export const BODY_TAKEN: unique symbol = Symbol('body taken')

/**
 * Whether bytes of the request's body may still be on their way. Node marks even a request without a body complete
 * only in the parser's next callback, after the one that handed the request over: an answer written at once (a
 * cache hit of a Bearer token, /readyz) finds it not complete, and must not close the connection for that.
 */
function bodyMayFollow (req: ServerResponse['req']): boolean {
  if (req.complete || (req as { [BODY_TAKEN]?: true })[BODY_TAKEN] === true) return false
  const length = req.headers['content-length']
  // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 §6.3); Node checked both are well formed.
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0)
}

const writeHead = ServerResponse.prototype.writeHead
// Node writes every head through writeHead (an implicit one too), and decides Connection from shouldKeepAlive there.
ClosingServerResponse.prototype.writeHead = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
  if (bodyMayFollow(this.req)) this.shouldKeepAlive = false
  return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args)
} as typeof writeHead

/** Options for http.createServer or https.createServer that make its responses ClosingServerResponse. */
export const CLOSING_RESPONSES = { ServerResponse: ClosingServerResponse as typeof ServerResponse }
