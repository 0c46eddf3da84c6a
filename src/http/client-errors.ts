/**
 * The header limit of a listener, and what a request past it (or one Node cannot parse) is answered with.
 *
 * Node refuses a request whose header block is larger than the server's maxHeaderSize (16 KiB by default)
 * before anything of it reaches Fastify. A token of up to server.maxTokenBytes (16 KiB by default) in an
 * Authorization header, beside a proxy's ordinary headers, would not fit: so the main listener allows
 * maxTokenBytes plus 16 KiB, following a reload of maxTokenBytes (Node reads the limit at each new
 * connection). What does not fit, and a request Node cannot parse, is answered here in the service's error
 * shape, with a request id: 431 request_headers_too_large, or 400 request_invalid (and a request that does not
 * arrive in time, 408 request_timeout). No route is known then,
 * not even /forward-auth (the request line may not have been read), so a proxy gets a 431 there too; no
 * request sends that much through a proxy's own header limits (nginx: 4 buffers of 8 KiB by default). A header
 * Node cannot parse does pass a proxy (nginx takes control characters in values): when the request line names
 * /forward-auth, that refusal is a 401, as forward-auth answers.
 */
import type { ConnectionError, FastifyBaseLogger } from 'fastify'
import { ServerResponse, STATUS_CODES, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { VerificationError } from '../errors.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import { errorFields } from './error-reply.js'
import { isForwardAuthUrl } from './routes/forward-auth.js'

/** Room for the request line and ordinary headers beside a token of the maximum size (Node's own default). */
export const ORDINARY_HEADER_BYTES = 16 * 1024

/** The header limit for a maximal token: maxTokenBytes plus Node's own default for everything else. */
export function headerLimit (maxTokenBytes: number): number {
  return maxTokenBytes + ORDINARY_HEADER_BYTES
}

/**
 * Makes `server` read its header limit from the configuration in force at each new connection (Node reads
 * server.maxHeaderSize when it sets up a connection's parser), so that a reload of server.maxTokenBytes
 * applies to header tokens as it does to body tokens.
 */
export function followHeaderLimit (server: Server, maxTokenBytes: () => number): void {
  Object.defineProperty(server, 'maxHeaderSize', { configurable: true, enumerable: true, get: () => headerLimit(maxTokenBytes()), set: () => {} })
}

export interface ClientErrorOptions {
  /** A request id for the answer (none was made: there is no request). */
  requestId: () => string
  logger: () => FastifyBaseLogger
  metrics?: () => ServiceMetrics | undefined
  /**
   * Whether this listener serves /forward-auth (the main one): there a request Node cannot parse is denied with
   * 401, like a malformed URL (framework-errors.ts), when its request line names /forward-auth. A proxy passes
   * the client's headers on (nginx's auth_request sends them all), and nginx turns a 400 into a 500.
   */
  forwardAuth?: boolean
}

/** Fastify's clientErrorHandler: Node's 'clientError' of the listener. */
export function clientErrorHandler (opts: ClientErrorOptions): (error: ConnectionError, socket: Socket) => void {
  return (error, socket) => {
    const refusal = clientCertificateRefusal(error, socket)
    if (refusal !== undefined) {
      // Read at 'connection' (answerOutsideRoutes) from the TCP socket under it: the TLS socket is gone by now.
      const clientAddress = socket.remoteAddress ?? (socket as Socket & { _parent?: Socket })._parent?.remoteAddress
      opts.logger().info({ reason: refusal, clientAddress },
        'client certificate refused (mutual TLS, server.tls.clientCaFile): the handshake ended, no request was read')
    }
    // A reset connection has nobody to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    // A TLS listener's handshake that failed or timed out (Node's 'tlsClientError', passed on as 'clientError'):
    // no request was made, and HTTP written now would never be read. Not a refused request, in logs or metrics.
    if (typeof error.code === 'string' && /^ERR_(TLS|SSL)_/.test(error.code)) { socket.destroy(); return }
    // The client ended the connection in the middle of a message (a body cut short, headers never finished):
    // nobody is waiting for an answer, and there may be a complete answer before this on the socket.
    if (error.code === 'HPE_INVALID_EOF_STATE') { socket.destroy(); return }
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // server.headersTimeoutMs or requestTimeoutMs passed: 408 in the service's shape, unless an answer to this
      // request has begun (an early answer while its body still trickles in), which the 408 would corrupt.
      const answer = (socket as Socket & { _httpMessage?: unknown })._httpMessage
      if (!(answer instanceof ServerResponse && answer.headersSent)) refuseOnSocket(socket, 'request_timeout', opts, 'request not received within server.headersTimeoutMs or requestTimeoutMs', false, timedOutAfter(socket))
      socket.destroy(error)
      return
    }
    const refuse = (): void => {
      const code = error.code === 'HPE_HEADER_OVERFLOW' ? 'request_headers_too_large' : 'request_invalid'
      const denial = code === 'request_invalid' && opts.forwardAuth === true && isForwardAuthUrl(requestTarget(error))
      refuseOnSocket(socket, code, opts, 'request refused before its headers were read', denial)
      socket.destroy(error)
    }
    // A pipelined request that cannot be parsed behind ones still being answered: their answers go first, or the
    // client would take the 400 for one of them. Node keeps the answer in progress on its socket (as in
    // close-kept-alive) and hands the socket to the next queued one when it finishes, so wait until none is left.
    // (An answer whose own request is not complete is that request's: its body is what failed to parse.)
    const afterAnswers = (): void => {
      const answer = (socket as Socket & { _httpMessage?: unknown })._httpMessage
      if (socket.destroyed || !(answer instanceof ServerResponse) || answer.writableFinished || !answer.req.complete) {
        if (!socket.destroyed) refuse()
        return
      }
      // Node's own 'finish' handler, registered first, has by then handed the socket to the next queued answer.
      answer.once('finish', afterAnswers)
      answer.once('close', () => { if (!socket.destroyed) socket.destroy(error) })
    }
    afterAnswers()
  }
}

