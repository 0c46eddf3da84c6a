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
import type { LaneVerdict } from './hit-lane.js'

export class ClosingServerResponse extends ServerResponse {
  // What the hit lane (src/http/hit-lane.ts) leaves for this class and for the route, kept on the response: fields
  // that every response has from its construction keep one object shape, where properties added to some requests
  // only would give IncomingMessage several and slow every access to it in Node's and Fastify's code.
  /**
   * Every byte the request's Content-Length announced has been taken by the lane: Node marks the request complete
   * only in a later callback of its parser, yet nothing more of this request can arrive, so the connection may be kept.
   */
  bodyTaken = false
  /** The lane's verdict on the request's token, when the lane verified it and gave the request back. */
  laneVerdict: LaneVerdict | undefined = undefined
  /** When a request the lane held while its body arrived reached the server (performance.now()). */
  arrivedAt: number | undefined = undefined
  /**
   * The caller whose key the lane let through when a request it gave back arrived (null: no caller keys were
   * configured then): the route's caller check is the one made on arrival, as Fastify makes it before any body.
   */
  callerAtArrival: string | null | undefined = undefined
}

/**
 * Whether bytes of the request's body may still be on their way. Node marks even a request without a body complete
 * only in the parser's next callback, after the one that handed the request over: an answer written at once (a
 * cache hit of a Bearer token, /readyz) finds it not complete, and must not close the connection for that.
 */
function bodyMayFollow (res: ClosingServerResponse): boolean {
  const req = res.req
  if (req.complete || res.bodyTaken) return false
  const length = req.headers['content-length']
  // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 §6.3); Node checked both are well formed.
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0)
}

const writeHead = ServerResponse.prototype.writeHead
// Node writes every head through writeHead (an implicit one too), and decides Connection from shouldKeepAlive there.
ClosingServerResponse.prototype.writeHead = function (this: ClosingServerResponse, ...args: unknown[]): ClosingServerResponse {
  if (bodyMayFollow(this)) this.shouldKeepAlive = false
  return (writeHead as (...a: unknown[]) => ClosingServerResponse).apply(this, args)
} as ClosingServerResponse['writeHead']

/** Options for http.createServer or https.createServer that make its responses ClosingServerResponse. */
export const CLOSING_RESPONSES = { ServerResponse: ClosingServerResponse as typeof ServerResponse }