/**
 * Why mutual TLS refused a client, or undefined for any other error: no certificate at all, or the verification
 * error of the one it presented (CERT_HAS_EXPIRED; UNABLE_TO_VERIFY_LEAF_SIGNATURE: another CA's; …). Node ends
 * that handshake without a word to either side (the client sees "socket hang up", in TLS 1.3): this is the only
 * trace of it.
 */
function clientCertificateRefusal (error: ConnectionError, socket: Socket): string | undefined {
  if (error.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no client certificate'
  // Set by Node on a TLS socket whose client certificate failed verification (a code, despite its typing).
  const verifyError: unknown = (socket as Socket & { authorizationError?: unknown }).authorizationError
  return error.code === 'ECONNRESET' && typeof verifyError === 'string' ? verifyError : undefined
}

/**
 * The request target of the request line at the start of the bytes Node could not parse (err.rawPacket), or
 * undefined when there is none. err.rawPacket is the one read the parser failed in: the request line with the
 * headers that fail when they came in one read (a proxy writes a request's headers at once), whatever the
 * target's length (an Envoy check's path is the client's own). When the failing header came in a later read, the
 * request line is gone (Node's parser reads the socket itself and keeps the target in C++ until the headers end),
 * and the refusal is a 400 on every route.
 */
function requestTarget (error: ConnectionError): string | undefined {
  const raw = (error as ConnectionError & { rawPacket?: unknown }).rawPacket
  if (!Buffer.isBuffer(raw)) return undefined
  const line = /^[A-Z]{1,20} (\/[^ \r\n]*) HTTP\/1\.[01]\r?\n/.exec(raw.toString('latin1'))
  return line?.[1]
}

/**
 * How long a request past server.headersTimeoutMs or requestTimeoutMs had taken, in seconds: the bound Node found
 * it past. Node measures from the request's first byte (its parser's start, which JS cannot read) and looks every
 * CONNECTIONS_CHECKING_INTERVAL_MS (1 s), so the request took that long and at most a second more. Neither the
 * connection's start (on a kept-alive connection it counts the requests before and the idle time between) nor its
 * bytes (read by the parser in C++, past any 'data' listener) would say more, at a cost on every connection.
 * Headers not complete: headersTimeout (at most requestTimeout: config/operations.ts); a body still arriving: requestTimeout.
 */
function timedOutAfter (socket: Socket): number {
  const { server, parser } = socket as Socket & { server?: { headersTimeout?: unknown, requestTimeout?: unknown }, parser?: { incoming?: IncomingMessage | null } }
  const bound = parser?.incoming?.complete === false ? server?.requestTimeout : server?.headersTimeout
  return typeof bound === 'number' ? bound / 1000 : 0
}

/**
 * Answers on the bare socket in the service's error shape, with a request id, counted and logged; the caller closes
 * it. `forwardAuthDenial`: a request to /forward-auth, answered 401 with a Bearer challenge as forward-auth would.
 * `durationSeconds`: how long the request took, as far as is known (a refusal at the parse of its headers: 0).
 */
function refuseOnSocket (socket: Socket, code: 'request_headers_too_large' | 'request_invalid' | 'request_timeout', opts: ClientErrorOptions, message: string, forwardAuthDenial = false, durationSeconds = 0): void {
  const err = new VerificationError(code)
  const status = forwardAuthDenial ? 401 : err.status
  const requestId = opts.requestId()
  const body = JSON.stringify({ ...errorFields(err), requestId })
  opts.logger().info({ reqId: requestId, status, code: err.code, route: null }, message)
  opts.metrics?.()?.requestCompleted(undefined, 'other', status, undefined, err.code, durationSeconds)
  if (socket.writable) {
    // As forward-auth's own 401 for a request that carries its token wrongly (RFC 6750 §3.1).
    const challenge = forwardAuthDenial ? `cache-control: no-store\r\nwww-authenticate: Bearer error="invalid_request", error_description="${err.code}"\r\n` : ''
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\n${challenge}content-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`)
  }
}

/**
 * What Node would answer by itself, outside the routes, without the service's error shape, request id, log line
 * or metrics (and, under /forward-auth, with a status a proxy does not expect):
 * - an Expect other than 100-continue: Node answers 417. RFC 9110 §10.1.1 lets a server ignore it instead, so
 *   the request goes to the routes as if it had none;
 * - CONNECT: Node closes the connection without a word. This service tunnels nothing: 400 request_invalid;
 * - an HTTP/1.1 request without Host: Node answers a bare 400. RFC 9112 §3.2 requires the 400, so it stays, but
 *   from the routes' hooks (src/http/request-lifecycle.ts), in the service's shape;
 * - a request whose body stops arriving for server.connectionTimeoutMs (10 s by default, before requestTimeoutMs):
 *   Node closes the connection without a word. 408 request_timeout, as past requestTimeoutMs. (A request still in
 *   its headers has no request object yet: that connection is closed as before.)
 */
export function answerOutsideRoutes (server: Server, opts: ClientErrorOptions): void {
  // Mutual TLS: a refused client is logged once its socket is gone (clientErrorHandler); net keeps the address
  // of a TCP socket once read, so it is read while the socket is there.
  if ((server as Server & { requestCert?: boolean }).requestCert === true) server.on('connection', (raw: Socket) => { void raw.remoteAddress })
  // Read by Node per request (http.Server's requireHostHeader option, here for HTTP and HTTPS alike).
  const hostless = server as Server & { requireHostHeader: boolean }
  hostless.requireHostHeader = false
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => { server.emit('request', req, res) })
  // With a listener, Node leaves closing a timed-out socket to it.
  server.on('timeout', (socket: Socket & { parser?: { incoming?: IncomingMessage | null }, _httpMessage?: unknown }) => {
    const answer = socket._httpMessage
    if (socket.parser?.incoming?.complete === false && answer instanceof ServerResponse && !answer.headersSent) {
      // It took at least the silence: server.connectionTimeoutMs (server.timeout, Node's socket timeout).
      refuseOnSocket(socket, 'request_timeout', opts, 'request body not received: nothing came for server.connectionTimeoutMs', false, server.timeout / 1000)
    }
    socket.destroy()
  })
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    // Under /forward-auth, the 401 every refusal there is (a proxy makes anything else a 500).
    refuseOnSocket(socket, 'request_invalid', opts, 'CONNECT refused: this service tunnels nothing', opts.forwardAuth === true && isForwardAuthUrl(req.url))
    socket.end()
  })
}
